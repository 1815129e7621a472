/* A worker child: one interpreter, one task at a time. Reads the queues
 * (sync first), tells the master what it runs, runs it, records the outcome
 * in one pipeline, acks. The master covers for it if it dies mid-task. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Claims at most one entry, sync before cron before async, and reads the
 * generation in the same round trip when asked. Returns {gen} or
 * {gen, stream index (1..3), entry id, fields}. */
static const char FETCH_LUA[] =
    "local g = false "
    "if ARGV[2] == '1' then g = redis.call('GET', KEYS[1]) end "
    "for i = 2, 4 do "
    "  local r = redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[1], 'COUNT', '1', "
    "                       'STREAMS', KEYS[i], '>') "
    "  if r then return {g, i - 1, r[1][2][1][1], r[1][2][1][2]} end "
    "end "
    "return {g}";

struct entry {
    int q; /* index into w_queues */
    char id[48];
    char *msg; /* field t, malloc'd; NULL if missing */
};

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !g_stop)
        ;
}

static void tell_master(struct wchild *ch, enum wmsg_type type, const struct wtask *t)
{
    struct wmsg m;
    wmsg_init(&m, type, t);
    for (;;) {
        ssize_t n = write(ch->fd, &m, sizeof(m));
        if (n == (ssize_t)sizeof(m))
            return;
        if (n == -1 && errno == EINTR)
            continue;
        /* Without the master nobody would record our crashes: stop. */
        log_warn("child %s: pipe to master", ch->consumer);
        _exit(3);
    }
}

/* ---- backends ------------------------------------------------------------ */

void child_redis_broken(struct wchild *ch)
{
    if (ch->rc) {
        redisFree(ch->rc);
        ch->rc = NULL;
    }
}

MYSQL *child_db(struct wchild *ch, char **err)
{
    if (ch->db)
        return ch->db;
    ch->db = db_connect(ch->c, 5, err);
    if (ch->db == NULL) {
        if (!ch->db_down)
            log_warnx("child %s: %s", ch->consumer, err && *err ? *err : "mariadb unavailable");
        ch->db_down = true;
        return NULL;
    }
    if (ch->db_down)
        log_info("child %s: mariadb is back", ch->consumer);
    ch->db_down = false;
    return ch->db;
}

void child_db_broken(struct wchild *ch)
{
    if (ch->db) {
        mysql_close(ch->db);
        ch->db = NULL;
    }
}

static void create_groups(struct wchild *ch)
{
    char k[128];
    for (int i = 0; i < W_NQUEUES; i++) {
        rds_key(k, sizeof(k), ch->c, "q:%s", w_queues[i]);
        redisReply *r = redisCommand(ch->rc, "XGROUP CREATE %s " W_GROUP " 0 MKSTREAM", k);
        if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
            log_warnx("child %s: XGROUP CREATE %s: %s", ch->consumer, k, r->str);
        if (r)
            freeReplyObject(r);
    }
}

/* Connects to Redis, retrying with backoff until it works or we stop. */
static bool redis_up(struct wchild *ch)
{
    int fails = 0;
    while (ch->rc == NULL && !g_stop) {
        char *err = NULL;
        /* The command timeout must outlast XREADGROUP BLOCK 1000. */
        ch->rc = rds_connect(ch->c, 5000, &err);
        if (ch->rc) {
            if (ch->redis_down)
                log_info("child %s: redis is back", ch->consumer);
            ch->redis_down = false;
            create_groups(ch);
            free(err);
            break;
        }
        if (!ch->redis_down)
            log_warnx("child %s: %s; retrying", ch->consumer, err ? err : "redis unavailable");
        ch->redis_down = true;
        free(err);
        sleep_ms(backoff_ms(++fails, 100, 2000));
    }
    return ch->rc != NULL;
}

/* ---- reading ------------------------------------------------------------- */

static char *field_t(redisReply *fields)
{
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, "t") == 0 &&
            v->type == REDIS_REPLY_STRING)
            return strndup(v->str, v->len);
    }
    return NULL;
}

static void check_gen(struct wchild *ch, redisReply *g)
{
    int64_t gen = 0;
    if (g && g->type == REDIS_REPLY_STRING)
        gen = strtoll(g->str, NULL, 10);
    if (ch->gen != -1 && gen != ch->gen)
        py_invalidate();
    ch->gen = gen;
}

static bool is_nogroup(redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOGROUP") != NULL;
}

/* Fills up to W_NQUEUES entries; returns how many, or -1 on a Redis error. */
static int fetch(struct wchild *ch, struct entry *out)
{
    char kg[128], kq[W_NQUEUES][128];
    const char *argv[6];
    int n = 0;
    bool want_gen = mono_ms() - ch->gen_check_mono >= 200;

    rds_key(kg, sizeof(kg), ch->c, "gen");
    for (int i = 0; i < W_NQUEUES; i++)
        rds_key(kq[i], sizeof(kq[i]), ch->c, "q:%s", w_queues[i]);
    argv[0] = kg;
    argv[1] = kq[0];
    argv[2] = kq[1];
    argv[3] = kq[2];
    argv[4] = ch->consumer;
    argv[5] = want_gen ? "1" : "0";

    static char sha[41];
    redisReply *r = rds_eval(ch->rc, FETCH_LUA, sha, 4, argv, 6);
    if (r == NULL) {
        log_warnx("child %s: reading the queues: %s", ch->consumer, ch->rc->errstr);
        return -1;
    }
    if (is_nogroup(r)) { /* the streams were deleted (FLUSHALL): recreate */
        freeReplyObject(r);
        create_groups(ch);
        return 0;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        log_warnx("child %s: reading the queues: %s", ch->consumer,
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        sleep_ms(200);
        return 0;
    }
    if (want_gen) {
        check_gen(ch, r->element[0]);
        ch->gen_check_mono = mono_ms();
    }
    if (r->elements == 4) {
        out[0].q = (int)r->element[1]->integer - 1;
        snprintf(out[0].id, sizeof(out[0].id), "%s", r->element[2]->str);
        out[0].msg = field_t(r->element[3]);
        freeReplyObject(r);
        return out[0].q >= 0 && out[0].q < W_NQUEUES ? 1 : 0;
    }
    freeReplyObject(r);

    /* Nothing waiting: block until something arrives on any queue. */
    r = redisCommand(ch->rc,
                     "XREADGROUP GROUP " W_GROUP " %s COUNT 1 BLOCK 1000 STREAMS %s %s %s > > >",
                     ch->consumer, kq[0], kq[1], kq[2]);
    if (r == NULL) {
        log_warnx("child %s: reading the queues: %s", ch->consumer, ch->rc->errstr);
        return -1;
    }
    if (is_nogroup(r)) {
        freeReplyObject(r);
        create_groups(ch);
        return 0;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
        /* One entry per stream at most; keep priority order. */
        for (int qi = 0; qi < W_NQUEUES; qi++) {
            for (size_t i = 0; i < r->elements; i++) {
                redisReply *s = r->element[i];
                if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
                    strcmp(s->element[0]->str, kq[qi]) != 0)
                    continue;
                redisReply *es = s->element[1];
                for (size_t j = 0; j < es->elements && n < W_NQUEUES; j++) {
                    redisReply *e = es->element[j];
                    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
                        continue;
                    out[n].q = qi;
                    snprintf(out[n].id, sizeof(out[n].id), "%s", e->element[0]->str);
                    out[n].msg = field_t(e->element[1]);
                    n++;
                }
            }
        }
    } else if (r->type == REDIS_REPLY_ERROR) {
        log_warnx("child %s: XREADGROUP: %s", ch->consumer, r->str);
        sleep_ms(200);
    }
    freeReplyObject(r);
    /* Woken after a long wait: scripts may have changed meanwhile. */
    if (n > 0 && mono_ms() - ch->gen_check_mono >= 200) {
        r = redisCommand(ch->rc, "GET %s", kg);
        if (r) { /* else the commit after the run reconnects */
            check_gen(ch, r);
            ch->gen_check_mono = mono_ms();
            freeReplyObject(r);
        }
    }
    return n;
}

/* ---- running ------------------------------------------------------------- */

/* Records until it works: the entry stays pending (and the master keeps
 * the task's deadline) meanwhile. */
static void commit(struct wchild *ch, const struct wtask *wt, const struct woutcome *o,
                   const char *cache_key)
{
    int fails = 0;
    for (;;) {
        char *err = NULL;
        if (redis_up(ch) &&
            wrec_commit(ch->rc, ch->c, wt, o, ch->c->node_name, ch->epoch, cache_key, &err) == 0)
            return;
        if (err) {
            log_warnx("child %s: %s", ch->consumer, err);
            free(err);
        }
        child_redis_broken(ch);
        if (g_stop && fails > 20)
            return; /* left pending: re-queued once this consumer is gone */
        sleep_ms(backoff_ms(++fails, 100, 2000));
    }
}

static void set_running(struct wchild *ch, const struct wtask *wt)
{
    char k[128 + ID_MAX];
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "id", wt->id, "func", wt->func, "status",
        "running", "origin", task_origin_name((enum task_origin)wt->origin), "queue", wt->queue,
        "enq", (json_int_t)wt->enq_ms, "start", (json_int_t)wt->start_ms, "node", ch->c->node_name);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s == NULL)
        return;
    rds_key(k, sizeof(k), ch->c, "task:%s", wt->id);
    if (ch->rc == NULL) {
        free(s);
        return;
    }
    redisReply *r = redisCommand(ch->rc, "SET %s %s EX %d", k, s, ch->c->task_ttl);
    if (r == NULL)
        child_redis_broken(ch); /* the commit reconnects */
    else
        freeReplyObject(r);
    free(s);
}

/* A message that is not a task: answer what we can, then drop it. */
static void bad_message(struct wchild *ch, const struct entry *e, const char *why)
{
    struct wtask wt;
    json_t *raw = e->msg ? json_loads(e->msg, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(raw, "id"));
    const char *reply = json_string_value(json_object_get(raw, "reply"));
    const char *func = json_string_value(json_object_get(raw, "func"));

    log_warnx("child %s: q:%s entry %s: %s; dropped", ch->consumer, w_queues[e->q], e->id, why);
    memset(&wt, 0, sizeof(wt));
    snprintf(wt.queue, sizeof(wt.queue), "%s", w_queues[e->q]);
    snprintf(wt.entry, sizeof(wt.entry), "%s", e->id);
    if (id && id_valid(id)) {
        snprintf(wt.id, sizeof(wt.id), "%s", id);
        snprintf(wt.func, sizeof(wt.func), "%s", func ? func : "");
        if (reply)
            snprintf(wt.reply, sizeof(wt.reply), "%s", reply);
        wt.timeout = 1;
        wt.start_ms = now_ms();
        struct woutcome o = {.status = "failure",
                             .reason = "EClientBadRequest",
                             .message = why,
                             .start_ms = wt.start_ms,
                             .end_ms = now_ms()};
        commit(ch, &wt, &o, NULL);
    } else {
        char k[128];
        rds_key(k, sizeof(k), ch->c, "q:%s", w_queues[e->q]);
        redisReply *r = redisCommand(ch->rc, "XACK %s " W_GROUP " %s", k, e->id);
        if (r)
            freeReplyObject(r);
        r = redisCommand(ch->rc, "XDEL %s %s", k, e->id);
        if (r)
            freeReplyObject(r);
    }
    json_decref(raw);
}

static void run_entry(struct wchild *ch, const struct entry *e)
{
    struct task t;
    struct wtask wt;
    struct pyres pr;
    char *err = NULL, why[512];
    char set[128], script[256], fname[128];
    char cache_key[512];
    const char *ck = NULL;
    json_t *result = NULL, *data = NULL;
    struct woutcome o;

    if (e->msg == NULL) {
        bad_message(ch, e, "entry has no field t");
        return;
    }
    if (task_decode(&t, e->msg, &err) == -1) {
        bad_message(ch, e, err ? err : "malformed task");
        free(err);
        return;
    }
    wtask_from_task(&wt, &t, w_queues[e->q], e->id);
    wt.start_ms = now_ms();
    tell_master(ch, WMSG_START, &wt);
    if (strcmp(wt.queue, "sync") != 0)
        set_running(ch, &wt);

    memset(&o, 0, sizeof(o));
    memset(&pr, 0, sizeof(pr));
    o.start_ms = wt.start_ms;
    if (t.expires_ms > 0 && wt.start_ms > t.expires_ms) {
        char iso[40];
        snprintf(why, sizeof(why), "task expired at %s before a worker took it",
                 iso8601_ms(t.expires_ms, iso, sizeof(iso)));
        o.status = "expired";
        o.reason = "ETaskExpired";
        o.message = why;
    } else if (strcmp(t.func, "__sys.inspect") == 0) {
        py_inspect(ch, &t, &pr);
    } else if (!func_id_split(t.func, set, sizeof(set), script, sizeof(script), fname,
                              sizeof(fname))) {
        snprintf(why, sizeof(why), "func %s not found: not a func id (<set>__<script>.<func>)",
                 t.func);
        o.status = "failure";
        o.reason = "EFuncNotFound";
        o.message = why;
    } else {
        py_call(ch, &t, script, fname, &pr);
    }
    if (pr.status) {
        o.status = pr.status;
        o.reason = pr.reason;
        o.message = pr.message;
        o.traceback = pr.traceback;
        o.output = pr.output;
        if (pr.data_json)
            data = json_loads(pr.data_json, JSON_DECODE_ANY, NULL);
        o.data = data;
        if (strcmp(pr.status, "success") == 0) {
            json_error_t je;
            result = json_loads(pr.result_json ? pr.result_json : "null", JSON_DECODE_ANY, &je);
            if (result == NULL) {
                snprintf(why, sizeof(why), "result of %s cannot be represented as JSON: %s", t.func,
                         je.text);
                o.status = "failure";
                o.reason = "EFuncResultParsingFailed";
                o.message = why;
            }
            o.result = result;
            if (result && pr.cache_result > 0) {
                char dg[65];
                kwargs_digest(t.kwargs, dg);
                rds_key(cache_key, sizeof(cache_key), ch->c, "cache:result:%s:%s", t.func, dg);
                ck = cache_key;
                wt.cache_result = pr.cache_result;
            }
        }
    }
    o.end_ms = now_ms();
    commit(ch, &wt, &o, ck);
    tell_master(ch, WMSG_DONE, &wt);
    log_debug("child %s: %s %s %s in %lld ms", ch->consumer, wt.id, wt.func, o.status,
              (long long)(o.end_ms - o.start_ms));
    json_decref(result);
    json_decref(data);
    pyres_free(&pr);
    task_free(&t);
}

/* ---- main ---------------------------------------------------------------- */

static void child_signals(void)
{
    sigset_t all;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL); /* the master blocks them for its signalfd */
}

int child_main(const struct tconf *c, int64_t epoch, int fd)
{
    struct wchild ch;
    char *err = NULL;
    struct entry es[W_NQUEUES];

    memset(&ch, 0, sizeof(ch));
    ch.c = c;
    ch.epoch = epoch;
    ch.fd = fd;
    ch.gen = -1;
    snprintf(ch.consumer, sizeof(ch.consumer), "%s:%d", c->node_name, (int)getpid());
    child_signals();

    /* User code must not write into the daemon's stdout (a flood there
     * would fill the journal); print() is captured per task anyway. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull != -1) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        close(devnull);
    }
    if (py_start(&ch, &err) == -1) {
        log_err("child %s: %s", ch.consumer, err ? err : "python failed to start");
        free(err);
        return 1;
    }
    tell_master(&ch, WMSG_READY, NULL);
    log_debug("child %s: ready", ch.consumer);

    while (!g_stop) {
        if (!redis_up(&ch))
            break;
        int n = fetch(&ch, es);
        if (n == -1) {
            child_redis_broken(&ch);
            continue;
        }
        for (int i = 0; i < n; i++) {
            run_entry(&ch, &es[i]);
            free(es[i].msg);
        }
    }
    log_debug("child %s: stopping", ch.consumer);
    if (ch.rc)
        redisFree(ch.rc);
    if (ch.db)
        mysql_close(ch.db);
    return 0;
}
