/* Task-record retention: the keeper trims task_record by age and by a count
 * per origin (DFF keeps the newest N records of each Sync API, Async API,
 * cron job and directly called func), in small batches on its own MariaDB
 * connection, so the table levels off under sustained load and the record
 * writer is never blocked for long. Runs only where the stack runs: on the
 * primary. */
#ifndef TANDEM_WORKER_PURGE_H
#define TANDEM_WORKER_PURGE_H

#include <stdbool.h>
#include <stdint.h>
#include <hiredis.h>

#include "config.h"

struct purge;

/* NULL when retention is off entirely (every cap and the age limit 0). */
struct purge *purge_new(const struct tconf *c);
void purge_free(struct purge *p);

/* Does a bounded amount of work (a few statements, at most about
 * PURGE_BUDGET_MS) and returns the monotonic ms at which it wants to run
 * again: soon while it is behind, later when the table is within bounds.
 * rc (may be NULL) receives the counters in Pstats:purge. Never blocks on a
 * dead MariaDB longer than its connect timeout; errors are logged and
 * retried with backoff. */
int64_t purge_tick(struct purge *p, redisContext *rc, int64_t now_mono);

/* The count cap for an origin name ("sync-api", "cron", ...); 0 = none. */
int purge_cap_for(const struct tconf *c, const char *origin);

/* Counters, for tests and the keeper's log. */
struct purge_stats {
    int64_t deleted_total; /* rows deleted since start */
    int64_t deleted_age;   /* of which by age */
    int64_t statements;    /* DELETE statements run */
    int64_t last_run_ms;   /* wall ms of the last statement */
    int64_t keys_pending;  /* origins waiting to be trimmed */
    int64_t busy_us;       /* wall time spent in purge statements since start */
    /* The last completed pass (from the first DELETE until every origin is
     * within its cap and nothing is past the age limit): */
    int64_t last_pass_end_ms; /* wall ms it ended; 0 = none yet */
    int64_t last_pass_rows;   /* rows it deleted */
    int64_t last_pass_us;     /* wall time its ticks took */
    /* task_record's size, from information_schema (an InnoDB estimate, not a
     * COUNT(*)), refreshed every PURGE_TABLE_EVERY_MS; -1 = not read yet. */
    int64_t table_rows_est;
    int64_t table_bytes;
};
void purge_stats(const struct purge *p, struct purge_stats *out);

#endif
