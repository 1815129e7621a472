/* libmicrohttpd glue: request lifecycle, body limit, routing, envelope,
 * answering, suspend/resume. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <strings.h>
#include <unistd.h>
#include <sys/random.h>
#include "clock.h"
#include "log.h"
#include "sha256.h"
#include "server_int.h"
#include "server_tls.h"
#include "util.h"

/* ---- envelope ------------------------------------------------------------ */

/* Messages quote what the client sent (paths, ids) and may be cut at a
 * buffer's end: invalid UTF-8 becomes '?' so the envelope stays valid JSON. */
static json_t *json_string_lossy(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c)
        return json_string("");
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p) {
        int len = *p < 0x80             ? 1
                  : (*p & 0xE0) == 0xC0 ? 2
                  : (*p & 0xF0) == 0xE0 ? 3
                  : (*p & 0xF8) == 0xF0 ? 4
                                        : 0;
        bool ok = len > 0;
        for (int k = 1; ok && k < len; k++)
            ok = (p[k] & 0xC0) == 0x80;
        if (ok && len > 1) {
            char tmp[5];
            memcpy(tmp, p, (size_t)len);
            tmp[len] = '\0';
            json_t *t = json_string(tmp); /* rejects overlongs and surrogates */
            ok = t != NULL;
            json_decref(t);
        }
        if (!ok) {
            c[o++] = '?';
            p++;
            continue;
        }
        memcpy(c + o, p, (size_t)len);
        o += (size_t)len;
        p += len;
    }
    c[o] = '\0';
    j = json_string(c);
    free(c);
    return j ? j : json_string("");
}

char *envelope_build(int http, const char *reason, const char *message, json_t *detail,
                     json_t *data, const char *trace_id, int64_t t0_ms, int64_t t1_ms,
                     int64_t cost_ms)
{
    char t0[40], t1[40];
    bool ok = reason == NULL;
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(ok));
    json_object_set_new(o, "error", json_integer(http));
    if (!ok)
        json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "message", json_string_lossy(message ? message : ""));
    if (!ok)
        json_object_set_new(o, "detail", detail ? detail : json_object());
    else if (detail)
        json_decref(detail);
    json_object_set_new(o, "data", data ? data : json_null());
    json_object_set_new(o, "traceId", json_string(trace_id ? trace_id : ""));
    json_object_set_new(o, "reqTime", json_string(iso8601_ms(t0_ms, t0, sizeof t0)));
    json_object_set_new(o, "respTime", json_string(iso8601_ms(t1_ms, t1, sizeof t1)));
    json_object_set_new(o, "reqCost", json_integer(cost_ms));
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(o);
    return s;
}

/* ---- answering ----------------------------------------------------------- */

void req_raw(struct srv_req *r, int http, const char *content_type, char *body, size_t len)
{
    if (r->answered) {
        log_warnx("%s %s: answered twice (dropping %d)", r->method, r->path, http);
        free(body);
        return;
    }
    r->answered = true;
    r->status = http;
    r->resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r->resp) {
        free(body);
        return;
    }
    MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r->resp, "X-Trace-Id", r->trace_id);
}

static void answer_envelope(struct srv_req *r, int http, const char *reason, json_t *detail,
                            json_t *data, const char *msg)
{
    int64_t t1 = now_ms();
    char *s = envelope_build(http, reason, msg, detail, data, r->trace_id, r->t0_ms, t1,
                             (mono_ms() - r->t0_mono));
    if (!s) {
        s = strdup("{\"ok\":false,\"error\":500,\"reason\":\"EServerInternal\",\"message\":"
                   "\"cannot encode\"}");
        http = 500;
    }
    req_raw(r, http, "application/json", s, strlen(s));
}

void req_ok(struct srv_req *r, json_t *data)
{
    answer_envelope(r, 200, NULL, NULL, data, "");
}

void req_err(struct srv_req *r, int http, const char *reason, json_t *detail, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (http >= 500 && http != 599)
        log_warnx("%s %s: %d %s: %s", r->method, r->path, http, reason, msg);
    answer_envelope(r, http, reason, detail, NULL, msg);
}

/* ---- reading ------------------------------------------------------------- */

const char *req_query(struct srv_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *req_header(struct srv_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

json_t *req_body_json(struct srv_req *r, bool required)
{
    size_t i = 0;
    while (r->body && i < r->body_len && strchr(" \t\r\n", r->body[i]))
        i++;
    if (!r->body || i == r->body_len) {
        if (!required)
            return json_object();
        req_err(r, 400, "EClientBadRequest", NULL,
                "request body is empty; a JSON object is expected");
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        json_t *d =
            json_pack("{s:i,s:i,s:i}", "line", e.line, "column", e.column, "position", e.position);
        req_err(r, 400, "EClientBadRequest", d,
                "malformed JSON body: %s at line %d column %d (position %d)", e.text, e.line,
                e.column, e.position);
        return NULL;
    }
    return j;
}

static const char *json_type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

json_t *req_body_object(struct srv_req *r, bool required)
{
    json_t *j = req_body_json(r, required);
    if (j && !json_is_object(j)) {
        req_err(r, 400, "EClientBadRequest", NULL, "request body must be a JSON object, got %s",
                json_type_name(j));
        json_decref(j);
        return NULL;
    }
    return j;
}

static json_t *field_get(struct srv_req *r, json_t *obj, const char *name, bool required, int *rc)
{
    json_t *v = obj ? json_object_get(obj, name) : NULL;
    *rc = 0;
    if (!v || json_is_null(v)) {
        if (required) {
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", name),
                    "field '%s' is required", name);
            *rc = -1;
        }
        return NULL;
    }
    return v;
}

static int field_type_err(struct srv_req *r, const char *name, const char *want, json_t *v)
{
    req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", name),
            "field '%s' must be %s, got %s", name, want, json_type_name(v));
    return -1;
}

int req_field_str(struct srv_req *r, json_t *obj, const char *name, bool required, const char **out)
{
    int rc;
    json_t *v = field_get(r, obj, name, required, &rc);
    if (!v)
        return rc;
    if (!json_is_string(v))
        return field_type_err(r, name, "a string", v);
    *out = json_string_value(v);
    return 0;
}

int req_field_int(struct srv_req *r, json_t *obj, const char *name, bool required, int64_t lo,
                  int64_t hi, int64_t *out)
{
    int rc;
    json_t *v = field_get(r, obj, name, required, &rc);
    if (!v)
        return rc;
    if (!json_is_integer(v))
        return field_type_err(r, name, "an integer", v);
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", name),
                "field '%s' must be between %lld and %lld, got %lld", name, (long long)lo,
                (long long)hi, (long long)x);
        return -1;
    }
    *out = x;
    return 0;
}

int req_field_bool(struct srv_req *r, json_t *obj, const char *name, bool required, bool *out)
{
    int rc;
    json_t *v = field_get(r, obj, name, required, &rc);
    if (!v)
        return rc;
    if (!json_is_boolean(v))
        return field_type_err(r, name, "a boolean", v);
    *out = json_is_true(v);
    return 0;
}

int req_field_obj(struct srv_req *r, json_t *obj, const char *name, bool required, json_t **out)
{
    int rc;
    json_t *v = field_get(r, obj, name, required, &rc);
    if (!v)
        return rc;
    if (!json_is_object(v))
        return field_type_err(r, name, "an object", v);
    *out = v;
    return 0;
}

int req_need_key(struct srv_req *r)
{
    const char *h = req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || !*h) {
        req_err(r, 401, "EAPIAuth", NULL,
                "missing access key: send 'Authorization: Bearer <secret>'");
        return -1;
    }
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
    return 0;
}

/* ---- request lifecycle --------------------------------------------------- */

static __thread uint64_t rng_state;

static void trace_id_new(char *buf, size_t n)
{
    if (rng_state == 0 &&
        (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state || rng_state == 0))
        rng_state = (uint64_t)mono_ms() * 0x9E3779B97F4A7C15ull | 1;
    /* xorshift64*: trace ids need to be distinct, not secret */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    snprintf(buf, n, "trace-%016llx", (unsigned long long)(rng_state * 0x2545F4914F6CDD1Dull));
}

static void route_and_run(struct srv_req *r)
{
    char allow[128];
    bool path_matched;
    const struct srv_route *rt = route_match(srv_routes, srv_nroutes, r->method, r->path, r->params,
                                             &r->nparams, &path_matched, allow, sizeof allow);
    if (!rt) {
        if (path_matched) {
            req_err(r, 405, "EClientMethodNotAllowed", json_pack("{s:s}", "allow", allow),
                    "method %s not allowed on %s (allowed: %s)", r->method, r->path, allow);
            if (r->resp)
                MHD_add_response_header(r->resp, MHD_HTTP_HEADER_ALLOW, allow);
        } else {
            req_err(r, 404, "ENotFound", NULL, "no such route: %s %s", r->method, r->path);
        }
        return;
    }
    r->route = rt;
    if (r->body_too_large) {
        req_err(r, 413, "EClientBodyTooLarge",
                json_pack("{s:I}", "limit", (json_int_t)S.conf.body_limit),
                "request body is larger than server.body_limit (%lld bytes)",
                (long long)S.conf.body_limit);
        return;
    }
    if (rt->needs_admin && req_need_key(r) != 0)
        return;
    rt->fn(r);
}

static enum MHD_Result queue_answer(struct srv_req *r)
{
    if (!r->answered)
        req_err(r, 500, "EServerInternal", NULL, "handler for %s %s did not answer", r->method,
                r->path);
    r->state = RS_ANSWERED;
    if (!r->resp)
        return MHD_NO;
    if (r->status == 413)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct srv_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        atomic_fetch_add(&S.inflight, 1);
        r->conn = conn;
        r->method = method;
        r->path = url;
        r->t0_ms = now_ms();
        r->t0_mono = mono_ms();
        const char *tid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Trace-Id");
        if (tid && id_valid(tid) && strlen(tid) < sizeof r->trace_id)
            snprintf(r->trace_id, sizeof r->trace_id, "%s", tid);
        else
            trace_id_new(r->trace_id, sizeof r->trace_id);
        r->state = RS_BODY;
        *con_cls = r;
        if (srv_tls_client_required()) {
            char why[256];
            if (!srv_tls_client_ok(conn, why, sizeof why)) {
                r->body_too_large = true; /* drop the body, answer now */
                req_err(r, 401, "EAPIAuth", NULL, "%s", why);
                return queue_answer(r);
            }
        }
        /* Refuse an announced oversize body before reading any of it. */
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            long long n = strtoll(cl, &end, 10);
            if (errno == 0 && *end == '\0' && n > S.conf.body_limit) {
                r->body_too_large = true;
                req_err(r, 413, "EClientBodyTooLarge",
                        json_pack("{s:I,s:I}", "limit", (json_int_t)S.conf.body_limit, "length",
                                  (json_int_t)n),
                        "request body of %lld bytes is larger than server.body_limit (%lld bytes)",
                        n, (long long)S.conf.body_limit);
                return queue_answer(r);
            }
            if (errno == 0 && *end == '\0' && n > 0 && n <= S.conf.body_limit) {
                r->body = malloc((size_t)n + 1);
                if (!r->body)
                    return MHD_NO;
                r->body_cap = (size_t)n + 1;
            }
        }
        return MHD_YES;
    }

    if (r->state == RS_ANSWERED) {
        /* the early 413: drop what the client still sends */
        *upload_size = 0;
        return MHD_YES;
    }

    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->body_too_large || r->body_len + n > (size_t)S.conf.body_limit) {
            /* chunked upload past the limit: keep nothing, answer 413 at the
             * end; a client that goes on far past it is cut off */
            r->body_too_large = true;
            r->body_len += n;
            if (r->body_len > (size_t)S.conf.body_limit * 4 + (1u << 20))
                return MHD_NO;
            return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 1024;
            while (cap < r->body_len + n + 1)
                cap *= 2;
            if (cap > (size_t)S.conf.body_limit + 1)
                cap = (size_t)S.conf.body_limit + 1;
            char *nb = realloc(r->body, cap);
            if (!nb)
                return MHD_NO;
            r->body = nb;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }

    if (r->state == RS_SUSPENDED) {
        /* resumed by the dispatcher: the outcome (or a made-up timeout) is in */
        r->state = RS_BODY;
        r->suspended = false;
        json_t *o = r->outcome;
        r->outcome = NULL;
        r->done(r, o, r->done_ud);
        json_decref(o);
        if (r->state == RS_SUSPENDED)
            return MHD_YES; /* `done` handed it to the worker again (API Auth func) */
        return queue_answer(r);
    }

    if (r->body_too_large) {
        free(r->body);
        r->body = NULL;
    }
    route_and_run(r);
    if (r->state == RS_SUSPENDED)
        return MHD_YES;
    return queue_answer(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    struct srv_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !r->answered)
        log_debug("%s %s: connection ended before an answer (code %d)", r->method, r->path,
                  (int)toe);
    if (r->cleanup)
        r->cleanup(r);
    int rc = r->route ? rclass_index(r->route->rclass) : RC_OTHER;
    metrics_request(&S.metrics, rc, r->answered ? r->status : 0, (mono_ms() - r->t0_mono) * 1000);
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    if (r->resp)
        MHD_destroy_response(r->resp);
    json_decref(r->outcome);
    free(r->body);
    free(r);
    atomic_fetch_sub(&S.inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    log_debug("microhttpd: %s", buf);
}

/* server.plain_port with TLS on: a plain-HTTP listener that either sends
 * every request to the https:// URL (308 keeps the method and body) or,
 * when the operator turned the redirect off, serves the API itself. */
static struct MHD_Daemon *g_plain;

static enum MHD_Result on_plain(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = conn; /* wait for the whole request before answering */
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    char h[256];
    snprintf(h, sizeof h, "%s",
             host && *host && !strpbrk(host, "\r\n") ? host : S.conf.server_listen);
    /* drop the plain port: "host:80" -> "host", "[v6]:80" -> "[v6]" */
    char *cut = h[0] == '[' ? strstr(h, "]:") : strrchr(h, ':');
    if (cut)
        cut[h[0] == '[' ? 1 : 0] = '\0';
    char *loc = xasprintf("https://%s:%d%s", h, S.conf.server_port, url);
    static const char body[] = "use https\n";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_NO;
    if (resp && loc) {
        MHD_add_response_header(resp, "Location", loc);
        ret = MHD_queue_response(conn, 308, resp);
    }
    if (resp)
        MHD_destroy_response(resp);
    free(loc);
    return ret;
}

static int plain_start(const struct sockaddr_in *main_sa)
{
    struct sockaddr_in sa = *main_sa;
    sa.sin_port = htons((uint16_t)S.conf.plain_port);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     (S.conf.plain_redirect ? 0 : MHD_ALLOW_SUSPEND_RESUME);
    g_plain = MHD_start_daemon(
        flags, (uint16_t)S.conf.plain_port, NULL, NULL,
        S.conf.plain_redirect ? on_plain : on_request, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)S.conf.conn_timeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)S.conf.max_connections, MHD_OPTION_NOTIFY_COMPLETED,
        S.conf.plain_redirect ? NULL : on_completed, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_END);
    if (!g_plain) {
        log_err("cannot listen on %s:%d (server.plain_port)", S.conf.server_listen,
                S.conf.plain_port);
        return -1;
    }
    log_info("plain http on %s:%d %s", S.conf.server_listen, S.conf.plain_port,
             S.conf.plain_redirect ? "redirects to https" : "serves the API");
    return 0;
}

int http_start(void)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)S.conf.server_port);
    if (inet_pton(AF_INET, S.conf.server_listen, &sa.sin_addr) != 1) {
        log_err("server.listen '%s' is not an IPv4 address", S.conf.server_listen);
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
    int ntls = srv_tls_mhd_options(tls, 3);
    tls[ntls] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    if (ntls)
        flags |= MHD_USE_TLS;
    S.mhd = MHD_start_daemon(
        flags, (uint16_t)S.conf.server_port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)S.conf.server_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)S.conf.conn_timeout, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)S.conf.max_connections, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!S.mhd) {
        log_err("cannot listen on %s:%d (in use? bad address?%s)", S.conf.server_listen,
                S.conf.server_port, ntls ? " TLS setup refused?" : "");
        return -1;
    }
    log_info("listening on %s://%s:%d (%d threads)", ntls ? "https" : "http", S.conf.server_listen,
             S.conf.server_port, S.conf.server_threads);
    if (S.conf.plain_port && plain_start(&sa) != 0)
        return -1;
    return 0;
}

void http_quiesce(void)
{
    if (g_plain) {
        MHD_socket pfd = MHD_quiesce_daemon(g_plain);
        if (pfd != MHD_INVALID_SOCKET)
            close(pfd);
    }
    if (S.mhd) {
        MHD_socket fd = MHD_quiesce_daemon(S.mhd);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
}

void http_stop(void)
{
    if (g_plain)
        MHD_stop_daemon(g_plain);
    g_plain = NULL;
    if (S.mhd)
        MHD_stop_daemon(S.mhd);
    S.mhd = NULL;
}
