/* The task message (docs/INTERNALS.md, "Task JSON"). */
#include "task.h"
#include "sha256.h"
#include "rds.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"
#include "util.h"
#include "rds.h"

static const char *const origin_names[] = {"func", "sync-api", "async-api",
                                           "cron", "subtask",  "system"};
#define NORIGINS ((int)(sizeof(origin_names) / sizeof(origin_names[0])))

const char *task_origin_name(enum task_origin o)
{
    if ((int)o < 0 || (int)o >= NORIGINS)
        return "unknown";
    return origin_names[o];
}

int task_origin_parse(const char *s)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i < NORIGINS; i++)
        if (strcmp(s, origin_names[i]) == 0)
            return i;
    return -1;
}

char *task_encode(const struct task *t)
{
    json_t *kw = t->kwargs ? json_incref(t->kwargs) : json_object();
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "id", t->id, "func",
        t->func, "kwargs", kw, "origin", task_origin_name(t->origin), "origin_id", t->origin_id,
        "timeout", t->timeout, "reply", t->reply, "queue", t->queue, "enq", (json_int_t)t->enq_ms,
        "expires", (json_int_t)t->expires_ms, "epoch", (json_int_t)t->epoch, "ver",
        (json_int_t)t->ver, "nominal", (json_int_t)t->nominal);
    if (o == NULL)
        return NULL; /* json_pack released kw ("o" steals even on failure) */
    if (t->delay > 0)
        json_object_set_new(o, "delay", json_integer(t->delay));
    if (t->cron_expr[0])
        json_object_set_new(o, "cron_expr", json_string(t->cron_expr));
    if (t->due_ms > 0)
        json_object_set_new(o, "due", json_integer(t->due_ms));
    if (t->extra)
        json_object_update_missing(o, t->extra); /* never over the fields above */
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static const char *jtype(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Copies string field key into buf. Missing: def (NULL = required). */
static int get_str(json_t *o, const char *key, char *buf, size_t n, const char *def, char **err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        if (def == NULL) {
            err_set(err, "task: missing field \"%s\"", key);
            return -1;
        }
        snprintf(buf, n, "%s", def);
        return 0;
    }
    if (!json_is_string(v)) {
        err_set(err, "task: field \"%s\" must be a string, got %s", key, jtype(v));
        return -1;
    }
    if (json_string_length(v) >= n || strlen(json_string_value(v)) != json_string_length(v)) {
        err_set(err, "task: field \"%s\" is too long or contains NUL (at most %zu bytes)", key,
                n - 1);
        return -1;
    }
    snprintf(buf, n, "%s", json_string_value(v));
    return 0;
}

static int get_int(json_t *o, const char *key, int64_t *out, int64_t def, int64_t lo, int64_t hi,
                   char **err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) {
        err_set(err, "task: field \"%s\" must be an integer, got %s", key, jtype(v));
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        err_set(err, "task: field \"%s\" = %lld is out of range %lld..%lld", key, (long long)x,
                (long long)lo, (long long)hi);
        return -1;
    }
    *out = x;
    return 0;
}

int task_decode(struct task *t, const char *json, char **err)
{
    json_error_t je;
    json_t *o;
    char origin[32];
    int64_t timeout;

    if (err)
        *err = NULL;
    memset(t, 0, sizeof(*t));
    if (json == NULL) {
        err_set(err, "task: no message");
        return -1;
    }
    o = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL) {
        err_set(err, "task: malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return -1;
    }
    if (!json_is_object(o)) {
        err_set(err, "task: message must be a JSON object, got %s", jtype(o));
        goto bad;
    }
    if (get_str(o, "id", t->id, sizeof(t->id), NULL, err) == -1 ||
        get_str(o, "func", t->func, sizeof(t->func), NULL, err) == -1 ||
        get_str(o, "origin", origin, sizeof(origin), "func", err) == -1 ||
        get_str(o, "origin_id", t->origin_id, sizeof(t->origin_id), "", err) == -1 ||
        get_str(o, "reply", t->reply, sizeof(t->reply), "", err) == -1 ||
        get_str(o, "queue", t->queue, sizeof(t->queue), "async", err) == -1 ||
        get_int(o, "timeout", &timeout, 30, 1, 3600, err) == -1 ||
        get_int(o, "enq", &t->enq_ms, 0, 0, INT64_MAX, err) == -1 ||
        get_int(o, "expires", &t->expires_ms, 0, 0, INT64_MAX, err) == -1 ||
        get_int(o, "epoch", &t->epoch, 0, 0, INT64_MAX, err) == -1 ||
        get_int(o, "ver", &t->ver, 0, 0, INT64_MAX, err) == -1 ||
        get_int(o, "nominal", &t->nominal, 0, 0, INT64_MAX, err) == -1 ||
        get_int(o, "due", &t->due_ms, 0, 0, INT64_MAX, err) == -1)
        goto bad;
    t->timeout = (int)timeout;
    /* Record-only fields: a malformed one is left out, never a refused task. */
    json_t *dl = json_object_get(o, "delay");
    if (json_is_number(dl) && json_number_value(dl) > 0 && json_number_value(dl) < 1e9)
        t->delay = (int)(json_number_value(dl) + 0.5);
    const char *ce = json_string_value(json_object_get(o, "cron_expr"));
    if (ce && strlen(ce) < sizeof t->cron_expr)
        snprintf(t->cron_expr, sizeof t->cron_expr, "%s", ce);
    if (!id_valid(t->id)) {
        err_set(err, "task: field \"id\" \"%s\" is not a valid id", t->id);
        goto bad;
    }
    if (t->func[0] == '\0') {
        err_set(err, "task: field \"func\" is empty");
        goto bad;
    }
    int org = task_origin_parse(origin);
    if (org < 0) {
        err_set(err,
                "task: field \"origin\" \"%s\" is not one of func, sync-api, async-api, cron, "
                "subtask, system",
                origin);
        goto bad;
    }
    t->origin = (enum task_origin)org;
    /* DFF's numbered queues 0..9 (@DFF.API(queue=N)) are streams too. */
    bool numbered = t->queue[0] >= '0' && t->queue[0] <= '9' && t->queue[1] == '\0';
    if (strcmp(t->queue, "sync") != 0 && strcmp(t->queue, "async") != 0 &&
        strcmp(t->queue, "cron") != 0 && !numbered) {
        err_set(err, "task: field \"queue\" \"%s\" is not one of sync, async, cron, 0..9",
                t->queue);
        goto bad;
    }
    json_t *kw = json_object_get(o, "kwargs");
    if (kw == NULL || json_is_null(kw)) {
        t->kwargs = json_object();
    } else if (!json_is_object(kw)) {
        err_set(err, "task: field \"kwargs\" must be an object, got %s", jtype(kw));
        goto bad;
    } else {
        t->kwargs = json_incref(kw);
    }
    json_decref(o);
    return 0;
bad:
    json_decref(o);
    t->kwargs = NULL;
    return -1;
}

void task_free(struct task *t)
{
    if (t->kwargs) {
        json_decref(t->kwargs);
        t->kwargs = NULL;
    }
    json_decref(t->extra);
    t->extra = NULL;
}

/* Per task of a task_enqueue_many() pipeline. */
struct enq_state {
    char *msg_own, *status; /* malloc'd here */
    const char *msg;
    char qkey[128];
    bool sent, group, set; /* commands appended: any, XGROUP, SET */
    bool delayed;          /* ZADD to Pdelayed instead of XADD (due later) */
    bool done;             /* failed: q->err says why */
};

/* The consumer group must exist before the first entry, or a group
 * created later at "$" would never see it. BUSYGROUP (exists) is expected.
 * Once per connection and queue is enough: it was one of ~15 Redis commands
 * of every sync call. (Should Redis lose the group anyway, workers
 * re-create it at id 0 on NOGROUP, so no entry is missed.) Returns true
 * when the queue still needs its XGROUP CREATE on this connection, and
 * *slot the free slot to remember it in (-1: none, it is just sent again). */
static __thread const redisContext *grp_rc;
static __thread char grp_done[4][16];

static bool group_needed(const redisContext *rc, const char *queue, int *slot)
{
    if (grp_rc != rc) {
        grp_rc = rc;
        memset(grp_done, 0, sizeof grp_done);
    }
    *slot = -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(grp_done[i], queue) == 0)
            return false;
        if (grp_done[i][0] == '\0' && *slot < 0)
            *slot = i;
    }
    return true;
}

static void enq_fail(struct task_enq *q, struct enq_state *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void enq_fail(struct task_enq *q, struct enq_state *s, const char *fmt, ...)
{
    if (s->done)
        return; /* the first reason stays */
    s->done = true;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&q->err, fmt, ap) == -1)
        q->err = strdup("task: enqueue failed (out of memory)");
    va_end(ap);
}

/* What one task puts in Redis: its JSON (s->msg), the key it goes to
 * (s->qkey: its queue's stream, or Pdelayed for a task due later) and for
 * async/cron its "queued" status (s->status). A sync call's status is
 * written by the worker's commit alone: its caller learns the task id only
 * with the outcome, and a "queued" SET that lands after a fast worker's
 * commit would hide the outcome. -1 (q->err set): cannot encode. */
static int enq_prepare(const struct tconf *c, struct task_enq *q, struct enq_state *s)
{
    const struct task *t = q->t;
    s->msg = q->msg ? q->msg : (s->msg_own = task_encode(t));
    s->delayed = t->due_ms > now_ms();
    if (!t->reply[0]) {
        json_t *st =
            json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", t->id, "func", t->func, "status", "queued",
                      "origin", task_origin_name(t->origin), "enq", (json_int_t)t->enq_ms);
        if (st && t->due_ms > 0)
            json_object_set_new(st, "eta", json_integer(t->due_ms));
        if (st) {
            s->status = json_dumps(st, JSON_COMPACT);
            json_decref(st);
        }
    }
    if (s->msg == NULL || (!t->reply[0] && s->status == NULL)) {
        enq_fail(q, s, "task %s: cannot encode (bad UTF-8 in a field?)", t->id);
        return -1;
    }
    if (s->delayed) /* the beat's delayed-task script moves it to its stream when due */
        rds_key(s->qkey, sizeof(s->qkey), c, "delayed");
    else
        rds_key(s->qkey, sizeof(s->qkey), c, "q:%s", t->queue);
    return 0;
}

/* Appends one task's commands: XGROUP CREATE (first use of the queue on
 * this connection), XADD (a ZADD to Pdelayed for a task due later), and
 * for async/cron the queued status. */
static void enq_append(redisContext *rc, const struct tconf *c, struct task_enq *q,
                       struct enq_state *s, const char *const *sent_groups, size_t nsent)
{
    const struct task *t = q->t;
    if (enq_prepare(c, q, s) != 0)
        return;
    if (s->delayed) {
        redisAppendCommand(rc, "ZADD %s %lld %s", s->qkey, (long long)t->due_ms, s->msg);
    } else {
        int slot;
        s->group = group_needed(rc, t->queue, &slot);
        for (size_t i = 0; s->group && i < nsent; i++)
            if (strcmp(sent_groups[i], t->queue) == 0)
                s->group = false; /* an earlier task of this pipeline creates it */
        if (s->group)
            redisAppendCommand(rc, "XGROUP CREATE %s workers 0 MKSTREAM", s->qkey);
        redisAppendCommand(rc, "XADD %s * t %s", s->qkey, s->msg);
    }
    s->sent = true;
    s->set = s->status != NULL;
    if (s->set) {
        char tkey[128 + ID_MAX];
        rds_key(tkey, sizeof(tkey), c, "task:%s", t->id);
        redisAppendCommand(rc, "SET %s %s EX %d", tkey, s->status, c->task_ttl);
    }
}

/* Reads what enq_append sent for one task. -1: the connection broke. */
static int enq_read(redisContext *rc, struct task_enq *q, struct enq_state *s)
{
    int n = (s->group ? 1 : 0) + 1 + (s->set ? 1 : 0);
    redisReply *r[3] = {NULL, NULL, NULL};
    int rv = 0;
    for (int i = 0; i < n; i++) {
        void *rep = NULL;
        if (redisGetReply(rc, &rep) != REDIS_OK) {
            grp_rc = NULL; /* the context is broken; the caller reconnects */
            rv = -1;
            goto out;
        }
        r[i] = rep;
    }
    int i = 0;
    if (s->group) {
        redisReply *g = r[i++];
        bool busy = g->type == REDIS_REPLY_ERROR && strncmp(g->str, "BUSYGROUP", 9) == 0;
        int slot;
        if ((g->type != REDIS_REPLY_ERROR || busy) && group_needed(rc, q->t->queue, &slot) &&
            slot >= 0)
            snprintf(grp_done[slot], sizeof grp_done[slot], "%s", q->t->queue);
        if (g->type == REDIS_REPLY_ERROR && !busy)
            enq_fail(q, s, "task %s: XGROUP CREATE %s: %s", q->t->id, s->qkey, g->str);
    }
    redisReply *x = r[i++];
    rds_readonly(rc, x); /* a demoted master: the caller reconnects (Sentinel) */
    if (x->type != (s->delayed ? REDIS_REPLY_INTEGER : REDIS_REPLY_STRING))
        enq_fail(q, s, "task %s: %s %s: %s", q->t->id, s->delayed ? "ZADD" : "XADD", s->qkey,
                 x->type == REDIS_REPLY_ERROR ? x->str : "unexpected reply");
    if (s->set && r[i]->type == REDIS_REPLY_ERROR) {
        /* The task is on the queue, so it is accepted; only its status is
         * missing until the worker writes one. */
        log_warnx("task %s: SET status: %s", q->t->id, r[i]->str);
    }
out:
    for (int j = 0; j < 3; j++)
        if (r[j])
            freeReplyObject(r[j]);
    return rv;
}

/* Once a second per thread: without a replica every enqueue comes here,
 * hundreds a second, now that none waits. */
static void warn_unreplicated(const char *id, long long acked, int want, bool waited)
{
    static __thread int64_t warned_ms;
    static __thread long quiet;
    if (mono_ms() - warned_ms >= 1000) {
        log_warnx("task %s: accepted with %lld of %d replica acknowledgements%s (and %ld more "
                  "since the last such warning of this thread)",
                  id, acked < 0 ? 0 : acked, want, waited ? "" : ", not waited for", quiet);
        warned_ms = mono_ms();
        quiet = 0;
    } else {
        quiet++;
    }
}

/* Whether to end the pipeline with a WAIT (asked before the pipeline is
 * built: it is a command of its own). Not when fewer replicas than asked
 * for are acknowledging at all (gone, syncing, hung): that WAIT could only
 * run to its timeout, holding this thread and every call queued behind it
 * (bench/wait-cost), so the answer is given at once. */
static bool enq_wait_wanted(redisContext *rc, const struct tconf *c, int *acking)
{
    *acking = c->redis_wait_replicas > 0 ? rds_replicas_acking(rc, c->redis_wait_max_lag) : -1;
    return c->redis_wait_replicas > 0 && (*acking < 0 || *acking >= c->redis_wait_replicas);
}

/* After the pipeline's replies: with redis.wait_replicas, the tasks Redis
 * took (those of only[] when given) are refused or accepted with a warning
 * when fewer replicas than asked for acknowledged them. The entries are on
 * the master's stream and may still run either way. */
static void enq_durability(const struct tconf *c, struct task_enq *q, struct enq_state *s, size_t n,
                           bool wait, long long acked)
{
    if (c->redis_wait_replicas <= 0 || acked >= c->redis_wait_replicas)
        return;
    for (size_t i = 0; i < n; i++) {
        if (s[i].done || !s[i].sent)
            continue;
        if (c->redis_wait_refuse && wait)
            enq_fail(&q[i], &s[i],
                     "task %s: not durable: %lld of %d Redis replica(s) acknowledged it "
                     "within %d ms (redis.wait_replicas)",
                     q[i].t->id, acked < 0 ? 0 : acked, c->redis_wait_replicas,
                     c->redis_wait_timeout_ms);
        else if (c->redis_wait_refuse)
            enq_fail(&q[i], &s[i],
                     "task %s: not durable: %lld of %d Redis replica(s) online and "
                     "acknowledging (lag <= %d s, redis.wait_max_lag), so not waited "
                     "for (redis.wait_replicas)",
                     q[i].t->id, acked, c->redis_wait_replicas, c->redis_wait_max_lag);
        else
            warn_unreplicated(q[i].t->id, acked, c->redis_wait_replicas, wait);
    }
}

/* The enq_state array of n tasks: small batches on the stack. */
#define ENQ_SMALL 8

static struct enq_state *enq_states(struct enq_state small[ENQ_SMALL], size_t n)
{
    struct enq_state *s = n <= ENQ_SMALL ? small : calloc(n, sizeof *s);
    if (s == small)
        memset(small, 0, sizeof(*small) * ENQ_SMALL);
    return s;
}

static void enq_states_free(struct enq_state *s, struct enq_state *small, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i].msg_own);
        free(s[i].status);
    }
    if (s != small)
        free(s);
}

/* Tests only (tandem-server arms it from TANDEM_TEST_ENQUEUE_CUT=1): the
 * first try of every batch sends the commands of its first half of tasks
 * (at least one), makes sure Redis executed them, and then loses the
 * connection without their answers, as when Redis dies or the link breaks
 * mid-batch. task_enqueue_again() is not cut. */
static atomic_bool test_cut_armed;

void task_test_cut_arm(bool on)
{
    atomic_store(&test_cut_armed, on);
}

static bool test_cut(void)
{
    return atomic_load_explicit(&test_cut_armed, memory_order_relaxed);
}

static void test_cut_now(redisContext *rc)
{
    int done = 0;
    while (!done && redisBufferWrite(rc, &done) == REDIS_OK) {
    }
    /* half-close: Redis reads and runs all of it, answers, then sees EOF */
    shutdown(rc->fd, SHUT_WR);
    void *rep;
    while (redisGetReply(rc, &rep) == REDIS_OK)
        freeReplyObject(rep); /* the answers that "never came"; ends at EOF (rc->err) */
}

size_t task_enqueue_many(redisContext *rc, const struct tconf *c, struct task_enq *q, size_t n)
{
    struct enq_state small[ENQ_SMALL], *s = enq_states(small, n);
    const char *small_groups[ENQ_SMALL] = {NULL},
               **groups = n <= ENQ_SMALL ? small_groups : calloc(n, sizeof *groups);
    size_t ngroups = 0, ok = 0;
    for (size_t i = 0; i < n; i++) {
        q[i].err = NULL;
        q[i].unsure = false;
    }
    if (s == NULL || groups == NULL) {
        for (size_t i = 0; i < n; i++)
            err_set(&q[i].err, "task %s: out of memory", q[i].t->id);
        goto out;
    }
    int acking;
    bool wait = enq_wait_wanted(rc, c, &acking);
    bool cut = test_cut();
    size_t nsend = cut ? (n + 1) / 2 : n;
    for (size_t i = 0; i < nsend; i++) {
        enq_append(rc, c, &q[i], &s[i], groups, ngroups);
        if (s[i].group)
            groups[ngroups++] = q[i].t->queue;
    }
    /* Accepted = on a replica too, when asked: one WAIT after all of them,
     * in the same pipeline, so it costs the replication delay once per
     * round trip, not per task. */
    if (wait && !cut)
        redisAppendCommand(rc, "WAIT %d %d", c->redis_wait_replicas, c->redis_wait_timeout_ms);
    size_t read = 0; /* tasks whose replies were all read */
    if (cut) {
        test_cut_now(rc);
        for (size_t i = nsend; i < n; i++)
            s[i].sent = enq_prepare(c, &q[i], &s[i]) == 0; /* for the retry to send */
    } else {
        while (read < n && (!s[read].sent || enq_read(rc, &q[read], &s[read]) == 0))
            read++;
    }
    redisReply *w = NULL;
    if (read == n && wait && redisGetReply(rc, (void **)&w) != REDIS_OK) {
        grp_rc = NULL;
        read = 0; /* none is known to be on a replica */
    }
    if (read < n) {
        /* The connection broke: what was not confirmed is not accepted
         * (yet). Redis may have run any of it before the break: those are
         * `unsure`, for task_enqueue_again() on a fresh connection. */
        grp_rc = NULL;
        for (size_t i = read; i < n; i++) {
            if (s[i].sent && !s[i].done)
                q[i].unsure = true;
            enq_fail(&q[i], &s[i], "task %s: redis: %s", q[i].t->id, rc->errstr);
        }
    } else {
        enq_durability(c, q, s, n, wait,
                       !wait                                 ? acking
                       : w && w->type == REDIS_REPLY_INTEGER ? w->integer
                                                             : -1);
    }
    if (w)
        freeReplyObject(w);
    for (size_t i = 0; i < n; i++)
        if (!s[i].done)
            ok++;
out:
    enq_states_free(s, small, n);
    if (groups != small_groups)
        free(groups);
    return ok;
}

/* The retry's script: per task, "already in Redis?" and if not, the first
 * try's commands. A task the first try got into Redis is either still an
 * entry of its stream (XDEL comes only with its outcome, in the worker's
 * commit script, and a re-queued copy keeps its JSON) or has its status
 * key (written by that same commit, or by the first try right after the
 * XADD for async/cron), so: its status key exists, or an entry of its
 * stream newer than ARGV[1] ms ago (the stream ids are Redis's clock, so
 * the server's clock does not matter) carries its id. A stream holds the
 * tasks not yet done, so the scan is as long as the queue; ARGV[3] caps it
 * (past it a task not found is added: at least once, never lost).
 * A task due later goes to Pdelayed, a ZSET whose member is its JSON, so
 * ZADD is its own "already there?" (no scan).
 * KEYS: per task its stream (or Pdelayed) and its status key. ARGV: 1
 * window ms, 2 the status TTL, 3 the scan cap, then per task: id, JSON,
 * status JSON or "" (sync), due ms or "" (not delayed). Answer: per task
 * 0 = was there, 1 = added now. */
static const char ENQ_AGAIN_LUA[] =
    "local n = #KEYS / 2 "
    "local out, want, queues, left = {}, {}, {}, 0 "
    "for i = 1, n do "
    "  if redis.call('EXISTS', KEYS[2 * i]) == 1 then out[i] = 0 "
    "  elseif ARGV[4 * i + 3] ~= '' then "
    "    out[i] = redis.call('ZADD', KEYS[2 * i - 1], ARGV[4 * i + 3], ARGV[4 * i + 1]) "
    "    if ARGV[4 * i + 2] ~= '' then "
    "      redis.call('SET', KEYS[2 * i], ARGV[4 * i + 2], 'EX', ARGV[2], 'NX') "
    "    end "
    "  else "
    "    local q = KEYS[2 * i - 1] "
    "    if not want[q] then want[q] = {}; queues[#queues + 1] = q end "
    "    want[q][ARGV[4 * i]] = i; left = left + 1 "
    "  end "
    "end "
    "local t = redis.call('TIME') "
    "local from = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1]) "
    "if from < 0 then from = 0 end "
    "local cap = tonumber(ARGV[3]) "
    "for _, q in ipairs(queues) do "
    "  local w, last, seen = want[q], '+', 0 "
    "  while left > 0 and seen < cap do "
    "    local es = redis.call('XREVRANGE', q, last, from .. '-0', 'COUNT', 512) "
    "    local got = 0 "
    "    for _, e in ipairs(es) do "
    "      if e[1] ~= last then "
    "        got = got + 1 "
    "        local f = e[2] "
    "        for j = 1, #f - 1, 2 do "
    "          if f[j] == 't' then "
    "            local id = string.match(f[j + 1], '^{\"id\":\"([^\"]*)\"') "
    "            if id and w[id] then out[w[id]] = 0; w[id] = nil; left = left - 1 end "
    "          end "
    "        end "
    "      end "
    "      last = e[1] "
    "    end "
    "    seen = seen + got "
    "    if got == 0 then break end "
    "  end "
    "end "
    "local made = {} "
    "for i = 1, n do "
    "  if out[i] == nil then "
    "    local q = KEYS[2 * i - 1] "
    "    if not made[q] then "
    "      redis.pcall('XGROUP', 'CREATE', q, 'workers', '0', 'MKSTREAM'); made[q] = true "
    "    end "
    "    redis.call('XADD', q, '*', 't', ARGV[4 * i + 1]) "
    "    if ARGV[4 * i + 2] ~= '' then "
    "      redis.call('SET', KEYS[2 * i], ARGV[4 * i + 2], 'EX', ARGV[2]) "
    "    end "
    "    out[i] = 1 "
    "  end "
    "end "
    "return out";

#define ENQ_AGAIN_MARGIN_MS 60000 /* clock steps, a failover to another host */
#define ENQ_AGAIN_SCAN_CAP 1000000

size_t task_enqueue_again(redisContext *rc, const struct tconf *c, struct task_enq *q, size_t n,
                          int64_t since_ms, size_t *already)
{
    size_t m = 0, ok = 0;
    *already = 0;
    for (size_t i = 0; i < n; i++)
        m += q[i].unsure;
    if (m == 0)
        return 0;
    struct enq_state small[ENQ_SMALL], *s = enq_states(small, n);
    size_t *idx = calloc(m, sizeof *idx);
    char(*tkeys)[128 + ID_MAX] = calloc(m, sizeof *tkeys);
    const char **argv = calloc(6 * m + 3, sizeof *argv);
    char(*dues)[24] = calloc(m, sizeof *dues);
    char window[24], ttl[16], cap[16];
    size_t k = 0;
    if (!s || !idx || !tkeys || !argv || !dues) {
        for (size_t i = 0; i < n; i++) {
            if (!q[i].unsure)
                continue;
            free(q[i].err);
            q[i].err = NULL;
            err_set(&q[i].err, "task %s: out of memory", q[i].t->id);
        }
        goto out;
    }
    snprintf(window, sizeof window, "%lld", (long long)(since_ms + ENQ_AGAIN_MARGIN_MS));
    snprintf(ttl, sizeof ttl, "%d", c->task_ttl);
    snprintf(cap, sizeof cap, "%d", ENQ_AGAIN_SCAN_CAP);
    argv[2 * m] = window;
    argv[2 * m + 1] = ttl;
    argv[2 * m + 2] = cap;
    for (size_t i = 0; i < n; i++) {
        if (!q[i].unsure)
            continue;
        free(q[i].err);
        q[i].err = NULL;
        if (enq_prepare(c, &q[i], &s[i]) != 0)
            continue;
        s[i].sent = true;
        rds_key(tkeys[k], sizeof tkeys[k], c, "task:%s", q[i].t->id);
        argv[2 * k] = s[i].qkey;
        argv[2 * k + 1] = tkeys[k];
        argv[2 * m + 3 + 4 * k] = q[i].t->id;
        argv[2 * m + 3 + 4 * k + 1] = s[i].msg;
        argv[2 * m + 3 + 4 * k + 2] = s[i].status ? s[i].status : "";
        if (s[i].delayed)
            snprintf(dues[k], sizeof dues[k], "%lld", (long long)q[i].t->due_ms);
        argv[2 * m + 3 + 4 * k + 3] = s[i].delayed ? dues[k] : "";
        idx[k++] = i;
    }
    if (k > 0) {
        /* those that could not be encoded are left out: keys and args shift down */
        if (k < m) {
            memmove(&argv[2 * k], &argv[2 * m], sizeof *argv * (3 + 4 * k));
        }
        int acking;
        bool wait = enq_wait_wanted(rc, c, &acking);
        redisReply *r = rds_eval(rc, ENQ_AGAIN_LUA, NULL, (int)(2 * k), argv, (int)(6 * k + 3));
        bool good = r && r->type == REDIS_REPLY_ARRAY && r->elements == k;
        for (size_t j = 0; j < k; j++) {
            size_t i = idx[j];
            if (!good) {
                enq_fail(&q[i], &s[i], "task %s: redis (sent again): %s", q[i].t->id,
                         !r                             ? rc->errstr
                         : r->type == REDIS_REPLY_ERROR ? r->str
                                                        : "unexpected reply");
                continue;
            }
            q[i].unsure = false;
            if (r->element[j]->type == REDIS_REPLY_INTEGER && r->element[j]->integer == 0)
                (*already)++;
        }
        if (r)
            freeReplyObject(r);
        redisReply *w = NULL;
        if (good && wait) {
            w = redisCommand(rc, "WAIT %d %d", c->redis_wait_replicas, c->redis_wait_timeout_ms);
            if (!w) /* broke before the answer: none is known to be on a replica */
                for (size_t j = 0; j < k; j++)
                    enq_fail(&q[idx[j]], &s[idx[j]], "task %s: redis (WAIT): %s", q[idx[j]].t->id,
                             rc->errstr);
        }
        if (good && (!wait || w))
            enq_durability(c, q, s, n, wait,
                           !wait                            ? acking
                           : w->type == REDIS_REPLY_INTEGER ? w->integer
                                                            : -1);
        if (w)
            freeReplyObject(w);
    }
    for (size_t j = 0; j < k; j++)
        ok += !s[idx[j]].done;
out:
    enq_states_free(s, small, n);
    free(idx);
    free(tkeys);
    free(argv);
    free(dues);
    return ok;
}

int task_enqueue(redisContext *rc, const struct tconf *c, const struct task *t, char **err)
{
    struct task_enq q = {.t = t};
    task_enqueue_many(rc, c, &q, 1);
    if (err)
        *err = q.err;
    else
        free(q.err);
    return q.err ? -1 : 0;
}

void task_kwargs_digest(json_t *kwargs, char out[65])
{
    char *s = kwargs ? json_dumps(kwargs, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (s == NULL) {
        sha256_hex("{}", 2, out);
        return;
    }
    sha256_hex(s, strlen(s), out);
    free(s);
}

char *task_result_cache_key(char *buf, size_t n, const struct tconf *c, const char *func,
                            json_t *kwargs)
{
    char dg[65];
    task_kwargs_digest(kwargs, dg);
    return rds_key(buf, n, c, "cache:result:%s:%s", func, dg);
}

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int task_cron_delays(json_t *extra, int out[TASK_CRON_DELAYS_MAX], char *why, size_t whylen)
{
    json_t *v = json_object_get(extra, "delayed_cron_job");
    if (v == NULL || json_is_null(v))
        return 0;
    json_t *one = json_is_integer(v) ? json_pack("[O]", v) : json_incref(v);
    int n = 0;
    if (!json_is_array(one)) {
        snprintf(why, whylen, "delayed_cron_job must be a list of seconds, got %s", jtype(v));
        goto bad;
    }
    size_t i;
    json_t *d;
    json_array_foreach(one, i, d)
    {
        json_int_t x = json_integer_value(d);
        if (!json_is_integer(d) || x < 0 || x > TASK_CRON_DELAY_MAX_S) {
            snprintf(why, whylen, "delayed_cron_job[%zu] must be 0..%d seconds", i,
                     TASK_CRON_DELAY_MAX_S);
            goto bad;
        }
        bool dup = false;
        for (int k = 0; k < n; k++)
            dup = dup || out[k] == (int)x;
        if (dup)
            continue;
        if (n == TASK_CRON_DELAYS_MAX) {
            snprintf(why, whylen, "delayed_cron_job has more than %d delays", TASK_CRON_DELAYS_MAX);
            goto bad;
        }
        out[n++] = (int)x;
    }
    json_decref(one);
    if (n == 0) {
        /* DFF: an empty list means the plain run at the slot */
        return 0;
    }
    qsort(out, (size_t)n, sizeof out[0], int_cmp);
    return n;
bad:
    json_decref(one);
    return -1;
}
