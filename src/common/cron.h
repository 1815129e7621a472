/* The cron engine: parse an expression, compute the next fire time in an
 * IANA time zone. Pure logic, no I/O except reading the zone's TZif file.
 *
 * Expressions: 5 fields "min hour dom mon dow", or 6 with a leading seconds
 * field; each field a comma list of "*", "N", "A-B", each with an optional
 * step "/S" ("A/S" means A-max/S); month and weekday names
 * (JAN..DEC, SUN..SAT, any case); weekday 0-7 (0 and 7 are Sunday; a
 * weekday range may end on Sunday written 0 or SUN: "FRI-SUN"); any step of
 * 1 or more; "L" in day-of-month for the month's last day ("10-L" is
 * 10-31, as croniter); in day-of-week "D#N" (the Nth weekday D of the
 * month) and "LD" (the last one), with croniter's rules; macros @yearly @annually @monthly @weekly
 * @daily @midnight
 * @hourly (Tandem's; DFF refuses them). The 5-field form means exactly what
 * it means in DataFlux Func, whose engine is croniter (day_or=True):
 *  - When both day-of-month and day-of-week restrict the day, a day matches
 *    if EITHER does; when one names every value (however written: "*",
 *    "1-31", "0-6", "*" plus a step of 1) only the other counts. So
 *    "0 0 5 * *" with day-of-week a step like "*" "/3" (Sun, Wed, Sat) is
 *    the 5th OR those weekdays, not Vixie cron's AND.
 *  - Time zones and daylight saving time: DFF checks every tick whether the
 *    tick's local wall-clock time matches. So a local time that a
 *    spring-forward skips never fires (02:30 in Europe/Berlin on the last
 *    Sunday of March: no fire that day), and one that a fall-back repeats
 *    fires at both occurrences (02:30 twice on the last Sunday of October).
 *    The 6-field seconds form (Tandem's extension) follows the same rule.
 * tests/integration/test_cron_croniter.py checks this against croniter over
 * thousands of generated expressions and zones.
 *
 * Time zones are read from the system tz database (TZif files under $TZDIR
 * or /usr/share/zoneinfo, including the POSIX rule in the footer for times
 * past the last listed transition) by our own reader, never through TZ and
 * localtime(): the server is multi-threaded and setenv("TZ") would race.
 * A slot is identified by its instant (unix seconds); that is the nominal
 * time of a fire. */
#ifndef TANDEM_CRON_H
#define TANDEM_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRON_EXPR_MAX 128
/* cron_next() gives up (returns -1) past this many years ahead: an
 * expression that matches no day in that long is treated as never firing. */
#define CRON_SEARCH_YEARS 10
/* cron_next() answers -1 for `after` beyond +-2^40 s (about 35,000 years). */
#define CRON_TIME_LIMIT (INT64_C(1) << 40)

struct cron_expr {
    uint64_t sec;     /* bit s set: second s (0..59) matches */
    uint64_t min;     /* bits 0..59 */
    uint32_t hour;    /* bits 0..23 */
    uint32_t dom;     /* bits 1..31; bit 0: "L", the month's last day */
    uint16_t mon;     /* bits 1..12 */
    uint8_t dow;      /* bits 0..6, Sunday = 0 */
    bool dom_all;     /* day-of-month names every day 1..31: does not restrict */
    bool dow_all;     /* day-of-week names every weekday: does not restrict */
    bool has_nth;     /* day-of-week has croniter "#"/"L" items */
    uint8_t nth[8];   /* per weekday 0..7: bit n-1 = "D#n", 0x20 = "LD" (last) */
    bool has_seconds; /* 6-field form */
    char text[CRON_EXPR_MAX];
};

/* Parse text. 0 on success; -1 with *err (malloc'd) naming the field and the
 * reason, e.g. "hour field \"25\": value 25 out of range 0-23". Also refuses
 * expressions that can never fire (e.g. "0 0 30 2 *"). */
int cron_parse(struct cron_expr *e, const char *text, char **err);

/* A loaded time zone. Immutable after load: share it between threads. */
struct cron_tz;

/* name: IANA name ("Europe/Berlin", "UTC"). NULL with *err (malloc'd) if the
 * name is malformed or not in the tz database. */
struct cron_tz *cron_tz_load(const char *name, char **err);
void cron_tz_free(struct cron_tz *tz);
const char *cron_tz_name(const struct cron_tz *tz);
/* Offset of local time from UTC at instant t (seconds east). */
int cron_tz_offset(const struct cron_tz *tz, int64_t t);

/* The first fire instant strictly after `after` (unix seconds), or -1 if
 * there is none within CRON_SEARCH_YEARS. */
int64_t cron_next(const struct cron_expr *e, const struct cron_tz *tz, int64_t after);

/* "2026-03-29T03:00:00+02:00" for instant t in tz. Returns buf. */
char *cron_format(int64_t t, const struct cron_tz *tz, char *buf, size_t n);

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the instants
 * cron_parse_time() accepts (so that * 1000 cannot overflow). */
#define CRON_TIME_MIN INT64_C(-62135596800)
#define CRON_TIME_MAX INT64_C(253402300799)

/* Parse "YYYY-MM-DDTHH:MM[:SS[.fff]][Z|+HH:MM|-HH:MM]" (a space may replace
 * 'T'), or "@UNIXSECONDS" within CRON_TIME_MIN..CRON_TIME_MAX. Without an offset the time is local
 * to tz (its first occurrence; a skipped time means the instant after the gap). 0 with *out (unix
 * seconds, fraction dropped), or -1 with *err. */
int cron_parse_time(const char *s, const struct cron_tz *tz, int64_t *out, char **err);

/* Civil-date helpers, exposed for tests: days since 1970-01-01. */
int64_t cron_days_from_civil(int64_t y, unsigned m, unsigned d);
void cron_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif
