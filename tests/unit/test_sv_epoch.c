/* The fencing epoch never goes backwards (issue 10, point 1): a promotion
 * takes one above Redis's value and above the floor (epochs used before a
 * Redis lost its writes); the primary puts a value that went back up again.
 * A plain INCR, as before, fails test_sv_epoch_take_above_floor. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "redis_fixture.h"
#include "sv_epoch.h"

static redisContext *rc_of(void **state)
{
    struct redis_fixture *f = *state;
    /* no redis-server is a broken test host, not a reason to pass */
    if (f->rc == NULL)
        fail_msg("redis-server is not installed (/usr/bin/redis-server): cannot test the epoch");
    return f->rc;
}

static long long get(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "GET ut:epoch");
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

static void test_sv_epoch_take_above_floor(void **state)
{
    redisContext *rc = rc_of(state);
    char err[160];
    freeReplyObject(redisCommand(rc, "DEL ut:epoch"));
    /* an empty Redis (lost everything) with epoch 9 used before: 10 */
    assert_int_equal(sv_epoch_take(rc, "ut:epoch", 9, err, sizeof(err)), 10);
    assert_int_equal(get(rc), 10);
    /* Redis ahead of the floor: one above Redis */
    assert_int_equal(sv_epoch_take(rc, "ut:epoch", 3, err, sizeof(err)), 11);
    /* Redis went back (old snapshot: 4) while 11 was used: 12, never 5 */
    freeReplyObject(redisCommand(rc, "SET ut:epoch 4"));
    assert_int_equal(sv_epoch_take(rc, "ut:epoch", 11, err, sizeof(err)), 12);
    assert_int_equal(get(rc), 12);
}

static void test_sv_epoch_raise_only_upwards(void **state)
{
    redisContext *rc = rc_of(state);
    char err[160];
    freeReplyObject(redisCommand(rc, "SET ut:epoch 5"));
    assert_int_equal(sv_epoch_raise(rc, "ut:epoch", 8, err, sizeof(err)), 5);
    assert_int_equal(get(rc), 8);
    /* a newer epoch (another node's promotion) is never lowered */
    assert_int_equal(sv_epoch_raise(rc, "ut:epoch", 7, err, sizeof(err)), -1);
    assert_int_equal(get(rc), 8);
    freeReplyObject(redisCommand(rc, "DEL ut:epoch"));
    assert_int_equal(sv_epoch_raise(rc, "ut:epoch", 3, err, sizeof(err)), 0);
    assert_int_equal(get(rc), 3);
}

static void test_sv_epoch_errors_are_reported(void **state)
{
    redisContext *rc = rc_of(state);
    char err[160] = "";
    freeReplyObject(redisCommand(rc, "DEL ut:wrongtype"));
    freeReplyObject(redisCommand(rc, "LPUSH ut:wrongtype x"));
    /* tonumber() of a list is an error inside the script: reported */
    assert_int_equal(sv_epoch_take(rc, "ut:wrongtype", 0, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(sv_epoch_take(NULL, "ut:epoch", 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not connected"));
    assert_int_equal(sv_epoch_raise(NULL, "ut:epoch", 1, err, sizeof(err)), -2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sv_epoch_take_above_floor),
        cmocka_unit_test(test_sv_epoch_raise_only_upwards),
        cmocka_unit_test(test_sv_epoch_errors_are_reported),
    };
    return cmocka_run_group_tests(tests, redis_up, redis_down);
}
