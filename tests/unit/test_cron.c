/* The cron engine: parsing with field+reason errors, next fire times in
 * time zones across DST days and leap years. Expected instants were checked
 * against Python's zoneinfo and against croniter.match() as DataFlux Func
 * calls it (tests/integration/test_cron_croniter.py does that at scale). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cron.h"

static int64_t T(const char *iso)
{
    int64_t t;
    char *err = NULL;
    if (cron_parse_time(iso, NULL, &t, &err)) {
        fprintf(stderr, "bad test time %s: %s\n", iso, err);
        free(err);
        abort();
    }
    return t;
}

/* Checks that the fires after `from` are exactly want[] (ISO with offset). */
static void expect_fires(const char *expr, const char *zone, const char *from, const char **want,
                         int n)
{
    struct cron_expr e;
    char *err = NULL;
    if (cron_parse(&e, expr, &err)) {
        fprintf(stderr, "parse %s: %s\n", expr, err);
        fail();
    }
    struct cron_tz *tz = cron_tz_load(zone, &err);
    assert_non_null(tz);
    int64_t t = T(from);
    for (int i = 0; i < n; i++) {
        t = cron_next(&e, tz, t);
        char buf[64];
        cron_format(t, tz, buf, sizeof buf);
        if (strcmp(buf, want[i]) != 0)
            fprintf(stderr, "%s in %s after %s: fire %d is %s, want %s\n", expr, zone, from, i, buf,
                    want[i]);
        assert_string_equal(buf, want[i]);
    }
    cron_tz_free(tz);
}

static void expect_refused(const char *expr, const char *part1, const char *part2)
{
    struct cron_expr e;
    char *err = NULL;
    assert_int_equal(cron_parse(&e, expr, &err), -1);
    assert_non_null(err);
    if (!strstr(err, part1) || (part2 && !strstr(err, part2)))
        fprintf(stderr, "%s: error \"%s\" lacks \"%s\"/\"%s\"\n", expr, err, part1,
                part2 ? part2 : "");
    assert_non_null(strstr(err, part1));
    if (part2)
        assert_non_null(strstr(err, part2));
    free(err);
}

static void test_cron_bad_expressions_name_field_and_reason(void **state)
{
    (void)state;
    expect_refused("61 * * * *", "minute field", "out of range 0-59");
    expect_refused("* 24 * * *", "hour field", "out of range 0-23");
    expect_refused("* * 0 * *", "day-of-month field", "out of range 1-31");
    expect_refused("* * * 13 *", "month field", "out of range 1-12");
    expect_refused("* * * * 8", "day-of-week field", "out of range 0-7");
    expect_refused("60 * * * * *", "second field", "out of range 0-59");
    expect_refused("* * *", "expected 5 fields", "got 3");
    expect_refused("* * * * * * *", "expected 5 fields", "got 7");
    expect_refused("", "expected 5 fields", "got 0");
    expect_refused("* * * FOO *", "month field", "unknown name \"FOO\"");
    expect_refused("* * * * FUNDAY", "day-of-week field", "unknown name");
    expect_refused("*/0 * * * *", "minute field", "step 0");
    expect_refused("1-5/00 * * * *", "minute field", "step 0");
    expect_refused("*/ * * * *", "minute field", "needs a number");
    expect_refused("5-1 * * * *", "minute field", "runs backwards");
    expect_refused("0 0 * * FRI-MON", "day-of-week field", "runs backwards");
    expect_refused("1,,2 * * * *", "minute field", "missing");
    expect_refused("x * * * *", "minute field", "unexpected 'x'");
    expect_refused("* * L/2 * *", "day-of-month field", "unexpected 'L'");
    expect_refused("* * LW * *", "day-of-month field", "not W, ?, H or R");
    expect_refused("* * L-5 * *", "day-of-month field", "not W, ?, H or R");
    expect_refused("L * * * *", "minute field", "not W, ?, H or R");
    expect_refused("0 0 * * 5#6", "day-of-week field", "week number 1-5");
    expect_refused("0 0 * * 5#2,1", "day-of-week field", "cannot be mixed");
    expect_refused("0 0 13 * L5", "day-of-week field", "never fire");
    expect_refused("0 0 * * L", "day-of-week field", "not W, ?, H or R");
    expect_refused("H * * * *", "minute field", "not W, ?, H or R");
    expect_refused("@reboot", "unknown macro", "@reboot");
    expect_refused("0 0 30 2 *", "day-of-month field", "never fire");
    expect_refused("0 0 31 4,6,9,11 *", "day-of-month field", "never fire");
    /* Either day field may match, but croniter gives up on a day-of-month
     * that never occurs, so DFF never fires this either. */
    expect_refused("0 0 31 6 SUN", "day-of-month field", "never fire");
    expect_refused(NULL, "missing", NULL);
}

static void test_cron_good_expressions_parse(void **state)
{
    (void)state;
    const char *ok[] = {"* * * * *",      "*/5 * * * *",     "0 9-17/2 * * MON-FRI",
                        "0 0 1,15 * *",   "0 0 * JAN,jul *", "30 4 1 * 0,7",
                        "*/10 * * * * *", "@hourly",         "@DAILY",
                        "@weekly",        "@monthly",        "@yearly",
                        "@annually",      "@midnight",       "  0  0  29  2  *  ",
                        "5/20 * * * *",   "0 0 * * SUN-SAT", "0 0 31 * *",
                        "*/100 * * * *",  "0 0 * * FRI-SUN", "0 0 * * 5-0",
                        "0 0 * * 0-7",    "1/0005 * * * *"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct cron_expr e;
        char *err = NULL;
        if (cron_parse(&e, ok[i], &err))
            fprintf(stderr, "%s: %s\n", ok[i], err);
        assert_int_equal(cron_parse(&e, ok[i], &err), 0);
    }
    struct cron_expr e;
    assert_int_equal(cron_parse(&e, "5/20 * * * *", NULL), 0);
    assert_true(e.min == ((1ULL << 5) | (1ULL << 25) | (1ULL << 45)));
    assert_int_equal(cron_parse(&e, "0 0 * * 7", NULL), 0);
    assert_int_equal(e.dow, 1); /* 7 is Sunday */
    assert_int_equal(cron_parse(&e, "*/100 * * * *", NULL), 0);
    assert_true(e.min == 1); /* a step past the range leaves the start */
    assert_int_equal(cron_parse(&e, "0 0 * * FRI-SUN", NULL), 0);
    assert_int_equal(e.dow, (1 << 5) | (1 << 6) | 1);
}

static void test_cron_utc_basics(void **state)
{
    (void)state;
    const char *a[] = {"2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00",
                       "2026-01-01T00:45:00+00:00", "2026-01-01T01:00:00+00:00"};
    expect_fires("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z", a, 4);
    const char *b[] = {"2026-01-01T00:07:10+00:00", "2026-01-01T00:07:20+00:00"};
    expect_fires("*/10 * * * * *", "UTC", "2026-01-01T00:07:00Z", b, 2);
    /* Strictly after: a time exactly on a slot gives the next one. */
    const char *c[] = {"2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"};
    expect_fires("@hourly", "UTC", "2026-01-01T00:00:00Z", c, 2);
    /* Month and weekday names; 2026-01-01 is a Thursday. */
    const char *d[] = {"2026-01-01T09:00:00+00:00", "2026-01-02T09:00:00+00:00",
                       "2026-01-05T09:00:00+00:00", "2026-07-01T09:00:00+00:00"};
    const char *d4[] = {d[0], d[1], d[2]};
    expect_fires("0 9 * JAN,JUL MON-FRI", "UTC", "2026-01-01T08:00:00Z", d4, 3);
    const char *e[] = {"2026-07-01T09:00:00+00:00"};
    expect_fires("0 9 * JAN,JUL MON-FRI", "UTC", "2026-01-31T10:00:00Z", e, 1);
    const char *f[] = {"2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"};
    expect_fires("@yearly", "UTC", "2026-05-05T00:00:00Z", f, 2);
    const char *g[] = {"2026-01-31T00:00:00+00:00", "2026-03-31T00:00:00+00:00",
                       "2026-05-31T00:00:00+00:00"};
    expect_fires("0 0 31 * *", "UTC", "2026-01-01T00:00:00Z", g, 3);
}

static void test_cron_dom_dow_or_semantics_as_croniter(void **state)
{
    (void)state;
    /* Both restricted: the 13th OR any Friday. */
    const char *a[] = {"2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00",
                       "2026-01-13T00:00:00+00:00", "2026-01-16T00:00:00+00:00"};
    expect_fires("0 0 13 * FRI", "UTC", "2026-01-01T00:00:00Z", a, 4);
    /* A step restricts too, leading '*' or not (Vixie cron would AND here):
     * odd days OR Mondays. 2026-01-01 is a Thursday. */
    const char *b[] = {"2026-01-01T00:00:00+00:00", "2026-01-03T00:00:00+00:00",
                       "2026-01-05T00:00:00+00:00", "2026-01-07T00:00:00+00:00",
                       "2026-01-09T00:00:00+00:00", "2026-01-11T00:00:00+00:00",
                       "2026-01-12T00:00:00+00:00"};
    expect_fires("0 0 */2 * MON", "UTC", "2025-12-31T12:00:00Z", b, 7);
    /* Issue 8's example: the 5th OR Sun/Wed/Sat ("*" step 3 is 0,3,6). */
    const char *c[] = {"2026-01-03T16:00:00+00:00", "2026-01-03T16:18:00+00:00",
                       "2026-01-03T16:36:00+00:00", "2026-01-03T16:54:00+00:00",
                       "2026-01-03T17:00:00+00:00"};
    expect_fires("*/18 16-19 5 * */3", "UTC", "2026-01-01T00:00:00Z", c, 5);
    /* A field naming every value does not restrict: AND, i.e. the other
     * field alone. "1-7" is every weekday to croniter. */
    const char *d[] = {"2026-01-13T00:00:00+00:00", "2026-02-13T00:00:00+00:00"};
    expect_fires("0 0 13 * 1-7", "UTC", "2026-01-01T00:00:00Z", d, 2);
    expect_fires("0 0 13 * SUN-SAT", "UTC", "2026-01-01T00:00:00Z", d, 2);
    const char *e2[] = {"2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00"};
    expect_fires("0 0 1-31 * FRI", "UTC", "2026-01-01T00:00:00Z", e2, 2);
    /* ...but "0-7" is eight values to croniter, so it restricts: the 13th
     * OR any day, i.e. every day. */
    const char *f[] = {"2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"};
    expect_fires("0 0 13 * 0-7", "UTC", "2026-01-01T00:00:00Z", f, 2);
}

static void test_cron_last_day_of_month(void **state)
{
    (void)state;
    const char *a[] = {"2028-01-31T00:00:00+00:00", "2028-02-29T00:00:00+00:00",
                       "2028-03-31T00:00:00+00:00", "2028-04-30T00:00:00+00:00"};
    expect_fires("0 0 L * *", "UTC", "2028-01-01T00:00:00Z", a, 4);
    expect_fires("0 0 l * *", "UTC", "2028-01-01T00:00:00Z", a, 4);
    /* "28-L" is 28-31 (croniter), plus L itself changes nothing. */
    const char *b[] = {"2027-02-28T00:00:00+00:00", "2027-03-28T00:00:00+00:00",
                       "2027-03-29T00:00:00+00:00"};
    expect_fires("0 0 28-L,L * *", "UTC", "2027-02-01T00:00:00Z", b, 3);
    /* L OR Monday; 2026-02-28 is a Saturday. */
    const char *c[] = {"2026-02-16T00:00:00+00:00", "2026-02-23T00:00:00+00:00",
                       "2026-02-28T00:00:00+00:00", "2027-02-01T00:00:00+00:00"};
    expect_fires("0 0 L 2 MON", "UTC", "2026-02-10T00:00:00Z", c, 4);
    struct cron_expr e;
    assert_int_equal(cron_parse(&e, "0 0 1-31,L * *", NULL), 0);
    assert_false(e.dom_all); /* 32 items to croniter: restricts */
    assert_int_equal(cron_parse(&e, "0 0 *,L * *", NULL), 0);
    assert_true(e.dom_all);
}

static void test_cron_nth_and_last_weekday_as_croniter(void **state)
{
    (void)state;
    /* The 2nd Friday; 2026-01-09, 02-13, 03-13. */
    const char *a[] = {"2026-01-09T00:00:00+00:00", "2026-02-13T00:00:00+00:00",
                       "2026-03-13T00:00:00+00:00"};
    expect_fires("0 0 * * 5#2", "UTC", "2026-01-01T00:00:00Z", a, 3);
    expect_fires("0 0 * * fri#2", "UTC", "2026-01-01T00:00:00Z", a, 3);
    /* croniter: with day-of-month restricted too, only the weekday counts
     * (as long as the two coincide some day, here 2026-02-13). */
    expect_fires("0 0 13 * 5#2", "UTC", "2026-01-01T00:00:00Z", a, 3);
    /* The last Friday; the 5th Friday only in months that have one. */
    const char *b[] = {"2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00"};
    expect_fires("0 0 * * L5", "UTC", "2026-01-01T00:00:00Z", b, 2);
    const char *c[] = {"2026-01-30T00:00:00+00:00", "2026-05-29T00:00:00+00:00"};
    expect_fires("0 0 * * 5#5", "UTC", "2026-01-01T00:00:00Z", c, 2);
    /* A plain weekday beside the same weekday's "#" adds nothing. */
    expect_fires("0 0 * * 5,5#2", "UTC", "2026-01-01T00:00:00Z", a, 3);
}

static void test_cron_leap_years_feb_29(void **state)
{
    (void)state;
    const char *a[] = {"2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00",
                       "2036-02-29T00:00:00+00:00"};
    expect_fires("0 0 29 2 *", "UTC", "2025-03-01T00:00:00Z", a, 3);
    /* 2100 is not a leap year: 2096 then 2104. */
    const char *b[] = {"2096-02-29T00:00:00+00:00", "2104-02-29T00:00:00+00:00"};
    expect_fires("0 0 29 2 *", "UTC", "2095-01-01T00:00:00Z", b, 2);
    /* Last days of February around a leap year. */
    const char *c[] = {"2028-02-28T12:00:00+00:00", "2028-02-29T12:00:00+00:00",
                       "2028-03-01T12:00:00+00:00"};
    expect_fires("0 12 * * *", "UTC", "2028-02-28T00:00:00Z", c, 3);
    /* Feb 29 OR Monday (both restricted), February only: 2028-02-28 is a
     * Monday, then Feb 29 itself (a Tuesday), then the next February. */
    const char *d[] = {"2028-02-07T00:00:00+00:00", "2028-02-14T00:00:00+00:00",
                       "2028-02-21T00:00:00+00:00", "2028-02-28T00:00:00+00:00",
                       "2028-02-29T00:00:00+00:00", "2029-02-05T00:00:00+00:00"};
    expect_fires("0 0 29 2 MON", "UTC", "2028-02-01T00:00:00Z", d, 6);
    /* Day 31 OR Monday in February: croniter gives up on Feb 31 and DFF
     * never fires it, so Tandem refuses it. */
    expect_refused("0 0 31 2 MON", "day-of-month field", "never fire");
    assert_int_equal(cron_days_from_civil(2000, 3, 1) - cron_days_from_civil(2000, 2, 28), 2);
    assert_int_equal(cron_days_from_civil(1900 + 200, 3, 1) - cron_days_from_civil(2100, 2, 28), 1);
}

/* DST as DFF: croniter.match() on each tick's local wall-clock time, so a
 * skipped local time never fires and a repeated one fires twice (Tandem
 * used cronie's rules before issue 8: fire skipped fixed-hour slots after
 * the gap, repeated ones once). */
static void test_cron_berlin_spring_forward_skips_the_gap_as_dff(void **state)
{
    (void)state;
    /* 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z): no 02:30 that day. */
    const char *a[] = {"2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00",
                       "2026-03-31T02:30:00+02:00"};
    expect_fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", a, 3);
    /* Fixed hours 1-3, every 30 minutes: 02:00 and 02:30 do not exist. */
    const char *b2[] = {"2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00",
                        "2026-03-29T03:30:00+02:00"};
    expect_fires("*/30 1-3 * * *", "Europe/Berlin", "2026-03-29T00:15:00Z", b2, 3);
    const char *b3[] = {"2026-03-29T01:15:00+01:00", "2026-03-29T03:15:00+02:00"};
    expect_fires("15 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", b3, 2);
    const char *b[] = {"2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00",
                       "2026-03-29T03:30:00+02:00"};
    expect_fires("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:15:00Z", b, 3);
    /* From exactly one second before the transition. */
    const char *c[] = {"2026-03-30T02:30:00+02:00"};
    expect_fires("30 2 * * *", "Europe/Berlin", "2026-03-29T00:59:59Z", c, 1);
    /* Beyond the TZif table the POSIX rule decides: 2045-03-26. */
    const char *d[] = {"2045-03-27T02:30:00+02:00", "2045-03-28T02:30:00+02:00"};
    expect_fires("30 2 * * *", "Europe/Berlin", "2045-03-25T12:00:00Z", d, 2);
    /* The 6-field form follows the same rule. */
    const char *e[] = {"2026-03-29T01:59:30+01:00", "2026-03-29T03:00:00+02:00"};
    expect_fires("*/30 * * * * *", "Europe/Berlin", "2026-03-29T00:59:00Z", e, 2);
}

static void test_cron_berlin_fall_back_fires_both_occurrences_as_dff(void **state)
{
    (void)state;
    /* 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z): 02:xx happens twice. */
    const char *a[] = {"2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00",
                       "2026-10-26T02:30:00+01:00"};
    expect_fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", a, 3);
    const char *b[] = {"2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
                       "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"};
    expect_fires("*/30 * * * *", "Europe/Berlin", "2026-10-25T00:15:00Z", b, 4);
    /* Starting inside the second occurrence. */
    const char *c[] = {"2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"};
    expect_fires("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", c, 2);
    /* 2045-10-29 via the POSIX rule. */
    const char *d[] = {"2045-10-29T02:30:00+02:00", "2045-10-29T02:30:00+01:00"};
    expect_fires("30 2 * * *", "Europe/Berlin", "2045-10-28T12:00:00Z", d, 2);
}

static void test_cron_new_york_dst_days(void **state)
{
    (void)state;
    /* 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z): no 02:30 that day. */
    const char *a[] = {"2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"};
    expect_fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", a, 2);
    /* 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:30 twice. */
    const char *b[] = {"2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00",
                       "2026-11-02T01:30:00-05:00"};
    expect_fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", b, 3);
    const char *c[] = {"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00",
                       "2026-11-01T02:00:00-05:00"};
    expect_fires("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", c, 3);
    /* A daily job at midnight is unaffected. */
    const char *d[] = {"2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"};
    expect_fires("@daily", "America/New_York", "2026-10-31T12:00:00Z", d, 2);
    /* Santiago changes at midnight: 2026-09-06 00:00 does not exist. */
    const char *e[] = {"2026-09-05T00:00:00-04:00", "2026-09-07T00:00:00-03:00"};
    expect_fires("0 0 * * *", "America/Santiago", "2026-09-04T12:00:00Z", e, 2);
}

static void test_cron_unknown_or_malformed_zone_is_refused(void **state)
{
    (void)state;
    char *err = NULL;
    assert_null(cron_tz_load("Mars/Olympus_Mons", &err));
    assert_non_null(strstr(err, "unknown"));
    free(err);
    err = NULL;
    assert_null(cron_tz_load("../../etc/passwd", &err));
    assert_non_null(strstr(err, "not a valid"));
    free(err);
    err = NULL;
    assert_null(cron_tz_load("", &err));
    free(err);
    struct cron_tz *tz = cron_tz_load("Asia/Kolkata", NULL);
    assert_non_null(tz);
    assert_int_equal(cron_tz_offset(tz, T("2026-06-01T00:00:00Z")), 19800);
    cron_tz_free(tz);
}

static void test_cron_time_parse_and_format(void **state)
{
    (void)state;
    struct cron_tz *tz = cron_tz_load("Europe/Berlin", NULL);
    assert_non_null(tz);
    int64_t t;
    char *err = NULL;
    assert_int_equal(cron_parse_time("2026-03-29T01:30:00+01:00", tz, &t, NULL), 0);
    assert_int_equal(t, T("2026-03-29T00:30:00Z"));
    assert_int_equal(cron_parse_time("2026-03-29 02:30", tz, &t, NULL), 0); /* in the gap */
    assert_int_equal(t, T("2026-03-29T01:00:00Z"));
    assert_int_equal(cron_parse_time("2026-10-25T02:30", tz, &t, NULL), 0); /* first occurrence */
    assert_int_equal(t, T("2026-10-25T00:30:00Z"));
    assert_int_equal(cron_parse_time("@1700000000", tz, &t, NULL), 0);
    assert_int_equal(t, 1700000000);
    /* Unix seconds beyond year 9999 are refused: callers multiply by 1000
     * (issue 10, defect 12). */
    assert_int_equal(cron_parse_time("@253402300799", tz, &t, NULL), 0);
    assert_int_equal(cron_parse_time("@9223372036854775807", tz, &t, &err), -1);
    assert_non_null(strstr(err, "out of range"));
    free(err);
    err = NULL;
    assert_int_equal(cron_parse_time("@-9223372036854775807", tz, &t, &err), -1);
    free(err);
    err = NULL;
    assert_int_equal(cron_parse_time("2026-02-30T00:00Z", tz, &t, &err), -1);
    free(err);
    err = NULL;
    assert_int_equal(cron_parse_time("yesterday", tz, &t, &err), -1);
    assert_non_null(strstr(err, "ISO 8601"));
    free(err);
    char buf[64];
    assert_string_equal(cron_format(T("2026-07-01T12:00:00Z"), tz, buf, sizeof buf),
                        "2026-07-01T14:00:00+02:00");
    cron_tz_free(tz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_bad_expressions_name_field_and_reason),
        cmocka_unit_test(test_cron_good_expressions_parse),
        cmocka_unit_test(test_cron_utc_basics),
        cmocka_unit_test(test_cron_dom_dow_or_semantics_as_croniter),
        cmocka_unit_test(test_cron_last_day_of_month),
        cmocka_unit_test(test_cron_nth_and_last_weekday_as_croniter),
        cmocka_unit_test(test_cron_leap_years_feb_29),
        cmocka_unit_test(test_cron_berlin_spring_forward_skips_the_gap_as_dff),
        cmocka_unit_test(test_cron_berlin_fall_back_fires_both_occurrences_as_dff),
        cmocka_unit_test(test_cron_new_york_dst_days),
        cmocka_unit_test(test_cron_unknown_or_malformed_zone_is_refused),
        cmocka_unit_test(test_cron_time_parse_and_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
