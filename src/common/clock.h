#ifndef TANDEM_CLOCK_H
#define TANDEM_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>

/* Two clocks, two meanings. now_ms() is the wall clock: cron slots, record
 * timestamps, eta/expires, DFF's fields. mono_ms() measures elapsed time:
 * every timeout, sleep, interval and "age" of something this process saw,
 * so that a step of the wall clock (NTP, an operator's date -s) neither
 * fires a timeout early nor stretches a sleep (tests/drills: clock-step). */
int64_t now_ms(void);  /* CLOCK_REALTIME, ms since the epoch */
int64_t mono_ms(void); /* CLOCK_MONOTONIC, ms */
/* Condition variables waited on with a timeout use CLOCK_MONOTONIC:
 * pthread_cond_init with this clock (returns pthread's error code), and
 * mono_deadline() for the absolute timeout `ms` from now. */
int cond_init_mono(pthread_cond_t *cv);
void mono_deadline(struct timespec *ts, int64_t ms);
/* Sleeps `ms` on CLOCK_MONOTONIC (relative: a wall-clock step changes
 * nothing); returns early on a signal. */
void mono_sleep_ms(int64_t ms);
/* ms since the epoch -> "2026-11-27T23:59:01.123Z"; returns buf. */
char *iso8601_ms(int64_t ms, char *buf, size_t n);
/* ms since the epoch -> "2026-11-27 23:59:01.123" (UTC) for MariaDB DATETIME(3). */
char *sql_datetime_ms(int64_t ms, char *buf, size_t n);

#endif
