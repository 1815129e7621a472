/* API Auth of Sync/Async APIs (DataFlux Func's "API 认证"): fixed fields,
 * HTTP Basic, HTTP Digest (RFC 7616 with MD5, as python-requests speaks it;
 * the server hands out the nonces and keeps them in Redis so either node
 * accepts them), and an auth function (the caller runs it as a task).
 * Plus the small codecs they and the call path need: base64 and MD5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <microhttpd.h>
#include "log.h"
#include "rds.h"
#include "server_int.h"

#define NONCE_TTL_S 300 /* a Digest nonce is good for this long (DFF: 5 min too) */
#define DIGEST_OPAQUE "tandem"

/* ---- base64 ---------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const void *data, size_t n)
{
    const unsigned char *p = data;
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = B64[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

unsigned char *b64_decode(const char *s, size_t len, size_t *n)
{
    unsigned char *out = malloc(len / 4 * 3 + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    bool pad = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n' || c == ' ')
            continue;
        if (c == '=') {
            pad = true;
            continue;
        }
        int v = b64_val(c);
        if (v < 0 || pad) { /* a character after padding is not base64 either */
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *n = o;
    return out;
}

/* ---- MD5 (RFC 1321), for HTTP Digest --------------------------------------- */

struct md5 {
    uint32_t a, b, c, d;
    uint64_t len;
    unsigned char buf[64];
    size_t nbuf;
};

static const uint32_t MD5_K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
static const unsigned char MD5_S[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                        5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_block(struct md5 *m, const unsigned char *p)
{
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[i * 4] | (uint32_t)p[i * 4 + 1] << 8 | (uint32_t)p[i * 4 + 2] << 16 |
               (uint32_t)p[i * 4 + 3] << 24;
    uint32_t a = m->a, b = m->b, c = m->c, d = m->d;
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        uint32_t t = d;
        d = c;
        c = b;
        uint32_t x = a + f + MD5_K[i] + w[g];
        b = b + (x << MD5_S[i] | x >> (32 - MD5_S[i]));
        a = t;
    }
    m->a += a;
    m->b += b;
    m->c += c;
    m->d += d;
}

static void md5_update(struct md5 *m, const void *data, size_t n)
{
    const unsigned char *p = data;
    m->len += n;
    while (n) {
        size_t k = 64 - m->nbuf < n ? 64 - m->nbuf : n;
        memcpy(m->buf + m->nbuf, p, k);
        m->nbuf += k;
        p += k;
        n -= k;
        if (m->nbuf == 64) {
            md5_block(m, m->buf);
            m->nbuf = 0;
        }
    }
}

void md5_hex(const void *data, size_t n, char out[33])
{
    struct md5 m = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0, {0}, 0};
    md5_update(&m, data, n);
    uint64_t bits = m.len * 8;
    unsigned char pad = 0x80;
    md5_update(&m, &pad, 1);
    pad = 0;
    while (m.nbuf != 56)
        md5_update(&m, &pad, 1);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++)
        lb[i] = (unsigned char)(bits >> (8 * i));
    md5_update(&m, lb, 8);
    uint32_t v[4] = {m.a, m.b, m.c, m.d};
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", (v[i / 4] >> (8 * (i % 4))) & 0xff);
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

/* The user's password: plain text in config_json ("password"). */
static const char *user_password(json_t *users, const char *name)
{
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u)
    {
        const char *un = json_string_value(json_object_get(u, "username"));
        const char *pw = json_string_value(json_object_get(u, "password"));
        if (un && pw && strcmp(un, name) == 0)
            return pw;
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
        const char *pw = user_password(users, cred);
        ok = pw && str_eq_ct(colon + 1, pw);
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
    const char *pw = user ? user_password(users, user) : NULL;
    bool ok = pw && arealm && strcmp(arealm, realm) == 0 && nonce && uri && resp &&
              (!qop || (strcmp(qop, "auth") == 0 && nc && cnonce)) && uri_is_this(r, uri);
    if (ok) {
        /* the nonce must be one this service handed out for this realm */
        redisContext *rc = srv_redis(r);
        if (!rc) {
            json_decref(kv);
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
