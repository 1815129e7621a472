/* Every accepted async task runs or is reported, even when Redis comes back
 * from an older snapshot (an operator restoring a backup, a Redis that lost
 * its append-only file): the server journals each accepted task in MariaDB
 * task_accept (server_journal.c) and this file, in the worker's keeper,
 * compares the journal with Redis.
 *
 * - Pruning (every tick): a journal row whose task has an outcome in
 *   task_record is done; it is deleted, in small autocommitted statements.
 * - Sweep: when Redis's run_id changes (a restart, a restore; also on the
 *   keeper's first look), every journal row accepted before that moment is
 *   checked; and every 60 s the rows older than 30 s are (a backstop for a
 *   restore the keeper never saw a restart of). A row whose task has no
 *   status key `Ptask:<id>` in Redis and no outcome in task_record is gone
 *   from Redis: the first time its task is queued again from the journal
 *   (requeued = 1, at least once, as every task); a second time it is
 *   recorded lost in task_record (status failure, reason ETaskLost) so its
 *   caller learns it, instead of waiting forever.
 *
 * The status key is the witness: the server writes it in the same pipeline
 * as the XADD and before the journal row, the worker overwrites it with the
 * outcome (TTL worker.task_ttl, one day), and it goes only with the task's
 * record safely in task_record or with the data Redis lost.
 *
 * A task accepted for later (options.eta/delay; a delayed cron run) has
 * "due" in its JSON: queued again, it goes back into Pdelayed until then.
 *
 * The beat journals every slot it handles (beat_fire.c, "The accept
 * journal and cron"):
 * - queue "cron", a fire's task (the run at the slot, and each delayed
 *   run), written ahead of the fire: until the fire script ran it is an
 *   intent. Its witness is stronger than the status key (which the beat
 *   SETs after its fire script): the slot's fired mark Pfired:<slot> field
 *   <job> = the fire's task id, written atomically with the XADD/ZADDs of
 *   all the slot's runs. One script (CRON_LUA) decides: the fire's mark =
 *   the fire survived (the status key is put back); the slot marked by
 *   another task or a record = it was handled as that (this row is
 *   dropped: never twice); no mark = the fire was lost, or never happened
 *   (its beat died first): mark it and queue the slot's tasks again, each
 *   once (a second loss is recorded ETaskLost as above).
 * - queue "record", a skipped/missed/failure record the fire script pushed
 *   to Ptaskrec: with no row in task_record it is written there (the
 *   keeper's flush of the same record later is a no-op on the (id, status)
 *   key), so a restore cannot make the slot vanish without a trace. */
#include "worker_reconcile.h"

#include <errmsg.h>
#include <jansson.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "task.h"
#include "util.h"
#include "worker.h"

#define RECON_IDLE_MS 1000
#define RECON_BUDGET_MS 50
#define RECON_PAGE 200
#define RECON_PRUNE 2000
#define RECON_BACKSTOP_EVERY_MS 60000
#define RECON_BACKSTOP_AGE_MS 30000
/* a row is pruned once its outcome is in task_record; the young ones are
 * left for the next tick (their outcome is usually not flushed yet) */
#define RECON_PRUNE_AGE_MS 2000
/* a fired mark put back by the reconciler: it is written rarely, and a
 * beat's cursor never goes back further than a day */
#define RECON_FIRED_TTL_S 86400

/* KEYS: Pfired:<slot>, Pq:cron, Ptask:<id>, Pdelayed. ARGV: job id, task
 * id, task JSON, status JSON, status ttl s, may queue (1|0), fired ttl s,
 * fire id (the slot's mark value when the beat fired it: the task's own id,
 * or for a delayed run of DFF's delayed_cron_job the slot's first task),
 * due ms (0: not delayed), now ms.
 * 0: the fire survived (the mark is the fire's: one script wrote it with
 * every task of the slot) or this task was queued again already; 2: the
 * slot is another task's or record's; 1: queued again; 3: lost, and not
 * queued (may queue 0).
 * Queued again: the mark becomes "<fire id>+r" (the slot is taken: no beat
 * fires it, and a later sweep does not take it for a surviving fire), and
 * each of the slot's tasks is queued once, decided by its own field
 * "<job id>:<task id>" (HSETNX): a slot with delayed runs has one journal
 * row per run, met one by one, by either node's keeper. A task not due yet
 * goes back into Pdelayed at its due time. */
static const char CRON_LUA[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "local fire = ARGV[8]\n"
    "local again = fire .. '+r'\n"
    "if v == fire then\n"
    "  redis.call('SET', KEYS[3], ARGV[4], 'NX', 'EX', ARGV[5])\n"
    "  return 0\n"
    "end\n"
    "if v and v ~= again then return 2 end\n"
    "if not v then\n"
    "  if ARGV[6] ~= '1' then return 3 end\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], again)\n"
    "  if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[7]) end\n"
    "end\n"
    "if redis.call('HSETNX', KEYS[1], ARGV[1] .. ':' .. ARGV[2], '1') == 0 then\n"
    "  redis.call('SET', KEYS[3], ARGV[4], 'NX', 'EX', ARGV[5])\n"
    "  return 0\n"
    "end\n"
    "if tonumber(ARGV[9]) > tonumber(ARGV[10]) then\n"
    "  redis.call('ZADD', KEYS[4], ARGV[9], ARGV[3])\n"
    "else\n"
    "  if redis.call('EXISTS', KEYS[2]) == 0 then\n"
    "    redis.pcall('XGROUP', 'CREATE', KEYS[2], 'workers', '0', 'MKSTREAM')\n"
    "  end\n"
    "  redis.call('XADD', KEYS[2], '*', 't', ARGV[3])\n"
    "end\n"
    "redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])\n"
    "return 1\n";

struct recon {
    const struct tconf *c;
    struct kdb k; /* its own connection, READ COMMITTED */
    char run_id[64];
    /* the sweep in progress: rows accepted up to upto_ms, from the cursor on */
    bool sweeping;
    int64_t upto_ms, cur_ms;
    char cur_id[ID_MAX];
    int64_t next_backstop;
    struct recon_stats st, told; /* told: what Pstats:reconcile has of st */
    char sha_cron[41];
};

struct recon *recon_new(const struct tconf *c)
{
    struct recon *p = calloc(1, sizeof *p);
    if (p) {
        p->c = c;
        p->k =
            (struct kdb){.c = c, .who = "reconcile", .idle = "the accept journal is not checked"};
    }
    return p;
}

void recon_free(struct recon *p)
{
    if (!p)
        return;
    kdb_close(&p->k);
    free(p);
}

void recon_stats(const struct recon *p, struct recon_stats *out)
{
    *out = p->st;
}

static char *quote_cb(void *ud, const char *s)
{
    return db_q((MYSQL *)ud, s);
}

/* Deletes journal rows whose outcome is recorded: the backstop of the
 * keeper, which drops a batch's rows as it writes their records
 * (journal_done in worker_keeper.c), for records written elsewhere or a
 * DELETE that failed there. Two steps, the ids first: a DELETE ... WHERE id
 * IN (subquery) is planned as a scan of the whole journal. The rows looked
 * at (RECON_PRUNE: more may be due), or -1. */
static int64_t prune(struct recon *p, int64_t now)
{
    char *err = NULL;
    MYSQL_RES *res = db_query(p->k.db, &err,
                              "SELECT a.id FROM task_accept a JOIN task_record r ON r.id = a.id "
                              "WHERE a.accepted_ms < %lld LIMIT %d",
                              (long long)(now_ms() - RECON_PRUNE_AGE_MS), RECON_PRUNE);
    if (!res) {
        kdb_fail(&p->k, "pruning task_accept", err, now);
        return -1;
    }
    size_t n = mysql_num_rows(res), i = 0, len = 0;
    char **ids = calloc(n ? n : 1, sizeof *ids);
    MYSQL_ROW row;
    while (ids && (row = mysql_fetch_row(res)) && i < n)
        ids[i++] = row[0] ? strdup(row[0]) : NULL;
    mysql_free_result(res);
    char *sql = ids ? db_in_list(p->k.db, "DELETE FROM task_accept WHERE id IN ",
                                 (const char *const *)ids, i, &len)
                    : NULL;
    for (size_t j = 0; ids && j < i; j++)
        free(ids[j]);
    free(ids);
    if (!sql)
        return 0;
    int rc = mysql_real_query(p->k.db, sql, len);
    free(sql);
    if (rc != 0) {
        err_set(&err, "%s (errno %u)", mysql_error(p->k.db), mysql_errno(p->k.db));
        kdb_fail(&p->k, "pruning task_accept", err, now);
        return -1;
    }
    p->st.pruned += (int64_t)mysql_affected_rows(p->k.db);
    return (int64_t)n;
}

/* Redis's run_id: it changes with every start of redis-server, so a restore
 * from a snapshot is always seen as one. 1 changed, 0 same, -1 error. */
static int run_id_changed(struct recon *p, redisContext *rc)
{
    redisReply *r = redisCommand(rc, "INFO server");
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    char id[64] = "";
    const char *s = strstr(r->str, "run_id:");
    if (s)
        sscanf(s + 7, "%63[0-9a-f]", id);
    freeReplyObject(r);
    if (strcmp(id, p->run_id) == 0)
        return 0;
    bool first = p->run_id[0] == '\0';
    snprintf(p->run_id, sizeof p->run_id, "%s", id);
    if (!first)
        log_warnx("reconcile: Redis restarted (run_id %s): checking every accepted task against "
                  "it",
                  id);
    return 1;
}

static void start_sweep(struct recon *p, int64_t upto_ms)
{
    if (p->sweeping && p->upto_ms >= upto_ms)
        return;
    p->sweeping = true;
    p->upto_ms = upto_ms;
    p->cur_ms = -1;
    p->cur_id[0] = '\0';
    p->st.sweeps++;
}

struct row {
    char id[ID_MAX];
    char queue[16];
    int requeued;
    int64_t accepted_ms;
    char *task;
    bool missing;
    bool done; /* its status key holds an outcome (see task_done_in_redis) */
};

/* Whether a status key's value is an outcome. The worker writes the final
 * status and pushes the task's record in one MULTI, so such a task's record
 * is in task_record, on its way there (Ptaskrec), or trimmed by retention:
 * its journal row is done with. Journal rows of older versions were left
 * behind when retention kept no record; their status keys expire after
 * worker.task_ttl and the sweep would then queue those tasks again. */
static bool task_done_in_redis(const char *queue, const char *status_json, size_t len)
{
    /* cron rows have their own witness (CRON_LUA), record rows are records */
    if (strcmp(queue, "cron") == 0 || strcmp(queue, "record") == 0)
        return false;
    json_t *o = json_loadb(status_json, len, 0, NULL);
    const char *st = json_string_value(json_object_get(o, "status"));
    static const char *const outcomes[] = {"success", "failure", "timeout", "crashed", "expired"};
    bool done = false;
    for (size_t i = 0; st && i < sizeof outcomes / sizeof outcomes[0]; i++)
        done = done || strcmp(st, outcomes[i]) == 0;
    json_decref(o);
    return done;
}

/* A task gone from Redis a second time: its caller learns it from its record. */
static int record_lost(struct recon *p, struct row *w, int64_t now)
{
    struct task t;
    char *err = NULL;
    if (task_decode(&t, w->task, &err) != 0) {
        log_warnx("reconcile: task %s: journal row unreadable (%s); recorded lost", w->id,
                  err ? err : "?");
        free(err);
        err = NULL;
        memset(&t, 0, sizeof t);
        snprintf(t.func, sizeof t.func, "?");
        snprintf(t.queue, sizeof t.queue, "async");
    }
    char *qid = db_q(p->k.db, w->id), *qf = db_q(p->k.db, t.func), *qo = db_q(p->k.db, t.origin_id),
         *qq = db_q(p->k.db, t.queue), *qn = db_q(p->k.db, p->c->node_name);
    int rc =
        db_exec(p->k.db, &err,
                "INSERT INTO task_record (id, func_id, origin, origin_id, queue, status, "
                "reason, message, node, epoch, nominal_at, enqueued_at, ended_at) VALUES (%s, "
                "%s, '%s', %s, %s, 'failure', 'ETaskLost', 'accepted, then lost by Redis twice "
                "(restored from an older snapshot?): it did not run and was not queued a third "
                "time', %s, %lld, IF(%lld > 0, FROM_UNIXTIME(%lld), NULL), FROM_UNIXTIME(%lld / "
                "1000), NOW(3)) ON DUPLICATE KEY UPDATE seq = seq",
                qid, qf, task_origin_name(t.origin), qo, qq, qn, (long long)t.epoch,
                (long long)t.nominal, (long long)t.nominal, (long long)w->accepted_ms);
    free(qid);
    free(qf);
    free(qo);
    free(qq);
    free(qn);
    task_free(&t);
    if (rc != 0) {
        kdb_fail(&p->k, "recording a lost task", err, now);
        return -1;
    }
    log_warnx("reconcile: task %s accepted at %lld ms is gone from Redis again: recorded lost "
              "(ETaskLost)",
              w->id, (long long)w->accepted_ms);
    p->st.lost++;
    return 0;
}

/* One statement on one journal row: HEAD + " WHERE id = <id>"; what names
 * it in the keeper's error. */
static int row_exec(struct recon *p, const char *head, const char *id, const char *what,
                    int64_t now)
{
    char *err = NULL, *qid = db_q(p->k.db, id);
    int rc = db_exec(p->k.db, &err, "%s WHERE id = %s", head, qid);
    free(qid);
    if (rc != 0)
        kdb_fail(&p->k, what, err, now);
    return rc;
}

static int drop_row(struct recon *p, const char *id, int64_t now)
{
    return row_exec(p, "DELETE FROM task_accept", id, "dropping a journal row", now);
}

static int mark_requeued(struct recon *p, const char *id, int64_t now)
{
    return row_exec(p, "UPDATE task_accept SET requeued = requeued + 1", id,
                    "marking a task queued again", now);
}

/* A journaled cron fire missing its status key (see CRON_LUA). */
static int cron_check(struct recon *p, redisContext *rc, struct row *w, const struct task *t,
                      int64_t now)
{
    char kf[160], kq[128], kt[160], kd[128], ttl[16], fttl[16], fire[ID_MAX], due[24], now_s[24];
    rds_key(kf, sizeof kf, p->c, "fired:%lld", (long long)t->nominal);
    rds_key(kq, sizeof kq, p->c, "q:cron");
    rds_key(kt, sizeof kt, p->c, "task:%s", t->id);
    rds_key(kd, sizeof kd, p->c, "delayed");
    snprintf(ttl, sizeof ttl, "%d", p->c->task_ttl);
    snprintf(fttl, sizeof fttl, "%d", RECON_FIRED_TTL_S);
    snprintf(due, sizeof due, "%lld", (long long)t->due_ms);
    snprintf(now_s, sizeof now_s, "%lld", (long long)now_ms());
    /* a delayed run names its slot's fire (the mark's value); a task at
     * the slot is its own */
    json_t *o = json_loads(w->task, 0, NULL);
    const char *f = json_string_value(json_object_get(o, "fire"));
    snprintf(fire, sizeof fire, "%s", f && strlen(f) < sizeof fire ? f : t->id);
    json_decref(o);
    json_t *st = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", t->id, "func", t->func,
                           "status", "queued", "origin", "cron", "origin_id", t->origin_id, "queue",
                           "cron", "nominal", (json_int_t)t->nominal, "enq", (json_int_t)t->enq_ms);
    if (st && t->due_ms > 0)
        json_object_set_new(st, "eta", json_integer(t->due_ms));
    char *status = st ? json_dumps(st, JSON_COMPACT) : NULL;
    json_decref(st);
    if (!status)
        return -1;
    const char *argv[] = {kf,    kq,      kt,     kd,   t->origin_id,
                          t->id, w->task, status, ttl,  w->requeued ? "0" : "1",
                          fttl,  fire,    due,    now_s};
    redisReply *r = rds_eval(rc, CRON_LUA, p->sha_cron, 4, argv, 14);
    free(status);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        log_warnx("reconcile: cron task %s: checking its slot: %s", w->id,
                  r && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr);
        if (r)
            freeReplyObject(r);
        return -2; /* Redis: the next sweep tries again */
    }
    long long v = r->integer;
    freeReplyObject(r);
    switch (v) {
    case 0:
        return 0; /* the fire is in Redis; its status key is back */
    case 2:
        log_warnx("reconcile: cron task %s (job %s, slot %lld) is not in Redis, and its slot was "
                  "handled otherwise (another task or a record has it): dropped, so it does not "
                  "run twice (a fire journaled ahead that did not happen, or one Redis lost and "
                  "the slot was done again since)",
                  w->id, t->origin_id, (long long)t->nominal);
        p->st.superseded++;
        return drop_row(p, w->id, now);
    case 3:
        return record_lost(p, w, now);
    default:
        if (mark_requeued(p, w->id, now) != 0)
            return -1;
        log_warnx("reconcile: cron task %s (job %s, slot %lld) was missing from Redis (restored "
                  "from an older snapshot, or its beat died before the fire?): its slot marked "
                  "fired and the task queued again from the accept journal%s",
                  w->id, t->origin_id, (long long)t->nominal,
                  t->due_ms > now_ms() ? " (into the delayed tasks, until its due time)" : "");
        p->st.requeued++;
        return 0;
    }
}

/* A journaled cron record (skipped/missed/failure) with no row in
 * task_record: written there now. */
static int record_put(struct recon *p, struct row *w, int64_t now)
{
    json_error_t je;
    json_t *rec = json_loads(w->task, 0, &je);
    char *err = NULL, *row = rec ? wrec_sql_row(rec, quote_cb, p->k.db, &err) : NULL;
    json_decref(rec);
    if (!row) {
        log_warnx("reconcile: journaled record %s unreadable (%s): dropped", w->id,
                  err ? err : je.text);
        free(err);
        return drop_row(p, w->id, now);
    }
    int rc = db_exec(p->k.db, &err,
                     "INSERT INTO task_record (" WREC_SQL_COLUMNS
                     ") VALUES %s ON DUPLICATE KEY UPDATE seq = seq",
                     row);
    free(row);
    if (rc != 0) {
        kdb_fail(&p->k, "writing a journaled record", err, now);
        return -1;
    }
    log_warnx("reconcile: cron record %s was not in task_record (lost with Redis?): written from "
              "the accept journal",
              w->id);
    p->st.recorded++;
    return 0;
}

static int requeue(struct recon *p, redisContext *rc, struct row *w, int64_t now)
{
    struct task t;
    char *err = NULL;
    if (task_decode(&t, w->task, &err) != 0) {
        free(err);
        w->requeued = 1; /* nothing to queue: report it */
        return record_lost(p, w, now);
    }
    if (t.origin == ORIGIN_CRON && t.nominal > 0 && t.origin_id[0]) {
        int e = cron_check(p, rc, w, &t, now);
        task_free(&t);
        return e;
    }
    if (w->requeued) {
        task_free(&t);
        return record_lost(p, w, now);
    }
    int e = task_enqueue(rc, p->c, &t, &err);
    task_free(&t);
    if (e != 0) {
        log_warnx("reconcile: task %s: queueing it again: %s", w->id, err ? err : "?");
        free(err);
        return -2; /* Redis: the next sweep tries again */
    }
    if (mark_requeued(p, w->id, now) != 0)
        return -1;
    log_warnx("reconcile: task %s accepted at %lld ms was missing from Redis (restored from an "
              "older snapshot?): queued again from the accept journal",
              w->id, (long long)w->accepted_ms);
    p->st.requeued++;
    return 0;
}

/* head + the ids of the rows marked done (or, done false, missing) as an
 * SQL list (db_in_list); NULL when none is, or out of memory. */
static char *rows_in_list(MYSQL *m, const char *head, const struct row *rows, size_t n, bool done,
                          size_t *len)
{
    const char **ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return NULL;
    for (size_t i = 0; i < n; i++)
        ids[i] = (done ? rows[i].done : rows[i].missing) ? rows[i].id : NULL;
    char *sql = db_in_list(m, head, ids, n, len);
    free(ids);
    return sql;
}

/* One page of the sweep. 1 more to do, 0 sweep done, -1 error. */
static int sweep_page(struct recon *p, redisContext *rc, int64_t now)
{
    char *err = NULL;
    char *qcur = db_q(p->k.db, p->cur_id);
    MYSQL_RES *res = db_query(p->k.db, &err,
                              "SELECT id, requeued, accepted_ms, task, queue FROM task_accept "
                              "WHERE "
                              "accepted_ms <= %lld AND (accepted_ms > %lld OR (accepted_ms = "
                              "%lld AND id > %s)) ORDER BY accepted_ms, id LIMIT %d",
                              (long long)p->upto_ms, (long long)p->cur_ms, (long long)p->cur_ms,
                              qcur, RECON_PAGE);
    free(qcur);
    if (!res) {
        kdb_fail(&p->k, "reading task_accept", err, now);
        return -1;
    }
    size_t n = mysql_num_rows(res);
    struct row *rows = calloc(n ? n : 1, sizeof *rows);
    MYSQL_ROW row;
    size_t i = 0;
    while (rows && (row = mysql_fetch_row(res)) && i < n) {
        snprintf(rows[i].id, sizeof rows[i].id, "%s", row[0] ? row[0] : "");
        rows[i].requeued = row[1] ? atoi(row[1]) : 0;
        rows[i].accepted_ms = row[2] ? strtoll(row[2], NULL, 10) : 0;
        rows[i].task = strdup(row[3] ? row[3] : "");
        snprintf(rows[i].queue, sizeof rows[i].queue, "%s", row[4] ? row[4] : "");
        i++;
    }
    mysql_free_result(res);
    if (!rows)
        return -1;
    int ret = n < RECON_PAGE ? 0 : 1;
    /* 1. which are missing from Redis, and which are done (one pipeline) */
    size_t nmiss = 0, ndone = 0;
    bool redis_err = false;
    for (i = 0; i < n; i++) {
        char key[160];
        rds_key(key, sizeof key, p->c, "task:%s", rows[i].id);
        redisAppendCommand(rc, "GET %s", key);
    }
    for (i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r) {
            redis_err = true;
            break;
        }
        if (r->type == REDIS_REPLY_NIL) {
            rows[i].missing = true;
            nmiss++;
        } else if (r->type == REDIS_REPLY_STRING &&
                   task_done_in_redis(rows[i].queue, r->str, r->len)) {
            rows[i].done = true;
            ndone++;
        }
        freeReplyObject(r);
    }
    if (redis_err) {
        ret = -2;
        goto out;
    }
    if (ndone) {
        size_t len = 0;
        char *sql =
            rows_in_list(p->k.db, "DELETE FROM task_accept WHERE id IN ", rows, n, true, &len);
        if (!sql || mysql_real_query(p->k.db, sql, len) != 0) {
            if (sql)
                err_set(&err, "%s (errno %u)", mysql_error(p->k.db), mysql_errno(p->k.db));
            free(sql);
            kdb_fail(&p->k, "dropping the journal rows of finished tasks", err, now);
            ret = -1;
            goto out;
        }
        free(sql);
        p->st.pruned += (int64_t)mysql_affected_rows(p->k.db);
    }
    /* 2. of those, which finished meanwhile (their record is in MariaDB) */
    if (nmiss) {
        size_t len = 0;
        char *sql = rows_in_list(p->k.db, "SELECT DISTINCT id FROM task_record WHERE id IN ", rows,
                                 n, false, &len);
        if (!sql) {
            ret = -1;
            goto out;
        }
        if (mysql_real_query(p->k.db, sql, len) != 0 || !(res = mysql_store_result(p->k.db))) {
            free(sql);
            err_set(&err, "%s", mysql_error(p->k.db));
            kdb_fail(&p->k, "looking up records", err, now);
            ret = -1;
            goto out;
        }
        free(sql);
        while ((row = mysql_fetch_row(res)))
            for (i = 0; i < n; i++)
                if (rows[i].missing && row[0] && strcmp(rows[i].id, row[0]) == 0)
                    rows[i].missing = false;
        mysql_free_result(res);
    }
    /* 3. the rest is gone from Redis */
    for (i = 0; i < n; i++) {
        if (!rows[i].missing)
            continue;
        int e = strcmp(rows[i].queue, "record") == 0 ? record_put(p, &rows[i], now)
                                                     : requeue(p, rc, &rows[i], now);
        if (e != 0) {
            ret = e;
            goto out;
        }
    }
    if (n) {
        p->cur_ms = rows[n - 1].accepted_ms;
        snprintf(p->cur_id, sizeof p->cur_id, "%s", rows[n - 1].id);
    }
out:
    for (i = 0; i < n; i++)
        free(rows[i].task);
    free(rows);
    return ret;
}

int64_t recon_tick(struct recon *p, redisContext *rc, int64_t now)
{
    if (!kdb_get(&p->k, now))
        return now + RECON_IDLE_MS;
    int64_t end = now + RECON_BUDGET_MS;
    int64_t n;
    while ((n = prune(p, now)) == RECON_PRUNE && mono_ms() < end)
        ;
    if (n < 0)
        return now + RECON_IDLE_MS;
    if (!rc)
        return now + RECON_IDLE_MS;
    int ch = run_id_changed(p, rc);
    if (ch == 1)
        start_sweep(p, now_ms());
    else if (ch == 0 && now >= p->next_backstop && !p->sweeping)
        start_sweep(p, now_ms() - RECON_BACKSTOP_AGE_MS);
    if (ch >= 0 && now >= p->next_backstop)
        p->next_backstop = now + RECON_BACKSTOP_EVERY_MS;
    while (p->sweeping && ch >= 0) {
        int e = sweep_page(p, rc, now);
        if (e == 0) {
            p->sweeping = false;
            if (p->st.requeued || p->st.lost)
                log_info("reconcile: sweep done (%lld queued again, %lld recorded lost so far)",
                         (long long)p->st.requeued, (long long)p->st.lost);
        }
        if (e < 0 || mono_ms() >= end)
            break;
    }
    /* counters for status and the drills: deltas, so keepers on either
     * node add to one total */
    if (memcmp(&p->st, &p->told, sizeof p->st) != 0 && !rc->err) {
        char key[128];
        rds_key(key, sizeof key, p->c, "stats:reconcile");
        const struct {
            const char *f;
            int64_t d;
        } d[] = {{"pruned_total", p->st.pruned - p->told.pruned},
                 {"sweeps_total", p->st.sweeps - p->told.sweeps},
                 {"requeued_total", p->st.requeued - p->told.requeued},
                 {"lost_total", p->st.lost - p->told.lost},
                 {"records_written_total", p->st.recorded - p->told.recorded},
                 {"cron_superseded_total", p->st.superseded - p->told.superseded}};
        int sent = 0;
        for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
            if (d[i].d) {
                redisAppendCommand(rc, "HINCRBY %s %s %lld", key, d[i].f, (long long)d[i].d);
                sent++;
            }
        bool ok = true;
        for (int i = 0; i < sent; i++) {
            redisReply *r = NULL;
            if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r || r->type == REDIS_REPLY_ERROR)
                ok = false;
            if (r)
                freeReplyObject(r);
            if (rc->err)
                break;
        }
        if (ok)
            p->told = p->st;
    }
    return p->sweeping ? mono_ms() + 10 : now + RECON_IDLE_MS;
}
