/* Fuzz the cron engine: cron_parse(), cron_tz_load(), cron_next(),
 * cron_parse_time(), cron_format(). Input is text, one item a line:
 *     EXPR \n ZONE \n AFTER_UNIX_SECONDS \n TIME
 * (missing lines: UTC, 2026-01-01, no time). An expression must parse or
 * fail with a message; every fire cron_next() gives must be later than the
 * last, must match the expression in the zone's local wall-clock time, and
 * asking again from one second before it must give it again.
 * libFuzzer:  clang -fsanitize=fuzzer,address -DFUZZ_LIBFUZZER ...
 * Replay:     fuzz-cron FILE...   (plain main, for CI regression runs) */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The expression's meaning, restated independently of cron.c's search:
 * the local civil time of t has every field in its set; the day by
 * croniter's rule (both day fields restricting: either matches). */
static bool matches(const struct cron_expr *e, const struct cron_tz *tz, int64_t t)
{
    int64_t c = t + cron_tz_offset(tz, t);
    int64_t days = floor_div(c, 86400), rem = c - days * 86400;
    int64_t y;
    unsigned mo, d;
    cron_civil_from_days(days, &y, &mo, &d);
    unsigned wd = (unsigned)(((days + 4) % 7 + 7) % 7);
    unsigned last = cron_days_from_civil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1) -
                    cron_days_from_civil(y, mo, 1);
    bool dom = (e->dom & (1u << d)) || ((e->dom & 1) && d == last), dow = e->dow & (1u << wd);
    bool day = (e->dom_all || e->dow_all) ? dom && dow : dom || dow;
    if (e->has_nth) { /* croniter's "#"/"L" weekdays: see cron.c day_match() */
        unsigned bits = e->nth[wd] | (wd == 0 ? e->nth[7] : 0);
        bool n = (bits & (1u << ((d - 1) / 7))) || ((bits & 0x20) && d + 7 > last);
        day = (e->dow_all && !e->dom_all) ? n && dom : n;
    }
    return day && (e->mon & (1u << mo)) && (e->hour & (1u << (rem / 3600))) &&
           (e->min & (1ULL << (rem / 60 % 60))) && (e->sec & (1ULL << (rem % 60)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *line[4] = {NULL, NULL, NULL, NULL}, *p = s;
    for (int i = 0; i < 4 && p; i++)
        line[i] = strsep(&p, "\n");

    struct cron_expr e;
    char *err = NULL;
    if (cron_parse(&e, line[0], &err) != 0) {
        assert(err != NULL && err[0] != '\0');
        free(err);
        free(s);
        return 0;
    }
    assert(err == NULL);
    assert(e.min && e.hour && e.dom && e.mon && e.dow && e.sec);

    struct cron_tz *tz = cron_tz_load(line[1] && line[1][0] ? line[1] : "UTC", &err);
    if (tz == NULL) {
        assert(err != NULL && err[0] != '\0');
        free(err);
        err = NULL;
        tz = cron_tz_load("UTC", &err);
        assert(tz != NULL);
    }
    int64_t after = line[2] ? strtoll(line[2], NULL, 10) : 1767225600;
    if (line[3]) {
        int64_t t;
        if (cron_parse_time(line[3], tz, &t, &err) == 0) {
            after = t;
        } else {
            assert(err != NULL && err[0] != '\0');
            free(err);
            err = NULL;
        }
    }

    int64_t t = after;
    for (int i = 0; i < 4; i++) {
        int64_t n = cron_next(&e, tz, t);
        if (n < 0)
            break;
        assert(n > t);
        if (!matches(&e, tz, n)) {
            char buf[64];
            fprintf(stderr, "\"%s\" in %s: fire %s does not match\n", e.text, cron_tz_name(tz),
                    cron_format(n, tz, buf, sizeof buf));
            abort();
        }
        assert(cron_next(&e, tz, n - 1) == n);
        char buf[64];
        cron_format(n, tz, buf, sizeof buf);
        int64_t back;
        /* ISO 8601 round trip, for the 4-digit years cron_parse_time()
         * reads (0001..9999); later ones format with more digits. */
        if (n >= CRON_TIME_MIN && n <= CRON_TIME_MAX)
            assert(cron_parse_time(buf, tz, &back, NULL) == 0 && back == n);
        t = n;
    }
    cron_tz_free(tz);
    free(s);
    return 0;
}

#include "fuzz_replay.h"
