/* Who is calling, and may they: Bearer access keys (tk_...), DFF's
 * sign-in tokens (X-Dff-Auth-Token, kept in Redis with a TTL) and DFF's
 * access-key signatures (X-Dff-Ak-Id/-Timestamp/-Nonce/-Sign: HMAC-SHA1
 * over "METHOD&URI&timestamp&nonce&md5(body as sorted compact JSON)", the
 * string DFF's SDKs sign). Also sign-in and sign-out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>
#include <strings.h>
#include <sys/random.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "db.h"
#include "ids.h"
#include "log.h"
#include "secret.h"
#include "sha256.h"
#include "server_int.h"
#include "userpw.h"

#define AK_WINDOW_S 900        /* DFF's _WEB_AK_TIMESTAMP_DIFF_LIMIT */
#define AUTH_TOKEN_TTL 86400   /* DFF's _WEB_AUTH_EXPIRES */
#define SIGNIN_FAIL_MAX 5      /* wrong passwords per client address and user ... */
#define SIGNIN_FAIL_WINDOW 300 /* ... within this many seconds, then 429 */
#define CONSOLE_COOKIE "tandem_session"
#define CONSOLE_CSRF_HEADER "X-Tandem-Csrf"

static const char *scope_name(enum srv_scope s)
{
    return s == SRV_SCOPE_ADMIN ? "admin" : s == SRV_SCOPE_CALL ? "call" : "none";
}

static int deny_scope(struct srv_req *r, const char *who, const char *have, enum srv_scope need)
{
    req_err(r, 403, "EUserPrivilege",
            json_pack("{s:s,s:s,s:s}", "credential", who, "scope", have, "need", scope_name(need)),
            "%s has scope '%s'; %s %s needs scope '%s'", who, have, r->method, r->path,
            scope_name(need));
    return -1;
}

/* The scope column of a live access key: 1 found, 0 unknown/revoked, -1 answered. */
static int key_scope(struct srv_req *r, const char *id, char *scope, size_t n, char **sealed)
{
    MYSQL *m = srv_db(r);
    if (!m)
        return -1;
    char *q = db_q(m, id);
    struct sql_row1 o;
    int found = req_sql_row1(
        r, m, &o,
        "SELECT scope, secret_sealed FROM access_key WHERE id = %s AND revoked_at IS NULL", q);
    free(q);
    if (found == 1) {
        snprintf(scope, n, "%s", o.row[0] ? o.row[0] : "admin");
        if (sealed)
            *sealed = o.row[1] ? strdup(o.row[1]) : NULL;
    }
    sql_row1_done(&o);
    return found;
}

static int check_bearer(struct srv_req *r, const char *h, enum srv_scope need)
{
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        req_err(r, 401, "EAPIAuth", NULL, "Authorization header must be 'Bearer <secret>'");
        return -1;
    }
    const char *secret = h + 7;
    while (*secret == ' ')
        secret++;
    char hex[65];
    sha256_hex(secret, strlen(secret), hex);
    struct srv_cache *c = srv_cache_get();
    json_t *id = c->loaded ? json_object_get(c->keys, hex) : NULL;
    if (id)
        snprintf(r->key_id, sizeof r->key_id, "%s", json_string_value(id));
    bool loaded = c->loaded;
    srv_cache_put(c);
    if (!loaded) {
        req_err(r, 503, "EBackend", NULL, "access keys not loaded yet (database unreachable?)");
        return -1;
    }
    if (!id) {
        req_err(r, 401, "EAPIAuth", NULL, "access key is unknown or revoked");
        return -1;
    }
    if (need != SRV_SCOPE_ADMIN)
        return 0;
    /* the hot path (calls) needs no SQL; admin routes read the scope */
    char scope[16];
    int f = key_scope(r, r->key_id, scope, sizeof scope, NULL);
    if (f < 0)
        return -1;
    if (f == 0) {
        req_err(r, 401, "EAPIAuth", NULL, "access key is unknown or revoked");
        return -1;
    }
    if (strcmp(scope, "admin") != 0)
        return deny_scope(r, "access key", scope, need);
    return 0;
}

/* DFF's roles (server/privilege.yaml) mapped onto Tandem's two scopes: sa,
 * admin (and DFF's wildcard '*') administer; user, readonlyUser, customUser
 * and no role at all may call funcs and APIs only. DFF lets 'user' edit
 * scripts too; Tandem has no finer privileges, so it errs on the side of
 * refusing. roles_json is a JSON list, or DFF's comma string from an import. */
static bool roles_admin(const char *roles)
{
    if (!roles)
        return false;
    json_t *j = json_loads(roles, JSON_DECODE_ANY, NULL);
    bool admin = false;
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            const char *s = json_string_value(v);
            admin |= s && (!strcmp(s, "sa") || !strcmp(s, "admin") || !strcmp(s, "*"));
        }
    } else {
        const char *p = json_is_string(j) ? json_string_value(j) : roles;
        while (*p && !admin) {
            size_t n = strcspn(p, ",");
            while (n && *p == ' ')
                p++, n--;
            admin = (n == 2 && !strncmp(p, "sa", 2)) || (n == 5 && !strncmp(p, "admin", 5)) ||
                    (n == 1 && *p == '*');
            p += n + (p[n] == ',');
        }
    }
    json_decref(j);
    return admin;
}

/* The signed-in user's scope, read per admin request so a role change or a
 * deleted user applies at once (admin routes are not the hot path). */
static int user_scope(struct srv_req *r, enum srv_scope need)
{
    MYSQL *m = srv_db(r);
    if (!m)
        return -1;
    char *q = db_q(m, r->user_id);
    struct sql_row1 o;
    int found = req_sql_row1(r, m, &o, "SELECT roles_json, is_disabled FROM user WHERE id = %s", q);
    free(q);
    if (found == -1)
        return -1;
    bool disabled = found && o.row[1] && atoi(o.row[1]) != 0;
    bool admin = found && roles_admin(o.row[0]);
    sql_row1_done(&o);
    if (!found || disabled) {
        req_err(r, 401, found ? "EUserDisabled" : "EUserAuth", NULL,
                "the signed-in user %s %s: sign in again", r->user_id,
                found ? "is disabled" : "no longer exists");
        return -1;
    }
    return admin ? 0 : deny_scope(r, "a user without role sa or admin", "call", need);
}

static int check_token(struct srv_req *r, const char *tok, enum srv_scope need)
{
    if (strlen(tok) > 128 || !id_valid(tok)) {
        req_err(r, 401, "EUserAuth", NULL, "X-Dff-Auth-Token is malformed");
        return -1;
    }
    redisContext *rc = srv_redis(r);
    if (!rc)
        return -1;
    redisReply *rep = redisCommand(rc, "GET %sauth:token:%s", S.conf.redis_prefix, tok);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        req_redis_err(r, rc, rep, "reading the sign-in token");
        return -1;
    }
    bool ok = rep->type == REDIS_REPLY_STRING;
    if (ok)
        snprintf(r->user_id, sizeof r->user_id, "%s", rep->str);
    freeReplyObject(rep);
    if (!ok) {
        req_err(
            r, 401, "EUserAuth", NULL,
            "sign-in token is unknown or expired: sign in again (POST /api/v1/auth/do/sign-in)");
        return -1;
    }
    return need == SRV_SCOPE_ADMIN ? user_scope(r, need) : 0;
}

/* The body as DFF's SDKs hash it: the parsed JSON dumped with sorted keys,
 * no spaces, non-ASCII as is; no body is "{}". A body that is not JSON is
 * hashed as sent. */
static void body_md5(struct srv_req *r, char out[33])
{
    size_t i = 0;
    while (r->body && i < r->body_len && strchr(" \t\r\n", r->body[i]))
        i++;
    if (!r->body || i == r->body_len) {
        md5_hex("{}", 2, out);
        return;
    }
    json_t *j = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (s) {
        md5_hex(s, strlen(s), out);
        free(s);
    } else {
        md5_hex(r->body, r->body_len, out);
    }
}

static int check_signature(struct srv_req *r, const char *ak_id, enum srv_scope need)
{
    const char *ts = req_header(r, "X-Dff-Ak-Timestamp");
    const char *nonce = req_header(r, "X-Dff-Ak-Nonce");
    const char *sign = req_header(r, "X-Dff-Ak-Sign");
    if (!nonce || !*nonce || strlen(nonce) > 128) {
        req_err(r, 401, "EUserAuth", NULL, "X-Dff-Ak-Nonce is missing or longer than 128");
        return -1;
    }
    char *end = NULL;
    long long t = ts ? strtoll(ts, &end, 10) : 0;
    if (!ts || !*ts || *end) {
        req_err(r, 401, "EUserAuth", NULL, "X-Dff-Ak-Timestamp is missing or not unix seconds");
        return -1;
    }
    long long now = (long long)time(NULL);
    if (t < now - AK_WINDOW_S || t > now + AK_WINDOW_S) {
        req_err(r, 401, "EUserAuth",
                json_pack("{s:I,s:I,s:i}", "timestamp", (json_int_t)t, "server", (json_int_t)now,
                          "window", AK_WINDOW_S),
                "X-Dff-Ak-Timestamp %lld is more than %d s away from the server's clock (%lld)", t,
                AK_WINDOW_S, now);
        return -1;
    }
    if (strlen(ak_id) >= sizeof r->key_id || !id_valid(ak_id)) {
        req_err(r, 401, "EUserAuth", NULL, "X-Dff-Ak-Id is malformed");
        return -1;
    }
    char scope[16];
    char *sealed = NULL;
    int f = key_scope(r, ak_id, scope, sizeof scope, &sealed);
    if (f < 0)
        return -1;
    if (f == 0) {
        req_err(r, 401, "EUserAuth", json_pack("{s:s}", "akId", ak_id),
                "access key %s is unknown or revoked", ak_id);
        return -1;
    }
    char *secret = NULL, *err = NULL;
    if (!sealed) {
        req_err(r, 401, "EUserAuth", json_pack("{s:s}", "akId", ak_id),
                "access key %s was made before signing existed: it works as a Bearer key only",
                ak_id);
        return -1;
    }
    if (secret_open(S.conf.secret_key, sealed, &secret, &err) != 0) {
        free(sealed);
        req_err(r, 500, "EServerInternal", NULL, "cannot open access key %s: %s", ak_id,
                err ? err : "?");
        free(err);
        return -1;
    }
    free(sealed);
    char md5[33], want[41];
    body_md5(r, md5);
    char *msg = NULL;
    int len =
        asprintf(&msg, "%s&%s&%s&%s&%s", r->method, r->uri ? r->uri : r->path, ts, nonce, md5);
    if (len < 0) {
        free(secret);
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        return -1;
    }
    hmac_sha1_hex(secret, msg, (size_t)len, want);
    free(secret);
    free(msg);
    if (!sign || strlen(sign) != 40 || strcasecmp(sign, want) != 0) {
        req_err(r, 401, "EUserAuth", json_pack("{s:s}", "akId", ak_id),
                "X-Dff-Ak-Sign does not match: expected hex HMAC-SHA1(secret, "
                "\"METHOD&PATH?QUERY&TIMESTAMP&NONCE&md5(sorted compact JSON body)\")");
        return -1;
    }
    /* after the signature, so a forger cannot burn a client's nonces */
    redisContext *rc = srv_redis(r);
    if (!rc)
        return -1;
    redisReply *rep = redisCommand(rc, "SET %sak:nonce:%s:%s 1 NX EX %d", S.conf.redis_prefix,
                                   ak_id, nonce, 2 * AK_WINDOW_S + 1);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        req_redis_err(r, rc, rep, "recording the access key nonce");
        return -1;
    }
    bool fresh = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    if (!fresh) {
        req_err(r, 401, "EUserAuth", json_pack("{s:s}", "nonce", nonce),
                "X-Dff-Ak-Nonce was used before: every signed request needs a new nonce");
        return -1;
    }
    snprintf(r->key_id, sizeof r->key_id, "%s", ak_id);
    if (need == SRV_SCOPE_ADMIN && strcmp(scope, "admin") != 0)
        return deny_scope(r, "access key", scope, need);
    return 0;
}

static int check_cookie(struct srv_req *r, const char *tok, enum srv_scope need);

int srv_auth_check(struct srv_req *r, enum srv_scope need)
{
    if (need == SRV_SCOPE_NONE)
        return 0;
    const char *ak = req_header(r, "X-Dff-Ak-Id");
    if (ak && *ak)
        return check_signature(r, ak, need);
    const char *tok = req_header(r, "X-Dff-Auth-Token");
    if (tok && *tok)
        return check_token(r, tok, need);
    const char *h = req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && *h)
        return check_bearer(r, h, need);
    const char *ck =
        r->conn ? MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, CONSOLE_COOKIE) : NULL;
    if (ck && *ck)
        return check_cookie(r, ck, need);
    req_err(
        r, 401, "EAPIAuth", NULL,
        "missing credentials: send 'Authorization: Bearer <secret>', X-Dff-Auth-Token (sign-in) "
        "or an X-Dff-Ak-* signature");
    return -1;
}

int req_need_key(struct srv_req *r)
{
    return srv_auth_check(r, SRV_SCOPE_CALL);
}

/* ---- sign-in / sign-out ---------------------------------------------------- */

void auth_drop_user_tokens(redisContext *rc, const char *user_id)
{
    redisReply *rep = redisCommand(rc, "SMEMBERS %sauth:user:%s", S.conf.redis_prefix, user_id);
    if (rep && rep->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < rep->elements; i++) {
            redisReply *d =
                redisCommand(rc, "DEL %sauth:token:%s", S.conf.redis_prefix, rep->element[i]->str);
            if (d)
                freeReplyObject(d);
        }
    if (rep)
        freeReplyObject(rep);
    rep = redisCommand(rc, "DEL %sauth:user:%s", S.conf.redis_prefix, user_id);
    if (rep)
        freeReplyObject(rep);
}

/* ---- wrong-password rate limit --------------------------------------------- */

static void client_ip(struct srv_req *r, char *ip, size_t n)
{
    snprintf(ip, n, "unknown");
    const union MHD_ConnectionInfo *ci =
        r->conn ? MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
    if (!ci || !ci->client_addr)
        return;
    if (ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)ci->client_addr)->sin_addr, ip, (socklen_t)n);
    else if (ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ci->client_addr)->sin6_addr, ip, (socklen_t)n);
}

/* Password guessing is slowed per (client address, user name): after
 * SIGNIN_FAIL_MAX wrong passwords the pair waits out the window (429 with
 * Retry-After), and other users and addresses are not locked out by it. */
static bool signin_throttled(struct srv_req *r, const char *user)
{
    char ip[64];
    client_ip(r, ip, sizeof ip);
    redisContext *rc = srv_redis(r);
    if (!rc)
        return true;
    redisReply *rep = redisCommand(rc, "EVAL %s 1 %sauth:fail:%s:%s",
                                   "return {redis.call('GET', KEYS[1]) or "
                                   "'0', redis.call('TTL', KEYS[1])}",
                                   S.conf.redis_prefix, ip, user);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        req_redis_err(r, rc, rep, "reading the sign-in failure count");
        return true;
    }
    long long fails = atoll(rep->element[0]->str ? rep->element[0]->str : "0");
    long long ttl = rep->element[1]->integer;
    freeReplyObject(rep);
    if (fails < SIGNIN_FAIL_MAX)
        return false;
    if (ttl < 1)
        ttl = 1;
    req_err(r, 429, "EClientRateLimit",
            json_pack("{s:s,s:I,s:I}", "username", user, "failures", (json_int_t)fails,
                      "retryAfter", (json_int_t)ttl),
            "too many wrong passwords for %s from %s: try again in %lld s", user, ip, ttl);
    if (r->resp) {
        char ra[24];
        snprintf(ra, sizeof ra, "%lld", ttl);
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    return true;
}

static void signin_failed(struct srv_req *r, const char *user)
{
    char ip[64];
    client_ip(r, ip, sizeof ip);
    redisContext *rc = srv_redis(r);
    if (!rc)
        return;
    /* the window starts at the first failure and is not extended */
    redisReply *rep = redisCommand(
        rc, "EVAL %s 1 %sauth:fail:%s:%s %d",
        "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], "
        "ARGV[1]) end return n",
        S.conf.redis_prefix, ip, user, SIGNIN_FAIL_WINDOW);
    if (rep)
        freeReplyObject(rep);
}

/* Checks user and password (rate-limited per client address and user) and
 * issues a sign-in token. 0 with tok/uid filled, or -1 after answering. */
static int sign_in(struct srv_req *r, const char *user, const char *pw, char tok[64], char uid[64])
{
    if (signin_throttled(r, user))
        return -1;
    MYSQL *m = srv_db(r);
    if (!m)
        return -1;
    char *q = db_q(m, user);
    struct sql_row1 o;
    int found = req_sql_row1(
        r, m, &o, "SELECT id, password_hash, is_disabled FROM user WHERE username = %s", q);
    free(q);
    if (found == -1)
        return -1;
    bool good = found && userpw_verify(pw, o.row[1]);
    bool disabled = found && o.row[2] && atoi(o.row[2]) != 0;
    uid[0] = '\0';
    if (found)
        snprintf(uid, 64, "%s", o.row[0]);
    sql_row1_done(&o);
    if (!good) {
        signin_failed(r, user);
        req_err(r, 400, "EUserPassword", NULL, "wrong username or password");
        return -1;
    }
    if (disabled) {
        req_err(r, 401, "EUserDisabled", json_pack("{s:s}", "username", user),
                "user %s is disabled", user);
        return -1;
    }
    unsigned char raw[24];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        req_err(r, 500, "EServerInternal", NULL, "no randomness for a token");
        return -1;
    }
    strcpy(tok, "xat-");
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(tok + 4 + 2 * i, 3, "%02x", raw[i]);
    redisContext *rc = srv_redis(r);
    if (!rc)
        return -1;
    redisReply *rep = redisCommand(rc, "SET %sauth:token:%s %s EX %d", S.conf.redis_prefix, tok,
                                   uid, AUTH_TOKEN_TTL);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        req_redis_err(r, rc, rep, "storing the sign-in token");
        return -1;
    }
    freeReplyObject(rep);
    /* the user's set of tokens, so disabling a user ends its sessions */
    rep = redisCommand(rc, "SADD %sauth:user:%s %s", S.conf.redis_prefix, uid, tok);
    if (rep)
        freeReplyObject(rep);
    rep = redisCommand(rc, "EXPIRE %sauth:user:%s %d", S.conf.redis_prefix, uid, AUTH_TOKEN_TTL);
    if (rep)
        freeReplyObject(rep);
    return 0;
}

void h_sign_in(struct srv_req *r)
{
    json_t *body = req_body_object(r, true);
    if (!body)
        return;
    json_t *si = NULL;
    const char *user = NULL, *pw = NULL;
    char tok[64], uid[64];
    /* captcha and captchaToken are accepted and ignored: there is no captcha */
    if (req_field_obj(r, body, "signIn", true, &si) ||
        req_field_str(r, si, "username", true, &user) ||
        req_field_str(r, si, "password", true, &pw) || sign_in(r, user, pw, tok, uid))
        goto out;
    req_ok(r,
           json_pack("{s:s,s:s,s:i}", "xAuthToken", tok, "userId", uid, "expires", AUTH_TOKEN_TTL));
out:
    json_decref(body);
}

void h_sign_out(struct srv_req *r)
{
    const char *tok = req_header(r, "X-Dff-Auth-Token");
    if (!tok || !*tok || !id_valid(tok)) {
        req_err(r, 401, "EUserAuth", NULL, "sign-out needs the X-Dff-Auth-Token header");
        return;
    }
    redisContext *rc = srv_redis(r);
    if (!rc)
        return;
    redisReply *rep = redisCommand(rc, "DEL %sauth:token:%s", S.conf.redis_prefix, tok);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        req_redis_err(r, rc, rep, "deleting the sign-in token");
        return;
    }
    freeReplyObject(rep);
    if (r->user_id[0]) {
        rep = redisCommand(rc, "SREM %sauth:user:%s %s", S.conf.redis_prefix, r->user_id, tok);
        if (rep)
            freeReplyObject(rep);
    }
    req_ok(r, NULL);
}

/* ---- the web console's session cookie --------------------------------------
 * A browser signs in at /api/v1/console/do/sign-in and gets the sign-in token
 * as an HttpOnly, SameSite=Strict cookie (Secure behind TLS), so page script
 * never holds it. Every cookie-authenticated API request, reads included
 * (DFF's deletes are GETs), must also carry X-Tandem-Csrf: a value derived
 * from the token that the sign-in answer gives the page. Another site can
 * make the browser send the cookie but cannot read that value. */

static void csrf_of(const char *tok, char out[33])
{
    char hex[65];
    char buf[160];
    int n = snprintf(buf, sizeof buf, "tandem-csrf:%s", tok);
    sha256_hex(buf, (size_t)n, hex);
    memcpy(out, hex, 32);
    out[32] = '\0';
}

static bool csrf_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static int check_cookie(struct srv_req *r, const char *tok, enum srv_scope need)
{
    const char *h = req_header(r, CONSOLE_CSRF_HEADER);
    char want[33];
    if (strlen(tok) > 128 || !id_valid(tok)) {
        req_err(r, 401, "EUserAuth", NULL, "the session cookie is malformed: sign in again");
        return -1;
    }
    csrf_of(tok, want);
    if (!h || !*h || !csrf_equal(h, want)) {
        req_err(r, 403, "EClientCsrf", json_pack("{s:s}", "header", CONSOLE_CSRF_HEADER),
                "%s %s with the session cookie needs the %s header the sign-in answered "
                "(csrf): %s",
                r->method, r->path, CONSOLE_CSRF_HEADER, h && *h ? "it does not match" : "missing");
        return -1;
    }
    return check_token(r, tok, need);
}

static void session_cookie(struct srv_req *r, const char *tok, int max_age)
{
    if (!r->resp)
        return;
    char c[256];
    snprintf(c, sizeof c, "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict%s", CONSOLE_COOKIE,
             tok, max_age, S.conf.tls_cert[0] ? "; Secure" : "");
    MHD_add_response_header(r->resp, MHD_HTTP_HEADER_SET_COOKIE, c);
}

static json_t *session_json(struct srv_req *r, const char *tok, const char *uid)
{
    char csrf[33], name[128] = "";
    csrf_of(tok, csrf);
    MYSQL *m = srv_db(r);
    if (!m)
        return NULL;
    char *q = db_q(m, uid);
    struct sql_row1 o;
    int found = req_sql_row1(r, m, &o, "SELECT username, roles_json FROM user WHERE id = %s", q);
    free(q);
    if (found == -1)
        return NULL;
    if (found && o.row[0])
        snprintf(name, sizeof name, "%s", o.row[0]);
    /* the page shows a call-only user the Call page only (the routes
     * refuse it everything else anyway) */
    bool admin = found && roles_admin(o.row[1]);
    sql_row1_done(&o);
    return json_pack("{s:s,s:s,s:s,s:i,s:s}", "userId", uid, "username", name, "csrf", csrf,
                     "expires", AUTH_TOKEN_TTL, "scope", admin ? "admin" : "call");
}

/* POST /api/v1/console/do/sign-in {"username","password"} */
void h_console_sign_in(struct srv_req *r)
{
    json_t *body = req_body_object(r, true);
    if (!body)
        return;
    const char *user = NULL, *pw = NULL;
    char tok[64], uid[64];
    if (req_field_str(r, body, "username", true, &user) ||
        req_field_str(r, body, "password", true, &pw) || sign_in(r, user, pw, tok, uid))
        goto out;
    json_t *sess = session_json(r, tok, uid);
    if (!sess)
        goto out;
    req_ok(r, sess);
    session_cookie(r, tok, AUTH_TOKEN_TTL);
out:
    json_decref(body);
}

/* GET /api/v1/console/do/session: who the cookie belongs to, and the CSRF
 * value, for a page that was reloaded. No CSRF needed: it only answers the
 * browser's own origin (no CORS), and answers nothing without the cookie. */
void h_console_session(struct srv_req *r)
{
    const char *ck =
        r->conn ? MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, CONSOLE_COOKIE) : NULL;
    if (!ck || !*ck) {
        req_err(r, 401, "EUserAuth", NULL, "not signed in");
        return;
    }
    /* any signed-in user: a call-only one gets a console with its Call page */
    if (check_token(r, ck, SRV_SCOPE_CALL) != 0)
        return;
    json_t *sess = session_json(r, ck, r->user_id);
    if (!sess)
        return;
    /* ?with=cluster: the page's bootstrap. A reloaded overview needs the
     * session (for its CSRF value) before it may ask anything else; the
     * cluster's state in the same answer saves that second round trip
     * before the first draw. Admins only, as its own route. */
    const char *with = req_query(r, "with");
    if (with && strcmp(with, "cluster") == 0 &&
        strcmp(json_string_value(json_object_get(sess, "scope")), "admin") == 0) {
        json_t *c = console_cluster_json(r);
        if (!c) {
            json_decref(sess);
            return;
        }
        json_object_set_new(sess, "cluster", c);
    }
    req_ok(r, sess);
}

/* POST /api/v1/console/do/sign-out (cookie + CSRF, checked by the route) */
void h_console_sign_out(struct srv_req *r)
{
    const char *ck =
        r->conn ? MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, CONSOLE_COOKIE) : NULL;
    redisContext *rc = srv_redis(r);
    if (!rc)
        return;
    if (ck && *ck && id_valid(ck)) {
        redisReply *rep = redisCommand(rc, "DEL %sauth:token:%s", S.conf.redis_prefix, ck);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            req_redis_err(r, rc, rep, "deleting the session");
            return;
        }
        freeReplyObject(rep);
        if (r->user_id[0]) {
            rep = redisCommand(rc, "SREM %sauth:user:%s %s", S.conf.redis_prefix, r->user_id, ck);
            if (rep)
                freeReplyObject(rep);
        }
    }
    req_ok(r, NULL);
    session_cookie(r, "", 0);
}
