/* The accept thread: async calls are group-committed, to Redis and to the
 * accept journal.
 *
 * srv_accept() (Async APIs, /api/v1/func with options.async, cron runs by
 * hand) suspends the caller's connection and hands the task over; one
 * thread takes everything handed over since its last turn and
 *   1. enqueues it in one Redis pipeline (task_enqueue_many: XADD + SET per
 *      task, one WAIT for all when redis.wait_replicas is set), then
 *   2. writes the accept records of the tasks Redis took in one multi-row
 *      INSERT to MariaDB (task_accept, migration 010; autocommit: one fsync
 *      per batch, however many rows), so a Redis that comes back from an
 *      older snapshot cannot make an accepted task vanish: the worker's
 *      keeper (worker_reconcile.c) finds journal rows neither recorded in
 *      task_record nor present in Redis and queues them again, or records
 *      them lost; then
 *   3. resumes those connections: the answer (the task id) or a 503 when
 *      Redis did not take the task.
 * While the thread works the next batch gathers, so a busier server sends
 * bigger batches, not more: HTTP threads never wait for Redis or MariaDB
 * on this path, and Redis reads and writes once per batch.
 *
 * MariaDB down: the journal cannot hold up every async call for the length
 * of an outage (the task is already in Redis, which keeps it with its AOF);
 * the callers are answered at once, the rows counted as unjournaled and the
 * connection retried at most once a second. Only a Redis restored from an
 * older snapshot *during* a MariaDB outage can then still lose a task.
 * server.accept_journal = false skips step 2. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>

#include "clock.h"
#include "db.h"
#include "journal.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"

#define JOURNAL_RETRY_MS 1000

struct jent {
    struct jent *next;
    struct srv_req *r; /* NULL: nobody waits (no connection to resume) */
    struct task t;     /* the fixed fields only: kwargs and extra are in msg */
    char *msg;         /* task JSON as enqueued */
    json_t *answer;    /* the caller's answer once accepted */
    char *err;         /* why Redis did not take it; NULL = accepted */
    bool sync;         /* a sync call: r is in the pending table, not ours */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct jent *head, **tail;
    bool running, journal, stopping;
    pthread_t th;
    MYSQL *db;
    int64_t retry_at; /* mono ms: no connect attempt before */
    bool warned;
    atomic_ulong rows, batches, unjournaled, accepts, accept_batches, retried, retry_found;
} J = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* On resume, in r's HTTP thread: r->outcome is {"ok": answer} or
 * {"error": why}. */
static void accept_done(struct srv_req *r, json_t *outcome, void *ud)
{
    json_t *ok = json_object_get(outcome, "ok");
    if (ok) {
        metrics_call(&S.metrics, r->accept_delayed ? CO_DELAYED : CO_ASYNC);
        req_ok(r, json_incref(ok));
        return;
    }
    metrics_call(&S.metrics, CO_ENQUEUE_ERROR);
    if (r->accept_failed)
        r->accept_failed(r, ud);
    const char *why = json_string_value(json_object_get(outcome, "error"));
    req_err(r, 503, "EBackend", NULL, "cannot enqueue the task: %s", why ? why : "?");
}

bool journal_on(void)
{
    return J.running && J.journal;
}

void journal_counts(unsigned long *rows, unsigned long *batches, unsigned long *unjournaled)
{
    *rows = atomic_load(&J.rows);
    *batches = atomic_load(&J.batches);
    *unjournaled = atomic_load(&J.unjournaled);
}

void accept_counts(unsigned long *tasks, unsigned long *batches, unsigned long *retried,
                   unsigned long *retry_found)
{
    *tasks = atomic_load(&J.accepts);
    *batches = atomic_load(&J.accept_batches);
    *retried = atomic_load(&J.retried);
    *retry_found = atomic_load(&J.retry_found);
}

/* An entry for t: its fixed fields and its JSON as it will be enqueued.
 * NULL when out of memory. */
static struct jent *jent_new(const struct task *t)
{
    struct jent *e = calloc(1, sizeof *e);
    char *msg = e ? task_encode(t) : NULL;
    if (!msg) {
        free(e);
        return NULL;
    }
    e->t = *t;
    e->t.kwargs = NULL;
    e->t.extra = NULL;
    e->msg = msg;
    return e;
}

int accept_sync(struct srv_req *r, const struct task *t)
{
    struct jent *e = r->conn ? jent_new(t) : NULL;
    if (!e)
        return -1;
    char *msg = e->msg;
    e->sync = true;
    pthread_mutex_lock(&J.mu);
    if (!J.running || J.stopping) {
        pthread_mutex_unlock(&J.mu);
        free(msg);
        free(e);
        return -1;
    }
    /* suspended before the thread can enqueue it, so the dispatcher's
     * delivery (deliver_locked, under pend_mu) always finds it suspended
     * and resumes it */
    pthread_mutex_lock(&S.pend_mu);
    r->suspended = true;
    r->state = RS_SUSPENDED;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&S.pend_mu);
    *J.tail = e;
    J.tail = &e->next;
    pthread_cond_signal(&J.cv);
    pthread_mutex_unlock(&J.mu);
    return 0;
}

/* Without the accept thread (not started, or stopped): the old way, in
 * the HTTP thread. */
static int accept_direct(struct srv_req *r, struct task *t, json_t *answer,
                         void (*failed)(struct srv_req *r, void *ud), void *ud)
{
    redisContext *rc = srv_redis(r);
    char *err = NULL;
    if (!rc || task_enqueue(rc, &S.conf, t, &err) != 0) {
        if (failed)
            failed(r, ud);
        json_decref(answer);
        if (!rc)
            return -1; /* srv_redis answered */
        metrics_call(&S.metrics, CO_ENQUEUE_ERROR);
        req_err(r, 503, "EBackend", NULL, "cannot enqueue the task: %s", err ? err : "?");
        free(err);
        if (rc->err)
            srv_redis_broken();
        return -1;
    }
    metrics_call(&S.metrics, r->accept_delayed ? CO_DELAYED : CO_ASYNC);
    req_ok(r, answer);
    return 0;
}

int srv_accept(struct srv_req *r, struct task *t, json_t *answer,
               void (*failed)(struct srv_req *r, void *ud), void *ud)
{
    pthread_mutex_lock(&J.mu);
    bool threaded = J.running && !J.stopping && r->conn;
    pthread_mutex_unlock(&J.mu);
    if (!threaded)
        return accept_direct(r, t, answer, failed, ud);
    struct jent *e = jent_new(t);
    if (!e) {
        if (failed)
            failed(r, ud);
        json_decref(answer);
        req_err(r, 503, "EBackend", NULL, "cannot enqueue task %s: out of memory", t->id);
        return -1;
    }
    e->answer = answer;
    e->r = r;
    pthread_mutex_lock(&J.mu);
    if (J.stopping) { /* stopped meanwhile: nobody would take e */
        pthread_mutex_unlock(&J.mu);
        free(e->msg);
        free(e);
        return accept_direct(r, t, answer, failed, ud);
    }
    /* suspended before the thread can see e: its resume comes after this */
    snprintf(r->task_id, sizeof r->task_id, "%s", t->id);
    r->done = accept_done;
    r->done_ud = ud;
    r->accept_failed = failed;
    r->outcome = NULL;
    r->suspended = true;
    r->state = RS_SUSPENDED;
    MHD_suspend_connection(r->conn);
    *J.tail = e;
    J.tail = &e->next;
    pthread_cond_signal(&J.cv);
    pthread_mutex_unlock(&J.mu);
    return 0;
}

static void resume_all(struct jent *list)
{
    while (list) {
        struct jent *e = list;
        list = e->next;
        if (e->r) {
            /* the HTTP thread reads r->outcome only after this resume */
            e->r->outcome =
                e->err ? json_pack("{s:s}", "error", e->err) : json_pack("{s:O}", "ok", e->answer);
            MHD_resume_connection(e->r->conn);
        }
        json_decref(e->answer);
        free(e->msg);
        free(e->err);
        free(e);
    }
}

/* Step 1: one pipeline for the whole batch, on this thread's connection
 * (srv_redis_thread: PINGed after an idle spell, so a Redis restart in
 * between does not fail the next batch). */
static void enqueue_batch(struct jent *list, size_t n)
{
    struct task_enq *q = calloc(n, sizeof *q);
    char *err = NULL;
    redisContext *rc = q ? srv_redis_thread(&err) : NULL;
    size_t i = 0;
    for (struct jent *e = list; e; e = e->next, i++) {
        if (!rc) {
            e->err = strdup(!q ? "out of memory" : err ? err : "redis unavailable");
            continue;
        }
        q[i] = (struct task_enq){.t = &e->t, .msg = e->msg};
    }
    free(err);
    err = NULL;
    bool sent = rc != NULL;
    int64_t t0 = mono_ms();
    size_t unsure = 0;
    if (rc) {
        task_enqueue_many(rc, &S.conf, q, n);
        for (i = 0; i < n; i++)
            unsure += q[i].unsure;
    }
    if (unsure > 0) {
        /* The connection broke with answers outstanding (Redis restarted
         * since our last batch, died or was failed over mid-batch): Redis
         * may hold any of those tasks, or none. Once more on a fresh
         * connection, through the script that adds only what Redis does
         * not hold yet, so a task is never queued twice; the first try's
         * path pays nothing for this. */
        srv_redis_broken();
        rc = srv_redis_thread(&err);
        size_t already = 0, ok = 0;
        if (rc)
            ok = task_enqueue_again(rc, &S.conf, q, n, mono_ms() - t0, &already);
        atomic_fetch_add(&J.retried, unsure);
        atomic_fetch_add(&J.retry_found, already);
        log_info("accept: %zu of a batch of %zu went unanswered (%s); sent again on a fresh "
                 "connection: %zu were already in Redis, %zu added, %zu refused",
                 unsure, n,
                 rc    ? "connection lost"
                 : err ? err
                       : "redis unavailable",
                 already, ok - already, unsure - ok);
        free(err);
        err = NULL;
    }
    if (sent) {
        i = 0;
        for (struct jent *e = list; e; e = e->next, i++)
            e->err = q[i].err; /* taken over */
        if (rc && rc->err)
            srv_redis_broken();
        atomic_fetch_add(&J.accept_batches, 1);
        atomic_fetch_add(&J.accepts, n);
    }
    free(q);
}

/* A sync call Redis did not take: the caller hears it through the pending
 * table (the dispatcher may have claimed it meanwhile: then it answers). */
static void fail_sync(struct jent *list)
{
    for (struct jent *e = list; e; e = e->next) {
        if (!e->sync || !e->err)
            continue;
        metrics_call(&S.metrics, CO_ENQUEUE_ERROR);
        char msg[600];
        snprintf(msg, sizeof msg, "cannot enqueue the task: %s", e->err);
        pending_fail(e->t.id, json_pack("{s:s,s:s,s:s,s:s}", "id", e->t.id, "status", "failure",
                                        "reason", "EBackend", "message", msg));
    }
}

static MYSQL *jdb(void)
{
    if (J.db || mono_ms() < J.retry_at)
        return J.db;
    char *err = NULL;
    J.db = db_connect(&S.conf, 2, &err);
    if (!J.db) {
        if (!J.warned)
            log_warnx("journal: %s; async calls are accepted without an accept record (Redis "
                      "alone holds them) until MariaDB is back",
                      err ? err : "mariadb unavailable");
        J.warned = true;
        J.retry_at = mono_ms() + JOURNAL_RETRY_MS;
    } else if (J.warned) {
        log_info("journal: mariadb is back; accept records are written again");
        J.warned = false;
    }
    free(err);
    return J.db;
}

/* Step 2: the accept records of what Redis took. */
static void write_batch(struct jent *list)
{
    size_t n = 0;
    for (struct jent *e = list; e; e = e->next)
        n += e->err == NULL && !e->sync;
    if (n == 0)
        return;
    struct journal_row *rows = calloc(n, sizeof *rows);
    if (!rows || !jdb()) {
        free(rows);
        atomic_fetch_add(&J.unjournaled, n);
        return;
    }
    size_t i = 0;
    for (struct jent *e = list; e; e = e->next)
        if (e->err == NULL && !e->sync)
            rows[i++] = (struct journal_row){e->t.id, e->t.queue, e->msg, e->t.enq_ms};
    char *err = NULL;
    size_t done = journal_write(J.db, rows, n, &err);
    free(rows);
    atomic_fetch_add(&J.rows, done);
    atomic_fetch_add(&J.batches, 1);
    if (done < n) {
        log_warnx("journal: INSERT of %zu accept records: %s; those tasks are in Redis without "
                  "an accept record",
                  n - done, err ? err : "?");
        free(err);
        atomic_fetch_add(&J.unjournaled, n - done);
        /* start over on a fresh connection */
        mysql_close(J.db);
        J.db = NULL;
    }
}

static void *journal_main(void *arg)
{
    (void)arg;
    mysql_thread_init();
    for (;;) {
        pthread_mutex_lock(&J.mu);
        while (!J.head && !J.stopping)
            pthread_cond_wait(&J.cv, &J.mu);
        struct jent *list = J.head;
        J.head = NULL;
        J.tail = &J.head;
        bool stop = J.stopping;
        pthread_mutex_unlock(&J.mu);
        if (list) {
            size_t n = 0;
            for (struct jent *e = list; e; e = e->next)
                n++;
            enqueue_batch(list, n);
            fail_sync(list);
            if (J.journal)
                write_batch(list);
            resume_all(list);
        } else if (stop) {
            break;
        }
    }
    if (J.db)
        mysql_close(J.db);
    J.db = NULL;
    srv_redis_broken(); /* this thread's connection */
    mysql_thread_end();
    return NULL;
}

int journal_start(void)
{
    J.tail = &J.head;
    J.journal = S.conf.accept_journal;
    const char *cut = getenv("TANDEM_TEST_ENQUEUE_CUT");
    if (cut && strcmp(cut, "1") == 0) {
        log_warnx("journal: TANDEM_TEST_ENQUEUE_CUT=1: every enqueue batch loses its "
                  "connection halfway (a test setting, never for production)");
        task_test_cut_arm(true);
    }
    if (!J.journal)
        log_info("journal: server.accept_journal = false: async calls are not journaled");
    if (pthread_create(&J.th, NULL, journal_main, NULL) != 0)
        return -1;
    J.running = true;
    return 0;
}

/* After the HTTP side stopped handing rows over: writes what is left. */
void journal_stop(void)
{
    if (!J.running)
        return;
    pthread_mutex_lock(&J.mu);
    J.stopping = true;
    pthread_cond_signal(&J.cv);
    pthread_mutex_unlock(&J.mu);
    pthread_join(J.th, NULL);
    J.running = false;
}
