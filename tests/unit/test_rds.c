/* rds.c against a real redis-server: the heartbeat registry that lets
 * readers count live processes without SCANning the keyspace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "clock.h"
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

/* A supervisor's entry is aged on Redis's clock: a writer whose wall clock
 * is 5 s off (a step) is still seen as fresh, and an old entry as old. */
static void test_rds_sv_age_is_judged_on_redis_clock(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    redisReply *r = redisCommand(f->rc, "TIME");
    int64_t rnow = rds_time_reply_ms(r);
    freeReplyObject(r);
    assert_true(rnow > 0 && rnow - now_ms() < 2000 && now_ms() - rnow < 2000);
    r = redisCommand(f->rc, "PING");
    assert_int_equal(rds_time_reply_ms(r), -1); /* not a TIME reply */
    freeReplyObject(r);
    int64_t rnow2 = -1;
    r = rds_command_timed(f->rc, &rnow2, "ECHO %s", "x");
    assert_non_null(r);
    assert_string_equal(r->str, "x");
    freeReplyObject(r);
    assert_true(rnow2 >= rnow && rnow2 - rnow < 2000);
    assert_int_equal(rds_time_reply_ms(NULL), -1);

    json_t *ahead = json_pack("{s:I,s:I}", "ts", (json_int_t)(now_ms() + 5000), "rts",
                              (json_int_t)(rnow - 150));
    json_t *behind = json_pack("{s:I,s:I}", "ts", (json_int_t)(now_ms() - 5000), "rts",
                               (json_int_t)(rnow - 150));
    json_t *stale =
        json_pack("{s:I,s:I}", "ts", (json_int_t)now_ms(), "rts", (json_int_t)(rnow - 4000));
    assert_int_equal(rds_sv_age_ms(ahead, rnow), 150);
    assert_int_equal(rds_sv_age_ms(behind, rnow), 150);
    assert_int_equal(rds_sv_age_ms(stale, rnow), 4000);
    /* an older supervisor's entry (no rts), or no TIME: the wall clocks */
    json_t *old = json_pack("{s:I}", "ts", (json_int_t)(now_ms() - 700));
    int64_t a = rds_sv_age_ms(old, rnow);
    assert_true(a >= 700 && a < 2700);
    a = rds_sv_age_ms(behind, -1);
    assert_true(a >= 5000 && a < 7000);
    json_decref(ahead);
    json_decref(behind);
    json_decref(stale);
    json_decref(old);
}

/* Which replicas count as able to acknowledge a WAIT (redis.wait_max_lag):
 * online ones whose last ack is at most max_lag_s old; a syncing one never;
 * a replica's own INFO (not a master) is -1, so the caller WAITs as before. */
static void test_rds_replicas_acking_honours_max_lag(void **state)
{
    (void)state;
    static const char info[] = "# Replication\r\n"
                               "role:master\r\n"
                               "connected_slaves:4\r\n"
                               "slave0:ip=10.0.0.2,port=6379,state=online,offset=900,lag=0\r\n"
                               "slave1:ip=10.0.0.3,port=6379,state=online,offset=880,lag=3\r\n"
                               "slave2:ip=10.0.0.4,port=6379,state=wait_bgsave,offset=0,lag=0\r\n"
                               "slave3:ip=10.0.0.5,port=6379,state=online,offset=100,lag=45\r\n"
                               "master_failover_state:no-failover\r\n"
                               "master_repl_offset:900\r\n";
    assert_int_equal(rds_replicas_acking_in(info, 1), 1);
    assert_int_equal(rds_replicas_acking_in(info, 2), 1); /* the default */
    assert_int_equal(rds_replicas_acking_in(info, 3), 2);
    assert_int_equal(rds_replicas_acking_in(info, 60), 3);
    assert_int_equal(
        rds_replicas_acking_in("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n", 2), 0);
    assert_int_equal(rds_replicas_acking_in("# Replication\r\nrole:slave\r\nmaster_host:x\r\n", 2),
                     -1);
}

/* The same through INFO on a real master without replicas: 0, whatever
 * the limit (each limit is read afresh, not served from the other's cache). */
static void test_rds_replicas_acking_on_a_lone_master_is_zero(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    assert_int_equal(rds_replicas_acking(f->rc, 2), 0);
    assert_int_equal(rds_replicas_acking(f->rc, 60), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rds_heartbeats_are_listed_and_expired_ones_pruned),
        cmocka_unit_test(test_rds_sv_age_is_judged_on_redis_clock),
        cmocka_unit_test(test_rds_replicas_acking_honours_max_lag),
        cmocka_unit_test(test_rds_replicas_acking_on_a_lone_master_is_zero),
    };
    return cmocka_run_group_tests(tests, redis_up, redis_down);
}
