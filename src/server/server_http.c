/* libmicrohttpd glue: request lifecycle, body limit, routing, envelope,
 * answering, suspend/resume. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <strings.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/socket.h>
#include "clock.h"
#include "log.h"
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

/* DFF's response codes (const.yaml respCodeMap): the wire "error" is
 * <HTTP status>.<two digits> and "reason" DFF's name. Tandem's own reasons
 * that DFF has no name for keep their name and get a code of their own. */
static const struct {
    const char *reason, *wire; /* wire NULL = reason as is */
    const char *code;
} reason_codes[] = {
    {"EUser", NULL, "400.10"},
    {"EUserPassword", NULL, "400.12"},
    {"EUserCaptcha", NULL, "400.13"},
    {"EUserAuth", NULL, "401.14"},
    {"EUserPrivilege", NULL, "403.15"},
    {"EUserDisabled", NULL, "401.16"},
    {"EBizCondition", NULL, "403.21"},
    {"EBizRequestConflict", NULL, "409.25"},
    {"EClient", NULL, "400.40"},
    {"EClientNotFound", NULL, "404.41"},
    {"ENotFound", "EClientNotFound", "404.41"},
    {"EFuncNotFound", NULL, "404.41"},
    {"EClientDuplicated", NULL, "409.42"},
    {"EClientBadRequest", NULL, "400.43"},
    {"EClientUnsupported", NULL, "400.44"},
    {"EClientRateLimit", NULL, "429.46"},
    {"EClientMethodNotAllowed", NULL, "405.47"},
    {"EClientBodyTooLarge", NULL, "413.48"},
    {"ESys", NULL, "500.50"},
    {"EServerInternal", NULL, "500.50"},
    {"EBackend", NULL, "503.22"},
    {"EAPIAuth", NULL, "401.99"},
    {"EScriptSyntaxError", NULL, "400.90"},
    {"EScriptPublishFailed", NULL, "400.90"},
    {"EFuncFailed", NULL, "599.10"},
    {"EFuncTimeout", NULL, "599.20"},
    {"ETaskExpired", NULL, "599.21"},
    {"EWorkerCrashed", NULL, "599.30"},
    {"EFuncResultParsingFailed", NULL, "599.98"},
    {"EWorkerNoResponse", NULL, "599.99"},
};

/* The wire reason and code of a reason; an unknown one keeps its name and
 * gets "<http>" (an integer, as before). */
void envelope_code(int http, const char *reason, const char **wire, char *code, size_t n)
{
    *wire = reason;
    snprintf(code, n, "%d", http);
    if (!reason)
        return;
    /* DFF's dotted reasons ("EBizCondition.SyncAPIDisabled") take their head's code */
    size_t head = strcspn(reason, ".");
    for (size_t i = 0; i < sizeof reason_codes / sizeof reason_codes[0]; i++) {
        if (strlen(reason_codes[i].reason) != head ||
            strncmp(reason_codes[i].reason, reason, head) != 0)
            continue;
        if (reason_codes[i].wire)
            *wire = reason_codes[i].wire;
        /* the integer part is always the HTTP status actually sent */
        const char *dot = strchr(reason_codes[i].code, '.');
        snprintf(code, n, "%d%s", http, dot ? dot : "");
        return;
    }
}

/* Every answer that succeeds takes this way: the same text as the general
 * path below (test_server_http compares them), written directly instead
 * of through a JSON object of eight members. The trace id (id_valid:
 * nothing to escape) and the times are plain ASCII. */
static char *envelope_ok_fast(const char *code, json_t *detail, json_t *data, const char *trace_id,
                              int64_t t0_ms, int64_t t1_ms, int64_t cost_ms)
{
    char t0[40], t1[40];
    json_decref(detail);
    char *d = NULL;
    if (json_is_real(data) && json_real_value(data) == floor(json_real_value(data)) &&
        fabs(json_real_value(data)) < 9007199254740992.0) {
        d = xasprintf("%lld", (long long)json_real_value(data)); /* srv_json_node_numbers */
    } else if (data) {
        srv_json_node_numbers(data);
        d = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    }
    json_decref(data);
    if (data && !d)
        return NULL;
    char *s = NULL;
    if (asprintf(&s,
                 "{\"ok\":true,\"error\":%s,\"message\":\"\",\"data\":%s,\"traceId\":\"%s\","
                 "\"reqTime\":\"%s\",\"respTime\":\"%s\",\"reqCost\":%lld}",
                 code, d ? d : "null", trace_id ? trace_id : "", iso8601_ms(t0_ms, t0, sizeof t0),
                 iso8601_ms(t1_ms, t1, sizeof t1), (long long)cost_ms) < 0)
        s = NULL;
    free(d);
    return s;
}

char *envelope_build_ex(int http, const char *reason, const char *message, json_t *detail,
                        json_t *data, json_t *extra, const char *trace_id, int64_t t0_ms,
                        int64_t t1_ms, int64_t cost_ms)
{
    char t0[40], t1[40], code[32];
    const char *wire;
    bool ok = reason == NULL;
    envelope_code(http, reason, &wire, code, sizeof code);
    if (ok && !extra && (!message || !*message) && (!trace_id || id_valid(trace_id)))
        return envelope_ok_fast(code, detail, data, trace_id, t0_ms, t1_ms, cost_ms);
    /* "error" is written by hand: a JSON real would print 400.43 as
     * 400.43000000000001 */
    json_t *o = json_object();
    if (!ok)
        json_object_set_new(o, "reason", json_string(wire));
    if (!ok) /* DFF's success envelope has no status */
        json_object_set_new(o, "status", json_integer(http));
    json_object_set_new(o, "message", json_string_lossy(message ? message : ""));
    if (!ok)
        json_object_set_new(o, "detail", detail ? detail : json_object());
    else if (detail)
        json_decref(detail);
    json_object_set_new(o, "data", data ? data : json_null());
    if (extra)
        json_object_update(o, extra);
    json_decref(extra);
    json_object_set_new(o, "traceId", json_string(trace_id ? trace_id : ""));
    json_object_set_new(o, "reqTime", json_string(iso8601_ms(t0_ms, t0, sizeof t0)));
    json_object_set_new(o, "respTime", json_string(iso8601_ms(t1_ms, t1, sizeof t1)));
    json_object_set_new(o, "reqCost", json_integer(cost_ms));
    srv_json_node_numbers(o);
    char *rest = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!rest)
        return NULL;
    char *s = NULL;
    /* rest is "{...}" and never empty: it holds "message" at least */
    if (asprintf(&s, "{\"ok\":%s,\"error\":%s,%s", ok ? "true" : "false", code, rest + 1) < 0)
        s = NULL;
    free(rest);
    return s;
}

char *envelope_build(int http, const char *reason, const char *message, json_t *detail,
                     json_t *data, const char *trace_id, int64_t t0_ms, int64_t t1_ms,
                     int64_t cost_ms)
{
    return envelope_build_ex(http, reason, message, detail, data, NULL, trace_id, t0_ms, t1_ms,
                             cost_ms);
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
                            json_t *data, json_t *extra, const char *msg)
{
    int64_t t1 = now_ms();
    char *s = envelope_build_ex(http, reason, msg, detail, data, extra, r->trace_id, r->t0_ms, t1,
                                (mono_ms() - r->t0_mono));
    if (!s) {
        s = strdup("{\"ok\":false,\"error\":500.50,\"reason\":\"EServerInternal\",\"status\":"
                   "500,\"message\":\"cannot encode\"}");
        http = 500;
    }
    req_raw(r, http, "application/json", s, strlen(s));
}

void req_ok(struct srv_req *r, json_t *data)
{
    answer_envelope(r, 200, NULL, NULL, data, NULL, "");
}

void req_ok_extra(struct srv_req *r, json_t *data, json_t *extra)
{
    answer_envelope(r, 200, NULL, NULL, data, extra, "");
}

/* Answers carry numbers as DataFlux Func's Node.js server writes them: a
 * real with no fractional part is an integer (30.0 -> 30, JSON.stringify's
 * way), so a client comparing str(result) sees what DFF gives. Walks v in
 * place; reals beyond 2^53 stay reals. */
void srv_json_node_numbers(json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (json_is_real(x)) {
                double d = json_real_value(x);
                if (d == floor(d) && fabs(d) < 9007199254740992.0)
                    json_object_set_new(v, k, json_integer((json_int_t)d));
            } else {
                srv_json_node_numbers(x);
            }
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            if (json_is_real(x)) {
                double d = json_real_value(x);
                if (d == floor(d) && fabs(d) < 9007199254740992.0)
                    json_array_set_new(v, i, json_integer((json_int_t)d));
            } else {
                srv_json_node_numbers(x);
            }
        }
    }
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
    answer_envelope(r, http, reason, detail, NULL, NULL, msg);
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

/* The health listener serves these rclasses only: answers that need no
 * backend round trip, so one thread keeps up with any probe rate. */
static bool health_only_route(const struct srv_route *rt)
{
    return strcmp(rt->rclass, "health") == 0 || strcmp(rt->rclass, "ping") == 0;
}

static void route_and_run(struct srv_req *r, bool health_listener)
{
    char allow[128];
    bool path_matched;
    const struct srv_route *rt = route_match(srv_routes, srv_nroutes, r->method, r->path, r->params,
                                             &r->nparams, &path_matched, allow, sizeof allow);
    if (rt && health_listener && !health_only_route(rt)) {
        req_err(r, 404, "ENotFound", NULL,
                "the health port serves only GET /api/v1/health and /api/v1/do/ping; %s %s is "
                "on server.port",
                r->method, r->path);
        return;
    }
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
    if (rt->need != SRV_SCOPE_NONE && srv_auth_check(r, rt->need) != 0)
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
    /* while draining, a kept-alive connection is closed after its answer:
     * its next call connects again (to the node that holds the VIP now)
     * instead of racing the close at the end of the drain */
    if (r->status == 413 || S.stop)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    return ret;
}

/* ---- connection deadlines ------------------------------------------------
 * libmicrohttpd's connection timeout only measures inactivity: a client
 * sending a byte every 0.5 s keeps a connection forever. Each connection is
 * tracked from accept (MHD_OPTION_NOTIFY_CONNECTION) with the phase it is
 * in and when that began; a reaper thread shuts down the socket of one whose
 * headers took longer than server.header_timeout in total, or whose body
 * took longer than server.body_timeout. shutdown() (not close()) makes
 * libmicrohttpd see EOF and close it itself; the tracker is unlinked under
 * the lock in the CLOSED notification, which libmicrohttpd sends before it
 * closes the fd, so the reaper never touches a reused descriptor. Waiting
 * for a worker (PH_BUSY) has no deadline here: the call's timeout bounds it. */
enum conn_phase_e { PH_HEADERS, PH_BODY, PH_BUSY };

/* The phase and when it began, in one word: written by the connection's
 * own HTTP thread three times a request without the lock (a lock shared by
 * every HTTP thread), read whole by the reaper. */
#define PH_PACK(phase, since) ((since)*4 + (phase))
#define PH_PHASE(st) ((int)((st)&3))
#define PH_SINCE(st) ((st) / 4)

struct conn_track {
    int fd;
    _Atomic int64_t st; /* PH_PACK(phase, mono ms the phase began) */
    bool cut;
    atomic_bool requested; /* a request's headers came in: no longer a fresh connection */
    bool health;           /* on the health listener: probes do not hold the drain */
    struct conn_track *prev, *next;
};

static struct {
    pthread_mutex_t mu;
    struct conn_track *head;
    int64_t last_accept; /* mono ms of the newest connection (the drain watches it) */
    pthread_t reaper;
    bool reaper_running;
    volatile bool stop;
} ct = {.mu = PTHREAD_MUTEX_INITIALIZER};

static char health_listener_tag; /* on_request's cls on the health listener */
static struct MHD_Daemon *health_mhd;

static void conn_phase(struct MHD_Connection *conn, int phase)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_track *t = ci ? ci->socket_context : NULL;
    if (!t)
        return;
    if (PH_PHASE(atomic_load_explicit(&t->st, memory_order_relaxed)) != phase) {
        if (phase != PH_HEADERS)
            atomic_store_explicit(&t->requested, true, memory_order_relaxed);
        atomic_store_explicit(&t->st, PH_PACK(phase, mono_ms()), memory_order_relaxed);
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn_track *t = calloc(1, sizeof *t);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!t || !ci) {
            free(t);
            return; /* untracked: only the idle timeout applies */
        }
        t->fd = ci->connect_fd;
        int64_t now = mono_ms();
        atomic_init(&t->st, PH_PACK(PH_HEADERS, now));
        atomic_init(&t->requested, false);
        const union MHD_ConnectionInfo *di =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
        t->health = di && health_mhd && di->daemon == health_mhd;
        pthread_mutex_lock(&ct.mu);
        if (!t->health)
            ct.last_accept = now;
        t->next = ct.head;
        if (ct.head)
            ct.head->prev = t;
        ct.head = t;
        pthread_mutex_unlock(&ct.mu);
        *socket_context = t;
        return;
    }
    struct conn_track *t = *socket_context;
    if (!t)
        return;
    pthread_mutex_lock(&ct.mu);
    if (t->prev)
        t->prev->next = t->next;
    else
        ct.head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&ct.mu);
    *socket_context = NULL;
    free(t);
}

/* The drain's view (shutdown_gracefully): connections accepted whose first
 * request has not come in yet (a TLS handshake in progress, headers on
 * their way) are not requests in flight, yet their client is waiting. */
int http_fresh_connections(void)
{
    int n = 0;
    pthread_mutex_lock(&ct.mu);
    for (struct conn_track *t = ct.head; t; t = t->next)
        if (!atomic_load_explicit(&t->requested, memory_order_relaxed) && !t->cut && !t->health)
            n++;
    pthread_mutex_unlock(&ct.mu);
    return n;
}

int64_t http_last_accept(void)
{
    pthread_mutex_lock(&ct.mu);
    int64_t t = ct.last_accept;
    pthread_mutex_unlock(&ct.mu);
    return t;
}

/* Deadline of a phase in ms, 0 = none. */
static int64_t phase_limit_ms(int phase)
{
    if (phase == PH_HEADERS)
        return (int64_t)S.conf.header_timeout * 1000;
    if (phase == PH_BODY)
        return (int64_t)S.conf.body_timeout * 1000;
    return 0;
}

static void *reaper_main(void *arg)
{
    (void)arg;
    while (!ct.stop) {
        usleep(100 * 1000);
        int64_t now = mono_ms();
        int cut[2] = {0, 0};
        pthread_mutex_lock(&ct.mu);
        for (struct conn_track *t = ct.head; t; t = t->next) {
            int64_t st = atomic_load_explicit(&t->st, memory_order_relaxed);
            int64_t lim = phase_limit_ms(PH_PHASE(st));
            if (t->cut || lim == 0 || now - PH_SINCE(st) <= lim)
                continue;
            t->cut = true;
            shutdown(t->fd, SHUT_RDWR);
            cut[PH_PHASE(st) == PH_HEADERS ? 0 : 1]++;
        }
        pthread_mutex_unlock(&ct.mu);
        if (cut[0] || cut[1]) {
            atomic_fetch_add(&S.metrics.slow_cut[0], (unsigned long)cut[0]);
            atomic_fetch_add(&S.metrics.slow_cut[1], (unsigned long)cut[1]);
            log_debug("closed %d connection(s) past server.header_timeout (%d s) and %d past "
                      "server.body_timeout (%d s)",
                      cut[0], S.conf.header_timeout, cut[1], S.conf.body_timeout);
        }
    }
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct srv_req *r = *con_cls;
    if (!r || !r->conn) { /* on_uri may have made r, with the raw URI only */
        /* headers are in: from here the body deadline runs */
        conn_phase(conn, PH_BODY);

        if (!r)
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
        /* answered already: srv_call's enqueue failed after the dispatcher
         * had claimed r; only that answer goes out */
        if (!r->answered)
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
    conn_phase(conn, PH_BUSY);
    route_and_run(r, cls == &health_listener_tag);
    if (r->state == RS_SUSPENDED)
        return MHD_YES;
    return queue_answer(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    /* keep-alive: the next request's headers are due within header_timeout */
    conn_phase(conn, PH_HEADERS);
    struct srv_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    if (!r->conn) { /* only the URI was seen */
        free(r->uri);
        free(r);
        return;
    }
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
    free(r->uri);
    free(r);
    atomic_fetch_sub(&S.inflight, 1);
}

/* MHD's first look at a request: keep the raw URI (path and query as
 * sent), which access-key signatures cover. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct srv_req *r = calloc(1, sizeof *r);
    if (r)
        r->uri = strdup(uri ? uri : "");
    return r;
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
        conn_phase(conn, PH_BODY);
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

/* One listener on server.listen:port. Every one gets the connection limits
 * and the total-time deadlines (on_connection + the reaper); `tls` (may be
 * NULL) adds the TLS options; a redirect-only listener has no request
 * state, so no on_completed. */
static struct MHD_Daemon *daemon_start(const char *what, int port, unsigned threads, unsigned limit,
                                       unsigned per_ip, MHD_AccessHandlerCallback handler,
                                       void *cls, bool with_completed,
                                       const struct MHD_OptionItem *tls)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, S.conf.server_listen, &sa.sin_addr) != 1) {
        log_err("server.listen '%s' is not an IPv4 address", S.conf.server_listen);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (tls && tls[0].option != MHD_OPTION_END)
        flags |= MHD_USE_TLS;
    static const struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    /* MHD_OPTION_CONNECTION_TIMEOUT stays the idle timeout (keep-alive,
     * stalled reads of the answer); total-time deadlines are the reaper's */
    struct MHD_OptionItem opts[10];
    int n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &sa};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, S.conf.conn_timeout, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)limit, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)per_ip, NULL};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL};
    if (threads > 1)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL};
    if (with_completed) {
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL};
        /* the raw URI for access-key signatures; its r is freed by on_completed */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, NULL};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    struct MHD_Daemon *d =
        MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, cls, MHD_OPTION_ARRAY, opts,
                         MHD_OPTION_ARRAY, tls ? tls : none, MHD_OPTION_END);
    if (!d)
        log_err("cannot listen on %s:%d for %s (in use? bad address?%s)", S.conf.server_listen,
                port, what, flags & MHD_USE_TLS ? " TLS setup refused?" : "");
    return d;
}

int http_start(void)
{
    struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
    int ntls = srv_tls_mhd_options(tls, 3);
    tls[ntls] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    S.mhd = daemon_start("the API (server.port)", S.conf.server_port,
                         (unsigned)S.conf.server_threads, (unsigned)S.conf.max_connections,
                         (unsigned)S.conf.max_conn_per_ip, on_request, NULL, true, tls);
    if (!S.mhd)
        return -1;
    log_info("listening on %s://%s:%d (%d threads, %d connections, %d per address)",
             ntls ? "https" : "http", S.conf.server_listen, S.conf.server_port,
             S.conf.server_threads, S.conf.max_connections, S.conf.max_conn_per_ip);
    if (S.conf.plain_port) {
        bool redirect = S.conf.plain_redirect;
        g_plain = daemon_start("server.plain_port", S.conf.plain_port,
                               redirect ? 1 : (unsigned)S.conf.server_threads,
                               (unsigned)S.conf.max_connections, (unsigned)S.conf.max_conn_per_ip,
                               redirect ? on_plain : on_request, NULL, !redirect, NULL);
        if (!g_plain)
            return -1;
        log_info("plain http on %s:%d %s", S.conf.server_listen, S.conf.plain_port,
                 redirect ? "redirects to https" : "serves the API");
    }
    /* Its own socket, thread and connection slots, plain HTTP even when
     * server.port speaks TLS: the supervisor's probe and load balancers
     * still get an answer while slow or greedy clients hold every
     * connection of the main port. */
    int hp = tconf_health_port(&S.conf);
    if (hp > 0) {
        health_mhd = daemon_start("health (server.health_port)", hp, 1, 256, 16, on_request,
                                  &health_listener_tag, true, NULL);
        if (!health_mhd && S.conf.health_port > 0)
            return -1;
        if (health_mhd)
            log_info("health and ping also on http://%s:%d", S.conf.server_listen, hp);
        else
            log_warnx("no health listener: port %d (server.port + 1) is taken; set "
                      "server.health_port to a free port (the supervisor probes server.port "
                      "meanwhile, which a flood of slow clients can block)",
                      hp);
    }
    ct.stop = false;
    ct.reaper_running = pthread_create(&ct.reaper, NULL, reaper_main, NULL) == 0;
    if (!ct.reaper_running)
        log_warnx("cannot start the connection reaper: only the idle timeout applies");
    return 0;
}

void http_quiesce(void)
{
    struct MHD_Daemon *ds[] = {g_plain, S.mhd, health_mhd};
    for (int i = 0; i < 3; i++) {
        if (ds[i]) {
            MHD_socket fd = MHD_quiesce_daemon(ds[i]);
            if (fd != MHD_INVALID_SOCKET)
                close(fd);
        }
    }
}

void http_stop(void)
{
    if (ct.reaper_running) {
        ct.stop = true;
        pthread_join(ct.reaper, NULL);
        ct.reaper_running = false;
    }
    if (g_plain)
        MHD_stop_daemon(g_plain);
    g_plain = NULL;
    if (S.mhd)
        MHD_stop_daemon(S.mhd);
    S.mhd = NULL;
    if (health_mhd)
        MHD_stop_daemon(health_mhd);
    health_mhd = NULL;
}
