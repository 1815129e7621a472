/* API Auth of Sync/Async APIs (DataFlux Func's "API 认证"): fixed fields,
 * HTTP Basic, HTTP Digest (RFC 7616 with MD5, as python-requests speaks it;
 * the server hands out the nonces and keeps them in Redis so either node
 * accepts them), and an auth function (the caller runs it as a task).
 * Plus the codecs they and the call path need: base64 and MD5 (GnuTLS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include "log.h"
#include "rds.h"
#include "secret.h"
#include "server_int.h"

#define NONCE_TTL_S 300 /* a Digest nonce is good for this long (DFF: 5 min too) */
#define DIGEST_OPAQUE "tandem"

/* ---- base64 and MD5 (GnuTLS) ------------------------------------------------ */

char *b64_encode(const void *data, size_t n)
{
    gnutls_datum_t in = {(unsigned char *)data, (unsigned)n}, out = {0};
    if (n == 0)
        return strdup("");
    if (gnutls_base64_encode2(&in, &out) < 0)
        return NULL;
    char *s = strndup((const char *)out.data, out.size);
    gnutls_free(out.data);
    return s;
}

unsigned char *b64_decode(const char *s, size_t len, size_t *n)
{
    *n = 0;
    if (len == 0)
        return calloc(1, 1);
    gnutls_datum_t in = {(unsigned char *)s, (unsigned)len}, out = {0};
    if (gnutls_base64_decode2(&in, &out) < 0)
        return NULL;
    unsigned char *b = malloc(out.size + 1);
    if (b) {
        memcpy(b, out.data, out.size);
        b[out.size] = '\0';
        *n = out.size;
    }
    gnutls_free(out.data);
    return b;
}

void md5_hex(const void *data, size_t n, char out[33])
{
    unsigned char d[16];
    if (gnutls_hash_fast(GNUTLS_DIG_MD5, data, n, d) < 0)
        memset(d, 0, sizeof d); /* a digest nobody can match */
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- HTTP Digest ------------------------------------------------------------ */

static void md5_join(char out[33], const char *const *parts, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += strlen(parts[i]) + 1;
    char *s = malloc(len + 1), *p = s;
    if (!s) {
        memset(out, '0', 32);
        out[32] = '\0';
        return;
    }
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? ":" : "", parts[i]);
    md5_hex(s, (size_t)(p - s), out);
    free(s);
}

void apiauth_digest_response(const char *user, const char *realm, const char *password,
                             const char *method, const char *uri, const char *nonce, const char *nc,
                             const char *cnonce, const char *qop, char out[33])
{
    char ha1[33], ha2[33];
    md5_join(ha1, (const char *const[]){user, realm, password}, 3);
    md5_join(ha2, (const char *const[]){method, uri}, 2);
    if (qop && *qop)
        md5_join(out, (const char *const[]){ha1, nonce, nc, cnonce, qop, ha2}, 6);
    else
        md5_join(out, (const char *const[]){ha1, nonce, ha2}, 3);
}

json_t *apiauth_parse_kv(const char *s)
{
    json_t *o = json_object();
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            return o;
        const char *k = p;
        while (*p && *p != '=' && *p != ',' && *p != ' ')
            p++;
        if (*p != '=' || p == k)
            break;
        char key[64];
        size_t kl = (size_t)(p - k) < sizeof key - 1 ? (size_t)(p - k) : sizeof key - 1;
        memcpy(key, k, kl);
        key[kl] = '\0';
        p++;
        char val[1024];
        size_t vl = 0;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (vl < sizeof val - 1)
                    val[vl++] = *p;
            }
            if (*p != '"')
                break;
            p++;
        } else {
            for (; *p && *p != ','; p++)
                if (*p != ' ' && vl < sizeof val - 1)
                    val[vl++] = *p;
        }
        val[vl] = '\0';
        json_t *js = json_string(val);
        if (!js)
            break;
        for (char *c = key; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        json_object_set_new(o, key, js);
    }
    json_decref(o);
    return NULL;
}

/* ---- the check ------------------------------------------------------------- */

static bool str_eq_ct(const char *a, const char *b)
{
    /* constant time in the length of b: passwords and digests */
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < lb; i++)
        d |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
    return d == 0;
}

/* The user's password (malloc'd), NULL if no such user: config_json's
 * "password", plain or sealed with secret.key (secret.h). */
static char *user_password(json_t *users, const char *name)
{
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u)
    {
        const char *un = json_string_value(json_object_get(u, "username"));
        const char *pw = json_string_value(json_object_get(u, "password"));
        if (!un || !pw || strcmp(un, name) != 0)
            continue;
        if (!secret_is_sealed(pw))
            return strdup(pw);
        char *plain = NULL, *err = NULL;
        if (secret_open(srv_conf()->secret_key, pw, &plain, &err) != 0) {
            log_warnx("API auth user '%s': cannot open the sealed password: %s", un,
                      err ? err : "?");
            free(err);
            return NULL;
        }
        return plain;
    }
    return NULL;
}

static void new_nonce(char out[33])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)rand();
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* 401 with a challenge, as DFF answers a missing or wrong Basic/Digest login. */
static enum apiauth_result ask(struct srv_req *r, bool digest, const char *realm)
{
    char hdr[512];
    if (digest) {
        redisContext *rc = srv_redis(r);
        if (!rc)
            return APIAUTH_ANSWERED;
        char nonce[33], key[160];
        new_nonce(nonce);
        rds_key(key, sizeof key, srv_conf(), "apiauth:nonce:%s", nonce);
        redisReply *rep = redisCommand(rc, "SET %s %s EX %d", key, realm, NONCE_TTL_S);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            req_redis_err(r, rc, rep, "SET digest nonce");
            if (rep)
                freeReplyObject(rep);
            return APIAUTH_ANSWERED;
        }
        freeReplyObject(rep);
        snprintf(hdr, sizeof hdr, "Digest realm=\"%s\", qop=\"auth\", nonce=\"%s\", opaque=\"%s\"",
                 realm, nonce, DIGEST_OPAQUE);
    } else {
        snprintf(hdr, sizeof hdr, "Basic realm=\"%s\"", realm);
    }
    req_err(r, 401, "EAPIAuth", json_pack("{s:s}", "realm", realm), "HTTP %s Auth failed",
            digest ? "Digest" : "Basic");
    if (r->resp)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, hdr);
    return APIAUTH_ANSWERED;
}

static enum apiauth_result check_basic(struct srv_req *r, json_t *users, const char *realm)
{
    const char *h = req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return ask(r, false, realm);
    const char *b = h + 6;
    while (*b == ' ')
        b++;
    size_t n = 0;
    unsigned char *dec = b64_decode(b, strlen(b), &n);
    char *cred = dec ? strndup((char *)dec, n) : NULL;
    free(dec);
    char *colon = cred ? strchr(cred, ':') : NULL;
    bool ok = false;
    if (colon) {
        *colon = '\0';
        char *pw = user_password(users, cred);
        ok = pw && str_eq_ct(colon + 1, pw);
        free(pw);
    }
    free(cred);
    return ok ? APIAUTH_OK : ask(r, false, realm);
}

/* The digest's uri names this request (so a response captured for one path
 * is no good on another): its path part, percent-decoded, is r->path. */
static bool uri_is_this(struct srv_req *r, const char *uri)
{
    char buf[2048];
    size_t n = strcspn(uri, "?");
    if (n >= sizeof buf)
        return false;
    memcpy(buf, uri, n);
    buf[n] = '\0';
    MHD_http_unescape(buf);
    return strcmp(buf, r->path) == 0;
}

static enum apiauth_result check_digest(struct srv_req *r, json_t *users, const char *realm)
{
    const char *h = req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Digest ", 7) != 0)
        return ask(r, true, realm);
    json_t *kv = apiauth_parse_kv(h + 7);
    const char *user = json_string_value(json_object_get(kv, "username"));
    const char *arealm = json_string_value(json_object_get(kv, "realm"));
    const char *nonce = json_string_value(json_object_get(kv, "nonce"));
    const char *uri = json_string_value(json_object_get(kv, "uri"));
    const char *resp = json_string_value(json_object_get(kv, "response"));
    const char *qop = json_string_value(json_object_get(kv, "qop"));
    const char *nc = json_string_value(json_object_get(kv, "nc"));
    const char *cnonce = json_string_value(json_object_get(kv, "cnonce"));
    char *pw = user ? user_password(users, user) : NULL;
    bool ok = pw && arealm && strcmp(arealm, realm) == 0 && nonce && uri && resp &&
              (!qop || (strcmp(qop, "auth") == 0 && nc && cnonce)) && uri_is_this(r, uri);
    if (ok) {
        /* the nonce must be one this service handed out for this realm */
        redisContext *rc = srv_redis(r);
        if (!rc) {
            json_decref(kv);
            free(pw);
            return APIAUTH_ANSWERED;
        }
        char key[160];
        rds_key(key, sizeof key, srv_conf(), "apiauth:nonce:%.64s", nonce);
        redisReply *rep = redisCommand(rc, "GET %s", key);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            req_redis_err(r, rc, rep, "GET digest nonce");
            if (rep)
                freeReplyObject(rep);
            json_decref(kv);
            free(pw);
            return APIAUTH_ANSWERED;
        }
        ok = rep->type == REDIS_REPLY_STRING && strcmp(rep->str, realm) == 0;
        freeReplyObject(rep);
    }
    if (ok) {
        char want[33];
        apiauth_digest_response(user, realm, pw, r->method, uri, nonce, nc ? nc : "",
                                cnonce ? cnonce : "", qop, want);
        ok = str_eq_ct(resp, want);
    }
    json_decref(kv);
    free(pw);
    return ok ? APIAUTH_OK : ask(r, true, realm);
}

static enum apiauth_result check_fixed(struct srv_req *r, json_t *fields, json_t *body,
                                       json_t *strip)
{
    bool ok = false;
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        const char *loc = json_string_value(json_object_get(f, "location"));
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *want = json_string_value(json_object_get(f, "value"));
        if (!loc || !name || !want)
            continue;
        const char *got = NULL;
        if (strcmp(loc, "header") == 0) {
            got = req_header(r, name);
        } else if (strcmp(loc, "query") == 0) {
            got = req_query(r, name);
            json_object_del(strip, name);
        } else if (strcmp(loc, "body") == 0) {
            got = json_string_value(json_object_get(body, name));
            json_object_del(strip, name);
        }
        if (!ok && got && str_eq_ct(got, want))
            ok = true;
    }
    if (ok)
        return APIAUTH_OK;
    req_err(r, 401, "EAPIAuth", NULL, "Fixed Field Auth failed");
    return APIAUTH_ANSWERED;
}

enum apiauth_result apiauth_check(struct srv_req *r, json_t *auth, const char *realm, json_t *body,
                                  json_t *strip)
{
    const char *type = json_string_value(json_object_get(auth, "type"));
    json_t *cfg = json_object_get(auth, "config");
    if (!type)
        type = "";
    if (strcmp(type, "fixedField") == 0)
        return check_fixed(r, json_object_get(cfg, "fields"), body, strip);
    if (strcmp(type, "httpBasic") == 0)
        return check_basic(r, json_object_get(cfg, "users"), realm);
    if (strcmp(type, "httpDigest") == 0)
        return check_digest(r, json_object_get(cfg, "users"), realm);
    if (strcmp(type, "func") == 0) {
        if (!json_is_string(json_object_get(cfg, "funcId"))) {
            req_err(r, 401, "EAPIAuth", NULL, "API auth of type func names no funcId");
            return APIAUTH_ANSWERED;
        }
        return APIAUTH_FUNC;
    }
    /* unknown type: refuse rather than leave the API open */
    log_warnx("API auth for %s: unknown type '%s'", realm, type);
    req_err(r, 401, "EAPIAuth", json_pack("{s:s}", "type", type), "unknown API auth type '%s'",
            type);
    return APIAUTH_ANSWERED;
}
