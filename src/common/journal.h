/* The accept journal's rows (MariaDB task_accept, migration 010): what the
 * server (async calls) and beat (cron fires) write for every task they put
 * on a queue, so a Redis restored from an older snapshot loses none of them
 * (worker_reconcile.c). See docs/INTERNALS.md. */
#ifndef TANDEM_JOURNAL_H
#define TANDEM_JOURNAL_H

#include <mysql.h>
#include <stddef.h>
#include <stdint.h>

struct journal_row {
    const char *id, *queue, *task; /* task: the task JSON as enqueued */
    int64_t accepted_ms;
};

/* One statement of at most JOURNAL_STMT_BYTES (a bigger row alone), so it
 * stays under max_allowed_packet (MariaDB's smallest default is 1 MiB). */
#define JOURNAL_STMT_BYTES (768 * 1024)

/* Rows [0, *n) that fit one statement: *n is lowered to how many it took.
 * Returns the malloc'd INSERT IGNORE (a replay adds nothing) and *len, or
 * NULL (out of memory). */
char *journal_insert_sql(MYSQL *m, const struct journal_row *rows, size_t *n, size_t *len);

/* Writes all rows, statement by statement. Returns the rows written; on a
 * failure stops and sets *err (malloc'd; the connection may be dead). */
size_t journal_write(MYSQL *m, const struct journal_row *rows, size_t n, char **err);

#endif
