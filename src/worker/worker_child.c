/* A worker child: one interpreter, one task at a time. Reads the queues
 * (sync first), tells the master what it runs, runs it, records the outcome
 * in one pipeline, acks. The master covers for it if it dies mid-task. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
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

/* Claims at most one entry (W_FETCH_FN_LUA): looks at every stream with
 * one XREAD after the child's ids, tries XREADGROUP on the ones with
 * something after them in the order given (the scheduler's turn, see
 * struct wrr), and reads the generation in the same round trip when asked.
 * One entry at a time: a claimed entry never waits behind another task (it
 * would age towards XAUTOCLAIM and run twice).
 * KEYS: gen, the streams; ARGV: consumer, "1" to read gen, look flag, the
 * streams' states. */
static const char FETCH_LUA[] =
    W_FETCH_FN_LUA "return fetch(KEYS[1], 2, #KEYS - 1, ARGV[1], ARGV[2], 3)";

static void reset_ids(struct wchild *ch);

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !g_stop)
        ;
}

/* Set in every fork() of this process (pthread_atfork, see
 * isolate_user_code): true there, never in the child itself. Checked
 * instead of getpid(), a syscall that was 3 of the ~8 per task. */
static volatile bool g_in_fork;

static bool not_this_child(const struct wchild *ch)
{
    (void)ch;
    return g_in_fork;
}

/* What the master reads on its tick: no syscall (struct wslot). */
static void tell_master(struct wchild *ch, enum wmsg_type type, const struct wtask *t)
{
    if (not_this_child(ch))
        _exit(0); /* a fork of user code came back here: it is not this child */
    wslot_publish(ch->slot, type, t);
}

/* ---- backends ------------------------------------------------------------ */

/* Leaves the idle children's turn (struct wlisten) to the next, with ids
 * it may start from (NULL: none). */
static void listen_leave(struct wchild *ch, const char ids[W_NQUEUES][48])
{
    if (ch->listening)
        wlisten_release(ch->listen, ch->pid, ids);
    ch->listening = false;
}

void child_redis_broken(struct wchild *ch)
{
    listen_leave(ch, NULL); /* ids of a Redis we may not see again */
    reset_ids(ch);
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
        if (!ch->serve[i])
            continue;
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
    /* also every 5 s without a gen change: a change whose INCR failed after
     * its SQL commit (an unpublished script, a changed env variable) still
     * applies by then; invalidating only makes scripts re-check versions */
    static int64_t last_inval_mono;
    if ((ch->gen != -1 && gen != ch->gen) || mono_ms() - last_inval_mono >= 5000) {
        py_invalidate();
        last_inval_mono = mono_ms();
    }
    ch->gen = gen;
}

static bool is_nogroup(redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOGROUP") != NULL;
}

static void push_entry(struct wchild *ch, int q, const char *id, redisReply *fields)
{
    if (ch->nbacklog >= W_BACKLOG)
        return; /* cannot happen (one entry per fetch); left pending */
    for (int i = 0; i < ch->nbacklog; i++)
        if (ch->backlog[i].q == q && strcmp(ch->backlog[i].id, id) == 0)
            return;
    struct wentry *e = &ch->backlog[ch->nbacklog++];
    e->q = q;
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->msg = field_t(fields);
}

static void queue_key(const struct wchild *ch, int q, char k[128])
{
    rds_key(k, 128, ch->c, "q:%s", w_queues[q]);
}

/* How long a cold stream may go without a look while the child takes
 * entries from hot ones: the look (one XREAD over every stream) is then
 * due. Sync never waits. An entry arriving on a cold stream meanwhile
 * waits at most this long under load; an idle child is woken by its XREAD
 * BLOCK at once. */
static int64_t look_every_ms(int q)
{
    static const int64_t ms[3] = {0, 10, 50}; /* sync, cron, async; 0..9: 50 */
    return q >= 0 && q < 3 ? ms[q] : 50;
}

/* Forget what is known of the streams: ids of a Redis we may not see again
 * (a reconnect, perhaps to a promoted replica), or streams deleted and
 * recreated (NOGROUP). "0-0" is always safe: the next look reads the first
 * entries and moves on from there. */
static void reset_ids(struct wchild *ch)
{
    for (int q = 0; q < W_NQUEUES; q++) {
        snprintf(ch->last_ids[q], sizeof(ch->last_ids[q]), "0-0");
        ch->hot[q] = false;
    }
    ch->wait_ready = ch->woken = false;
    ch->look_mono = 0;
    ch->ids_mono = mono_ms();
}

/* The arguments of FETCH_LUA for this turn: KEYS = gen + every served
 * stream in the scheduler's order; ARGV = consumer, want gen, mode, then
 * each stream's state and id (see W_FETCH_FN_LUA). */
struct fetch_args {
    int n;                     /* streams */
    int order[W_NQUEUES];      /* w_queues index of KEYS[2 + i] */
    char mode[2];              /* "1", "0" or "w" */
    char state[W_NQUEUES][52]; /* 'h' or 'c', then the id */
    const char *argv[1 + W_NQUEUES + 3 + W_NQUEUES];
    int argc;
    bool want_gen;
    bool single[W_NQUEUES]; /* mode w: the wake saw one entry only */
    /* Mode '1' only because sync is cold (its look is due at every fetch):
     * sync's index, else -1. The commit then tries sync without the
     * script, before the hot stream if one is hot (see hot_first). */
    int peek;
};

static void fetch_args(struct wchild *ch, struct fetch_args *a)
{
    int64_t now = mono_ms();
    wrr_order(&ch->wrr, a->order);
    a->n = ch->wrr.n;
    /* Right after an XREAD BLOCK woke: the streams it named, nothing else.
     * Else the look is due when some cold stream has waited its time. */
    a->mode[0] = ch->woken ? 'w' : '0';
    a->mode[1] = '\0';
    a->peek = -1;
    bool due_sync = false, due_other = false;
    for (int i = 0; i < a->n && a->mode[0] != 'w'; i++) {
        int q = a->order[i];
        if (!ch->hot[q] && now - ch->look_mono >= look_every_ms(q)) {
            a->mode[0] = '1';
            if (q == W_QSYNC)
                due_sync = true;
            else
                due_other = true;
        }
    }
    if (due_sync && !due_other)
        a->peek = W_QSYNC;
    a->want_gen = now - ch->gen_check_mono >= 200;
    a->argc = 0;
    a->argv[a->argc++] = ch->kgen;
    for (int i = 0; i < a->n; i++)
        a->argv[a->argc++] = ch->kq[a->order[i]];
    a->argv[a->argc++] = ch->consumer;
    a->argv[a->argc++] = a->want_gen ? "1" : "0";
    a->argv[a->argc++] = a->mode;
    for (int i = 0; i < a->n; i++) {
        int q = a->order[i];
        bool woke = ch->woken && ch->wake_n[q] > 0;
        a->single[i] = woke && ch->wake_n[q] == 1;
        /* 'h'/'c' and the id; by hand: 13 snprintf()s a task showed in
         * the profile. The ids are shorter than state's 52 bytes. */
        const char *id = woke ? ch->wake_ids[q] : ch->last_ids[q];
        size_t len = strnlen(id, sizeof(a->state[i]) - 2);
        a->state[i][0] = (ch->woken ? woke : ch->hot[q]) ? 'h' : 'c';
        memcpy(a->state[i] + 1, id, len);
        a->state[i][1 + len] = '\0';
        a->argv[a->argc++] = a->state[i];
    }
    ch->woken = false; /* used once */
}

/* An entry of stream q claimed (by the fetch script or the commit's
 * XREADGROUP; id shorter than last_ids): everything up to it has been
 * delivered, it joins the backlog, and the round-robin turns. */
static void took(struct wchild *ch, int q, const redisReply *id, redisReply *fields)
{
    memcpy(ch->last_ids[q], id->str, id->len + 1);
    push_entry(ch, q, id->str, fields);
    wrr_took(&ch->wrr);
}

/* The entry of one stream in an XREADGROUP COUNT 1 reply, or NULL when
 * that stream is not in it (nothing to claim there) or its id is not
 * shorter than idmax. */
static redisReply *claimed_in(redisReply *xr, const char *key, size_t idmax)
{
    for (size_t i = 0; xr->type == REDIS_REPLY_ARRAY && i < xr->elements; i++) {
        redisReply *s = xr->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
            s->element[0]->type != REDIS_REPLY_STRING || strcmp(s->element[0]->str, key) != 0)
            continue;
        redisReply *es = s->element[1];
        if (es->type != REDIS_REPLY_ARRAY || es->elements < 1)
            return NULL;
        redisReply *e = es->element[0];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= idmax)
            return NULL;
        return e;
    }
    return NULL;
}

/* The reply of FETCH_LUA: gen check, what was learnt of the streams, then
 * at most one entry to the backlog. Returns the number of entries added
 * (ch->wait_ready tells whether every stream was found empty), -1 for an
 * error reply. */
static int fetch_reply(struct wchild *ch, redisReply *r, const struct fetch_args *a)
{
    ch->wait_ready = false;
    if (is_nogroup(r)) { /* the streams were deleted (FLUSHALL): recreate */
        create_groups(ch);
        reset_ids(ch);
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (rds_readonly(ch->rc, r))
            return -1; /* a replica now: the context is marked broken */
        if (strncmp(r->str, "NOSCRIPT", 8) == 0)
            ch->fetch_sha[0] = '\0'; /* Redis restarted: reload next time */
        else
            log_warnx("child %s: reading the queues: %s", ch->consumer, r->str);
        return -1;
    }
    redisReply **e = r->element;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 8 || e[1]->type != REDIS_REPLY_INTEGER ||
        e[4]->type != REDIS_REPLY_INTEGER || e[5]->type != REDIS_REPLY_STRING ||
        e[5]->len != (size_t)a->n || e[6]->type != REDIS_REPLY_ARRAY ||
        e[6]->elements != (size_t)a->n || e[7]->type != REDIS_REPLY_INTEGER) {
        log_warnx("child %s: reading the queues: unexpected reply", ch->consumer);
        return -1;
    }
    int64_t now = mono_ms();
    if (a->want_gen) {
        check_gen(ch, e[0]);
        ch->gen_check_mono = now;
    }
    if (e[4]->integer == 1)
        ch->look_mono = now;
    for (int i = 0; i < a->n; i++) {
        int q = a->order[i];
        redisReply *id = e[6]->element[i];
        if (e[5]->str[i] == 'e')
            ch->hot[q] = false;
        if (id->type == REDIS_REPLY_STRING && id->len < sizeof(ch->last_ids[q]))
            memcpy(ch->last_ids[q], id->str, id->len + 1);
    }
    long long pos = e[1]->integer;
    if (pos >= 1 && pos <= a->n && e[2]->type == REDIS_REPLY_STRING &&
        e[2]->len < sizeof(ch->last_ids[0])) {
        int q = a->order[pos - 1];
        /* hot while more may follow: the next fetch tries it first */
        ch->hot[q] = e[7]->integer == 1 && !a->single[pos - 1];
        took(ch, q, e[2], e[3]);
        return 1;
    }
    ch->wait_ready = pos == 0;
    return 0;
}

/* After a reconnect, with nothing running: an entry this consumer claimed
 * but never recorded (a reply lost with the connection) runs now instead
 * of waiting an hour for XAUTOCLAIM. One at a time, like fetch(). Returns
 * the number found (0: none left), -1 on a Redis error. */
static int recover_own(struct wchild *ch)
{
    for (int q = 0; q < W_NQUEUES; q++) {
        char k[128];
        if (!ch->serve[q])
            continue;
        queue_key(ch, q, k);
        redisReply *r = redisCommand(ch->rc, "XREADGROUP GROUP " W_GROUP " %s COUNT 1 STREAMS %s 0",
                                     ch->consumer, k);
        if (r == NULL)
            return -1;
        int n = 0;
        redisReply *e = NULL;
        if (is_nogroup(r))
            create_groups(ch);
        else if ((e = claimed_in(r, k, sizeof(ch->backlog[0].id))) != NULL) {
            push_entry(ch, q, e->element[0]->str, e->element[1]);
            n = 1;
        }
        freeReplyObject(r);
        if (n > 0) {
            log_info("child %s: running an entry of q:%s claimed before a reconnect", ch->consumer,
                     w_queues[q]);
            return 1;
        }
    }
    return 0;
}

/* Writes the counters not yet in Pstats:worker, in one round trip; kept
 * for the next try if Redis refuses. -1 on a broken connection. */
static int flush_stats(struct wchild *ch)
{
    int n = wstats_argv(&ch->stats);
    if (n == 0 || ch->rc == NULL)
        return 0;
    char k[128];
    rds_key(k, sizeof(k), ch->c, "stats:worker");
    redisAppendCommand(ch->rc, "MULTI");
    for (int i = 0; i + 1 < n; i += 2)
        redisAppendCommand(ch->rc, "HINCRBY %s %s %s", k, ch->stats.argv[i], ch->stats.argv[i + 1]);
    redisAppendCommand(ch->rc, "EXEC");
    bool ok = true;
    for (int i = 0; i < n / 2 + 2; i++) {
        redisReply *r = NULL;
        if (redisGetReply(ch->rc, (void **)&r) != REDIS_OK) {
            log_warnx("child %s: writing the counters: %s", ch->consumer, ch->rc->errstr);
            return -1;
        }
        /* all or nothing: only EXEC's reply says whether they were added */
        if (i == n / 2 + 1 && (r == NULL || r->type != REDIS_REPLY_ARRAY))
            ok = false;
        if (r)
            freeReplyObject(r);
    }
    if (ok)
        wstats_clear(&ch->stats, mono_ms());
    return 0;
}

/* An XREAD BLOCK answered: the streams with something after their ids,
 * each with up to two entries. That answer was a look at every stream, so
 * the next fetch tries those streams only (mode 'w'). */
static void woke_for(struct wchild *ch, redisReply *r)
{
    memset(ch->wake_n, 0, sizeof(ch->wake_n));
    ch->woken = false;
    for (size_t j = 0; r->type == REDIS_REPLY_ARRAY && j < r->elements; j++) {
        redisReply *s = r->element[j];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
            s->element[0]->type != REDIS_REPLY_STRING || s->element[1]->type != REDIS_REPLY_ARRAY ||
            s->element[1]->elements == 0)
            continue;
        redisReply *es = s->element[1];
        redisReply *newest = es->element[es->elements - 1];
        if (newest->type != REDIS_REPLY_ARRAY || newest->elements < 1 ||
            newest->element[0]->type != REDIS_REPLY_STRING ||
            newest->element[0]->len >= sizeof(ch->wake_ids[0]))
            continue;
        for (int i = 0; i < ch->wrr.n; i++) {
            int q = ch->wrr.q[i];
            if (strcmp(ch->kq[q], s->element[0]->str) != 0)
                continue;
            ch->wake_n[q] = (int)es->elements;
            memcpy(ch->wake_ids[q], newest->element[0]->str, newest->element[0]->len + 1);
            ch->woken = true;
        }
    }
    if (ch->woken)
        ch->look_mono = mono_ms();
}

/* The listener has claimed an entry: the turn goes to the next idle
 * child before the entry runs. It may start where this child's XREAD
 * started, or, for the stream the entry came from, right after the entry
 * when the wake saw that one only there (so it does not wake for it). */
static void listen_handoff(struct wchild *ch, bool after_wake)
{
    char ids[W_NQUEUES][48];
    memcpy(ids, ch->listen_from, sizeof(ids));
    const struct wentry *e = &ch->backlog[ch->nbacklog - 1];
    if (after_wake && ch->wake_n[e->q] == 1 && strcmp(e->id, ch->wake_ids[e->q]) == 0)
        memcpy(ids[e->q], e->id, strnlen(e->id, sizeof(ids[0]) - 1) + 1);
    listen_leave(ch, ids);
}

/* What a plain XREADGROUP on stream q answered, and the generation's GET
 * (NULL when not asked), before its entry is looked for: the generation
 * checked, NOGROUP handled (groups made again, ids reset: 0), a Redis error
 * logged with q no longer hot (-1). 1: xr is the streams' answer. */
static int plain_reply(struct wchild *ch, int q, redisReply *xr, redisReply *gen)
{
    if (gen) {
        check_gen(ch, gen);
        ch->gen_check_mono = mono_ms();
    }
    if (is_nogroup(xr)) { /* the streams were deleted (FLUSHALL): recreate */
        create_groups(ch);
        reset_ids(ch);
        return 0;
    }
    if (xr->type == REDIS_REPLY_ERROR) {
        log_warnx("child %s: reading q:%s: %s", ch->consumer, w_queues[q], xr->str);
        ch->hot[q] = false;
        return -1;
    }
    return 1;
}

/* The one stream an XREAD BLOCK woke for, when it woke for one only (a
 * call at a time: nearly always); -1 otherwise. */
static int woken_one(const struct wchild *ch)
{
    int q = -1;
    for (int i = 0; i < ch->wrr.n; i++) {
        int s = ch->wrr.q[i];
        if (ch->wake_n[s] > 0) {
            if (q >= 0)
                return -1;
            q = s;
        }
    }
    return q;
}

/* The fetch right after a wake for stream q alone, as the script's mode
 * 'w' would make it, without the script: a plain XREADGROUP COUNT 1 on q
 * (and GET of the generation when due) in one round trip. Found empty (a
 * sibling took it), q takes the id the XREAD saw and the child waits
 * again. Returns 1 claimed, 0 not, -1 on a Redis error. */
static int fetch_woken(struct wchild *ch, int q)
{
    bool want_gen = mono_ms() - ch->gen_check_mono >= 200;
    ch->woken = false; /* used once */
    ch->wait_ready = false;
    redisAppendCommand(ch->rc, "XREADGROUP GROUP " W_GROUP " %s COUNT 1 STREAMS %s >", ch->consumer,
                       ch->kq[q]);
    if (want_gen)
        redisAppendCommand(ch->rc, "GET %s", ch->kgen);
    redisReply *xr = NULL, *g = NULL;
    if (redisGetReply(ch->rc, (void **)&xr) != REDIS_OK ||
        (want_gen && redisGetReply(ch->rc, (void **)&g) != REDIS_OK)) {
        log_warnx("child %s: reading q:%s: %s", ch->consumer, w_queues[q], ch->rc->errstr);
        if (xr)
            freeReplyObject(xr);
        return -1;
    }
    int rv = plain_reply(ch, q, xr, g);
    if (g)
        freeReplyObject(g);
    if (rv == -1) {
        rds_readonly(ch->rc, xr); /* a replica now: the context is marked broken */
    } else if (rv == 1) {
        rv = 0;
        redisReply *e = claimed_in(xr, ch->kq[q], sizeof(ch->last_ids[0]));
        if (e) {
            ch->hot[q] = ch->wake_n[q] > 1; /* the wake saw more than this one */
            took(ch, q, e->element[0], e->element[1]);
            rv = 1;
        } else {
            memcpy(ch->last_ids[q], ch->wake_ids[q], sizeof(ch->last_ids[q]));
            ch->hot[q] = false;
            ch->wait_ready = true;
        }
    }
    freeReplyObject(xr);
    return rv;
}

/* Claims the next entry into the backlog, or waits up to a second for one
 * to arrive; -1 on a Redis error. */
static int fetch(struct wchild *ch)
{
    struct fetch_args a;
    if (ch->wrr.n == 0) { /* nothing to serve (cannot happen: config refuses it) */
        sleep_ms(1000);
        return 0;
    }
    /* Belt and braces: once a minute the ids start over from "0-0", should
     * a stream ever have been recreated under ids lower than ours. */
    if (mono_ms() - ch->ids_mono >= 60000)
        reset_ids(ch);
    /* Right after a fetch (or the commit's prefetch) that found every
     * stream empty, or an XREAD that timed out, the ids are as good as a
     * new look: anything added since is after them, and the XREAD below
     * wakes for it at once. */
    int one = !ch->wait_ready && ch->woken ? woken_one(ch) : -1;
    if (one >= 0) {
        int got = fetch_woken(ch, one);
        if (got > 0 && ch->listening)
            listen_handoff(ch, true);
        if (got == -1 && !ch->rc->err)
            sleep_ms(200);
        return got == -1 && ch->rc->err ? -1 : 0;
    }
    if (!ch->wait_ready) {
        fetch_args(ch, &a);
        redisReply *r = rds_eval(ch->rc, FETCH_LUA, ch->fetch_sha, 1 + a.n, a.argv, a.argc);
        if (r == NULL) {
            log_warnx("child %s: reading the queues: %s", ch->consumer, ch->rc->errstr);
            return -1;
        }
        int got = fetch_reply(ch, r, &a);
        freeReplyObject(r);
        if (got > 0 && ch->listening)
            listen_handoff(ch, a.mode[0] == 'w');
        if (got != 0 || !ch->wait_ready) {
            if (got == -1 && ch->rc->err)
                return -1; /* e.g. READONLY: reconnect */
            if (got == -1)
                sleep_ms(200);
            return 0;
        }
    }
    ch->wait_ready = false;

    /* Nothing waiting: the counters go out before we sleep if they are a
     * second old (not before every wait: at one call at a time that was a
     * MULTI, three HINCRBY and an EXEC per call; an idle child's XREAD
     * times out within a second and brings it back here). Then wait for a
     * new entry on any served stream without claiming it (plain XREAD after
     * the ids), then claim one by the fetch above. Only the idle child
     * whose turn it is waits so; the others wait for the turn. */
    if (mono_ms() - ch->stats.flushed_mono >= 1000 && flush_stats(ch) == -1)
        return -1;
    /* One idle child at a time waits in Redis (worker_listen.c): without
     * the turn, wait for it, still with nothing claimed. */
    if (ch->listen && !ch->listening) {
        uint32_t turn;
        if (!wlisten_try(ch->listen, ch->pid, &turn)) {
            ch->wait_ready = true;
            wlisten_wait(ch->listen, turn, 1000);
            return 0;
        }
        ch->listening = true;
        wlisten_take_ids(ch->listen, ch->last_ids, ch->serve);
    }
    memcpy(ch->listen_from, ch->last_ids, sizeof(ch->listen_from));
    const char *argv[6 + 2 * W_NQUEUES]; /* XREAD COUNT 2 BLOCK 1000 STREAMS keys ids */
    int argc = 0;
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = "2"; /* two: whether more follow the entry it woke for */
    argv[argc++] = "BLOCK";
    argv[argc++] = "1000";
    argv[argc++] = "STREAMS";
    for (int i = 0; i < ch->wrr.n; i++)
        argv[argc++] = ch->kq[ch->wrr.q[i]];
    for (int i = 0; i < ch->wrr.n; i++)
        argv[argc++] = ch->last_ids[ch->wrr.q[i]];
    redisReply *r = redisCommandArgv(ch->rc, argc, argv, NULL);
    if (r == NULL) {
        log_warnx("child %s: waiting on the queues: %s", ch->consumer, ch->rc->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        log_warnx("child %s: XREAD: %s", ch->consumer, r->str);
        sleep_ms(200);
    } else if (r->type == REDIS_REPLY_NIL) {
        ch->wait_ready = true; /* a second without a new entry: wait again */
    } else {
        woke_for(ch, r);
    }
    freeReplyObject(r);
    return 0;
}

/* The next fetch rides in the commit script: under load a task costs one
 * script and one round trip. */
struct prefetch {
    struct wchild *ch;
    struct fetch_args a;
    int hot; /* the stream of hot_reply, -1: the script fetches */
};

static void prefetch_reply(redisReply *r, void *ud)
{
    struct prefetch *p = ud;
    fetch_reply(p->ch, r, &p->a);
}

/* The stream the fetch would try first without the fetch script: in mode
 * '0' (no look due) the first hot stream of the turn; -1 for none (the
 * fetch runs in the commit's script then). Also when the look is due for
 * cold sync alone (a->peek): under async or cron load every fetch was the
 * commit script looking at all 13 streams for the one stream that never
 * waits. The commit then tries sync first and the hot stream only if sync
 * had nothing (PICK_LUA, two commands): one entry claimed at a time, and
 * a sync entry taken at once, as the look would have. */
static int hot_first(const struct wchild *ch, const struct fetch_args *a)
{
    if (a->mode[0] == 'w' || (a->mode[0] == '1' && a->peek < 0))
        return -1;
    for (int i = 0; i < a->n; i++)
        if (ch->hot[a->order[i]])
            return a->order[i];
    /* No stream hot and the look due for sync alone (a call at a time):
     * sync itself, by a plain XREADGROUP. The other streams were looked at
     * within their intervals; found empty, the child goes to its XREAD
     * BLOCK, which is a look at all of them. */
    return a->mode[0] == '1' ? a->peek : -1;
}

/* The stream the commit tries before p->hot (PICK_LUA): cold sync when the
 * look was due for it alone and another stream is hot; -1 for none (also
 * when hot is sync itself, tried alone). */
static int peek_of(const struct prefetch *p)
{
    return p->hot >= 0 && p->a.mode[0] == '1' && p->hot != p->a.peek ? p->a.peek : -1;
}

/* What the commit's XREADGROUP on the hot stream (sync first, when
 * peeked) found (wrec_extra hot_reply): as fetch_reply() would take the
 * script's answer for a try of those streams. The hot stream found empty
 * is no longer hot and nothing else was looked at: the next fetch runs the
 * script (it looks). Sync found empty stays cold; an entry claimed there
 * makes it hot (more may follow). */
static void hot_reply(redisReply *xr, redisReply *gen, void *ud)
{
    struct prefetch *p = ud;
    struct wchild *ch = p->ch;
    int q = p->hot;
    ch->wait_ready = false;
    if (plain_reply(ch, q, xr, gen) != 1)
        return;
    int peek = peek_of(p);
    if (peek >= 0) {
        redisReply *e = claimed_in(xr, ch->kq[peek], sizeof(ch->last_ids[0]));
        if (e) { /* the hot stream was not tried: it stays as it was */
            ch->hot[peek] = true;
            took(ch, peek, e->element[0], e->element[1]);
            return;
        }
    }
    redisReply *e = claimed_in(xr, ch->kq[q], sizeof(ch->last_ids[0]));
    if (e == NULL) {
        ch->hot[q] = false; /* nil: nothing left to claim there */
        /* cold sync tried alone (the look was due for it only): the ids
         * are good for the XREAD BLOCK (every entry up to them delivered;
         * anything after wakes it) */
        ch->wait_ready = p->a.mode[0] == '1' && peek < 0;
        return;
    }
    took(ch, q, e->element[0], e->element[1]); /* the stream stays hot: more may follow */
}

/* ---- running ------------------------------------------------------------- */

/* Records until it works: the entry stays pending meanwhile. Once a try
 * has failed the master is told the function is done, so a long outage
 * (Redis at maxmemory) is not mistaken for a timeout: the outcome waits
 * here, and is recorded when Redis takes writes again. */
static void commit(struct wchild *ch, const struct wtask *wt, const struct woutcome *o,
                   const char *cache_key)
{
    int fails = 0;
    wstats_add(&ch->stats, o->status, wrec_cost_ms(o));
    for (;;) {
        char *err = NULL;
        struct prefetch pf;
        /* Prefetch only with nothing else claimed, and not while stopping
         * (a claimed entry would wait for a reclaim). */
        bool prefetch = !g_stop && ch->nbacklog == 0 && !ch->recover && ch->wrr.n > 0;
        pf.hot = -1;
        if (prefetch) {
            pf.ch = ch;
            fetch_args(ch, &pf.a);
            pf.hot = hot_first(ch, &pf.a);
        }
        int peek = peek_of(&pf);
        /* the counters ride along about once a second (and when idle: fetch) */
        bool flush = g_stop || mono_ms() - ch->stats.flushed_mono >= 1000;
        struct wrec_extra extra = {prefetch ? pf.a.argv : NULL,
                                   prefetch ? 1 + pf.a.n : 0,
                                   prefetch ? pf.a.argv[1 + pf.a.n] : NULL,
                                   prefetch ? pf.a.argv[2 + pf.a.n] : NULL,
                                   prefetch ? pf.a.argv + 3 + pf.a.n : NULL,
                                   prefetch ? 1 + pf.a.n : 0,
                                   prefetch_reply,
                                   &pf,
                                   ch->stats.argv,
                                   flush ? wstats_argv(&ch->stats) : 0,
                                   pf.hot >= 0 ? ch->kq[pf.hot] : NULL,
                                   hot_reply,
                                   peek >= 0 ? ch->kq[peek] : NULL};
        int rv = -1;
        if (redis_up(ch))
            rv = wrec_commit(ch->rc, ch->c, wt, o, ch->c->node_name, ch->epoch, cache_key, &extra,
                             &err);
        if (rv >= 0) {
            if (flush)
                wstats_clear(&ch->stats, mono_ms());
            if (rv == 1)
                child_redis_broken(ch);
            if (fails > 0)
                log_info("child %s: task %s recorded after %d failed tries", ch->consumer, wt->id,
                         fails);
            free(err);
            return;
        }
        if (err) {
            if (fails == 0 || fails % 30 == 0)
                log_warnx("child %s: %s", ch->consumer, err);
            free(err);
        }
        if (ch->rc && ch->rc->err)
            child_redis_broken(ch);
        if (fails == 0)
            tell_master(ch, WMSG_DONE, wt);
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
    /* Sent now, its answer never asked for (CLIENT REPLY SKIP): the status
     * is best effort (a refused SET changes nothing for the task), and
     * waiting for Redis's OK was a round trip, a read and a wakeup, per
     * async task. The commit's answer is then the next on the connection. */
    int done = 0;
    if (redisAppendCommand(ch->rc, "CLIENT REPLY SKIP") != REDIS_OK ||
        redisAppendCommand(ch->rc, "SET %s %s EX %d", k, s,
                           wt->reply[0] ? ch->c->sync_task_ttl : ch->c->task_ttl) != REDIS_OK)
        done = -1;
    while (done == 0)
        if (redisBufferWrite(ch->rc, &done) == REDIS_ERR)
            done = -1;
    if (done == -1)
        child_redis_broken(ch); /* the commit reconnects */
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
        wt.start_mono = mono_ms();
        struct woutcome o = {.status = "failure",
                             .reason = "EClientBadRequest",
                             .message = why,
                             .start_ms = wt.start_ms,
                             .end_ms = now_ms(),
                             .start_mono = wt.start_mono,
                             .end_mono = mono_ms()};
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

/* ---- __sys.inspect in a throwaway process ----------------------------------- */

/* From libpython; this file stays free of Python.h (worker_py.c is the
 * interpreter's file). */
extern void PyOS_BeforeFork(void);
extern void PyOS_AfterFork_Parent(void);
extern void PyOS_AfterFork_Child(void);

static void res_fail(struct pyres *r, const char *status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void res_fail(struct pyres *r, const char *status, const char *reason, const char *fmt, ...)
{
    va_list ap;
    pyres_free(r);
    r->status = strdup(status);
    r->reason = strdup(reason);
    va_start(ap, fmt);
    if (vasprintf(&r->message, fmt, ap) == -1)
        r->message = NULL;
    va_end(ap);
}

static char *jdup(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? strdup(v) : NULL;
}

/* The inspect process: inspect, write the answer as JSON, exit. It never
 * returns into the child's loop and shares no backend connection with it. */
static void inspect_proc(struct wchild *ch, const struct task *t, int wfd)
{
    struct pyres pr;
    char *err = NULL;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (ch->rc) /* a redis context owns just its socket: closing it sends nothing */
        redisFree(ch->rc);
    ch->rc = rds_connect(ch->c, 5000, &err); /* for DFF calls in top-level code */
    free(err);
    if (ch->db) { /* mysql_close() would log the parent's session out */
        close(mysql_get_socket(ch->db));
        ch->db = NULL;
    }
    py_system(ch, t, &pr);
    json_t *j = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:i}", "status", pr.status,
                          "result_json", pr.result_json, "reason", pr.reason, "message", pr.message,
                          "traceback", pr.traceback, "output", pr.output, "data_json", pr.data_json,
                          "cache_result", pr.cache_result);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    for (size_t off = 0, len = s ? strlen(s) : 0; off < len;) {
        ssize_t n = write(wfd, s + off, len - off);
        if (n <= 0 && errno != EINTR)
            _exit(1);
        if (n > 0)
            off += (size_t)n;
    }
    _exit(s ? 0 : 1);
}

/* __sys.inspect runs the script's top-level code: in a fork, so whatever
 * that code does (patching modules, starting threads, leaking memory)
 * dies with the fork instead of staying in the interpreter that serves
 * the next tasks. */
static void inspect_isolated(struct wchild *ch, const struct task *t, struct pyres *r)
{
    int fds[2];
    memset(r, 0, sizeof(*r));
    if (pipe2(fds, O_CLOEXEC) == -1) {
        res_fail(r, "failure", "EFuncFailed", "__sys.inspect: pipe: %s", strerror(errno));
        return;
    }
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        close(fds[0]);
        inspect_proc(ch, t, fds[1]);
    }
    PyOS_AfterFork_Parent();
    close(fds[1]);
    if (pid == -1) {
        close(fds[0]);
        res_fail(r, "failure", "EFuncFailed", "__sys.inspect: fork: %s", strerror(errno));
        return;
    }
    /* Our own deadline, a little before the master's, so a hanging script
     * costs the inspect process and not this warm interpreter. */
    int64_t deadline = mono_ms() + (int64_t)t->timeout * 1000 - 300;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool timed_out = false;
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
        if (pr == -1 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        if (len + 65536 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 131072;
            char *nb = realloc(buf, ncap);
            if (nb == NULL)
                break;
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fds[0], buf + len, cap - len - 1);
        if (n == 0)
            break;
        if (n > 0)
            len += (size_t)n;
        else if (errno != EINTR && errno != EAGAIN)
            break;
    }
    close(fds[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
        ;
    json_t *j = buf && !timed_out ? json_loadb(buf, len, 0, NULL) : NULL;
    free(buf);
    if (timed_out) {
        res_fail(r, "timeout", "EFuncTimeout",
                 "inspecting the script did not finish within %d s; its top-level code was "
                 "stopped",
                 t->timeout);
    } else if (!json_is_object(j)) {
        char ws[128];
        wait_status_text(status, ws, sizeof(ws));
        res_fail(r, "failure", "EFuncFailed",
                 "inspecting the script failed: the inspect process %s without an answer "
                 "(os._exit() or a crash in its top-level code?)",
                 ws);
    } else {
        r->status = jdup(j, "status");
        r->result_json = jdup(j, "result_json");
        r->reason = jdup(j, "reason");
        r->message = jdup(j, "message");
        r->traceback = jdup(j, "traceback");
        r->output = jdup(j, "output");
        r->data_json = jdup(j, "data_json");
        r->cache_result = (int)json_integer_value(json_object_get(j, "cache_result"));
        if (r->status == NULL)
            r->status = strdup("failure");
    }
    json_decref(j);
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
    json_t *result = NULL, *data = NULL, *resp = NULL, *rec = NULL;
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
    wt.start_mono = mono_ms();
    tell_master(ch, WMSG_START, &wt);
    if (strcmp(wt.queue, "sync") != 0)
        set_running(ch, &wt);

    memset(&o, 0, sizeof(o));
    memset(&pr, 0, sizeof(pr));
    o.start_ms = wt.start_ms;
    o.start_mono = wt.start_mono;
    if (t.expires_ms > 0 && wt.start_ms > t.expires_ms) {
        char iso[40];
        snprintf(why, sizeof(why), "task expired at %s before a worker took it",
                 iso8601_ms(t.expires_ms, iso, sizeof(iso)));
        o.status = "expired";
        o.reason = "ETaskExpired";
        o.message = why;
    } else if (strcmp(t.func, "__sys.inspect") == 0) {
        /* top-level code of a script being published never runs in the
         * interpreter that serves others (the draft debugger forks itself) */
        inspect_isolated(ch, &t, &pr);
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
        if (not_this_child(ch))
            _exit(0); /* a fork made by the function returned: only we record */
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
    o.end_mono = mono_ms();
    /* system tasks' kwargs are scripts and connector configs, not calls */
    if (strncmp(t.func, "__sys.", 6) != 0)
        o.kwargs = t.kwargs;
    if (pr.rec_json && (rec = json_loads(pr.rec_json, 0, NULL)) != NULL) {
        o.root_task = json_string_value(json_object_get(rec, "root"));
        o.chain = json_object_get(rec, "chain");
    }
    commit(ch, &wt, &o, ck);
    tell_master(ch, WMSG_DONE, &wt);
    log_debug("child %s: %s %s %s in %lld ms", ch->consumer, wt.id, wt.func, o.status,
              (long long)wrec_cost_ms(&o));
    json_decref(result);
    json_decref(data);
    json_decref(resp);
    json_decref(rec);
    pyres_free(&pr);
    task_free(&t);
}

/* ---- main ---------------------------------------------------------------- */

/* ---- what user code inherits ---------------------------------------------- */

/* In any fork() of this process (os.fork(), multiprocessing, our own
 * inspect process): it is not this child, and must never say it is (see
 * not_this_child). The shared slot is not even mapped there (the master
 * asked MADV_DONTFORK for it). */
static void atfork_child(void)
{
    g_in_fork = true;
}

static void isolate_user_code(struct wchild *ch)
{
    pthread_atfork(NULL, NULL, atfork_child);
    /* Orphans of a task (a double fork, a daemon) become ours rather than
     * init's, so they stay in reach: killed with the child's process group
     * or, if they left it with setsid(), by the master (a subreaper too)
     * once this child is gone. Reaped between tasks. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
        log_warn("child %s: PR_SET_CHILD_SUBREAPER", ch->consumer);
}

/* Zombies of adopted orphans, between tasks (during one, user code may be
 * waiting for its own children). */
static void reap_orphans(void)
{
    /* once a second, not before every task: a wait4() per task for
     * zombies that are rare */
    static int64_t next;
    int64_t now = mono_ms();
    if (now < next)
        return;
    next = now + 1000;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

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

int child_main(const struct tconf *c, int64_t epoch, struct wslot *slot, struct wlisten *listen)
{
    struct wchild ch;
    char *err = NULL;

    memset(&ch, 0, sizeof(ch));
    ch.c = c;
    ch.epoch = epoch;
    ch.slot = slot;
    ch.listen = listen;
    ch.gen = -1;
    ch.pid = (int)getpid();
    snprintf(ch.consumer, sizeof(ch.consumer), "%s:%d", c->node_name, ch.pid);
    child_signals();
    char why[256];
    if (w_queues_served(c, ch.serve, why, sizeof(why)) == -1) {
        log_err("child %s: %s", ch.consumer, why);
        return 1;
    }
    wrr_init(&ch.wrr, ch.serve);
    rds_key(ch.kgen, sizeof(ch.kgen), c, "gen");
    for (int q = 0; q < W_NQUEUES; q++)
        queue_key(&ch, q, ch.kq[q]);
    reset_ids(&ch);
    isolate_user_code(&ch);

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
        reap_orphans();
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
            int n = recover_own(&ch);
            if (n == -1)
                child_redis_broken(&ch);
            else if (n == 0)
                ch.recover = false;
            continue;
        }
        if (fetch(&ch) == -1)
            child_redis_broken(&ch);
    }
    log_debug("child %s: stopping", ch.consumer);
    listen_leave(&ch, NULL);
    flush_stats(&ch);
    if (ch.rc)
        redisFree(ch.rc);
    if (ch.db)
        mysql_close(ch.db);
    return 0;
}
