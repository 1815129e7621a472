#ifndef TANDEM_CLOCK_H
#define TANDEM_CLOCK_H

#include <stdint.h>
#include <stddef.h>

int64_t now_ms(void);  /* CLOCK_REALTIME, ms since the epoch */
int64_t mono_ms(void); /* CLOCK_MONOTONIC, ms */
/* ms since the epoch -> "2026-11-27T23:59:01.123Z"; returns buf. */
char *iso8601_ms(int64_t ms, char *buf, size_t n);
/* ms since the epoch -> "2026-11-27 23:59:01.123" (UTC) for MariaDB DATETIME(3). */
char *sql_datetime_ms(int64_t ms, char *buf, size_t n);

#endif
