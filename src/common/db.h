/* Thin helpers over mariadb-connector-c. One MYSQL* per thread. */
#ifndef TANDEM_DB_H
#define TANDEM_DB_H

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>
#include "config.h"

/* Connect with utf8mb4, UTC session time zone, autocommit, reconnect off,
 * connect/read/write timeouts of timeout_s. NULL and *err on failure. */
MYSQL *db_connect(const struct tconf *c, int timeout_s, char **err);
/* With mysql.hosts, the first server in order whose read_only is off. */
/* One given server of mysql.hosts ("host:port"), whatever its read_only
 * (tandemctl's topology report asks each). NULL and *err on failure. */
MYSQL *db_connect_host(const struct tconf *c, const char *hostport, int timeout_s, char **err);

/* A statement failed because the server became read_only (the primary was
 * switched): drop the connection and db_connect() again. */
bool db_is_readonly_error(unsigned int code);

/* Run one statement built with printf-style fmt. Use db_q() for every value
 * that came from outside. Returns 0, or -1 and *err (malloc'd, includes the
 * MariaDB error text) if err is non-NULL. Result sets are discarded. */
int db_exec(MYSQL *m, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Run a query and return its result (mysql_store_result); NULL on error with *err. */
MYSQL_RES *db_query(MYSQL *m, char **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quote a value as an SQL literal: 'escaped' or NULL for s == NULL.
 * Returns a malloc'd string the caller frees. */
char *db_q(MYSQL *m, const char *s);
char *db_qn(MYSQL *m, const char *s, size_t len);
/* head followed by "('a','b',...)": the n strings of ids (NULL ones
 * skipped) quoted as an SQL list, for "... WHERE id IN " + list. Malloc'd,
 * its length in *len; NULL when out of memory or when no id is left (an
 * empty IN () is not SQL). */
char *db_in_list(MYSQL *m, const char *head, const char *const *ids, size_t n, size_t *len);

/* Apply every migrations/NNN_name.sql in dir not yet in schema_migrations,
 * in order, under GET_LOCK('tandem_migrate') so two nodes running it at once
 * are safe. Idempotent. *applied = number applied now. 0 or -1 with *err.
 * GET_LOCK waits up to 60 s, so connect with timeout_s > 60 for migrating.
 * A failing statement is reported as "FILE:LINE: MariaDB error"; the
 * migrations before it stay applied and recorded. */
int db_migrate(MYSQL *m, const char *dir, int *applied, char **err);

/* Newest migration version in dir and in the database (for doctor/health). */
int db_migrations_pending(MYSQL *m, const char *dir, int *pending, char **err);

#endif
