/* The accept journal: every async task the server accepts is also written
 * to MariaDB (task_accept, migration 010) before its caller gets the id, so
 * a Redis that comes back from an older snapshot cannot make an accepted
 * task vanish: the worker's keeper (worker_reconcile.c) finds journal rows
 * neither recorded in task_record nor present in Redis and queues them
 * again, or records them lost.
 *
 * Async accept is a hot path, so the rows are group-committed: HTTP
 * threads never wait. srv_call enqueues the task in Redis, hands the row to
 * this file and suspends the connection (its answer is already built); one
 * journal thread writes everything handed over since its last statement in
 * one multi-row INSERT (autocommit: one fsync per batch, however many rows)
 * and then resumes those connections. While the thread writes, the next
 * batch gathers, so a busier server writes bigger batches, not more.
 *
 * MariaDB down: the journal cannot hold up every async call for the length
 * of an outage (the task is already in Redis, which keeps it with its AOF);
 * the callers are answered at once, the rows counted as unjournaled and the
 * connection retried at most once a second. Only a Redis restored from an
 * older snapshot *during* a MariaDB outage can then still lose a task. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>

#include "clock.h"
#include "db.h"
#include "journal.h"
#include "log.h"
#include "server_int.h"

#define JOURNAL_RETRY_MS 1000

struct jent {
    struct jent *next;
    struct srv_req *r; /* NULL: nobody waits (no connection to resume) */
    char id[ID_MAX];
    char queue[16];
    int64_t accepted_ms;
    char *task; /* task JSON as enqueued */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct jent *head, **tail;
    bool running, stopping;
    pthread_t th;
    MYSQL *db;
    int64_t retry_at; /* mono ms: no connect attempt before */
    bool warned;
    atomic_ulong rows, batches, unjournaled;
} J = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void journal_done(struct srv_req *r, json_t *outcome, void *ud)
{
    (void)outcome;
    (void)ud;
    /* the handler answered before it returned; this runs only if it did not */
    if (!r->answered)
        req_err(r, 500, "EServerInternal", NULL, "accepted task %s: no answer was built",
                r->task_id);
}

bool journal_on(void)
{
    return J.running;
}

void journal_counts(unsigned long *rows, unsigned long *batches, unsigned long *unjournaled)
{
    *rows = atomic_load(&J.rows);
    *batches = atomic_load(&J.batches);
    *unjournaled = atomic_load(&J.unjournaled);
}

void journal_accept(struct srv_req *r, const struct task *t)
{
    if (!J.running)
        return;
    struct jent *e = calloc(1, sizeof *e);
    char *s = e ? task_encode(t) : NULL;
    if (!s) {
        free(e);
        atomic_fetch_add(&J.unjournaled, 1);
        log_warnx("journal: task %s: out of memory, accepted without an accept record", t->id);
        return;
    }
    e->task = s;
    snprintf(e->id, sizeof e->id, "%s", t->id);
    snprintf(e->queue, sizeof e->queue, "%s", t->queue);
    e->accepted_ms = t->enq_ms;
    pthread_mutex_lock(&J.mu);
    if (r && r->conn && !r->suspended) {
        /* the caller's answer goes out when the row is committed: the
         * journal thread takes e only after this, so its resume comes after
         * the suspend */
        e->r = r;
        snprintf(r->task_id, sizeof r->task_id, "%s", t->id);
        r->done = journal_done;
        r->done_ud = NULL;
        r->outcome = NULL;
        r->suspended = true;
        r->state = RS_SUSPENDED;
        MHD_suspend_connection(r->conn);
    }
    *J.tail = e;
    J.tail = &e->next;
    pthread_cond_signal(&J.cv);
    pthread_mutex_unlock(&J.mu);
}

static void resume_all(struct jent *list)
{
    while (list) {
        struct jent *e = list;
        list = e->next;
        if (e->r)
            MHD_resume_connection(e->r->conn);
        free(e->task);
        free(e);
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

static void write_batch(struct jent *list)
{
    size_t n = 0;
    for (struct jent *e = list; e; e = e->next)
        n++;
    struct journal_row *rows = calloc(n, sizeof *rows);
    if (!rows || !jdb()) {
        free(rows);
        atomic_fetch_add(&J.unjournaled, n);
        return;
    }
    size_t i = 0;
    for (struct jent *e = list; e; e = e->next, i++)
        rows[i] = (struct journal_row){e->id, e->queue, e->task, e->accepted_ms};
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
            write_batch(list);
            resume_all(list);
        } else if (stop) {
            break;
        }
    }
    if (J.db)
        mysql_close(J.db);
    J.db = NULL;
    mysql_thread_end();
    return NULL;
}

int journal_start(void)
{
    J.tail = &J.head;
    if (!S.conf.accept_journal) {
        log_info("journal: server.accept_journal = false: async calls are not journaled");
        return 0;
    }
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
