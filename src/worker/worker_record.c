/* Outcome, task status and task record JSON, and the one pipeline that
 * records a finished task. Shared by the children (normal outcomes) and the
 * master (timeouts and crashes). */
#include "worker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "rds.h"

/* task_record column limits (TEXT 64 KiB, MEDIUMTEXT 16 MiB), with room. */
#define REC_TEXT_MAX 60000
#define REC_MEDIUM_MAX (16 * 1024 * 1024 - 1024)

/* Length of the longest prefix of s (length len) of at most max bytes that
 * does not end inside a UTF-8 sequence. */
static size_t utf8_cut_len(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    /* Back up over continuation bytes to the lead byte, then drop it too:
     * the sequence it starts does not fit. */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

void wrec_cut_utf8(char *s, size_t max)
{
    size_t len = strlen(s);
    s[utf8_cut_len(s, len, max)] = '\0';
}

/* A JSON string of at most max bytes; invalid UTF-8 is replaced rather than
 * dropping the whole outcome. */
static json_t *jstr_cut(const char *s, size_t max)
{
    size_t len = strlen(s);
    size_t n = utf8_cut_len(s, len, max);
    json_t *j = json_stringn(s, n);
    if (j)
        return j;
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return json_string("");
    for (size_t i = 0; i < n; i++)
        copy[i] = ((unsigned char)s[i] < 0x80 && s[i] != '\0') ? s[i] : '?';
    copy[n] = '\0';
    j = json_string(copy);
    free(copy);
    return j;
}

static void set_str(json_t *o, const char *k, const char *v, size_t max)
{
    if (v)
        json_object_set_new(o, k, jstr_cut(v, max));
}

static void set_int(json_t *o, const char *k, int64_t v)
{
    json_object_set_new(o, k, json_integer((json_int_t)v));
}

int64_t wrec_cost_ms(const struct woutcome *o)
{
    if (o->start_mono > 0 && o->end_mono >= o->start_mono)
        return o->end_mono - o->start_mono;
    if (o->start_ms <= 0 || o->end_ms < o->start_ms)
        return 0;
    return o->end_ms - o->start_ms;
}

/* The outcome fields shared by the reply and the status. */
static void add_outcome(json_t *j, const struct woutcome *o, const char *node)
{
    json_object_set_new(j, "status", json_string(o->status));
    if (strcmp(o->status, "success") == 0) {
        json_object_set(j, "result", o->result ? o->result : json_null());
        if (o->resp)
            json_object_set(j, "resp", o->resp);
    } else {
        set_str(j, "reason", o->reason ? o->reason : "", REC_TEXT_MAX);
        set_str(j, "message", o->message ? o->message : "", REC_TEXT_MAX);
        if (o->traceback && o->traceback[0])
            set_str(j, "traceback", o->traceback, REC_TEXT_MAX);
        if (o->data)
            json_object_set(j, "data", o->data);
    }
    if (o->output && o->output[0])
        set_str(j, "output", o->output, REC_MEDIUM_MAX);
    set_int(j, "cost", wrec_cost_ms(o));
    if (o->start_ms > 0)
        set_int(j, "start", o->start_ms);
    set_int(j, "end", o->end_ms);
    json_object_set_new(j, "node", json_string(node));
}

json_t *wrec_outcome(const struct wtask *t, const struct woutcome *o, const char *node)
{
    json_t *j = json_object();
    set_str(j, "id", t->id, ID_MAX);
    add_outcome(j, o, node);
    return j;
}

json_t *wrec_status(const struct wtask *t, const struct woutcome *o, const char *node)
{
    json_t *j = json_object();
    set_str(j, "id", t->id, ID_MAX);
    set_str(j, "func", t->func, sizeof(t->func));
    json_object_set_new(j, "origin", json_string(task_origin_name((enum task_origin)t->origin)));
    set_str(j, "origin_id", t->origin_id, ID_MAX);
    set_str(j, "queue", t->queue, sizeof(t->queue));
    set_int(j, "enq", t->enq_ms);
    set_int(j, "epoch", t->epoch);
    if (t->nominal > 0)
        set_int(j, "nominal", t->nominal);
    if (o->root_task && o->root_task[0])
        set_str(j, "root_task_id", o->root_task, ID_MAX);
    /* DFF's names, as GET /api/v1/tasks/<id> answers them from the record */
    if (t->cron_expr[0])
        json_object_set_new(j, "cronExpr", json_string(t->cron_expr));
    set_int(j, "delay", t->delay);
    set_int(j, "timeout", t->timeout);
    if (t->expires_ms > t->enq_ms && t->enq_ms > 0)
        set_int(j, "expires", (t->expires_ms - t->enq_ms + 999) / 1000);
    add_outcome(j, o, node);
    return j;
}

/* A JSON value as compact JSON text for a record column, at most
 * WREC_JSON_MAX bytes: a longer one keeps its head and ends with a marker
 * naming its full size (no longer valid JSON, as DFF's UI shows it as text
 * anyway), so one huge return value never makes a batch fail. */
static json_t *json_text_capped(json_t *v)
{
    char *s = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL)
        return json_null();
    size_t len = strlen(s);
    json_t *j;
    if (len <= WREC_JSON_MAX) {
        j = jstr_cut(s, len);
    } else {
        char tail[96];
        int tl = snprintf(tail, sizeof tail, "...[cut: %zu bytes in all]", len);
        size_t keep = utf8_cut_len(s, len, WREC_JSON_MAX - (size_t)tl);
        memcpy(s + keep, tail, (size_t)tl + 1);
        j = jstr_cut(s, strlen(s));
    }
    free(s);
    return j;
}

static void set_ms_or_null(json_t *o, const char *k, int64_t ms)
{
    json_object_set_new(o, k, ms > 0 ? json_integer((json_int_t)ms) : json_null());
}

json_t *wrec_record(const struct wtask *t, const struct woutcome *o, const char *node,
                    int64_t epoch)
{
    json_t *j = json_object();
    set_str(j, "id", t->id, ID_MAX);
    set_str(j, "func_id", t->func, sizeof(t->func));
    json_object_set_new(j, "origin", json_string(task_origin_name((enum task_origin)t->origin)));
    set_str(j, "origin_id", t->origin_id, ID_MAX);
    set_str(j, "queue", t->queue, sizeof(t->queue));
    json_object_set_new(j, "status", json_string(o->status));
    set_str(j, "reason", o->reason ? o->reason : "", 64);
    json_object_set_new(j, "message",
                        o->message ? jstr_cut(o->message, REC_TEXT_MAX) : json_null());
    json_object_set_new(j, "traceback",
                        o->traceback && o->traceback[0] ? jstr_cut(o->traceback, REC_TEXT_MAX)
                                                        : json_null());
    json_object_set_new(
        j, "output", o->output && o->output[0] ? jstr_cut(o->output, REC_MEDIUM_MAX) : json_null());
    json_object_set_new(j, "node", json_string(node));
    set_int(j, "epoch", epoch);
    set_ms_or_null(j, "nominal_at", t->nominal > 0 ? t->nominal * 1000 : 0);
    set_ms_or_null(j, "enqueued_at", t->enq_ms);
    set_ms_or_null(j, "started_at", o->start_ms);
    set_int(j, "ended_at", o->end_ms);
    set_int(j, "cost_ms", wrec_cost_ms(o));
    /* DFF's task-record fields (migration 008) */
    json_object_set_new(j, "kwargs_json", o->kwargs ? json_text_capped(o->kwargs) : json_null());
    json_object_set_new(j, "return_value_json",
                        strcmp(o->status, "success") == 0 ? json_text_capped(o->result)
                                                          : json_null());
    json_object_set_new(j, "call_chain_json", o->chain ? json_text_capped(o->chain) : json_null());
    set_str(j, "root_task_id", o->root_task && o->root_task[0] ? o->root_task : "ROOT", ID_MAX);
    set_ms_or_null(j, "trigger_at", t->nominal > 0 ? t->nominal * 1000 : t->enq_ms);
    /* DFF's scheduling fields, in seconds (migration 011) */
    json_object_set_new(j, "cron_expr", t->cron_expr[0] ? json_string(t->cron_expr) : json_null());
    set_int(j, "delay_s", t->delay);
    set_int(j, "timeout_s", t->timeout);
    json_object_set_new(j, "expires_s",
                        t->expires_ms > t->enq_ms && t->enq_ms > 0
                            ? json_integer((json_int_t)((t->expires_ms - t->enq_ms + 999) / 1000))
                            : json_null());
    return j;
}

/* Records an outcome and acks its entry as one script: either all of it
 * happens or none. Under Redis maxmemory (noeviction) the first write is
 * refused with OOM and the script stops there, so the entry stays pending
 * and the outcome is recorded later; never acked without its outcome.
 * KEYS: task status, record list, stats, stream, reply list, cron running
 * key, result cache key (unused ones are passed as the status key).
 * ARGV: 1 status JSON, 2 its TTL, 3 record JSON, 4 (unused), 5 (unused),
 * 6 entry id, 7 outcome JSON or "" (no reply), 8 task id, 9 "1" to release
 * the cron running key if it still names this task, 10 cached result or ""
 * (none), 11 its TTL, 12 the consumer that fetches next, or "" (no fetch),
 * 13 "1" to read the gen key in that fetch, 14 how many fetch arguments
 * follow (nf: 0 without a fetch), 15 .. 14 + nf the fetch's look flag and
 * stream states (W_FETCH_FN_LUA), then (stats field, increment) pairs.
 * With a fetch, KEYS 8 is the gen key and KEYS 9.. the streams, and the
 * answer is {1, fetch's answer}; else 1.
 * The reply list gets no TTL here (an EXPIRE when the push created it was
 * 0.7 commands per sync call): the keeper gives the list of a server that
 * is gone 60 s to live (worker_keeper.c reply_sweep). */
static const char COMMIT_LUA[] = W_FETCH_FN_LUA
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
    "if ARGV[7] ~= '' then redis.call('LPUSH', KEYS[5], ARGV[7]) end "
    "redis.call('LPUSH', KEYS[2], ARGV[3]) "
    "local nf = tonumber(ARGV[14]) "
    "for i = 15 + nf, #ARGV - 1, 2 do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) end "
    "if ARGV[9] == '1' and redis.call('GET', KEYS[6]) == ARGV[8] then "
    "  redis.call('DEL', KEYS[6]) "
    "end "
    "if ARGV[10] ~= '' then redis.call('SET', KEYS[7], ARGV[10], 'EX', ARGV[11]) end "
    "redis.call('XACK', KEYS[4], 'workers', ARGV[6]) "
    "redis.call('XDEL', KEYS[4], ARGV[6]) "
    "if ARGV[12] ~= '' then return {1, fetch(KEYS[8], 9, #KEYS - 8, ARGV[12], ARGV[13], 15)} end "
    "return 1";

#define COMMIT_NKEYS 7

static char *dumps(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    return s;
}

/* One entry from KEYS[1], else from KEYS[2], for consumer ARGV[1]; the
 * reply of the XREADGROUP that found it (or nil, or the error). A script
 * of two commands: EVAL hashes its 300 bytes, where EVALSHA would need a
 * NOSCRIPT path in the commit's pipeline. */
static const char PICK_LUA[] =
    "local a = {'GROUP', '" W_GROUP "', ARGV[1], 'COUNT', '1', 'STREAMS', KEYS[1], '>'} "
    "local r = redis.pcall('XREADGROUP', unpack(a)) "
    "if r then return r end "
    "a[7] = KEYS[2] "
    "return redis.pcall('XREADGROUP', unpack(a))";

/* The commit as MULTI .. EXEC, then XREADGROUP COUNT 1 on the hot stream
 * (and GET gen), all in one write and one round trip. Redis spends about
 * half the script's time in Lua (bench/worker-cost: EVALSHA 36 us, its
 * commands 13 us); a transaction is all or nothing as well (a command
 * refused while queued, e.g. OOM, makes EXEC refuse them all). */
static int commit_multi(redisContext *rc, const struct wtask *t, const struct woutcome *o,
                        const struct wrec_extra *extra, const char *k_task, const char *k_rec,
                        const char *k_stats, const char *k_q, const char *k_reply,
                        const char *s_status, const char *ttl, const char *s_rec, const char *s_out,
                        const char *s_res, const char *result_cache_key, const char *res_ttl,
                        const char *cost, char **err)
{
    const char *stats_default[6] = {"tasks", "1", o->status, "1", "cost_ms", cost};
    const char *const *stats = extra->stats ? extra->stats : stats_default;
    int nstats = extra->stats ? extra->nstats : 6;
    int nq = 0; /* commands between MULTI and EXEC */
#define APPEND(...)                                                                                \
    do {                                                                                           \
        const char *a_[] = {__VA_ARGS__};                                                          \
        redisAppendCommandArgv(rc, (int)(sizeof(a_) / sizeof(a_[0])), a_, NULL);                   \
    } while (0)
#define QUEUE(...)                                                                                 \
    do {                                                                                           \
        APPEND(__VA_ARGS__);                                                                       \
        nq++;                                                                                      \
    } while (0)
    APPEND("MULTI");
    QUEUE("SET", k_task, s_status, "EX", ttl);
    if (s_out)
        QUEUE("LPUSH", k_reply, s_out);
    QUEUE("LPUSH", k_rec, s_rec);
    for (int i = 0; i + 1 < nstats && i < 2 * (2 + W_STATS_MAX); i += 2)
        QUEUE("HINCRBY", k_stats, stats[i], stats[i + 1]);
    if (s_res)
        QUEUE("SET", result_cache_key, s_res, "EX", res_ttl);
    QUEUE("XACK", k_q, W_GROUP, t->entry);
    QUEUE("XDEL", k_q, t->entry);
    APPEND("EXEC");
    if (extra->peek_stream)
        APPEND("EVAL", PICK_LUA, "2", extra->peek_stream, extra->hot_stream, extra->consumer);
    else
        APPEND("XREADGROUP", "GROUP", W_GROUP, extra->consumer, "COUNT", "1", "STREAMS",
               extra->hot_stream, ">");
    bool want_gen = extra->want_gen && strcmp(extra->want_gen, "1") == 0;
    if (want_gen)
        APPEND("GET", extra->fetch_keys[0]);
#undef QUEUE
#undef APPEND
    redisReply *rs[3 + 2 * (2 + W_STATS_MAX) + 8] = {NULL};
    int nr = nq + 2 + 1 + (want_gen ? 1 : 0);
    for (int i = 0; i < nr; i++) {
        if (redisGetReply(rc, (void **)&rs[i]) != REDIS_OK) {
            if (err &&
                asprintf(err, "task %s: recording the outcome: redis: %s", t->id, rc->errstr) == -1)
                *err = NULL;
            for (int j = 0; j < i; j++)
                freeReplyObject(rs[j]);
            return -1; /* the context is unusable now */
        }
        rds_readonly(rc, rs[i]); /* a replica now: the caller reconnects (Sentinel) */
    }
    redisReply *ex = rs[nq + 1];
    bool done = ex && ex->type == REDIS_REPLY_ARRAY && ex->elements == (size_t)nq;
    for (size_t i = 0; done && i < ex->elements; i++)
        done = ex->element[i]->type != REDIS_REPLY_ERROR;
    if (!done && err) {
        /* the first refusal says why (OOM, READONLY, ...) */
        const char *why = "unexpected reply";
        for (int i = 0; i <= nq + 1; i++)
            if (rs[i] && rs[i]->type == REDIS_REPLY_ERROR) {
                why = rs[i]->str;
                break;
            }
        for (size_t i = 0; ex && ex->type == REDIS_REPLY_ARRAY && i < ex->elements; i++)
            if (ex->element[i]->type == REDIS_REPLY_ERROR) {
                why = ex->element[i]->str;
                break;
            }
        if (asprintf(err, "task %s: recording the outcome (entry left pending): %s", t->id, why) ==
            -1)
            *err = NULL;
    }
    /* an entry the XREADGROUP claimed is this consumer's, made or not */
    extra->hot_reply(rs[nq + 2], want_gen ? rs[nq + 3] : NULL, extra->ud);
    for (int i = 0; i < nr; i++)
        freeReplyObject(rs[i]);
    return done ? 0 : -1;
}

int wrec_commit(redisContext *rc, const struct tconf *c, const struct wtask *t,
                const struct woutcome *o, const char *node, int64_t epoch,
                const char *result_cache_key, const struct wrec_extra *extra, char **err)
{
    char k_task[128 + ID_MAX], k_reply[256], k_q[128], k_cron[128 + ID_MAX], ttl[16], cost[24],
        res_ttl[16];
    char *s_out = NULL, *s_status = NULL, *s_rec = NULL, *s_res = NULL;
    int rv = -1;

    if (err)
        *err = NULL;
    s_status = dumps(wrec_status(t, o, node));
    s_rec = dumps(wrec_record(t, o, node, epoch));
    if (t->reply[0])
        s_out = dumps(wrec_outcome(t, o, node));
    if (s_status == NULL || s_rec == NULL || (t->reply[0] && s_out == NULL)) {
        if (err && asprintf(err, "task %s: cannot encode the outcome", t->id) == -1)
            *err = NULL;
        goto out;
    }
    rds_key(k_task, sizeof(k_task), c, "task:%s", t->id);
    /* the same two keys for every task of this process: made once per
     * prefix */
    static char prefix[64] = "\x01", k_rec[128], k_stats[128];
    if (strcmp(prefix, c->redis_prefix) != 0) {
        rds_key(k_rec, sizeof(k_rec), c, "taskrec");
        rds_key(k_stats, sizeof(k_stats), c, "stats:worker");
        snprintf(prefix, sizeof(prefix), "%s", c->redis_prefix);
    }
    rds_key(k_q, sizeof(k_q), c, "q:%s", t->queue);
    if (t->reply[0])
        rds_key(k_reply, sizeof(k_reply), c, "reply:%s", t->reply);
    bool cron = t->origin == ORIGIN_CRON && t->origin_id[0];
    if (cron)
        rds_key(k_cron, sizeof(k_cron), c, "cron:running:%s", t->origin_id);
    if (result_cache_key && t->cache_result > 0 && strcmp(o->status, "success") == 0)
        s_res = json_dumps(o->result ? o->result : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(ttl, sizeof(ttl), "%d", t->reply[0] ? c->sync_task_ttl : c->task_ttl);
    snprintf(cost, sizeof(cost), "%lld", (long long)wrec_cost_ms(o));
    snprintf(res_ttl, sizeof(res_ttl), "%d", t->cache_result);

    if (extra && extra->hot_stream && extra->hot_reply && !cron) {
        rv = commit_multi(rc, t, o, extra, k_task, k_rec, k_stats, k_q, k_reply, s_status, ttl,
                          s_rec, s_out, s_res, result_cache_key, res_ttl, cost, err);
        goto out;
    }
    /* EVALSHA: the script's 1 KiB is not sent and hashed on every call */
    static char sha[41];
    if (sha[0] == '\0' && rds_script_load(rc, COMMIT_LUA, sha) == -1) {
        sha[0] = '\0';
        if (rc->err) {
            if (err && asprintf(err, "task %s: loading the outcome script: redis: %s", t->id,
                                rc->errstr) == -1)
                *err = NULL;
            goto out;
        }
    }
    bool fetch = extra && extra->fetch_keys && extra->nfetch_keys > 1 &&
                 extra->nfetch_keys <= 1 + W_NQUEUES && extra->fetch_args &&
                 extra->nfetch_args == extra->nfetch_keys; /* look flag + a state per stream */
    char nkeys[16];
    snprintf(nkeys, sizeof(nkeys), "%d", COMMIT_NKEYS + (fetch ? extra->nfetch_keys : 0));
    const char *argv[3 + COMMIT_NKEYS + 1 + W_NQUEUES + 14 + 1 + W_NQUEUES + 2 * (2 + W_STATS_MAX)];
    int argc = 0;
    argv[argc++] = sha[0] ? "EVALSHA" : "EVAL";
    argv[argc++] = sha[0] ? sha : COMMIT_LUA;
    argv[argc++] = nkeys;
    const char *keys[COMMIT_NKEYS] = {k_task,
                                      k_rec,
                                      k_stats,
                                      k_q,
                                      t->reply[0] ? k_reply : k_task,
                                      cron ? k_cron : k_task,
                                      s_res ? result_cache_key : k_task};
    for (int i = 0; i < COMMIT_NKEYS; i++)
        argv[argc++] = keys[i];
    for (int i = 0; fetch && i < extra->nfetch_keys; i++)
        argv[argc++] = extra->fetch_keys[i];
    const char *args[13] = {s_status,
                            ttl,
                            s_rec,
                            o->status,
                            cost,
                            t->entry,
                            s_out ? s_out : "",
                            t->id,
                            cron ? "1" : "0",
                            s_res ? s_res : "",
                            res_ttl,
                            fetch ? extra->consumer : "",
                            fetch && extra->want_gen ? extra->want_gen : "0"};
    for (int i = 0; i < 13; i++)
        argv[argc++] = args[i];
    char nf[16];
    snprintf(nf, sizeof(nf), "%d", fetch ? extra->nfetch_args : 0);
    argv[argc++] = nf;
    for (int i = 0; fetch && i < extra->nfetch_args; i++)
        argv[argc++] = extra->fetch_args[i];
    if (extra && extra->stats) {
        for (int i = 0; i < extra->nstats && i < 2 * (2 + W_STATS_MAX); i++)
            argv[argc++] = extra->stats[i];
    } else {
        argv[argc++] = "tasks";
        argv[argc++] = "1";
        argv[argc++] = o->status;
        argv[argc++] = "1";
        argv[argc++] = "cost_ms";
        argv[argc++] = cost;
    }
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* Redis restarted or SCRIPT FLUSH: nothing ran; once more as EVAL
         * (which caches it again) */
        freeReplyObject(r);
        sha[0] = '\0';
        argv[0] = "EVAL";
        argv[1] = COMMIT_LUA;
        r = redisCommandArgv(rc, argc, argv, NULL);
    }
    if (r == NULL) {
        if (err &&
            asprintf(err, "task %s: recording the outcome: redis: %s", t->id, rc->errstr) == -1)
            *err = NULL;
        goto out; /* the context is unusable now */
    }
    rds_readonly(rc, r); /* a replica now: the caller reconnects (Sentinel) */
    bool done = (r->type == REDIS_REPLY_INTEGER && r->integer == 1) ||
                (fetch && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                 r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 1);
    if (done) {
        rv = 0;
        if (fetch && r->type == REDIS_REPLY_ARRAY && extra->reply)
            extra->reply(r->element[1], extra->ud);
    } else if (err &&
               asprintf(err, "task %s: recording the outcome (entry left pending): %s", t->id,
                        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") == -1) {
        *err = NULL;
    }
    freeReplyObject(r);
out:
    free(s_out);
    free(s_status);
    free(s_rec);
    free(s_res);
    return rv;
}

/* ---- record -> SQL row (the keeper's flush) ------------------------------ */

struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

static void sb_quoted(struct sbuf *b, wrec_quote_fn quote, void *ud, const char *s)
{
    char *q = quote(ud, s);
    if (q == NULL) {
        b->oom = true;
        return;
    }
    sb_add(b, q);
    free(q);
}

/* A string column: required ones must be strings; optional ones may be
 * missing (def) or null (SQL NULL when def is NULL). */
static int col_str(struct sbuf *b, json_t *rec, const char *k, const char *def, bool required,
                   wrec_quote_fn quote, void *ud, char **err)
{
    json_t *v = json_object_get(rec, k);
    if (json_is_string(v)) {
        sb_quoted(b, quote, ud, json_string_value(v));
        return 0;
    }
    if (required || (v && !json_is_null(v))) {
        if (asprintf(err, "field \"%s\" must be a string", k) == -1)
            *err = NULL;
        return -1;
    }
    if (def)
        sb_quoted(b, quote, ud, def);
    else
        sb_add(b, "NULL");
    return 0;
}

static int col_int(struct sbuf *b, json_t *rec, const char *k, char **err)
{
    char num[32];
    json_t *v = json_object_get(rec, k);
    if (json_is_real(v) && json_real_value(v) > -9.2e18 && json_real_value(v) < 9.2e18) {
        snprintf(num, sizeof(num), "%lld", (long long)json_real_value(v));
        sb_add(b, num);
        return 0;
    }
    if (v && !json_is_null(v) && !json_is_integer(v)) {
        if (asprintf(err, "field \"%s\" must be an integer", k) == -1)
            *err = NULL;
        return -1;
    }
    snprintf(num, sizeof(num), "%lld", (long long)(v ? json_integer_value(v) : 0));
    sb_add(b, num);
    return 0;
}

/* An integer column that may be absent or null (SQL NULL). */
static int col_int_or_null(struct sbuf *b, json_t *rec, const char *k, char **err)
{
    json_t *v = json_object_get(rec, k);
    if (v == NULL || json_is_null(v)) {
        sb_add(b, "NULL");
        return 0;
    }
    return col_int(b, rec, k, err);
}

/* A DATETIME(3) column from ms since the epoch or a date string. */
static int col_time(struct sbuf *b, json_t *rec, const char *k, bool required, wrec_quote_fn quote,
                    void *ud, char **err)
{
    char buf[64];
    json_t *v = json_object_get(rec, k);
    /* Lua's cjson may write large integers as reals. */
    if (json_is_real(v) && json_real_value(v) >= 1 && json_real_value(v) < 9.2e18) {
        sql_datetime_ms((int64_t)json_real_value(v), buf, sizeof(buf));
        sb_quoted(b, quote, ud, buf);
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        sql_datetime_ms(json_integer_value(v), buf, sizeof(buf));
        sb_quoted(b, quote, ud, buf);
        return 0;
    }
    if (json_is_string(v) && json_string_length(v) >= 10 && json_string_length(v) < sizeof(buf)) {
        /* "2026-11-27T23:59:01.123Z" -> "2026-11-27 23:59:01.123" */
        snprintf(buf, sizeof(buf), "%s", json_string_value(v));
        for (char *p = buf; *p; p++)
            if (*p == 'T')
                *p = ' ';
        size_t n = strlen(buf);
        if (n && buf[n - 1] == 'Z')
            buf[n - 1] = '\0';
        sb_quoted(b, quote, ud, buf);
        return 0;
    }
    if (v == NULL || json_is_null(v) || (json_is_integer(v) && json_integer_value(v) == 0)) {
        if (required) {
            sql_datetime_ms(now_ms(), buf, sizeof(buf));
            sb_quoted(b, quote, ud, buf);
        } else {
            sb_add(b, "NULL");
        }
        return 0;
    }
    if (asprintf(err, "field \"%s\" must be ms since the epoch, a date string or null", k) == -1)
        *err = NULL;
    return -1;
}

char *wrec_sql_row(json_t *rec, wrec_quote_fn quote, void *ud, char **err)
{
    struct sbuf b = {0};
    *err = NULL;
    if (!json_is_object(rec)) {
        *err = strdup("task record must be a JSON object");
        return NULL;
    }
    sb_add(&b, "(");
    if (col_str(&b, rec, "id", NULL, true, quote, ud, err) == -1)
        goto bad;
    sb_add(&b, ",");
    if (col_str(&b, rec, "func_id", NULL, true, quote, ud, err) == -1)
        goto bad;
    static const char *const opt[] = {"origin", "origin_id", "queue"};
    for (size_t i = 0; i < 3; i++) {
        sb_add(&b, ",");
        if (col_str(&b, rec, opt[i], i == 0 ? "func" : "", false, quote, ud, err) == -1)
            goto bad;
    }
    sb_add(&b, ",");
    if (col_str(&b, rec, "status", NULL, true, quote, ud, err) == -1)
        goto bad;
    sb_add(&b, ",");
    if (col_str(&b, rec, "reason", "", false, quote, ud, err) == -1)
        goto bad;
    static const char *const texts[] = {"message", "traceback", "output"};
    for (size_t i = 0; i < 3; i++) {
        sb_add(&b, ",");
        if (col_str(&b, rec, texts[i], NULL, false, quote, ud, err) == -1)
            goto bad;
    }
    sb_add(&b, ",");
    if (col_str(&b, rec, "node", "", false, quote, ud, err) == -1)
        goto bad;
    sb_add(&b, ",");
    if (col_int(&b, rec, "epoch", err) == -1)
        goto bad;
    static const char *const times[] = {"nominal_at", "enqueued_at", "started_at", "ended_at"};
    for (size_t i = 0; i < 4; i++) {
        sb_add(&b, ",");
        if (col_time(&b, rec, times[i], i == 3, quote, ud, err) == -1)
            goto bad;
    }
    sb_add(&b, ",");
    if (col_int(&b, rec, "cost_ms", err) == -1)
        goto bad;
    /* optional: records of older workers and the beat's have none */
    static const char *const dff[] = {"kwargs_json", "return_value_json", "call_chain_json",
                                      "root_task_id"};
    for (size_t i = 0; i < 4; i++) {
        sb_add(&b, ",");
        if (col_str(&b, rec, dff[i], NULL, false, quote, ud, err) == -1)
            goto bad;
    }
    sb_add(&b, ",");
    if (col_time(&b, rec, "trigger_at", false, quote, ud, err) == -1)
        goto bad;
    /* migration 011: optional too; absent or null is NULL */
    sb_add(&b, ",");
    if (col_str(&b, rec, "cron_expr", NULL, false, quote, ud, err) == -1)
        goto bad;
    static const char *const secs[] = {"delay_s", "timeout_s", "expires_s"};
    for (size_t i = 0; i < 3; i++) {
        sb_add(&b, ",");
        if (col_int_or_null(&b, rec, secs[i], err) == -1)
            goto bad;
    }
    sb_add(&b, ")");
    if (b.oom) {
        *err = strdup("out of memory");
        goto bad;
    }
    return b.s;
bad:
    free(b.s);
    return NULL;
}
