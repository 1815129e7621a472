#include <errno.h>
#include <pthread.h>
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

/* A condition variable made by cond_init_mono times out on the monotonic
 * clock: mono_deadline's deadline, not one of the wall clock. */
static void test_clock_cond_times_out_on_the_monotonic_clock(void **state)
{
    (void)state;
    pthread_cond_t cv;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    assert_int_equal(cond_init_mono(&cv), 0);
    struct timespec dl;
    int64_t a = mono_ms();
    mono_deadline(&dl, 50);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    /* the deadline is on CLOCK_MONOTONIC: 50 ms ahead of it, not ~56 years */
    int64_t ahead = (int64_t)(dl.tv_sec - now.tv_sec) * 1000 + (dl.tv_nsec - now.tv_nsec) / 1000000;
    assert_true(ahead >= 40 && ahead <= 50);
    assert_true(dl.tv_nsec >= 0 && dl.tv_nsec < 1000000000L);
    pthread_mutex_lock(&mu);
    int rc;
    do
        rc = pthread_cond_timedwait(&cv, &mu, &dl);
    while (rc == 0);
    pthread_mutex_unlock(&mu);
    int64_t b = mono_ms();
    assert_int_equal(rc, ETIMEDOUT);
    assert_true(b - a >= 45 && b - a < 2000);
    pthread_cond_destroy(&cv);

    a = mono_ms();
    mono_sleep_ms(30);
    b = mono_ms();
    assert_true(b - a >= 29 && b - a < 2000);
    mono_sleep_ms(-5); /* nothing to wait for */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_iso8601_known_instant),
        cmocka_unit_test(test_clock_sql_datetime),
        cmocka_unit_test(test_clock_truncates_to_buffer),
        cmocka_unit_test(test_clock_now_is_realtime_and_mono_advances),
        cmocka_unit_test(test_clock_cond_times_out_on_the_monotonic_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
