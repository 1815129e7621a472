/* Task-record retention (see worker_purge.h).
 *
 * Which origins to trim is learnt from the rows written since the last look
 * (a primary-key range scan over the new rows only), so the purge never scans
 * the whole table and needs nothing from the record writer. Each origin
 * (origin, origin_id, func_id) keeps its newest N rows, found through the
 * index task_record(origin, origin_id, func_id, seq) of migration 007; rows
 * older than the age limit go by the ended_at index. Every DELETE is one
 * short autocommitted statement of at most retention.batch rows under READ
 * COMMITTED, so it takes no gap locks that would stall the keeper's INSERTs. */
#include "worker_purge.h"

#include <errmsg.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "util.h"
#include "worker.h"

#define PURGE_BUDGET_MS 40
#define PURGE_IDLE_MS 1000       /* look for new rows this often when caught up */
#define PURGE_AGE_EVERY_MS 10000 /* cheap when nothing is due: an empty index range */
#define PURGE_FIRST_LOOK 200000  /* rows before MAX(seq) looked at on start */
#define PURGE_MAX_KEYS 4096
#define PURGE_TABLE_EVERY_MS 30000 /* information_schema read: cheap, but not per tick */

struct pkey {
    char origin[24];
    char origin_id[72];
    char func_id[264];
};

struct purge {
    const struct tconf *c;
    struct kdb k;     /* its own connection, READ COMMITTED */
    int64_t last_seq; /* -1: not initialised */
    struct pkey *keys;
    size_t nkeys;
    int64_t next_look, next_age, next_table;
    bool age_behind;
    int64_t pass_rows, pass_us; /* the pass in progress */
    struct purge_stats st;
};

/* Microseconds: a tick is often well under a millisecond, so ms would round
 * the cost figure to nothing. */
static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int purge_cap_for(const struct tconf *c, const char *origin)
{
    if (strcmp(origin, "sync-api") == 0)
        return c->ret_sync_api;
    if (strcmp(origin, "async-api") == 0)
        return c->ret_async_api;
    if (strcmp(origin, "cron") == 0)
        return c->ret_cron;
    if (strcmp(origin, "func") == 0)
        return c->ret_func;
    return c->ret_other; /* subtask, system, anything newer */
}

struct purge *purge_new(const struct tconf *c)
{
    if (c->ret_max_age_days == 0 && c->ret_sync_api == 0 && c->ret_async_api == 0 &&
        c->ret_cron == 0 && c->ret_func == 0 && c->ret_other == 0)
        return NULL;
    struct purge *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->c = c;
    p->k = (struct kdb){.c = c, .who = "purge", .idle = "task records are not trimmed"};
    p->last_seq = -1;
    p->st.table_rows_est = p->st.table_bytes = -1;
    return p;
}

void purge_free(struct purge *p)
{
    if (!p)
        return;
    kdb_close(&p->k);
    free(p->keys);
    free(p);
}

void purge_stats(const struct purge *p, struct purge_stats *out)
{
    *out = p->st;
    out->keys_pending = (int64_t)p->nkeys;
}

static bool key_known(const struct purge *p, const struct pkey *k)
{
    for (size_t i = 0; i < p->nkeys; i++)
        if (strcmp(p->keys[i].origin, k->origin) == 0 &&
            strcmp(p->keys[i].origin_id, k->origin_id) == 0 &&
            strcmp(p->keys[i].func_id, k->func_id) == 0)
            return true;
    return false;
}

static void key_push(struct purge *p, const struct pkey *k)
{
    if (p->nkeys >= PURGE_MAX_KEYS || key_known(p, k))
        return;
    struct pkey *n = realloc(p->keys, (p->nkeys + 1) * sizeof *n);
    if (!n)
        return;
    p->keys = n;
    p->keys[p->nkeys++] = *k;
}

/* Learns the origins of the rows written since the last look. */
static int look(struct purge *p, int64_t now)
{
    char *err = NULL;
    if (p->last_seq < 0) {
        MYSQL_RES *r = db_query(p->k.db, &err, "SELECT COALESCE(MAX(seq), 0) FROM task_record");
        if (!r) {
            kdb_fail(&p->k, "reading the newest record", err, now);
            return -1;
        }
        MYSQL_ROW row = mysql_fetch_row(r);
        int64_t max = row && row[0] ? strtoll(row[0], NULL, 10) : 0;
        mysql_free_result(r);
        p->last_seq = max > PURGE_FIRST_LOOK ? max - PURGE_FIRST_LOOK : 0;
    }
    MYSQL_RES *r = db_query(p->k.db, &err,
                            "SELECT origin, origin_id, func_id, MAX(seq) FROM task_record "
                            "WHERE seq > %lld GROUP BY origin, origin_id, func_id LIMIT %d",
                            (long long)p->last_seq, PURGE_MAX_KEYS);
    if (!r) {
        kdb_fail(&p->k, "listing new records", err, now);
        return -1;
    }
    MYSQL_ROW row;
    int64_t top = p->last_seq;
    while ((row = mysql_fetch_row(r))) {
        struct pkey k;
        snprintf(k.origin, sizeof k.origin, "%s", row[0] ? row[0] : "");
        snprintf(k.origin_id, sizeof k.origin_id, "%s", row[1] ? row[1] : "");
        snprintf(k.func_id, sizeof k.func_id, "%s", row[2] ? row[2] : "");
        int64_t s = row[3] ? strtoll(row[3], NULL, 10) : 0;
        if (s > top)
            top = s;
        if (purge_cap_for(p->c, k.origin) > 0)
            key_push(p, &k);
    }
    mysql_free_result(r);
    p->last_seq = top;
    return 0;
}

/* Runs one DELETE and answers the rows it removed (db_exec discards the
 * result state, and mysql_affected_rows with it). -1 and *err on failure. */
static int64_t delete_rows(MYSQL *m, char **err, char *sql)
{
    if (!sql) {
        err_set(err, "out of memory");
        return -1;
    }
    int rc = mysql_real_query(m, sql, strlen(sql));
    free(sql);
    if (rc != 0) {
        err_set(err, "%s", mysql_error(m));
        return -1;
    }
    my_ulonglong n = mysql_affected_rows(m);
    return n == (my_ulonglong)-1 ? 0 : (int64_t)n;
}

/* Trims one origin by one batch. 1 = more to do, 0 = within its cap, -1 = error. */
static int trim_one(struct purge *p, const struct pkey *k, int64_t now)
{
    int cap = purge_cap_for(p->c, k->origin);
    char *o = db_q(p->k.db, k->origin), *oid = db_q(p->k.db, k->origin_id),
         *fid = db_q(p->k.db, k->func_id);
    char *err = NULL;
    int ret = -1;
    if (!o || !oid || !fid)
        goto out;
    MYSQL_RES *r = db_query(p->k.db, &err,
                            "SELECT seq FROM task_record WHERE origin = %s AND origin_id = %s "
                            "AND func_id = %s ORDER BY seq DESC LIMIT %d, 1",
                            o, oid, fid, cap);
    if (!r) {
        kdb_fail(&p->k, "finding the oldest record to keep", err, now);
        goto out;
    }
    MYSQL_ROW row = mysql_fetch_row(r);
    int64_t cut = row && row[0] ? strtoll(row[0], NULL, 10) : 0;
    mysql_free_result(r);
    if (cut == 0) {
        ret = 0;
        goto out;
    }
    int64_t n = delete_rows(
        p->k.db, &err,
        xasprintf("DELETE FROM task_record WHERE origin = %s AND origin_id = %s AND func_id = %s "
                  "AND seq <= %lld ORDER BY seq LIMIT %d",
                  o, oid, fid, (long long)cut, p->c->ret_batch));
    if (n == -1) {
        kdb_fail(&p->k, "deleting records over the cap", err, now);
        goto out;
    }
    p->st.deleted_total += n;
    p->st.statements++;
    p->st.last_run_ms = now_ms();
    ret = n >= p->c->ret_batch ? 1 : 0;
out:
    free(o);
    free(oid);
    free(fid);
    return ret;
}

/* Deletes one batch of records older than the age limit. 1 = more, 0 = done. */
static int trim_age(struct purge *p, int64_t now)
{
    char *err = NULL;
    int64_t n = delete_rows(p->k.db, &err,
                            xasprintf("DELETE FROM task_record WHERE ended_at < UTC_TIMESTAMP(3) - "
                                      "INTERVAL %d DAY ORDER BY ended_at LIMIT %d",
                                      p->c->ret_max_age_days, p->c->ret_batch));
    if (n == -1) {
        kdb_fail(&p->k, "deleting records past the age limit", err, now);
        return -1;
    }
    p->st.deleted_total += n;
    p->st.deleted_age += n;
    p->st.statements++;
    p->st.last_run_ms = now_ms();
    return n >= p->c->ret_batch ? 1 : 0;
}

/* Reads task_record's size from information_schema: InnoDB's row estimate
 * and its data + index bytes, both cheap (no scan), both approximate. */
static void table_size(struct purge *p, int64_t now)
{
    char *err = NULL;
    MYSQL_RES *r = db_query(p->k.db, &err,
                            "SELECT TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH FROM "
                            "information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
                            "TABLE_NAME = 'task_record'");
    if (!r) {
        kdb_fail(&p->k, "reading task_record's size", err, now);
        return;
    }
    MYSQL_ROW row = mysql_fetch_row(r);
    if (row && row[0] && row[1]) {
        p->st.table_rows_est = strtoll(row[0], NULL, 10);
        p->st.table_bytes = strtoll(row[1], NULL, 10);
    }
    mysql_free_result(r);
}

static void publish(struct purge *p, redisContext *rc)
{
    if (!rc)
        return;
    char key[256];
    rds_key(key, sizeof key, p->c, "stats:purge");
    redisReply *r =
        redisCommand(rc,
                     "HSET %s deleted_total %lld deleted_age %lld statements %lld last_run_ms %lld "
                     "keys_pending %lld busy_us %lld last_pass_end_ms %lld last_pass_rows %lld "
                     "last_pass_us %lld table_rows_est %lld table_bytes %lld",
                     key, (long long)p->st.deleted_total, (long long)p->st.deleted_age,
                     (long long)p->st.statements, (long long)p->st.last_run_ms, (long long)p->nkeys,
                     (long long)p->st.busy_us, (long long)p->st.last_pass_end_ms,
                     (long long)p->st.last_pass_rows, (long long)p->st.last_pass_us,
                     (long long)p->st.table_rows_est, (long long)p->st.table_bytes);
    if (r)
        freeReplyObject(r);
}

int64_t purge_tick(struct purge *p, redisContext *rc, int64_t now)
{
    if (!kdb_get(&p->k, now))
        return p->k.retry_mono;
    int64_t start = mono_ms(), start_us = mono_us(), before = p->st.statements,
            deleted = p->st.deleted_total;
    bool sized = false;
    if (now >= p->next_table) {
        table_size(p, now);
        if (!p->k.db)
            return p->k.retry_mono;
        p->next_table = now + PURGE_TABLE_EVERY_MS;
        sized = true;
    }
    if (now >= p->next_look) {
        if (look(p, now) == -1)
            return p->k.retry_mono;
        p->next_look = now + PURGE_IDLE_MS;
    }
    /* Origins over their cap first (that is where a busy API grows), then age. */
    while (p->nkeys && mono_ms() - start < PURGE_BUDGET_MS) {
        struct pkey k = p->keys[0];
        int r = trim_one(p, &k, now);
        if (r == -1)
            return p->k.retry_mono;
        memmove(p->keys, p->keys + 1, (p->nkeys - 1) * sizeof *p->keys);
        p->nkeys--;
        if (r == 1)
            key_push(p, &k); /* to the back: one origin cannot hog the budget */
    }
    if (p->c->ret_max_age_days > 0 && (p->age_behind || now >= p->next_age) &&
        mono_ms() - start < PURGE_BUDGET_MS) {
        int r = trim_age(p, now);
        if (r == -1)
            return p->k.retry_mono;
        p->age_behind = r == 1;
        p->next_age = now + PURGE_AGE_EVERY_MS;
    }
    /* The cost figure counts every tick, the cheap "nothing new" looks too:
     * it is what the purge costs the keeper (and, waiting on them, MariaDB). */
    int64_t took = mono_us() - start_us;
    p->st.busy_us += took;
    if (p->st.deleted_total != deleted || p->pass_rows) {
        p->pass_rows += p->st.deleted_total - deleted;
        p->pass_us += took;
    }
    bool behind = p->nkeys || p->age_behind;
    if (!behind && p->pass_rows) {
        p->st.last_pass_end_ms = now_ms();
        p->st.last_pass_rows = p->pass_rows;
        p->st.last_pass_us = p->pass_us;
        p->pass_rows = p->pass_us = 0;
    }
    if (p->st.statements != before || sized)
        publish(p, rc);
    /* Behind: come back soon, leaving the keeper time for its flushes. */
    if (behind)
        return mono_ms() + 2 * PURGE_BUDGET_MS;
    return p->next_look < p->next_table ? p->next_look : p->next_table;
}
