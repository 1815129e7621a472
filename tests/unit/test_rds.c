/* rds.c against a real redis-server: the heartbeat registry that lets
 * readers count live processes without SCANning the keyspace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "redis_fixture.h"

static void test_rds_heartbeats_are_listed_and_expired_ones_pruned(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    assert_int_equal(rds_hb_set(f->rc, &f->conf, "worker", "node-a", 11, "{\"pid\":11}", 5000), 0);
    assert_int_equal(rds_hb_set(f->rc, &f->conf, "worker", "node-b", 12, "{\"pid\":12}", 150), 0);
    assert_int_equal(rds_hb_set(f->rc, &f->conf, "server", "node-a", 13, "{\"pid\":13}", 5000), 0);
    /* a task key that matches nothing heartbeat-like must not be counted */
    redisReply *r = redisCommand(f->rc, "SET ut:task:x {}");
    freeReplyObject(r);

    json_t *list = NULL;
    assert_int_equal(rds_hb_list(f->rc, &f->conf, "worker", &list), 2);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
    assert_int_equal(rds_hb_list(f->rc, &f->conf, "server", NULL), 1);
    assert_int_equal(rds_hb_list(f->rc, &f->conf, "beat", NULL), 0);

    /* node-b's heartbeat expires (a SIGKILLed process never deletes it) */
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(rds_hb_list(f->rc, &f->conf, "worker", &list), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "pid")), 11);
    json_decref(list);
    r = redisCommand(f->rc, "SCARD ut:hb:worker");
    assert_int_equal(r->integer, 1); /* pruned from the set */
    freeReplyObject(r);

    /* a clean stop deletes key and name */
    assert_int_equal(rds_hb_del(f->rc, &f->conf, "worker", "node-a", 11), 0);
    assert_int_equal(rds_hb_list(f->rc, &f->conf, "worker", NULL), 0);
    r = redisCommand(f->rc, "EXISTS ut:hb:worker:node-a:11");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rds_heartbeats_are_listed_and_expired_ones_pruned),
    };
    return cmocka_run_group_tests(tests, redis_up, redis_down);
}
