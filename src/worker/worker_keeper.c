/* The keeper: a child of the master without Python that does the slow,
 * backend-bound chores, so the master's loop (timeouts, memory limits)
 * never waits on MariaDB:
 *  - flushes Ptaskrec to task_record in batches (one multi-row INSERT);
 *  - re-queues entries pending on consumers that are gone, so an accepted
 *    task runs even when a whole worker was SIGKILLed. */
#include "worker.h"

#include <errno.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "worker_purge.h"

#define FLUSH_BATCH 500
#define RECLAIM_EVERY_MS 5000
/* A consumer not in any heartbeat is dead once it has been idle this long
 * (covers a child that started reading before its master's next heartbeat). */
#define DEAD_IDLE_MS 3000
/* Consumers with nothing pending are forgotten after this long. */
#define FORGET_IDLE_MS 600000

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

struct keeper {
    const struct tconf *c;
    char me[128];
    redisContext *rc;
    MYSQL *db;
    bool redis_down, db_down;
    int redis_fails, db_fails;
    int64_t redis_retry, db_retry; /* mono ms */
};

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool conn_lost(unsigned int e)
{
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
           e == CR_CONN_HOST_ERROR || e == CR_SERVER_LOST_EXTENDED || e == ER_CONNECTION_KILLED ||
           e == 0;
}

static redisContext *k_redis(struct keeper *k)
{
    if (k->rc || mono_ms() < k->redis_retry)
        return k->rc;
    char *err = NULL;
    k->rc = rds_connect(k->c, 5000, &err);
    if (k->rc == NULL) {
        if (!k->redis_down)
            log_warnx("keeper: %s; retrying", err ? err : "redis unavailable");
        k->redis_down = true;
        k->redis_retry = mono_ms() + backoff_ms(++k->redis_fails, 200, 5000);
    } else {
        if (k->redis_down)
            log_info("keeper: redis is back");
        k->redis_down = false;
        k->redis_fails = 0;
    }
    free(err);
    return k->rc;
}

static void k_redis_broken(struct keeper *k)
{
    if (k->rc)
        redisFree(k->rc);
    k->rc = NULL;
}

static MYSQL *k_db(struct keeper *k)
{
    if (k->db || mono_ms() < k->db_retry)
        return k->db;
    char *err = NULL;
    k->db = db_connect(k->c, 5, &err);
    if (k->db == NULL) {
        if (!k->db_down)
            log_warnx("keeper: %s; task records wait in redis", err ? err : "mariadb unavailable");
        k->db_down = true;
        k->db_retry = mono_ms() + backoff_ms(++k->db_fails, 200, 5000);
    } else {
        if (k->db_down)
            log_info("keeper: mariadb is back; flushing task records");
        k->db_down = false;
        k->db_fails = 0;
    }
    free(err);
    return k->db;
}

static void k_db_broken(struct keeper *k)
{
    if (k->db)
        mysql_close(k->db);
    k->db = NULL;
}

/* ---- record flush -------------------------------------------------------- */

static char *quote_cb(void *ud, const char *s)
{
    return db_q((MYSQL *)ud, s);
}

/* Puts popped records back at the tail they came from, oldest last out. */
static void repush(struct keeper *k, const char *key, redisReply *arr)
{
    for (size_t i = arr->elements; i-- > 0;) {
        redisReply *e = arr->element[i];
        redisAppendCommand(k->rc, "RPUSH %s %b", key, e->str, e->len);
    }
    for (size_t i = 0; i < arr->elements; i++) {
        void *r = NULL;
        if (redisGetReply(k->rc, &r) != REDIS_OK) {
            log_warnx("keeper: putting %zu task records back failed: %s; they are lost",
                      arr->elements - i, k->rc->errstr);
            k_redis_broken(k);
            return;
        }
        freeReplyObject(r);
    }
}

/* One batch. Returns the number of records taken, -1 on a backend problem. */
static int flush_batch(struct keeper *k)
{
    char key[128];
    MYSQL *m = k_db(k);
    redisContext *rc = k_redis(k);
    if (m == NULL || rc == NULL)
        return -1;
    rds_key(key, sizeof(key), k->c, "taskrec");
    redisReply *arr = redisCommand(rc, "RPOP %s %d", key, FLUSH_BATCH);
    if (arr == NULL) {
        k_redis_broken(k);
        return -1;
    }
    if (arr->type != REDIS_REPLY_ARRAY || arr->elements == 0) {
        if (arr->type == REDIS_REPLY_ERROR)
            log_warnx("keeper: RPOP %s: %s", key, arr->str);
        freeReplyObject(arr);
        return 0;
    }
    size_t n = arr->elements;
    char **rows = calloc(n, sizeof(*rows));
    size_t total = 0, good = 0;
    for (size_t i = 0; rows && i < n; i++) {
        json_error_t je;
        char *err = NULL;
        json_t *rec = json_loadb(arr->element[i]->str, arr->element[i]->len, 0, &je);
        rows[i] = rec ? wrec_sql_row(rec, quote_cb, m, &err) : NULL;
        if (rows[i] == NULL)
            log_warnx("keeper: dropping a malformed task record: %s: %.200s",
                      rec ? (err ? err : "?") : je.text, arr->element[i]->str);
        else {
            total += strlen(rows[i]) + 1;
            good++;
        }
        free(err);
        json_decref(rec);
    }
    if (rows == NULL) {
        repush(k, key, arr);
        freeReplyObject(arr);
        return -1;
    }
    int rv = (int)n;
    if (good > 0) {
        static const char head[] = "INSERT INTO task_record (" WREC_SQL_COLUMNS ") VALUES ";
        char *sql = malloc(sizeof(head) + total + 1);
        if (sql) {
            char *p = sql + sprintf(sql, "%s", head);
            bool first = true;
            for (size_t i = 0; i < n; i++) {
                if (!rows[i])
                    continue;
                p += sprintf(p, "%s%s", first ? "" : ",", rows[i]);
                first = false;
            }
        }
        char *err = NULL;
        if (sql == NULL || db_exec(m, &err, "%s", sql) == -1) {
            unsigned int e = sql ? mysql_errno(m) : 0;
            if (sql == NULL || conn_lost(e)) {
                log_warnx("keeper: writing %zu task records: %s; kept in redis", good,
                          err ? err : "out of memory");
                if (sql)
                    k_db_broken(k);
                repush(k, key, arr);
                rv = -1;
            } else {
                /* A data problem in some row: write them one by one so one
                 * bad record cannot hold back the others forever. */
                log_warnx("keeper: batch insert failed (%s); inserting one by one", err);
                for (size_t i = 0; i < n; i++) {
                    char *e1 = NULL;
                    if (rows[i] &&
                        db_exec(m, &e1, "INSERT INTO task_record (" WREC_SQL_COLUMNS ") VALUES %s",
                                rows[i]) == -1) {
                        log_warnx("keeper: dropping task record: %s: %.200s", e1, rows[i]);
                        if (conn_lost(mysql_errno(m))) {
                            free(e1);
                            k_db_broken(k);
                            break;
                        }
                    }
                    free(e1);
                }
            }
        }
        free(err);
        free(sql);
    }
    for (size_t i = 0; i < n; i++)
        free(rows[i]);
    free(rows);
    freeReplyObject(arr);
    return rv;
}

/* ---- reclaim ------------------------------------------------------------- */

/* Moves one pending entry of a dead consumer to the end of its stream, as a
 * copy, atomically: two keepers cannot both re-queue it (XCLAIM's min idle
 * fails for the second), and a keeper dying halfway loses nothing. */
static const char REQUEUE_LUA[] =
    "local r = redis.call('XCLAIM', KEYS[1], 'workers', ARGV[1], ARGV[3], ARGV[2]) "
    "if #r == 0 then return 0 end "
    "local e = r[1] "
    "if type(e) == 'table' and type(e[2]) == 'table' then "
    "  redis.call('XADD', KEYS[1], '*', unpack(e[2])) "
    "end "
    "redis.call('XACK', KEYS[1], 'workers', ARGV[2]) "
    "redis.call('XDEL', KEYS[1], ARGV[2]) "
    "return 1";

/* Last resort: anything pending far longer than any task may run. */
static const char AUTOCLAIM_LUA[] =
    "local r = redis.call('XAUTOCLAIM', KEYS[1], 'workers', ARGV[1], ARGV[2], '0-0', 'COUNT', "
    "'100') "
    "local n = 0 "
    "for _, e in ipairs(r[2]) do "
    "  if type(e) == 'table' and type(e[2]) == 'table' then "
    "    redis.call('XADD', KEYS[1], '*', unpack(e[2])) "
    "    n = n + 1 "
    "  end "
    "  redis.call('XACK', KEYS[1], 'workers', e[1]) "
    "  redis.call('XDEL', KEYS[1], e[1]) "
    "end "
    "return n";

/* The consumer names of every live worker: "<node>:<pid>" of each pid in
 * each live worker heartbeat's "pids" (and the master's own pid). */
static json_t *live_consumers(redisContext *rc, const struct tconf *c)
{
    json_t *hbs = NULL, *hb;
    if (rds_hb_list(rc, c, "worker", &hbs) < 0)
        return NULL;
    json_t *live = json_object();
    size_t i;
    json_array_foreach(hbs, i, hb)
    {
        const char *node = json_string_value(json_object_get(hb, "node"));
        if (!node)
            continue;
        char name[160];
        json_t *pid = json_object_get(hb, "pid"), *p;
        size_t idx;
        snprintf(name, sizeof(name), "%s:%lld", node, (long long)json_integer_value(pid));
        json_object_set_new(live, name, json_true());
        json_array_foreach(json_object_get(hb, "pids"), idx, p)
        {
            snprintf(name, sizeof(name), "%s:%lld", node, (long long)json_integer_value(p));
            json_object_set_new(live, name, json_true());
        }
    }
    json_decref(hbs);
    return live;
}

/* Field `name` of a flat XINFO key/value array. */
static redisReply *kv_get(redisReply *a, const char *name)
{
    for (size_t i = 0; i + 1 < a->elements; i += 2)
        if (a->element[i]->type == REDIS_REPLY_STRING && strcmp(a->element[i]->str, name) == 0)
            return a->element[i + 1];
    return NULL;
}

static int requeue_consumer(redisContext *rc, const char *qkey, const char *me, const char *name)
{
    int moved = 0;
    redisReply *p = redisCommand(rc, "XPENDING %s " W_GROUP " IDLE 1000 - + 100 %s", qkey, name);
    if (p == NULL)
        return -1;
    if (p->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < p->elements; i++) {
            redisReply *e = p->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 1)
                continue;
            const char *argv[] = {qkey, me, e->element[0]->str, "1000"};
            redisReply *r = rds_eval(rc, REQUEUE_LUA, NULL, 1, argv, 4);
            if (r == NULL) {
                freeReplyObject(p);
                return -1;
            }
            if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
                log_info("keeper: re-queued q entry %s %s of dead consumer %s", qkey,
                         e->element[0]->str, name);
                moved++;
            } else if (r->type == REDIS_REPLY_ERROR) {
                log_warnx("keeper: re-queue %s %s: %s", qkey, e->element[0]->str, r->str);
            }
            freeReplyObject(r);
        }
    }
    freeReplyObject(p);
    return moved;
}

int keeper_reclaim(redisContext *rc, const struct tconf *c, const char *me, int64_t idle_dead_ms)
{
    int moved = 0;
    json_t *live = live_consumers(rc, c);
    if (live == NULL)
        return -1;
    for (int qi = 0; qi < W_NQUEUES; qi++) {
        char qkey[128];
        rds_key(qkey, sizeof(qkey), c, "q:%s", w_queues[qi]);
        redisReply *r = redisCommand(rc, "XINFO CONSUMERS %s " W_GROUP, qkey);
        if (r == NULL) {
            json_decref(live);
            return -1;
        }
        if (r->type != REDIS_REPLY_ARRAY) { /* no stream / group yet */
            freeReplyObject(r);
            continue;
        }
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *cons = r->element[i];
            if (cons->type != REDIS_REPLY_ARRAY)
                continue;
            redisReply *nm = kv_get(cons, "name"), *pend = kv_get(cons, "pending"),
                       *idle = kv_get(cons, "idle");
            if (!nm || nm->type != REDIS_REPLY_STRING || !pend || !idle)
                continue;
            if (json_object_get(live, nm->str) || strcmp(nm->str, me) == 0)
                continue;
            if (pend->integer > 0 && idle->integer >= idle_dead_ms) {
                int n = requeue_consumer(rc, qkey, me, nm->str);
                if (n == -1) {
                    freeReplyObject(r);
                    json_decref(live);
                    return -1;
                }
                moved += n;
            } else if (pend->integer == 0 && idle->integer >= FORGET_IDLE_MS) {
                redisReply *d =
                    redisCommand(rc, "XGROUP DELCONSUMER %s " W_GROUP " %s", qkey, nm->str);
                if (d)
                    freeReplyObject(d);
            }
        }
        freeReplyObject(r);

        char minidle[32];
        snprintf(minidle, sizeof(minidle), "%lld", (3600LL + c->reclaim_margin) * 1000LL);
        const char *argv[] = {qkey, me, minidle};
        redisReply *a = rds_eval(rc, AUTOCLAIM_LUA, NULL, 1, argv, 3);
        if (a == NULL) {
            json_decref(live);
            return -1;
        }
        if (a->type == REDIS_REPLY_INTEGER && a->integer > 0) {
            log_warnx("keeper: re-queued %lld entries of %s pending for over %s ms",
                      (long long)a->integer, qkey, minidle);
            moved += (int)a->integer;
        }
        freeReplyObject(a);
    }
    json_decref(live);
    return moved;
}

/* ---- main ---------------------------------------------------------------- */

int keeper_main(const struct tconf *c, int64_t epoch)
{
    struct keeper k;
    struct sigaction sa;
    sigset_t none;
    (void)epoch;

    memset(&k, 0, sizeof(k));
    k.c = c;
    snprintf(k.me, sizeof(k.me), "%s:%d", c->node_name, (int)getpid());
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    struct purge *purge = purge_new(c); /* NULL: retention off */
    int64_t next_flush = 0, next_reclaim = 0, next_purge = 0;
    while (!g_stop) {
        int64_t now = mono_ms();
        if (now >= next_reclaim && k_redis(&k)) {
            if (keeper_reclaim(k.rc, c, k.me, DEAD_IDLE_MS) == -1) {
                log_warnx("keeper: reclaim pass: %s", k.rc->err ? k.rc->errstr : "redis error");
                k_redis_broken(&k);
            }
            next_reclaim = mono_ms() + RECLAIM_EVERY_MS;
        }
        if (now >= next_flush) {
            int n;
            /* Drain a backlog in full batches before sleeping again. */
            while ((n = flush_batch(&k)) == FLUSH_BATCH && !g_stop)
                ;
            next_flush = mono_ms() + c->record_flush_ms;
        }
        if (purge && mono_ms() >= next_purge)
            next_purge = purge_tick(purge, k_redis(&k), mono_ms());
        int64_t wake = next_flush < next_reclaim ? next_flush : next_reclaim;
        if (purge && next_purge < wake)
            wake = next_purge;
        int64_t d = wake - mono_ms();
        sleep_ms(d < 10 ? 10 : (d > 200 ? 200 : d));
    }
    /* Stopping: what is buffered goes to MariaDB now if it can. */
    for (int i = 0; i < 20 && flush_batch(&k) == FLUSH_BATCH; i++)
        ;
    purge_free(purge);
    if (k.rc)
        redisFree(k.rc);
    if (k.db)
        mysql_close(k.db);
    return 0;
}
