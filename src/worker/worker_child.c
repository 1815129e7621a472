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
#include <sys/resource.h>
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
            ch->recover = true;
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

static void push_entry(struct wchild *ch, int q, const char *id, redisReply *fields)
{
    if (ch->nbacklog >= W_BACKLOG)
        return; /* cannot happen (at most W_NQUEUES + 1 per fetch); left pending */
    for (int i = 0; i < ch->nbacklog; i++)
        if (ch->backlog[i].q == q && strcmp(ch->backlog[i].id, id) == 0)
            return;
    struct wentry *e = &ch->backlog[ch->nbacklog++];
    e->q = q;
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->msg = field_t(fields);
}

static void fetch_keys(struct wchild *ch, char kg[128], char kq[W_NQUEUES][128])
{
    rds_key(kg, 128, ch->c, "gen");
    for (int i = 0; i < W_NQUEUES; i++)
        rds_key(kq[i], 128, ch->c, "q:%s", w_queues[i]);
}

/* The reply of FETCH_LUA: gen check, then at most one entry to the backlog.
 * Returns the number of entries added, -1 for an error reply. */
static int fetch_reply(struct wchild *ch, redisReply *r, bool want_gen)
{
    if (is_nogroup(r)) { /* the streams were deleted (FLUSHALL): recreate */
        create_groups(ch);
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOSCRIPT", 8) == 0)
            ch->fetch_sha[0] = '\0'; /* Redis restarted: reload next time */
        else
            log_warnx("child %s: reading the queues: %s", ch->consumer, r->str);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        log_warnx("child %s: reading the queues: unexpected reply", ch->consumer);
        return -1;
    }
    if (want_gen) {
        check_gen(ch, r->element[0]);
        ch->gen_check_mono = mono_ms();
    }
    if (r->elements == 4 && r->element[1]->type == REDIS_REPLY_INTEGER &&
        r->element[2]->type == REDIS_REPLY_STRING) {
        int q = (int)r->element[1]->integer - 1;
        if (q >= 0 && q < W_NQUEUES) {
            push_entry(ch, q, r->element[2]->str, r->element[3]);
            return 1;
        }
    }
    return 0;
}

/* An XREADGROUP reply over the three streams: entries to the backlog in
 * priority order. */
static int streams_reply(struct wchild *ch, redisReply *r, char kq[W_NQUEUES][128])
{
    int n = 0;
    if (r->type != REDIS_REPLY_ARRAY)
        return 0;
    for (int qi = 0; qi < W_NQUEUES; qi++) {
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *s = r->element[i];
            if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
                s->element[0]->type != REDIS_REPLY_STRING ||
                strcmp(s->element[0]->str, kq[qi]) != 0 || s->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            redisReply *es = s->element[1];
            for (size_t j = 0; j < es->elements; j++) {
                redisReply *e = es->element[j];
                if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                    e->element[0]->type != REDIS_REPLY_STRING)
                    continue;
                push_entry(ch, qi, e->element[0]->str, e->element[1]);
                n++;
            }
        }
    }
    return n;
}

/* After a reconnect, with nothing running: entries this consumer claimed
 * but never recorded (a reply lost with the connection) run now instead of
 * waiting an hour for XAUTOCLAIM. */
static int recover_own(struct wchild *ch)
{
    char kg[128], kq[W_NQUEUES][128];
    fetch_keys(ch, kg, kq);
    redisReply *r =
        redisCommand(ch->rc, "XREADGROUP GROUP " W_GROUP " %s COUNT 5 STREAMS %s %s %s 0 0 0",
                     ch->consumer, kq[0], kq[1], kq[2]);
    if (r == NULL)
        return -1;
    if (is_nogroup(r))
        create_groups(ch);
    int n = streams_reply(ch, r, kq);
    if (n > 0)
        log_info("child %s: running %d entries claimed before a reconnect", ch->consumer, n);
    freeReplyObject(r);
    return 0;
}

/* Claims the next entries into the backlog; -1 on a Redis error. */
static int fetch(struct wchild *ch)
{
    char kg[128], kq[W_NQUEUES][128];
    const char *argv[6];
    bool want_gen = mono_ms() - ch->gen_check_mono >= 200;

    fetch_keys(ch, kg, kq);
    argv[0] = kg;
    argv[1] = kq[0];
    argv[2] = kq[1];
    argv[3] = kq[2];
    argv[4] = ch->consumer;
    argv[5] = want_gen ? "1" : "0";

    redisReply *r = rds_eval(ch->rc, FETCH_LUA, ch->fetch_sha, 4, argv, 6);
    if (r == NULL) {
        log_warnx("child %s: reading the queues: %s", ch->consumer, ch->rc->errstr);
        return -1;
    }
    int got = fetch_reply(ch, r, want_gen);
    freeReplyObject(r);
    if (got != 0) {
        if (got == -1)
            sleep_ms(200);
        return 0;
    }

    /* Nothing waiting: block until something arrives on any queue. */
    r = redisCommand(ch->rc,
                     "XREADGROUP GROUP " W_GROUP " %s COUNT 1 BLOCK 1000 STREAMS %s %s %s > > >",
                     ch->consumer, kq[0], kq[1], kq[2]);
    if (r == NULL) {
        log_warnx("child %s: reading the queues: %s", ch->consumer, ch->rc->errstr);
        return -1;
    }
    int n = 0;
    if (is_nogroup(r)) {
        create_groups(ch);
    } else if (r->type == REDIS_REPLY_ERROR) {
        log_warnx("child %s: XREADGROUP: %s", ch->consumer, r->str);
        sleep_ms(200);
    } else {
        n = streams_reply(ch, r, kq);
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
    return 0;
}

/* The next fetch rides in the commit's round trip: under load a task costs
 * one round trip. */
struct prefetch {
    struct wchild *ch;
    bool want_gen;
    char kg[128], kq[W_NQUEUES][128];
};

static void prefetch_append(redisContext *rc, void *ud)
{
    struct prefetch *p = ud;
    redisAppendCommand(rc, "EVALSHA %s 4 %s %s %s %s %s %s", p->ch->fetch_sha, p->kg, p->kq[0],
                       p->kq[1], p->kq[2], p->ch->consumer, p->want_gen ? "1" : "0");
}

static void prefetch_reply(redisReply *r, void *ud)
{
    struct prefetch *p = ud;
    fetch_reply(p->ch, r, p->want_gen);
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
        struct prefetch pf;
        struct wrec_extra extra = {prefetch_append, prefetch_reply, &pf};
        /* Prefetch only with nothing else claimed, the script loaded, and
         * not while stopping (a claimed entry would wait for a reclaim). */
        bool prefetch = !g_stop && ch->nbacklog == 0 && ch->fetch_sha[0] && !ch->recover;
        if (prefetch) {
            pf.ch = ch;
            pf.want_gen = mono_ms() - ch->gen_check_mono >= 200;
            fetch_keys(ch, pf.kg, pf.kq);
        }
        if (redis_up(ch) &&
            wrec_commit(ch->rc, ch->c, wt, o, ch->c->node_name, ch->epoch, cache_key,
                        prefetch && !ch->recover ? &extra : NULL, &err) == 0)
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
    redisReply *r = redisCommand(ch->rc, "SET %s %s EX %d", k, s,
                                 wt->reply[0] ? ch->c->sync_task_ttl : ch->c->task_ttl);
    if (r == NULL)
        child_redis_broken(ch); /* the commit reconnects */
    else
        freeReplyObject(r);
    free(s);
}

/* A message that is not a task: answer what we can, then drop it. */
static void bad_message(struct wchild *ch, const struct wentry *e, const char *why)
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

static void run_entry(struct wchild *ch, const struct wentry *e)
{
    struct task t;
    struct wtask wt;
    struct pyres pr;
    char *err = NULL, why[512];
    char set[128], script[256], fname[128];
    char cache_key[512];
    const char *ck = NULL;
    json_t *result = NULL, *data = NULL, *resp = NULL;
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
    } else if (strncmp(t.func, "__sys.", 6) == 0) {
        py_system(ch, &t, &pr);
    } else if (!func_id_split(t.func, set, sizeof(set), script, sizeof(script), fname,
                              sizeof(fname))) {
        snprintf(why, sizeof(why), "func %s not found: not a func id (<set>__<script>.<func>)",
                 t.func);
        o.status = "failure";
        o.reason = "EFuncNotFound";
        o.message = why;
    } else {
        py_call(ch, &t, e->msg, script, fname, &pr);
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
            if (result && pr.resp_json)
                o.resp = resp = json_loads(pr.resp_json, 0, NULL);
            if (result && pr.cache_result > 0) {
                task_result_cache_key(cache_key, sizeof(cache_key), ch->c, t.func, t.kwargs);
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
    json_decref(resp);
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
    /* The master polls RSS against memory_limit_mb; between two polls one
     * huge allocation could still take the node (and the kernel's OOM
     * killer might pick redis or mariadbd). The address-space cap turns
     * that into a MemoryError in the function instead. */
#ifndef __SANITIZE_ADDRESS__ /* ASan's shadow memory needs terabytes of address space */
    struct rlimit as;
    as.rlim_cur = as.rlim_max = ((rlim_t)c->child_memory_mb * 2 + 1024) << 20;
    if (setrlimit(RLIMIT_AS, &as) == -1)
        log_warn("child %s: setrlimit(RLIMIT_AS)", ch.consumer);
#endif
    if (py_start(&ch, &err) == -1) {
        log_err("child %s: %s", ch.consumer, err ? err : "python failed to start");
        free(err);
        return 1;
    }
    tell_master(&ch, WMSG_READY, NULL);
    log_debug("child %s: ready", ch.consumer);

    /* Entries already claimed run even when stopping: nobody else would
     * until this consumer is found dead. */
    while (!g_stop || ch.nbacklog > 0) {
        if (ch.nbacklog > 0) {
            struct wentry e = ch.backlog[0];
            memmove(&ch.backlog[0], &ch.backlog[1], sizeof(e) * (size_t)(ch.nbacklog - 1));
            ch.nbacklog--;
            run_entry(&ch, &e);
            free(e.msg);
            continue;
        }
        if (!redis_up(&ch))
            break;
        if (ch.recover) {
            if (recover_own(&ch) == -1) {
                child_redis_broken(&ch);
                continue;
            }
            ch.recover = false;
            continue;
        }
        if (fetch(&ch) == -1)
            child_redis_broken(&ch);
    }
    log_debug("child %s: stopping", ch.consumer);
    if (ch.rc)
        redisFree(ch.rc);
    if (ch.db)
        mysql_close(ch.db);
    return 0;
}
