/* The hot endpoints: ping, health, metrics, func calls (Sync/Async APIs: server_api.c),
 * task status. No SQL here except the task_record fallback of /tasks. */
#include <ctype.h>
#include <strings.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>
#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"
#include "sha256.h"

void h_ping(struct srv_req *r)
{
    req_ok(r, json_string("pong"));
}

/* h_health: server_health.c (answers from a background check) */

void h_metrics(struct srv_req *r)
{
    json_t *ext = json_object();
    redisContext *rc = srv_redis(r);
    if (rc) {
        /* everything /metrics reads from Redis, in one pipeline */
        static const char *const queues[] = {"sync", "async", "cron"};
        char k[160];
        for (int i = 0; i < 3; i++) {
            rds_key(k, sizeof k, &S.conf, "q:%s", queues[i]);
            redisAppendCommand(rc, "XLEN %s", k);
            redisAppendCommand(rc, "XPENDING %s workers", k);
        }
        rds_key(k, sizeof k, &S.conf, "stats:worker");
        redisAppendCommand(rc, "HGETALL %s", k);
        rds_key(k, sizeof k, &S.conf, "stats:beat");
        redisAppendCommand(rc, "HGETALL %s", k);
        rds_key(k, sizeof k, &S.conf, "stats:purge");
        redisAppendCommand(rc, "HGETALL %s", k);
        rds_key(k, sizeof k, &S.conf, "delayed");
        redisAppendCommand(rc, "ZCARD %s", k);
        json_t *qs = json_object();
        bool broken = false;
        for (int i = 0; i < 3 && !broken; i++) {
            redisReply *a = NULL, *b = NULL;
            if (redisGetReply(rc, (void **)&a) != REDIS_OK ||
                redisGetReply(rc, (void **)&b) != REDIS_OK)
                broken = true;
            long long len = a && a->type == REDIS_REPLY_INTEGER ? a->integer : 0;
            long long pend = b && b->type == REDIS_REPLY_ARRAY && b->elements >= 1 &&
                                     b->element[0]->type == REDIS_REPLY_INTEGER
                                 ? b->element[0]->integer
                                 : 0;
            json_object_set_new(
                qs, queues[i],
                json_pack("{s:I,s:I}", "length", (json_int_t)len, "pending", (json_int_t)pend));
            if (a)
                freeReplyObject(a);
            if (b)
                freeReplyObject(b);
        }
        json_object_set_new(ext, "queues", qs);
        const char *hn[] = {"worker", "beat", "purge"};
        for (int i = 0; i < 3 && !broken; i++) {
            redisReply *h = NULL;
            if (redisGetReply(rc, (void **)&h) != REDIS_OK) {
                broken = true;
                break;
            }
            json_t *o = json_object();
            if (h && h->type == REDIS_REPLY_ARRAY)
                for (size_t j = 0; j + 1 < h->elements; j += 2)
                    json_object_set_new(o, h->element[j]->str, json_string(h->element[j + 1]->str));
            json_object_set_new(ext, hn[i], o);
            if (h)
                freeReplyObject(h);
        }
        redisReply *z = NULL;
        if (!broken && redisGetReply(rc, (void **)&z) == REDIS_OK && z &&
            z->type == REDIS_REPLY_INTEGER)
            json_object_set_new(ext, "delayed", json_integer(z->integer));
        if (z)
            freeReplyObject(z);
        if (!broken) {
            json_object_set_new(ext, "workers_live", json_integer(hb_live(rc, "worker")));
            json_object_set_new(ext, "servers_live", json_integer(hb_live(rc, "server")));
            /* Redis's own size (issue 16): INFO + DBSIZE, no SCAN. A refusal
             * (an ACL without INFO) only leaves these gauges out. */
            json_t *rs = rds_size_stats(rc, NULL);
            if (rs)
                json_object_set_new(ext, "redis", rs);
            else if (rc->err)
                srv_redis_broken();
        } else {
            srv_redis_broken();
        }
    }
    /* Redis down: srv_redis answered 503; /metrics still serves the counters */
    if (r->answered) {
        r->answered = false;
        if (r->resp)
            MHD_destroy_response(r->resp);
        r->resp = NULL;
    }
    pthread_mutex_lock(&S.pend_mu);
    json_object_set_new(ext, "pending_calls", json_integer(S.npend));
    pthread_mutex_unlock(&S.pend_mu);
    struct srv_cache *c = srv_cache_get();
    json_object_set_new(ext, "cache_gen", json_integer(c->gen));
    srv_cache_put(c);
    json_object_set_new(ext, "epoch", json_integer(S.epoch));
    unsigned long acc_tasks, acc_batches, acc_retried, acc_found;
    accept_counts(&acc_tasks, &acc_batches, &acc_retried, &acc_found);
    json_object_set_new(ext, "accept_tasks", json_integer((json_int_t)acc_tasks));
    json_object_set_new(ext, "accept_batches", json_integer((json_int_t)acc_batches));
    json_object_set_new(ext, "accept_retried", json_integer((json_int_t)acc_retried));
    json_object_set_new(ext, "accept_retry_found", json_integer((json_int_t)acc_found));
    char *s = metrics_format(&S.metrics, ext);
    json_decref(ext);
    if (!s) {
        req_err(r, 500, "EServerInternal", NULL, "cannot format metrics");
        return;
    }
    req_raw(r, 200, "text/plain; version=0.0.4", s, strlen(s));
}

/* ---- time parsing ---------------------------------------------------------- */

/* 9999-12-31T23:59:59Z: later times are refused, so "* 1000" stays in range */
#define TIME_MAX_S 253402300799LL

int64_t parse_time_str_ms(const char *s)
{
    if (!s || !*s)
        return -1;
    bool digits = true;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.')
            digits = false;
    if (digits) {
        char *end;
        double d = strtod(s, &end);
        /* bounded before the * 1000: a huge number must not overflow int64 */
        return *end || !(d >= 0 && d <= TIME_MAX_S) ? -1 : (int64_t)(d * 1000.0);
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    if (!p)
        return -1;
    int64_t ms = 0;
    if (*p == '.') {
        int scale = 100;
        for (p++; isdigit((unsigned char)*p); p++) {
            ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 && sscanf(p + 1, "%2d%2d", &hh, &mm) != 2)
            return -1;
        off = sign * (hh * 3600 + mm * 60);
        p += strlen(p);
    }
    if (*p)
        return -1;
    time_t t = timegm(&tm);
    return ((int64_t)t - off) * 1000 + ms;
}

int64_t parse_time_ms(json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        return x >= 0 && x <= TIME_MAX_S ? (int64_t)x * 1000 : -1;
    }
    if (json_is_real(v)) {
        double x = json_real_value(v);
        return x >= 0 && x <= TIME_MAX_S ? (int64_t)(x * 1000.0) : -1;
    }
    if (json_is_string(v))
        return parse_time_str_ms(json_string_value(v));
    return -1;
}

/* ---- func calls ------------------------------------------------------------ */

static int opt_err(struct srv_req *r, const char *field, const char *want)
{
    req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", field),
            "field '%s' must be %s", field, want);
    return -1;
}

static int parse_options(struct srv_req *r, json_t *body, struct call_opts *o)
{
    json_t *opt = json_object_get(body, "options");
    if (!opt || json_is_null(opt))
        return 0;
    if (!json_is_object(opt))
        return opt_err(r, "options", "an object");
    json_t *v = json_object_get(opt, "async");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return opt_err(r, "options.async", "a boolean");
        o->async = json_is_true(v);
    }
    v = json_object_get(opt, "timeout");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 3600)
            return opt_err(r, "options.timeout", "an integer number of seconds, 1..3600");
        o->timeout = json_integer_value(v);
    }
    v = json_object_get(opt, "queue");
    if (v && !json_is_null(v)) {
        /* DFF: a caller may pick queue 1..9 (0 is DFF's system queue) */
        json_int_t q = json_is_integer(v)  ? json_integer_value(v)
                       : json_is_string(v) ? strtoll(json_string_value(v), NULL, 10)
                                           : -1;
        if (q < 1 || q > 9)
            return opt_err(r, "options.queue", "an integer between 1 and 9");
        o->queue = (int)q;
    }
    v = json_object_get(opt, "expires");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 86400)
            return opt_err(r, "options.expires", "an integer number of seconds, 1..86400");
        o->expires = json_integer_value(v);
    }
    v = json_object_get(opt, "returnType");
    if (v && !json_is_null(v)) {
        const char *rt = json_string_value(v);
        if (!rt || (strcmp(rt, "raw") != 0 && strcmp(rt, "jsonDumps") != 0))
            return opt_err(r, "options.returnType", "\"raw\" or \"jsonDumps\"");
        o->json_dumps = strcmp(rt, "jsonDumps") == 0;
    }
    v = json_object_get(opt, "unbox");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return opt_err(r, "options.unbox", "a boolean");
        o->unbox = json_is_true(v);
    }
    v = json_object_get(opt, "eta");
    if (v && !json_is_null(v)) {
        int64_t ms = parse_time_ms(v);
        if (ms < 0)
            return opt_err(r, "options.eta", "an ISO-8601 time or unix seconds");
        o->due_ms = ms;
        o->eta = v;
    }
    v = json_object_get(opt, "delay");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 86400 * 366)
            return opt_err(r, "options.delay", "a number of seconds, 0..31622400");
        o->due_ms = now_ms() + (int64_t)(json_number_value(v) * 1000.0);
        o->delay = v;
        o->eta = NULL; /* DFF: a delay replaces an eta */
    }
    return 0;
}

enum { DONE_JSON_DUMPS = 1, DONE_UNBOX = 2 };

/* DFF's returnType/unbox of a direct call; the flags ride in `ud`. */
static void done_envelope(struct srv_req *r, json_t *outcome, void *ud)
{
    uintptr_t flags = (uintptr_t)ud;
    const char *status = json_string_value(json_object_get(outcome, "status"));
    bool ok = status && strcmp(status, "success") == 0;
    json_t *o = json_incref(outcome);
    if (ok && (flags & DONE_JSON_DUMPS)) {
        char *s = json_dumps(json_object_get(outcome, "result"), JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(o);
        o = json_copy(outcome);
        json_object_set_new(o, "result", s ? json_string(s) : json_null());
        free(s);
    }
    if (ok && (flags & DONE_UNBOX))
        api_answer_outcome(r, o, NULL);
    else
        srv_answer_outcome(r, o, false);
    json_decref(o);
}

json_t *call_cached_outcome(struct srv_req *r, json_t *f, const struct task *t, bool *answered)
{
    *answered = false;
    if (json_integer_value(json_object_get(f, "cache_result")) <= 0)
        return NULL;
    redisContext *rc = srv_redis(r);
    if (rc == NULL) {
        *answered = true; /* srv_redis() answered 503 */
        return NULL;
    }
    char key[512];
    task_result_cache_key(key, sizeof key, srv_conf(), t->func, t->kwargs);
    redisReply *rep = redisCommand(rc, "GET %s", key);
    if (rep == NULL)
        srv_redis_broken();
    json_t *result = NULL;
    if (rep && rep->type == REDIS_REPLY_STRING)
        result = json_loadb(rep->str, rep->len, JSON_DECODE_ANY, NULL);
    if (rep)
        freeReplyObject(rep);
    if (result == NULL)
        return NULL;
    return json_pack("{s:s,s:s,s:o,s:b}", "id", t->id, "status", "success", "result", result,
                     "cached", 1);
}

/* A func's declared timeout: the func row's, unless it is just the worker's
 * default (the func declared none); 0 then. */
static int64_t declared_timeout(json_t *f)
{
    int64_t to = json_integer_value(json_object_get(f, "timeout"));
    return to > 0 && to != srv_conf()->func_timeout ? to : 0;
}

static int64_t extra_int(json_t *f, const char *name, int64_t lo, int64_t hi)
{
    json_t *v = json_object_get(json_object_get(f, "extra"), name);
    int64_t x = json_is_integer(v)  ? json_integer_value(v)
                : json_is_string(v) ? strtoll(json_string_value(v), NULL, 10)
                                    : -1;
    return x >= lo && x <= hi ? x : -1;
}

int call_task_build(struct srv_req *r, struct srv_cache *c, const char *func_id, json_t *kwargs,
                    const struct call_opts *o, enum task_origin origin, const char *origin_id,
                    struct task *t, json_t **func)
{
    json_t *f = json_object_get(c->funcs, func_id);
    if (!f) {
        json_decref(kwargs);
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "func_id", func_id),
                "func %s not found (not published, or its script was deleted)", func_id);
        return -1;
    }
    if (func)
        *func = f;
    bool sync = !o->async && o->due_ms == 0;
    /* timeout: the caller's (options / the API's own), else what the func
     * declares (api_timeout for a Sync API wait, as DFF), else the defaults:
     * the func row's for calls, server.async_timeout (DFF: 3600 s) for
     * Async APIs */
    int64_t timeout = o->timeout;
    /* a caller's options.timeout stays under server.sync_timeout; what the
     * func's author or the API's admin set may pass it (DFF has no cap) */
    bool explicit_to = timeout > 0 && o->timeout_set_by_api;
    if (!timeout && origin == ORIGIN_SYNC_API &&
        (timeout = extra_int(f, "api_timeout", 1, 3600)) > 0)
        explicit_to = true;
    else if (!timeout && (timeout = declared_timeout(f)) > 0)
        explicit_to = true;
    else if (!timeout && origin == ORIGIN_ASYNC_API)
        timeout = srv_conf()->async_timeout;
    else if (!timeout)
        timeout = json_integer_value(json_object_get(f, "timeout"));
    srv_task_init(t, func_id, kwargs, sync, (int)timeout);
    if (explicit_to && sync && timeout > t->timeout && timeout <= 3600) {
        /* a timeout the func or API states beats the sync default cap */
        t->timeout = (int)timeout;
        t->expires_ms = t->enq_ms + timeout * 1000;
    }
    t->origin = origin;
    snprintf(t->origin_id, sizeof t->origin_id, "%s", origin_id ? origin_id : "");
    t->ver = json_integer_value(json_object_get(f, "ver"));
    /* queue: the caller's, else the func's @DFF.API(queue=N), else by origin */
    int64_t q = o->queue ? o->queue : extra_int(f, "queue", 0, 9);
    if (q >= 0 && (o->queue || json_object_get(json_object_get(f, "extra"), "queue")))
        snprintf(t->queue, sizeof t->queue, "%d", (int)q);
    /* expires: the caller's, else the func's (DFF: start it within N s or drop it) */
    int64_t ex = o->expires ? o->expires : extra_int(f, "expires", 1, 86400);
    if (ex > 0)
        t->expires_ms = t->enq_ms + ex * 1000;
    return 0;
}

/* Common tail of a func call: build and send the task. */
static void call_func(struct srv_req *r, struct srv_cache *c, const char *func_id, json_t *kwargs,
                      const struct call_opts *o, json_t *body)
{
    struct task t;
    json_t *f = NULL;
    if (call_task_build(r, c, func_id, kwargs, o, ORIGIN_FUNC, NULL, &t, &f) != 0)
        return;
    /* DFF's _DFF_HTTP_REQUEST, _DFF_ETA, _DFF_DELAY */
    t.extra = json_pack("{s:o}", "http_request", srv_http_request_json(r, body, true));
    if (t.extra && o->eta)
        json_object_set(t.extra, "eta", o->eta);
    if (t.extra && o->delay)
        json_object_set(t.extra, "delay", o->delay);
    bool sync = !o->async && o->due_ms == 0;
    void *flags =
        (void *)(uintptr_t)((o->json_dumps ? DONE_JSON_DUMPS : 0) | (o->unbox ? DONE_UNBOX : 0));
    bool answered = false;
    json_t *cached = NULL;
    if (o->due_ms > now_ms()) {
        /* accepted like an async call (journaled, so a Redis restored from
         * an older snapshot cannot lose it), into Pdelayed until due */
        t.due_ms = o->due_ms;
        r->accept_delayed = true;
        srv_accept(r, &t, json_pack("{s:s}", "id", t.id), NULL, NULL);
    } else if (!sync) {
        srv_accept(r, &t, json_pack("{s:s}", "id", t.id), NULL, NULL);
    } else if ((cached = call_cached_outcome(r, f, &t, &answered)) != NULL) {
        done_envelope(r, cached, flags);
        json_decref(cached);
    } else if (!answered) {
        srv_call(r, &t, done_envelope, flags);
    }
    task_free(&t);
}

void h_func_call(struct srv_req *r)
{
    const char *func_id = r->params[0];
    if (!func_id_split(func_id, NULL, 0, NULL, 0, NULL, 0)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "func_id", func_id),
                "bad func id '%s': expected <script_set>__<script>.<func>", func_id);
        return;
    }
    json_t *body = req_body_object(r, false);
    if (!body)
        return;
    json_t *kw = NULL;
    struct call_opts o = {0};
    if (req_field_obj(r, body, "kwargs", false, &kw) || parse_options(r, body, &o)) {
        json_decref(body);
        return;
    }
    json_t *kwargs = kw ? json_deep_copy(kw) : json_object();
    struct srv_cache *c = srv_cache_get();
    if (!c->loaded)
        req_err(r, 503, "EBackend", NULL, "function cache not loaded yet (database unreachable?)");
    else
        call_func(r, c, func_id, kwargs, &o, body);
    if (!c->loaded)
        json_decref(kwargs);
    srv_cache_put(c);
    json_decref(body); /* after the call: o.eta / o.delay point into it */
}

/* ---- task status ------------------------------------------------------------ */

/* The caller sent a live access key (Bearer). Unlike req_need_key() this
 * answers nothing: a task's status is public by its id, its traceback is not. */
static bool has_valid_key(struct srv_req *r)
{
    const char *h = req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *secret = h + 7;
    while (*secret == ' ')
        secret++;
    char hex[65];
    sha256_hex(secret, strlen(secret), hex);
    struct srv_cache *c = srv_cache_get();
    bool ok = c->loaded && json_object_get(c->keys, hex) != NULL;
    srv_cache_put(c);
    return ok;
}

/* Without a key the task id is the only credential, and async API callers
 * get ids without being trusted: the traceback and the func's output stay
 * with the operator (as for failures of public APIs). */
static json_t *task_for_caller(struct srv_req *r, json_t *t)
{
    if (!has_valid_key(r)) {
        json_object_del(t, "traceback");
        json_object_del(t, "output");
    }
    return t;
}

void h_task_get(struct srv_req *r)
{
    const char *id = r->params[0];
    if (!id_valid(id)) {
        /* the id is not echoed: it may hold anything, the rule says enough */
        req_err(r, 400, "EClientBadRequest", NULL,
                "task id in the path is not valid: 1-%d characters of A-Z a-z 0-9 _ . -",
                ID_MAX - 1);
        return;
    }
    redisContext *rc = srv_redis(r);
    if (!rc)
        return;
    char key[160];
    rds_key(key, sizeof key, &S.conf, "task:%s", id);
    redisReply *rep = redisCommand(rc, "GET %s", key);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        req_redis_err(r, rc, rep, "GET task");
        if (rep)
            freeReplyObject(rep);
        return;
    }
    if (rep->type == REDIS_REPLY_STRING) {
        json_t *t = json_loadb(rep->str, rep->len, 0, NULL);
        freeReplyObject(rep);
        if (!t) {
            req_err(r, 500, "EServerInternal", NULL, "task %s: stored status is not JSON", id);
            return;
        }
        req_ok(r, task_for_caller(r, t));
        return;
    }
    freeReplyObject(rep);
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *q = db_q(m, id);
    struct sql_row1 row;
    int found = req_sql_row1(
        r, m, &row,
        "SELECT id, func_id AS func, status, origin, origin_id, queue, reason, message, "
        "traceback, output, node, epoch, nominal_at, enqueued_at, started_at, ended_at, "
        "cost_ms AS cost, kwargs_json, return_value_json AS result_json, call_chain_json, "
        "root_task_id, trigger_at, cron_expr AS cronExpr, delay_s AS delay, timeout_s AS "
        "timeout, expires_s AS expires FROM task_record WHERE id = %s ORDER BY seq DESC "
        "LIMIT 1",
        q);
    free(q);
    if (found == -1)
        return;
    if (!found) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "task %s not found", id);
        return;
    }
    json_t *o = db_row_json(row.res, row.row);
    sql_row1_done(&row);
    req_ok(r, task_for_caller(r, o));
}
