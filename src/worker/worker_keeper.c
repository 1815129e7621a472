/* The keeper: a child of the master without Python that does the slow,
 * backend-bound chores, so the master's loop (timeouts, memory limits)
 * never waits on MariaDB:
 *  - flushes Ptaskrec to task_record in batches (one multi-row INSERT),
 *    losslessly: Ptaskrec becomes this keeper's processing list
 *    Ptaskrec:proc:<node>:<pid> (RENAME) and a batch leaves it only once
 *    MariaDB has it; a batch that does not go through is split down to single
 *    records (a record MariaDB refuses goes to Ptaskrec:dead); batches are
 *    capped under max_allowed_packet; inserts are idempotent (unique key
 *    id + status), so replaying a batch is harmless; the processing list
 *    of a keeper that died is adopted by the next keeper pass;
 *  - re-queues entries pending on consumers that are gone, so an accepted
 *    task runs even when a whole worker was SIGKILLed. */
#include "worker.h"

#include <errno.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <signal.h>
#include <stdint.h>
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
#include "worker_reconcile.h"

#define FLUSH_BATCH 500
/* Batch bytes: at most half of max_allowed_packet (SQL quoting grows a
 * record a little) and never more than this. */
#define BATCH_BYTES_MAX (8 * 1024 * 1024)
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
    int64_t max_packet;            /* MariaDB's max_allowed_packet, bytes */
    char k_src[128], k_proc[256], k_procs[128], k_dead[128];
    char take_sha[41], done_sha[41];
    /* Its processing list is already named in Ptaskrec:procs (SADD once
     * per connection). */
    bool registered;
    struct purge *purge; /* NULL: retention off */
    struct recon *recon; /* the accept journal vs Redis */
};

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The connection is gone (or was dropped by the server for a packet over
 * max_allowed_packet): reconnect, and split the batch. */
static bool conn_lost(unsigned int e)
{
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
           e == CR_CONN_HOST_ERROR || e == CR_SERVER_LOST_EXTENDED || e == ER_CONNECTION_KILLED ||
           e == ER_NET_PACKET_TOO_LARGE || e == CR_NET_PACKET_TOO_LARGE || e == ER_NET_READ_ERROR ||
           e == ER_NET_ERROR_ON_WRITE || e == 0 ||
           /* the server turned read_only (mysql.hosts: the primary was
            * switched): reconnect, db_connect finds the writable one */
           db_is_readonly_error(e);
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
    k->registered = false; /* a Redis we may not see again */
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
        k->max_packet = 1024 * 1024; /* MariaDB's smallest default, if unknown */
        MYSQL_RES *res = db_query(k->db, NULL, "SELECT @@max_allowed_packet");
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        if (row && row[0] && strtoll(row[0], NULL, 10) >= 1024)
            k->max_packet = strtoll(row[0], NULL, 10);
        if (res)
            mysql_free_result(res);
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

static json_t *live_consumers(redisContext *rc, const struct tconf *c);

static char *quote_cb(void *ud, const char *s)
{
    return db_q((MYSQL *)ud, s);
}

/* The next batch: the oldest records of this keeper's processing list
 * Ptaskrec:proc:<node>:<pid>, oldest first, at most FLUSH_BATCH of them and
 * the byte cap (the first always goes). When that list is empty, Ptaskrec
 * itself becomes it first (RENAME: O(1), whatever its length), and the
 * writers start a new Ptaskrec. The records stay in the processing list
 * until MariaDB has them (then LTRIM drops them from its tail), so a batch
 * that does not go in is taken again, and the list of a keeper that died is
 * adopted. Before, each batch was copied record by record from Ptaskrec to
 * the processing list (LRANGE, LTRIM and LPUSH of up to 500 records in one
 * script, all of it also written to the AOF): Redis stood still for 2-43 ms
 * at every keeper pass under load, the largest stall of a sync call's p99.
 * The script only renames; the records are read by a plain LRANGE: in the
 * script, turning 500 records into Lua strings and back held Redis for
 * up to 19-25 ms a pass (the slow log's longest entries under sync load).
 * KEYS: Ptaskrec, processing list, Ptaskrec:procs (set of processing
 * lists). ARGV: "1" when the list is already in Ptaskrec:procs (no SADD).
 * Returns the processing list's length. */
static const char TAKE_LUA[] = "local n = redis.call('LLEN', KEYS[2]) "
                               "if n == 0 then "
                               "  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
                               "  if ARGV[1] ~= '1' then redis.call('SADD', KEYS[3], KEYS[2]) end "
                               "  redis.call('RENAME', KEYS[1], KEYS[2]) "
                               "  n = redis.call('LLEN', KEYS[2]) "
                               "end "
                               "return n";

/* Of an LRANGE of the processing list's tail (newest first), the batch:
 * its records oldest first into out, as many as fit in cap bytes (the
 * first always). Returns how many. */
static size_t take_batch(redisReply *arr, redisReply **out, long long cap)
{
    size_t n = 0;
    long long bytes = 0;
    for (size_t i = arr->elements; i-- > 0;) {
        redisReply *e = arr->element[i];
        long long len = e->type == REDIS_REPLY_STRING ? (long long)e->len : 0;
        if (n > 0 && bytes + len > cap)
            break;
        bytes += len;
        out[n++] = e;
    }
    return n;
}

/* The batch is in MariaDB: records it refused go to Ptaskrec:dead (kept
 * for the operator, never silently dropped), then the batch leaves the
 * tail of the processing list. KEYS: processing list, Ptaskrec:dead. ARGV:
 * the batch's length, then the refused records. */
static const char DONE_LUA[] = "for i = 2, #ARGV do redis.call('LPUSH', KEYS[2], ARGV[i]) end "
                               "redis.call('LTRIM', KEYS[1], 0, -tonumber(ARGV[1]) - 1) "
                               "return 1";

/* A dead keeper's processing list goes back to Ptaskrec (at the end RPOP
 * reads first). KEYS: its list, Ptaskrec, Ptaskrec:procs. */
static const char ADOPT_LUA[] = "local vs = redis.call('LRANGE', KEYS[1], 0, -1) "
                                "for _, v in ipairs(vs) do redis.call('RPUSH', KEYS[2], v) end "
                                "redis.call('DEL', KEYS[1]) "
                                "redis.call('SREM', KEYS[3], KEYS[1]) "
                                "return #vs";

struct row {
    char *sql; /* "(...)" VALUES tuple; NULL: malformed, refused or trimmed */
    size_t len;
    bool refused;
    char *origin; /* "origin\x1forigin_id\x1ffunc_id": retention's key */
    int cap;      /* its retention cap, 0 = none */
    char *jid;    /* the task id of a record with an accept-journal row (not sync) */
};

/* Retention ahead of the INSERT: of each origin's records in this batch only
 * the newest `cap` can survive the purge (it keeps the highest seq, and the
 * batch goes in in order, the last record newest), so the rest are not
 * written at all: at a busy Sync API's rate most records would be inserted
 * and deleted again within a second, and each costs MariaDB ~50 µs of CPU
 * to delete (bench/purge-cost). A replayed batch comes oldest first like
 * any other (TAKE_LUA reads the processing list's tail). Asked newest first, before row i's SQL is
 * made (most of a busy batch is trimmed: making their SQL was most of the keeper's CPU): true when
 * `cap` newer rows of its origin are kept. */
static bool over_cap(const struct row *rows, size_t i, size_t n)
{
    if (rows[i].cap <= 0 || !rows[i].origin)
        return false;
    int newer = 0;
    for (size_t j = i + 1; j < n && newer < rows[i].cap; j++)
        if (rows[j].sql && rows[j].origin && strcmp(rows[j].origin, rows[i].origin) == 0)
            newer++;
    return newer >= rows[i].cap;
}

/* The SQL row of a record, its texts cut so that it fits in one packet
 * (a record over max_allowed_packet would otherwise never go in). */
static char *fit_row(struct keeper *k, json_t *rec, char **err)
{
    char *sql = wrec_sql_row(rec, quote_cb, k->db, err);
    size_t limit = (size_t)k->max_packet > 8192 ? (size_t)k->max_packet - 4096 : 4096;
    static const char *const texts[] = {"output", "return_value_json", "kwargs_json", "traceback",
                                        "message"};
    size_t ntexts = sizeof texts / sizeof texts[0];
    for (int round = 0; sql && strlen(sql) > limit && round < 4; round++) {
        size_t keep = limit / (size_t)((ntexts + 1) << round);
        for (size_t i = 0; i < ntexts; i++) {
            const char *v = json_string_value(json_object_get(rec, texts[i]));
            if (v == NULL || strlen(v) <= keep)
                continue;
            char *cut = strndup(v, keep);
            if (cut == NULL)
                continue;
            wrec_cut_utf8(cut, keep);
            char *nv = NULL;
            if (asprintf(&nv, "%s\n...[cut to fit max_allowed_packet]", cut) != -1)
                json_object_set_new(rec, texts[i], json_string(nv));
            free(nv);
            free(cut);
        }
        free(sql);
        sql = wrec_sql_row(rec, quote_cb, k->db, err);
    }
    return sql;
}

/* INSERTs rows[lo..hi) that are not refused. 0: all in, or refused one by
 * one (marked); -1: MariaDB is unreachable, keep the batch for later. */
static int insert_rows(struct keeper *k, struct row *rows, size_t lo, size_t hi)
{
    static const char head[] = "INSERT INTO task_record (" WREC_SQL_COLUMNS ") VALUES ";
    static const char tail[] = " ON DUPLICATE KEY UPDATE seq = seq";
    size_t total = sizeof(head) + sizeof(tail), n = 0;
    for (size_t i = lo; i < hi; i++)
        if (rows[i].sql) {
            total += rows[i].len + 1;
            n++;
        }
    if (n == 0)
        return 0;
    if (n > 1 && total > (size_t)k->max_packet - 1024)
        goto split;
    char *sql = malloc(total);
    if (sql == NULL)
        return -1;
    char *p = sql + sprintf(sql, "%s", head);
    for (size_t i = lo, first = 1; i < hi; i++) {
        if (!rows[i].sql)
            continue;
        if (!first)
            *p++ = ',';
        memcpy(p, rows[i].sql, rows[i].len);
        p += rows[i].len;
        first = 0;
    }
    memcpy(p, tail, sizeof(tail));
    for (int attempt = 0;; attempt++) {
        MYSQL *m = k_db(k);
        if (m == NULL) {
            free(sql);
            return -1;
        }
        char *err = NULL;
        if (db_exec(m, &err, "%s", sql) == 0) {
            free(sql);
            return 0;
        }
        unsigned int e = mysql_errno(m);
        if (conn_lost(e)) {
            k_db_broken(k);
            if (n > 1 || attempt >= 1) {
                /* Too big for the server, or MariaDB went away: halves on a
                 * fresh connection, down to a record that fails alone. */
                if (n > 1)
                    log_warnx("keeper: writing %zu task records: %s; splitting the batch", n, err);
                else
                    log_warnx("keeper: writing a task record: %s; kept in redis", err);
                free(err);
                free(sql);
                if (n > 1)
                    goto split;
                return -1;
            }
            free(err);
            continue; /* one record: once more on a fresh connection */
        }
        /* A data problem in some row: find it by halving. */
        if (n > 1) {
            free(err);
            free(sql);
            goto split;
        }
        for (size_t i = lo; i < hi; i++)
            if (rows[i].sql) {
                log_warnx("keeper: MariaDB refused a task record (%s); moved to %s: %.200s", err,
                          k->k_dead, rows[i].sql);
                rows[i].refused = true;
            }
        free(err);
        free(sql);
        return 0;
    }
split : {
    size_t mid = lo, seen = 0;
    while (mid < hi && seen < n / 2)
        if (rows[mid++].sql)
            seen++;
    if (insert_rows(k, rows, lo, mid) == -1)
        return -1;
    return insert_rows(k, rows, mid, hi);
}
}

/* The accept-journal rows (task_accept) of a written batch go: each task's
 * outcome is in task_record now, or in the dead list, or retention chose
 * not to keep it. Pruning by the record (worker_reconcile.c) alone left
 * the rows of trimmed records forever, and once their status keys expired
 * the reconciler took them for tasks Redis lost and ran them again. A
 * failure here is logged and left to that prune and the sweep. */
static void journal_done(struct keeper *k, const struct row *rows, size_t n)
{
    MYSQL *m = k_db(k);
    const char **ids = m ? calloc(n, sizeof *ids) : NULL;
    if (ids == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        ids[i] = rows[i].jid;
    size_t len = 0;
    char *sql = db_in_list(m, "DELETE FROM task_accept WHERE id IN ", ids, n, &len);
    free(ids);
    if (sql && mysql_real_query(m, sql, len) != 0) {
        log_warnx("keeper: dropping the accept-journal rows of written records: %s (the "
                  "reconciler prunes them later)",
                  mysql_error(m));
        if (conn_lost(mysql_errno(m)))
            k_db_broken(k);
    }
    free(sql);
}

/* The answer to clearing a written batch (d, consumed): rv, or -1 when the
 * batch stays in the processing list (replayed later, no duplicates). */
static int done_reply(struct keeper *k, redisContext *rc, redisReply *d, int rv)
{
    if (d == NULL) {
        log_warnx("keeper: clearing the written batch: %s; it will be replayed (no duplicates)",
                  rc->errstr);
        k_redis_broken(k);
        return -1;
    }
    if (d->type == REDIS_REPLY_ERROR) {
        log_warnx("keeper: clearing the written batch: %s; it will be replayed (no duplicates)",
                  d->str);
        if (rds_readonly(rc, d))
            k_redis_broken(k);
        rv = -1;
    }
    freeReplyObject(d);
    return rv;
}

/* One batch. Returns the number of records handled, 0 when there were
 * none, -1 on a backend problem (the batch stays in the processing list
 * and is replayed). */
static int flush_batch(struct keeper *k)
{
    MYSQL *m = k_db(k);
    redisContext *rc = k_redis(k);
    if (m == NULL || rc == NULL)
        return -1;
    int64_t cap = k->max_packet / 2 < BATCH_BYTES_MAX ? k->max_packet / 2 : BATCH_BYTES_MAX;
    const char *argv[] = {k->k_src, k->k_proc, k->k_procs, k->registered ? "1" : "0"};
    redisReply *len = rds_eval(rc, TAKE_LUA, k->take_sha, 3, argv, 4);
    if (len == NULL) {
        k_redis_broken(k);
        return -1;
    }
    if (len->type != REDIS_REPLY_INTEGER || len->integer <= 0) {
        if (len->type == REDIS_REPLY_ERROR) {
            log_warnx("keeper: taking task records from %s: %s", k->k_src, len->str);
            if (rds_readonly(rc, len)) {
                freeReplyObject(len);
                k_redis_broken(k);
                return -1;
            }
            if (strncmp(len->str, "NOSCRIPT", 8) == 0)
                k->take_sha[0] = '\0';
            freeReplyObject(len);
            return -1;
        }
        freeReplyObject(len);
        return 0; /* nothing there, nothing moved */
    }
    freeReplyObject(len);
    k->registered = true;
    redisReply *arr = redisCommand(rc, "LRANGE %s %d -1", k->k_proc, -FLUSH_BATCH);
    if (arr == NULL) {
        k_redis_broken(k);
        return -1;
    }
    if (arr->type != REDIS_REPLY_ARRAY || arr->elements == 0) {
        int rv = 0; /* emptied meanwhile: cannot happen, only this keeper trims it */
        if (arr->type == REDIS_REPLY_ERROR) {
            log_warnx("keeper: reading %s: %s", k->k_proc, arr->str);
            if (rds_readonly(rc, arr))
                k_redis_broken(k);
            rv = -1;
        }
        freeReplyObject(arr);
        return rv;
    }
    redisReply **els = calloc(arr->elements, sizeof(*els));
    if (els == NULL) {
        freeReplyObject(arr);
        return -1;
    }
    size_t n = take_batch(arr, els, cap);
    struct row *rows = calloc(n, sizeof(*rows));
    if (rows == NULL) {
        free(els);
        freeReplyObject(arr);
        return -1;
    }
    json_t **recs = calloc(n, sizeof(*recs));
    if (recs == NULL) {
        free(rows);
        free(els);
        freeReplyObject(arr);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        redisReply *e = els[i];
        json_t *rec = e->type == REDIS_REPLY_STRING ? json_loadb(e->str, e->len, 0, &je) : NULL;
        const char *o = json_string_value(json_object_get(rec, "origin"));
        const char *id = json_string_value(json_object_get(rec, "id"));
        const char *queue = json_string_value(json_object_get(rec, "queue"));
        if (id && !(queue && strcmp(queue, "sync") == 0))
            rows[i].jid = strdup(id);
        if (rec && o) {
            const char *oid = json_string_value(json_object_get(rec, "origin_id"));
            const char *fid = json_string_value(json_object_get(rec, "func_id"));
            rows[i].cap = purge_cap_for(k->c, o);
            if (rows[i].cap > 0 && asprintf(&rows[i].origin, "%s\x1f%s\x1f%s", o, oid ? oid : "",
                                            fid ? fid : "") == -1)
                rows[i].origin = NULL;
        }
        if (rec == NULL) {
            log_warnx("keeper: a malformed task record (%s) moved to %s: %.200s", je.text,
                      k->k_dead, e->type == REDIS_REPLY_STRING ? e->str : "(not a string)");
            rows[i].refused = true;
        }
        recs[i] = rec;
    }
    /* newest first: whether a row is over its origin's cap depends on the
     * newer rows kept */
    size_t trimmed = 0;
    for (size_t i = n; i-- > 0;) {
        char *err = NULL;
        if (recs[i] == NULL)
            continue;
        if (over_cap(rows, i, n)) {
            trimmed++;
        } else if ((rows[i].sql = fit_row(k, recs[i], &err)) == NULL) {
            log_warnx("keeper: a malformed task record (%s) moved to %s: %.200s", err ? err : "?",
                      k->k_dead, els[i]->str);
            rows[i].refused = true;
        } else {
            rows[i].len = strlen(rows[i].sql);
        }
        free(err);
        json_decref(recs[i]);
    }
    free(recs);
    int rv = insert_rows(k, rows, 0, n) == 0 ? (int)n : -1;
    if (rv > 0 && trimmed) {
        char key[256];
        rds_key(key, sizeof key, k->c, "stats:purge");
        redisReply *r =
            redisCommand(rc, "HINCRBY %s trimmed_at_flush %lld", key, (long long)trimmed);
        if (r)
            freeReplyObject(r);
    }
    if (rv > 0)
        journal_done(k, rows, n);
    if (rv > 0) {
        /* In MariaDB: the batch leaves the processing list, keeping what
         * was refused. */
        size_t nbad = 0;
        for (size_t i = 0; i < n; i++)
            nbad += rows[i].refused;
        const char **dargv = calloc(3 + nbad, sizeof(*dargv));
        size_t *dlen = calloc(3 + nbad, sizeof(*dlen));
        char nlen[24];
        snprintf(nlen, sizeof nlen, "%zu", n);
        if (nbad == 0) {
            /* the usual case: one LTRIM, not a script */
            redisReply *d = redisCommand(rc, "LTRIM %s 0 %lld", k->k_proc, -(long long)n - 1);
            rv = done_reply(k, rc, d, rv);
        } else if (dargv && dlen) {
            size_t j = 0;
            dargv[j] = k->k_proc;
            dlen[j++] = strlen(k->k_proc);
            dargv[j] = k->k_dead;
            dlen[j++] = strlen(k->k_dead);
            dargv[j] = nlen;
            dlen[j++] = strlen(nlen);
            for (size_t i = 0; i < n; i++)
                if (rows[i].refused && els[i]->type == REDIS_REPLY_STRING) {
                    dargv[j] = els[i]->str;
                    dlen[j++] = els[i]->len;
                }
            char nk[] = "2";
            const char **ev = calloc(j + 3, sizeof(*ev));
            size_t *el = calloc(j + 3, sizeof(*el));
            if (ev && el) {
                ev[0] = "EVAL";
                el[0] = 4;
                ev[1] = DONE_LUA;
                el[1] = strlen(DONE_LUA);
                ev[2] = nk;
                el[2] = 1;
                memcpy(ev + 3, dargv, j * sizeof(*ev));
                memcpy(el + 3, dlen, j * sizeof(*el));
                redisReply *d = redisCommandArgv(rc, (int)(j + 3), ev, el);
                rv = done_reply(k, rc, d, rv);
            } else {
                rv = -1;
            }
            free(ev);
            free(el);
        } else {
            rv = -1;
        }
        free(dargv);
        free(dlen);
    }
    for (size_t i = 0; i < n; i++) {
        free(rows[i].sql);
        free(rows[i].origin);
        free(rows[i].jid);
    }
    free(rows);
    free(els);
    freeReplyObject(arr);
    return rv;
}

/* Processing lists of keepers that are gone (not in any live worker
 * heartbeat) go back to Ptaskrec. Returns records moved, -1 on Redis
 * failure. */
static int adopt_dead_batches(struct keeper *k)
{
    json_t *live = live_consumers(k->rc, k->c);
    if (live == NULL)
        return -1;
    redisReply *r = redisCommand(k->rc, "SMEMBERS %s", k->k_procs);
    if (r == NULL) {
        json_decref(live);
        return -1;
    }
    int moved = 0;
    char prefix[160];
    size_t plen = strlen(rds_key(prefix, sizeof(prefix), k->c, "taskrec:proc:"));
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || strncmp(e->str, prefix, plen) != 0)
            continue;
        const char *owner = e->str + plen; /* "<node>:<pid>" */
        if (strcmp(e->str, k->k_proc) == 0 || json_object_get(live, owner))
            continue;
        const char *argv[] = {e->str, k->k_src, k->k_procs};
        redisReply *a = rds_eval(k->rc, ADOPT_LUA, NULL, 3, argv, 3);
        if (a == NULL) {
            moved = -1;
            break;
        }
        if (a->type == REDIS_REPLY_INTEGER) {
            if (a->integer > 0)
                log_warnx("keeper: %lld task records of keeper %s (gone) taken over", a->integer,
                          owner);
            moved += (int)a->integer;
        } else if (a->type == REDIS_REPLY_ERROR) {
            log_warnx("keeper: taking over %s: %s", e->str, a->str);
        }
        freeReplyObject(a);
    }
    freeReplyObject(r);
    json_decref(live);
    return moved;
}

/* ---- reclaim ------------------------------------------------------------- */

/* Moves one pending entry of a dead consumer to the end of its stream, as a
 * copy, atomically: two keepers cannot both re-queue it (the second finds
 * it no longer pending), and a keeper dying halfway loses nothing. The
 * copy is written first, so when Redis refuses writes (maxmemory) nothing
 * is acked either. KEYS: stream. ARGV: 1 unused, 2 entry id, 3 min idle. */
static const char REQUEUE_LUA[] =
    "local p = redis.call('XPENDING', KEYS[1], 'workers', 'IDLE', ARGV[3], ARGV[2], ARGV[2], 1) "
    "if #p == 0 then return 0 end "
    "local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) "
    "if e[1] and type(e[1][2]) == 'table' then "
    "  redis.call('XADD', KEYS[1], '*', unpack(e[1][2])) "
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

/* ---- reply lists of servers that are gone --------------------------------- */

static bool hb_has_id(json_t *live, const char *id)
{
    size_t i;
    json_t *hb;
    json_array_foreach(live, i, hb)
    {
        const char *x = json_string_value(json_object_get(hb, "id"));
        if (x && strcmp(x, id) == 0)
            return true;
    }
    return false;
}

/* The worker's commit no longer EXPIREs Preply:<server> when its push
 * creates the list (0.7 Redis commands per sync call); every server names
 * itself in Preply:servers with each heartbeat instead, and this pass gives
 * the list of a server without a live heartbeat 60 s to live (EXPIRE NX: a
 * TTL already there stays; a live server's list loses it when emptied) and
 * forgets a gone server whose list is gone too. The set is read before the
 * heartbeats: a member's heartbeat was set before it joined, so a server
 * that just started is never taken for a gone one. -1 on a Redis error. */
static int reply_sweep(redisContext *rc, const struct tconf *c)
{
    char kset[128];
    rds_key(kset, sizeof kset, c, "reply:servers");
    redisReply *m = redisCommand(rc, "SMEMBERS %s", kset);
    if (m == NULL)
        return -1;
    json_t *live = NULL;
    int rv = 0;
    if (m->type == REDIS_REPLY_ARRAY && m->elements > 0 && rds_hb_list(rc, c, "server", &live) < 0)
        rv = -1;
    for (size_t i = 0; rv == 0 && m->type == REDIS_REPLY_ARRAY && i < m->elements; i++) {
        redisReply *id = m->element[i];
        if (id->type != REDIS_REPLY_STRING || hb_has_id(live, id->str))
            continue;
        char kr[256];
        rds_key(kr, sizeof kr, c, "reply:%s", id->str);
        redisReply *e = redisCommand(rc, "EXISTS %s", kr);
        if (e == NULL) {
            rv = -1;
            break;
        }
        bool exists = e->type == REDIS_REPLY_INTEGER && e->integer > 0;
        freeReplyObject(e);
        e = exists ? redisCommand(rc, "EXPIRE %s 60 NX", kr)
                   : redisCommand(rc, "SREM %s %s", kset, id->str);
        if (e == NULL)
            rv = -1;
        else
            freeReplyObject(e);
    }
    json_decref(live);
    freeReplyObject(m);
    return rv;
}

/* ---- the keeper's periodic jobs ------------------------------------------ */

/* Re-queue for dead consumers, adopt dead keepers' batches, expire gone
 * servers' reply lists: every 5 s (retried at once while Redis is down,
 * k_redis backs off). */
static int64_t job_reclaim(struct keeper *k, int64_t now)
{
    if (!k_redis(k))
        return now;
    if (keeper_reclaim(k->rc, k->c, k->me, DEAD_IDLE_MS) == -1 || adopt_dead_batches(k) == -1 ||
        reply_sweep(k->rc, k->c) == -1) {
        log_warnx("keeper: reclaim pass: %s", k->rc->err ? k->rc->errstr : "redis error");
        k_redis_broken(k);
    }
    /* the next batch names the processing list in Ptaskrec:procs again,
     * should another keeper have taken this one for gone and adopted it */
    k->registered = false;
    return mono_ms() + RECLAIM_EVERY_MS;
}

/* Task records to MariaDB: a backlog batch after batch (bounded, so the
 * other jobs still run) before sleeping again. */
static int64_t job_flush(struct keeper *k, int64_t now)
{
    (void)now;
    for (int i = 0; i < 100 && !g_stop && flush_batch(k) > 0; i++)
        ;
    return mono_ms() + k->c->record_flush_ms;
}

/* Retention (worker_purge.c): off when purge_new said so. */
static int64_t job_purge(struct keeper *k, int64_t now)
{
    return k->purge ? purge_tick(k->purge, k_redis(k), now) : INT64_MAX;
}

/* The accept journal against Redis (worker_reconcile.c). */
static int64_t job_reconcile(struct keeper *k, int64_t now)
{
    return k->recon ? recon_tick(k->recon, k_redis(k), now) : INT64_MAX;
}

/* Each job runs when its time has come and answers when it wants to run
 * next (mono ms); the loop sleeps until the earliest. */
static const struct {
    const char *name;
    int64_t (*run)(struct keeper *k, int64_t now);
} k_jobs[] = {
    {"reclaim", job_reclaim},
    {"flush", job_flush},
    {"purge", job_purge},
    {"reconcile", job_reconcile},
};
#define NJOBS (sizeof k_jobs / sizeof k_jobs[0])

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

    rds_key(k.k_src, sizeof(k.k_src), c, "taskrec");
    rds_key(k.k_proc, sizeof(k.k_proc), c, "taskrec:proc:%s", k.me);
    rds_key(k.k_procs, sizeof(k.k_procs), c, "taskrec:procs");
    rds_key(k.k_dead, sizeof(k.k_dead), c, "taskrec:dead");
    k.max_packet = 1024 * 1024;

    k.purge = purge_new(c);
    k.recon = recon_new(c);
    int64_t next[NJOBS] = {0};
    while (!g_stop) {
        int64_t wake = INT64_MAX;
        for (size_t i = 0; i < NJOBS && !g_stop; i++) {
            int64_t t0 = mono_ms();
            if (t0 >= next[i]) {
                next[i] = k_jobs[i].run(&k, t0);
                /* the jobs share one loop: a slow one delays the others */
                if (mono_ms() - t0 >= 1000)
                    log_debug("keeper: %s took %lld ms", k_jobs[i].name,
                              (long long)(mono_ms() - t0));
            }
            if (next[i] < wake)
                wake = next[i];
        }
        int64_t d = wake - mono_ms();
        sleep_ms(d < 10 ? 10 : (d > 200 ? 200 : d));
    }
    /* Stopping: what is buffered goes to MariaDB now if it can; a batch
     * left in the processing list is taken over by the next keeper. */
    for (int i = 0; i < 20 && flush_batch(&k) > 0; i++)
        ;
    if (k.rc) {
        redisReply *r = redisCommand(k.rc, "EXISTS %s", k.k_proc);
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            freeReplyObject(r);
            r = redisCommand(k.rc, "SREM %s %s", k.k_procs, k.k_proc);
        }
        if (r)
            freeReplyObject(r);
    }
    purge_free(k.purge);
    recon_free(k.recon);
    if (k.rc)
        redisFree(k.rc);
    if (k.db)
        mysql_close(k.db);
    return 0;
}
