/* The supervisor's side of the web console's requests (sv_ctl.c): a
 * request left in Redis naming this node is taken once and answered as
 * tandemctl would (no --force), one naming another node is left alone, a
 * switchover is only a primary's, maintenance is any node's. Against a
 * real redis-server (redis_fixture.h); the actions it would take on the
 * machine (handover, maintenance file) are recorded by the stubs below. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "redis_fixture.h"
#include "sv.h"

/* ---- stubs for what sv_ctl.c asks of the rest of the supervisor -------- */
static struct redis_fixture *FX;
static bool peer_ready;
static int handovers, maint_calls;

redisContext *sv_main_rc(struct sv *s)
{
    (void)s;
    return FX->rc;
}
bool sv_peer_ready_backup(struct sv *s, char *who, size_t n)
{
    (void)s;
    snprintf(who, n, "%s", "node-b");
    return peer_ready;
}
void sv_handover(struct sv *s, const char *why)
{
    (void)s;
    (void)why;
    handovers++;
}
void sv_set_maint(struct sv *s, bool on)
{
    maint_calls++;
    s->maint = on;
}
const char *sv_role_name(enum sv_role r)
{
    return r == SV_ROLE_MASTER ? "master" : r == SV_ROLE_BACKUP ? "backup" : "other";
}
bool sv_vip_present(const struct tconf *c)
{
    (void)c;
    return false;
}

static struct sv S_;

static struct sv *node(const char *name, enum sv_role role)
{
    memset(&S_, 0, sizeof S_);
    S_.conf = FX->conf;
    snprintf(S_.conf.node_name, sizeof S_.conf.node_name, "%s", name);
    S_.fsm.role = role;
    S_.hl.view.redis_ok = true;
    pthread_mutex_init(&S_.hl.lock, NULL);
    pthread_mutex_init(&S_.hl.pub_lock, NULL);
    handovers = maint_calls = 0;
    peer_ready = true;
    redisReply *r = redisCommand(FX->rc, "FLUSHALL");
    if (r)
        freeReplyObject(r);
    return &S_;
}

static void put(const char *key, const char *json)
{
    redisReply *r = redisCommand(FX->rc, "SET ut:%s %s PX 10000", key, json);
    assert_non_null(r);
    freeReplyObject(r);
}

/* The JSON at key, or NULL when absent. */
static json_t *get(const char *key)
{
    redisReply *r = redisCommand(FX->rc, "GET ut:%s", key);
    assert_non_null(r);
    json_t *j = r->type == REDIS_REPLY_STRING ? json_loads(r->str, 0, NULL) : NULL;
    freeReplyObject(r);
    return j;
}

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        FX = *st;                                                                                  \
        if (!FX->rc)                                                                               \
            skip();                                                                                \
    } while (0)

static void test_maintenance_taken_by_the_named_node_of_any_role(void **st)
{
    NEED_REDIS();
    struct sv *s = node("node-b", SV_ROLE_BACKUP);
    put("sv:maintenance", "{\"node\":\"node-b\",\"on\":true,\"by\":\"u-1\"}");
    sv_ctl_console_request(s);
    assert_int_equal(maint_calls, 1);
    assert_true(s->maint);
    assert_null(get("sv:maintenance")); /* taken once */
    json_t *res = get("sv:maintenance:result");
    assert_non_null(res);
    assert_true(json_is_true(json_object_get(res, "ok")));
    assert_true(json_is_true(json_object_get(res, "maintenance")));
    assert_string_equal(json_string_value(json_object_get(res, "node")), "node-b");
    json_decref(res);
    /* a second pass finds nothing to do */
    sv_ctl_console_request(s);
    assert_int_equal(maint_calls, 1);

    put("sv:maintenance", "{\"node\":\"node-b\",\"on\":false,\"by\":\"u-1\"}");
    sv_ctl_console_request(s);
    assert_int_equal(maint_calls, 2);
    assert_false(s->maint);
}

static void test_a_request_for_another_node_is_left_alone(void **st)
{
    NEED_REDIS();
    struct sv *s = node("node-a", SV_ROLE_MASTER);
    put("sv:maintenance", "{\"node\":\"node-b\",\"on\":true}");
    put("sv:switchover", "{\"node\":\"node-b\"}");
    sv_ctl_console_request(s);
    assert_int_equal(maint_calls, 0);
    assert_int_equal(handovers, 0);
    json_t *m = get("sv:maintenance"), *w = get("sv:switchover");
    assert_non_null(m);
    assert_non_null(w);
    json_decref(m);
    json_decref(w);
    assert_null(get("sv:maintenance:result"));
}

static void test_maintenance_on_a_primary_without_a_ready_peer_is_refused(void **st)
{
    NEED_REDIS();
    struct sv *s = node("node-a", SV_ROLE_MASTER);
    peer_ready = false;
    put("sv:maintenance", "{\"node\":\"node-a\",\"on\":true,\"by\":\"u-1\"}");
    sv_ctl_console_request(s);
    assert_int_equal(maint_calls, 0);
    assert_false(s->maint);
    json_t *res = get("sv:maintenance:result");
    assert_non_null(res);
    assert_false(json_is_true(json_object_get(res, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(res, "error")), "no peer is ready"));
    json_decref(res);
}

static void test_switchover_only_by_the_primary(void **st)
{
    NEED_REDIS();
    /* a backup named in a switchover request does not take it */
    struct sv *s = node("node-b", SV_ROLE_BACKUP);
    put("sv:switchover", "{\"node\":\"node-b\",\"by\":\"u-1\"}");
    sv_ctl_console_request(s);
    assert_int_equal(handovers, 0);
    json_t *w = get("sv:switchover");
    assert_non_null(w);
    json_decref(w);

    s = node("node-a", SV_ROLE_MASTER);
    put("sv:switchover", "{\"node\":\"node-a\",\"by\":\"u-1\"}");
    sv_ctl_console_request(s);
    assert_int_equal(handovers, 1);
    json_t *res = get("sv:switchover:result");
    assert_non_null(res);
    assert_true(json_is_true(json_object_get(res, "ok")));
    json_decref(res);
}

static void test_malformed_requests_are_answered_not_obeyed(void **st)
{
    NEED_REDIS();
    struct sv *s = node("node-b", SV_ROLE_BACKUP);
    put("sv:maintenance", "{\"node\":\"node-b\",\"on\":\"yes\"}");
    sv_ctl_console_request(s);
    assert_int_equal(maint_calls, 0);
    json_t *res = get("sv:maintenance:result");
    assert_non_null(res);
    assert_string_equal(json_string_value(json_object_get(res, "error")),
                        "malformed console request");
    json_decref(res);
    put("sv:maintenance", "not json");
    sv_ctl_console_request(s);
    assert_int_equal(maint_calls, 0);
    assert_null(get("sv:maintenance"));
}

static void test_nothing_is_taken_while_redis_is_seen_down(void **st)
{
    NEED_REDIS();
    struct sv *s = node("node-b", SV_ROLE_BACKUP);
    s->hl.view.redis_ok = false;
    put("sv:maintenance", "{\"node\":\"node-b\",\"on\":true}");
    sv_ctl_console_request(s);
    assert_int_equal(maint_calls, 0);
    json_t *m = get("sv:maintenance");
    assert_non_null(m);
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maintenance_taken_by_the_named_node_of_any_role),
        cmocka_unit_test(test_a_request_for_another_node_is_left_alone),
        cmocka_unit_test(test_maintenance_on_a_primary_without_a_ready_peer_is_refused),
        cmocka_unit_test(test_switchover_only_by_the_primary),
        cmocka_unit_test(test_malformed_requests_are_answered_not_obeyed),
        cmocka_unit_test(test_nothing_is_taken_while_redis_is_seen_down),
    };
    return cmocka_run_group_tests(tests, redis_up, redis_down);
}
