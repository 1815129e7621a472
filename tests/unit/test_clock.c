#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "clock.h"

static void test_clock_iso8601_known_instant(void **state)
{
    (void)state;
    char buf[40];
    /* 2026-11-27T23:59:01.123Z */
    assert_string_equal(iso8601_ms(1795823941123LL, buf, sizeof(buf)), "2026-11-27T23:59:01.123Z");
    assert_string_equal(iso8601_ms(0, buf, sizeof(buf)), "1970-01-01T00:00:00.000Z");
    /* Milliseconds keep leading zeros. */
    assert_string_equal(iso8601_ms(5, buf, sizeof(buf)), "1970-01-01T00:00:00.005Z");
    /* Before the epoch the fraction still counts forward. */
    assert_string_equal(iso8601_ms(-1, buf, sizeof(buf)), "1969-12-31T23:59:59.999Z");
}

static void test_clock_sql_datetime(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(sql_datetime_ms(1795823941123LL, buf, sizeof(buf)),
                        "2026-11-27 23:59:01.123");
    /* Leap day. */
    assert_string_equal(sql_datetime_ms(1709164800000LL, buf, sizeof(buf)),
                        "2024-02-29 00:00:00.000");
}

static void test_clock_truncates_to_buffer(void **state)
{
    (void)state;
    char buf[11];
    iso8601_ms(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01");
}

static void test_clock_now_is_realtime_and_mono_advances(void **state)
{
    (void)state;
    int64_t n = now_ms();
    int64_t t = (int64_t)time(NULL) * 1000;
    assert_true(n >= t - 2000 && n <= t + 2000);
    int64_t a = mono_ms();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int64_t b = mono_ms();
    assert_true(b - a >= 19);
    assert_true(b - a < 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_iso8601_known_instant),
        cmocka_unit_test(test_clock_sql_datetime),
        cmocka_unit_test(test_clock_truncates_to_buffer),
        cmocka_unit_test(test_clock_now_is_realtime_and_mono_advances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
