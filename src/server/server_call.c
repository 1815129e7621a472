/* The hot endpoints: ping, health, metrics, func calls, Sync/Async APIs,
 * task status. No SQL here except the task_record fallback of /tasks. */
#include <ctype.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>
#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"

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
        const char *hn[] = {"worker", "beat"};
        for (int i = 0; i < 2 && !broken; i++) {
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
    char *s = metrics_format(&S.metrics, ext);
    json_decref(ext);
    if (!s) {
        req_err(r, 500, "EServerInternal", NULL, "cannot format metrics");
        return;
    }
    req_raw(r, 200, "text/plain; version=0.0.4", s, strlen(s));
}

/* ---- time parsing ---------------------------------------------------------- */

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
        return *end ? -1 : (int64_t)(d * 1000.0);
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
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 ? json_integer_value(v) * 1000 : -1;
    if (json_is_real(v))
        return json_real_value(v) >= 0 ? (int64_t)(json_real_value(v) * 1000.0) : -1;
    if (json_is_string(v))
        return parse_time_str_ms(json_string_value(v));
    return -1;
}

/* ---- func calls ------------------------------------------------------------ */

struct call_opts {
    bool async;
    int64_t timeout;
    int64_t due_ms; /* 0 = now */
};

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
    v = json_object_get(opt, "eta");
    if (v && !json_is_null(v)) {
        int64_t ms = parse_time_ms(v);
        if (ms < 0)
            return opt_err(r, "options.eta", "an ISO-8601 time or unix seconds");
        o->due_ms = ms;
    }
    v = json_object_get(opt, "delay");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 86400 * 366)
            return opt_err(r, "options.delay", "a number of seconds, 0..31622400");
        o->due_ms = now_ms() + (int64_t)(json_number_value(v) * 1000.0);
    }
    return 0;
}

static void done_envelope(struct srv_req *r, json_t *outcome, void *ud)
{
    (void)ud;
    srv_answer_outcome(r, outcome, false);
}

static void done_raw(struct srv_req *r, json_t *outcome, void *ud)
{
    (void)ud;
    srv_answer_outcome(r, outcome, true);
}

/* A func with cache_result answers a sync call from the result a worker
 * cached for the same kwargs, without queueing. 0 = answered; -1 = no cached
 * result (or Redis trouble, which the enqueue then reports), call as usual. */
static int answer_cached(struct srv_req *r, json_t *f, const struct task *t, bool raw)
{
    if (json_integer_value(json_object_get(f, "cache_result")) <= 0)
        return -1;
    redisContext *rc = srv_redis(r);
    if (rc == NULL)
        return 0; /* srv_redis() answered 503 */
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
        return -1;
    json_t *outcome = json_pack("{s:s,s:s,s:o,s:b}", "id", t->id, "status", "success", "result",
                                result, "cached", 1);
    srv_answer_outcome(r, outcome, raw);
    json_decref(outcome);
    return 0;
}

/* Common tail of every call: look up the func, build and send the task. */
static void call_func(struct srv_req *r, struct srv_cache *c, const char *func_id, json_t *kwargs,
                      const struct call_opts *o, enum task_origin origin, const char *origin_id,
                      bool raw)
{
    json_t *f = json_object_get(c->funcs, func_id);
    if (!f) {
        json_decref(kwargs);
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "func_id", func_id),
                "func %s not found (not published, or its script was deleted)", func_id);
        return;
    }
    int timeout =
        (int)(o->timeout ? o->timeout : json_integer_value(json_object_get(f, "timeout")));
    bool sync = !o->async && o->due_ms == 0;
    struct task t;
    srv_task_init(&t, func_id, kwargs, sync, timeout);
    t.origin = origin;
    snprintf(t.origin_id, sizeof t.origin_id, "%s", origin_id ? origin_id : "");
    t.ver = json_integer_value(json_object_get(f, "ver"));
    if (o->due_ms > now_ms()) {
        if (srv_call_delayed(r, &t, o->due_ms) == 0)
            req_ok(r, json_pack("{s:s}", "id", t.id));
    } else if (!sync) {
        if (srv_call(r, &t, NULL, NULL) == 0)
            req_ok(r, json_pack("{s:s}", "id", t.id));
    } else if (answer_cached(r, f, &t, raw) != 0) {
        srv_call(r, &t, raw ? done_raw : done_envelope, NULL);
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
    json_decref(body);
    struct srv_cache *c = srv_cache_get();
    if (!c->loaded)
        req_err(r, 503, "EBackend", NULL, "function cache not loaded yet (database unreachable?)");
    else
        call_func(r, c, func_id, kwargs, &o, ORIGIN_FUNC, NULL, false);
    if (!c->loaded)
        json_decref(kwargs);
    srv_cache_put(c);
}

static int collect_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    json_object_set_new(cls, key, json_string(value ? value : ""));
    return MHD_YES;
}

/* A simplified call posted as an HTML form: a=1&b=two -> {"a":"1","b":"two"}. */
static json_t *form_kwargs(struct srv_req *r)
{
    json_t *kw = json_object();
    char *copy = r->body ? strndup(r->body, r->body_len) : NULL;
    char *save = NULL;
    for (char *pair = copy ? strtok_r(copy, "&", &save) : NULL; pair;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (eq)
            *eq++ = '\0';
        for (char *p = pair; *p; p++)
            if (*p == '+')
                *p = ' ';
        for (char *p = eq; p && *p; p++)
            if (*p == '+')
                *p = ' ';
        MHD_http_unescape(pair);
        if (eq)
            MHD_http_unescape(eq);
        json_t *v = json_string(eq ? eq : "");
        json_t *k = json_string(pair); /* names must be UTF-8 too */
        bool ok = *pair && v && k;
        json_decref(k);
        if (!ok) {
            json_decref(v);
            json_decref(kw);
            req_err(r, 400, "EClientBadRequest", NULL,
                    "form body: empty name or a value that is not UTF-8 near '%.40s'", pair);
            free(copy); /* after the message: pair points into it */
            return NULL;
        }
        json_object_set_new(kw, pair, v);
    }
    free(copy);
    return kw;
}

json_t *api_kwargs_from_request(struct srv_req *r, bool simplified)
{
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (simplified) {
        if (get) {
            json_t *kw = json_object();
            MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND,
                                      (MHD_KeyValueIterator)collect_query, kw);
            return kw;
        }
        const char *ct = req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
            return form_kwargs(r);
        return req_body_object(r, false);
    }
    if (get) {
        const char *q = req_query(r, "kwargs");
        if (!q || !*q)
            return json_object();
        json_error_t e;
        json_t *kw = json_loads(q, 0, &e);
        if (!kw) {
            req_err(r, 400, "EClientBadRequest",
                    json_pack("{s:s,s:i}", "field", "kwargs", "position", e.position),
                    "query argument 'kwargs' is not valid JSON: %s at position %d", e.text,
                    e.position);
            return NULL;
        }
        if (!json_is_object(kw)) {
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "kwargs"),
                    "query argument 'kwargs' must be a JSON object");
            json_decref(kw);
            return NULL;
        }
        return kw;
    }
    json_t *body = req_body_object(r, false);
    if (!body)
        return NULL;
    json_t *kw = NULL;
    if (req_field_obj(r, body, "kwargs", false, &kw)) {
        json_decref(body);
        return NULL;
    }
    json_t *out = kw ? json_deep_copy(kw) : json_object();
    json_decref(body);
    return out;
}

static void api_call(struct srv_req *r, bool async)
{
    const char *id = r->params[0];
    bool simplified = strstr(r->route->pattern, "/simplified") != NULL;
    struct srv_cache *c = srv_cache_get();
    const char *what = async ? "async API" : "sync API";
    if (!c->loaded) {
        req_err(r, 503, "EBackend", NULL, "API cache not loaded yet (database unreachable?)");
        goto out;
    }
    json_t *api = json_object_get(async ? c->aapis : c->sapis, id);
    if (!api) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "%s %s not found", what, id);
        goto out;
    }
    if (!json_is_true(json_object_get(api, "enabled"))) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "%s %s is disabled", what, id);
        goto out;
    }
    if (json_is_true(json_object_get(api, "need_key")) && req_need_key(r) != 0)
        goto out;
    json_t *kw = api_kwargs_from_request(r, simplified);
    if (!kw)
        goto out;
    /* the API's fixed kwargs go under the caller's (schema: sync_api.kwargs_json) */
    json_t *merged = json_deep_copy(json_object_get(api, "kwargs"));
    if (!merged)
        merged = json_object();
    json_object_update(merged, kw);
    json_decref(kw);
    struct call_opts o = {.async = async};
    json_t *to = json_object_get(api, "timeout");
    if (json_is_integer(to))
        o.timeout = json_integer_value(to);
    call_func(r, c, json_string_value(json_object_get(api, "func_id")), merged, &o,
              async ? ORIGIN_ASYNC_API : ORIGIN_SYNC_API, id, !async);
out:
    srv_cache_put(c);
}

void h_sync_api(struct srv_req *r)
{
    api_call(r, false);
}

void h_async_api(struct srv_req *r)
{
    api_call(r, true);
}

/* ---- task status ------------------------------------------------------------ */

void h_task_get(struct srv_req *r)
{
    const char *id = r->params[0];
    if (!id_valid(id)) {
        req_err(r, 400, "EClientBadRequest", NULL, "bad task id");
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
        req_ok(r, t);
        return;
    }
    freeReplyObject(rep);
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *err = NULL;
    char *q = db_q(m, id);
    MYSQL_RES *res =
        db_query(m, &err,
                 "SELECT id, func_id AS func, status, origin, origin_id, queue, reason, message, "
                 "traceback, output, node, epoch, nominal_at, enqueued_at, started_at, ended_at, "
                 "cost_ms AS cost FROM task_record WHERE id = %s ORDER BY seq DESC LIMIT 1",
                 q);
    free(q);
    if (!res) {
        req_db_err(r, m, err);
        return;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    if (!row) {
        mysql_free_result(res);
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "task %s not found", id);
        return;
    }
    json_t *o = db_row_json(res, row);
    mysql_free_result(res);
    req_ok(r, o);
}
