/* Task message encode/decode, and task_enqueue/rds_eval against a real
 * redis-server on a unix socket (skipped when redis-server is missing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "rds.h"
#include "task.h"

static void fill(struct task *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "task-0123456789abcdef01234567");
    snprintf(t->func, sizeof(t->func), "demo__hello.greet");
    t->kwargs = json_pack("{s:s, s:i, s:[i,i]}", "name", "w\xc3\xb6rld \"q\"", "n", 3, "l", 1, 2);
    t->origin = ORIGIN_SYNC_API;
    snprintf(t->origin_id, sizeof(t->origin_id), "sapi-abc");
    t->timeout = 42;
    snprintf(t->reply, sizeof(t->reply), "node-a:1234:5");
    snprintf(t->queue, sizeof(t->queue), "sync");
    t->enq_ms = 1764280000123LL;
    t->expires_ms = 1764280035123LL;
    t->epoch = 3;
    t->ver = 2;
    t->nominal = 0;
}

static void test_task_round_trip(void **state)
{
    (void)state;
    struct task a, b;
    char *err = NULL;
    fill(&a);
    char *s = task_encode(&a);
    assert_non_null(s);
    assert_int_equal(task_decode(&b, s, &err), 0);
    assert_null(err);
    assert_string_equal(b.id, a.id);
    assert_string_equal(b.func, a.func);
    assert_true(json_equal(b.kwargs, a.kwargs));
    assert_int_equal(b.origin, ORIGIN_SYNC_API);
    assert_string_equal(b.origin_id, "sapi-abc");
    assert_int_equal(b.timeout, 42);
    assert_string_equal(b.reply, a.reply);
    assert_string_equal(b.queue, "sync");
    assert_int_equal(b.enq_ms, a.enq_ms);
    assert_int_equal(b.expires_ms, a.expires_ms);
    assert_int_equal(b.epoch, 3);
    assert_int_equal(b.ver, 2);
    assert_int_equal(b.nominal, 0);
    assert_int_equal(b.due_ms, 0);
    /* Field names are the ones in docs/INTERNALS.md. */
    json_t *o = json_loads(s, 0, NULL);
    assert_non_null(o);
    static const char *keys[] = {"id",      "func",  "kwargs", "origin", "origin_id",
                                 "timeout", "reply", "queue",  "enq",    "expires",
                                 "epoch",   "ver",   "nominal"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (json_object_get(o, keys[i]) == NULL)
            fail_msg("encoded task lacks \"%s\": %s", keys[i], s);
    assert_string_equal(json_string_value(json_object_get(o, "origin")), "sync-api");
    json_decref(o);
    free(s);
    task_free(&a);
    task_free(&b);
    assert_null(b.kwargs);
}

static void test_task_decode_fills_defaults(void **state)
{
    (void)state;
    struct task t;
    char *err = NULL;
    assert_int_equal(task_decode(&t, "{\"id\":\"task-1\",\"func\":\"a__b.c\"}", &err), 0);
    assert_null(err);
    assert_non_null(t.kwargs);
    assert_true(json_is_object(t.kwargs));
    assert_int_equal(json_object_size(t.kwargs), 0);
    assert_int_equal(t.origin, ORIGIN_FUNC);
    assert_string_equal(t.origin_id, "");
    assert_int_equal(t.timeout, 30);
    assert_string_equal(t.reply, "");
    assert_string_equal(t.queue, "async");
    assert_int_equal(t.expires_ms, 0);
    assert_int_equal(t.epoch, 0);
    assert_int_equal(t.ver, 0);
    task_free(&t);
}

static void expect_reject(const char *json, const char *needle)
{
    struct task t;
    char *err = NULL;
    if (task_decode(&t, json, &err) != -1)
        fail_msg("accepted malformed task: %s", json);
    assert_non_null(err);
    if (strstr(err, needle) == NULL)
        fail_msg("error for %s is \"%s\", expected it to mention \"%s\"", json, err, needle);
    assert_null(t.kwargs);
    free(err);
}

static void test_task_decode_rejects_malformed(void **state)
{
    (void)state;
    expect_reject("", "malformed JSON");
    expect_reject("{\"id\":", "line 1");
    expect_reject("[1,2]", "must be a JSON object");
    expect_reject("{\"func\":\"a__b.c\"}", "missing field \"id\"");
    expect_reject("{\"id\":\"task-1\"}", "missing field \"func\"");
    expect_reject("{\"id\":7,\"func\":\"a__b.c\"}", "\"id\" must be a string");
    expect_reject("{\"id\":\"a/b\",\"func\":\"a__b.c\"}", "not a valid id");
    expect_reject("{\"id\":\"t\",\"func\":\"\"}", "\"func\" is empty");
    expect_reject("{\"id\":\"t\",\"func\":\"f\",\"kwargs\":[1]}", "\"kwargs\" must be an object");
    expect_reject("{\"id\":\"t\",\"func\":\"f\",\"timeout\":\"30\"}",
                  "\"timeout\" must be an integer");
    expect_reject("{\"id\":\"t\",\"func\":\"f\",\"timeout\":0}", "out of range");
    expect_reject("{\"id\":\"t\",\"func\":\"f\",\"timeout\":3601}", "out of range");
    expect_reject("{\"id\":\"t\",\"func\":\"f\",\"origin\":\"martian\"}", "\"origin\"");
    expect_reject("{\"id\":\"t\",\"func\":\"f\",\"queue\":\"fast\"}", "\"queue\"");
    expect_reject("{\"id\":\"t\",\"func\":\"f\",\"enq\":-5}", "\"enq\"");
    expect_reject("{\"id\":\"t\",\"id\":\"u\",\"func\":\"f\"}", "duplicate");
    expect_reject("{\"id\":\"task-1\",\"func\":\"f\",\"reply\":\"a\\u0000b\"}", "\\u0000");
    char big[600];
    snprintf(big, sizeof(big), "{\"id\":\"t\",\"func\":\"%0300d\"}", 0);
    expect_reject(big, "too long");
}

static void test_task_cron_delays(void **state)
{
    (void)state;
    int d[TASK_CRON_DELAYS_MAX];
    char why[128];
    struct {
        const char *extra;
        int n;
        int first, last;
    } cases[] = {
        {"{}", 0, 0, 0},
        {"{\"delayed_cron_job\":null}", 0, 0, 0},
        {"{\"delayed_cron_job\":[]}", 0, 0, 0},
        {"{\"delayed_cron_job\":5}", 1, 5, 5},
        {"{\"delayed_cron_job\":[30,0,30,2]}", 3, 0, 30},
        {"{\"delayed_cron_job\":[-1]}", -1, 0, 0},
        {"{\"delayed_cron_job\":[86401]}", -1, 0, 0},
        {"{\"delayed_cron_job\":[1.5]}", -1, 0, 0},
        {"{\"delayed_cron_job\":\"5\"}", -1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *e = json_loads(cases[i].extra, 0, NULL);
        why[0] = '\0';
        int n = task_cron_delays(e, d, why, sizeof why);
        assert_int_equal(n, cases[i].n);
        if (n > 0) {
            assert_int_equal(d[0], cases[i].first);
            assert_int_equal(d[n - 1], cases[i].last);
        }
        if (n < 0)
            assert_non_null(strstr(why, "delayed_cron_job"));
        json_decref(e);
    }
    /* too many distinct delays */
    json_t *a = json_array();
    for (int i = 0; i <= TASK_CRON_DELAYS_MAX; i++)
        json_array_append_new(a, json_integer(i));
    json_t *e = json_pack("{s:o}", "delayed_cron_job", a);
    assert_int_equal(task_cron_delays(e, d, why, sizeof why), -1);
    json_decref(e);
}

static void test_task_extra_fields_are_encoded(void **state)
{
    (void)state;
    struct task t;
    memset(&t, 0, sizeof t);
    snprintf(t.id, sizeof t.id, "task-x");
    snprintf(t.func, sizeof t.func, "a__b.c");
    snprintf(t.queue, sizeof t.queue, "async");
    t.timeout = 5;
    t.kwargs = json_object();
    /* an extra field never overrides a task field */
    t.extra = json_pack("{s:i,s:s,s:{s:s}}", "delay", 3, "id", "task-evil", "http_request",
                        "method", "POST");
    char *s = task_encode(&t);
    json_t *o = json_loads(s, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "delay")), 3);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "task-x");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(o, "http_request"), "method")), "POST");
    json_decref(o);
    free(s);
    task_free(&t);
    assert_null(t.extra);
}

static void test_task_origin_names(void **state)
{
    (void)state;
    static const char *names[] = {"func", "sync-api", "async-api", "cron", "subtask", "system"};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(task_origin_name((enum task_origin)i), names[i]);
        assert_int_equal(task_origin_parse(names[i]), i);
    }
    assert_int_equal(task_origin_parse("api"), -1);
    assert_int_equal(task_origin_parse(NULL), -1);
}

/* ---- against a real redis-server ---- */

#include "redis_fixture.h"

static void test_task_enqueue_adds_entry_and_status(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    struct task t;
    char *err = NULL;
    fill(&t);
    assert_int_equal(task_enqueue(f->rc, &f->conf, &t, &err), 0);
    assert_null(err);

    redisReply *r = redisCommand(f->rc, "XRANGE ut:q:sync - +");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    redisReply *fields = r->element[0]->element[1];
    assert_int_equal(fields->elements, 2);
    assert_string_equal(fields->element[0]->str, "t");
    struct task back;
    assert_int_equal(task_decode(&back, fields->element[1]->str, &err), 0);
    assert_string_equal(back.id, t.id);
    assert_true(json_equal(back.kwargs, t.kwargs));
    task_free(&back);
    freeReplyObject(r);

    /* The consumer group exists from the first enqueue on. */
    r = redisCommand(f->rc, "XINFO GROUPS ut:q:sync");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    freeReplyObject(r);

    /* a sync call's status is the worker's to write (its caller learns the
     * id with the outcome; a late "queued" could hide a fast outcome) */
    r = redisCommand(f->rc, "EXISTS ut:task:%s", t.id);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);

    /* A second enqueue does not trip over the existing group. */
    assert_int_equal(task_enqueue(f->rc, &f->conf, &t, &err), 0);
    r = redisCommand(f->rc, "XLEN ut:q:sync");
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);

    /* an async task's status is kept for task_ttl; its queue gets its group too */
    t.reply[0] = '\0';
    snprintf(t.queue, sizeof t.queue, "async");
    id_new(t.id, sizeof t.id, "task-");
    assert_int_equal(task_enqueue(f->rc, &f->conf, &t, &err), 0);
    r = redisCommand(f->rc, "GET ut:task:%s", t.id);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    json_t *st = json_loads(r->str, 0, NULL);
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(st, "status")), "queued");
    assert_string_equal(json_string_value(json_object_get(st, "id")), t.id);
    assert_string_equal(json_string_value(json_object_get(st, "func")), t.func);
    assert_string_equal(json_string_value(json_object_get(st, "origin")), "sync-api");
    assert_int_equal(json_integer_value(json_object_get(st, "enq")), t.enq_ms);
    json_decref(st);
    freeReplyObject(r);
    r = redisCommand(f->rc, "TTL ut:task:%s", t.id);
    assert_true(r->integer > 590 && r->integer <= 600);
    freeReplyObject(r);
    r = redisCommand(f->rc, "XINFO GROUPS ut:q:async");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    freeReplyObject(r);

    /* a group lost later (Redis restarted without its data) is the
     * readers' to re-create; the enqueue itself still succeeds */
    r = redisCommand(f->rc, "DEL ut:q:async");
    freeReplyObject(r);
    id_new(t.id, sizeof t.id, "task-");
    assert_int_equal(task_enqueue(f->rc, &f->conf, &t, &err), 0);
    r = redisCommand(f->rc, "XLEN ut:q:async");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    task_free(&t);
}

/* A task due later (options.eta/delay, a journaled delayed run queued
 * again) waits in Pdelayed at its due time, its JSON carrying "due"; one
 * already due goes straight to its stream. */
static void test_task_enqueue_due_later_goes_to_delayed(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    struct task t, back;
    char *err = NULL;
    fill(&t);
    t.reply[0] = '\0';
    snprintf(t.queue, sizeof t.queue, "async");
    id_new(t.id, sizeof t.id, "task-");
    redisReply *r = redisCommand(f->rc, "DEL ut:delayed ut:q:async");
    freeReplyObject(r);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    t.due_ms = now + 60000;
    assert_int_equal(task_enqueue(f->rc, &f->conf, &t, &err), 0);
    assert_null(err);
    r = redisCommand(f->rc, "ZRANGE ut:delayed 0 -1 WITHSCORES");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_int_equal(strtoll(r->element[1]->str, NULL, 10), t.due_ms);
    assert_int_equal(task_decode(&back, r->element[0]->str, &err), 0);
    assert_int_equal(back.due_ms, t.due_ms);
    assert_string_equal(back.id, t.id);
    task_free(&back);
    freeReplyObject(r);
    r = redisCommand(f->rc, "EXISTS ut:q:async");
    assert_int_equal(r->integer, 0); /* not on the stream before it is due */
    freeReplyObject(r);
    r = redisCommand(f->rc, "GET ut:task:%s", t.id);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    json_t *st = json_loads(r->str, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(st, "eta")), t.due_ms);
    json_decref(st);
    freeReplyObject(r);
    /* due already: the stream, as any task (the "due" stays in its JSON) */
    id_new(t.id, sizeof t.id, "task-");
    t.due_ms = now - 1000;
    assert_int_equal(task_enqueue(f->rc, &f->conf, &t, &err), 0);
    r = redisCommand(f->rc, "XLEN ut:q:async");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = redisCommand(f->rc, "ZCARD ut:delayed");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    task_free(&t);
}

/* Concurrent calls group-committed (the server's accept thread): one
 * pipeline, each task its own verdict, one WAIT for all of them. */
static void test_task_enqueue_many_one_pipeline_each_its_verdict(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    struct task t[3];
    struct task_enq q[3];
    const char *queues[3] = {"5", "7", "5"}; /* streams no other test uses */
    for (int i = 0; i < 3; i++) {
        fill(&t[i]);
        t[i].reply[0] = '\0';
        id_new(t[i].id, sizeof t[i].id, "task-");
        snprintf(t[i].queue, sizeof t[i].queue, "%s", queues[i]);
        q[i] = (struct task_enq){.t = &t[i]};
    }
    /* the second one cannot be XADDed: its stream key holds a string */
    redisReply *r = redisCommand(f->rc, "SET ut:q:7 not-a-stream");
    freeReplyObject(r);
    assert_int_equal(task_enqueue_many(f->rc, &f->conf, q, 3), 2);
    assert_null(q[0].err);
    assert_non_null(q[1].err);
    assert_non_null(strstr(q[1].err, t[1].id));
    assert_non_null(strstr(q[1].err, "WRONGTYPE"));
    assert_null(q[2].err);
    free(q[1].err);
    r = redisCommand(f->rc, "XLEN ut:q:5");
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    r = redisCommand(f->rc, "EXISTS ut:task:%s ut:task:%s", t[0].id, t[2].id);
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    assert_false(f->rc->err); /* a refused task does not break the others' pipeline */

    /* redis.wait_replicas with no replica and refuse: none is accepted,
     * each told why (no WAIT is sent: no replica is acknowledging; the
     * entries stay on the stream and may still run) */
    struct tconf c = f->conf;
    c.redis_wait_replicas = 1;
    c.redis_wait_timeout_ms = 10;
    c.redis_wait_refuse = true;
    snprintf(t[1].queue, sizeof t[1].queue, "5");
    for (int i = 0; i < 3; i++) {
        id_new(t[i].id, sizeof t[i].id, "task-");
        q[i] = (struct task_enq){.t = &t[i]};
    }
    assert_int_equal(task_enqueue_many(f->rc, &c, q, 3), 0);
    for (int i = 0; i < 3; i++) {
        assert_non_null(q[i].err);
        assert_non_null(strstr(q[i].err, "not durable"));
        free(q[i].err);
        task_free(&t[i]);
    }
}

static void test_task_rds_eval_survives_script_flush(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    const char *script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    char sha[41] = "";
    const char *argv[] = {"ut:counter", "5"};
    redisReply *r = rds_eval(f->rc, script, sha, 1, argv, 2);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 5);
    assert_int_equal(strlen(sha), 40);
    freeReplyObject(r);

    r = redisCommand(f->rc, "SCRIPT FLUSH");
    freeReplyObject(r);
    r = rds_eval(f->rc, script, sha, 1, argv, 2);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 10);
    freeReplyObject(r);
    r = rds_eval(f->rc, script, NULL, 1, argv, 2);
    assert_int_equal(r->integer, 15);
    freeReplyObject(r);

    char key[64];
    assert_string_equal(rds_key(key, sizeof(key), &f->conf, "q:%s", "sync"), "ut:q:sync");
}

static void test_task_rds_connect_reports_where(void **state)
{
    (void)state;
    struct tconf c;
    char *err = NULL;
    tconf_defaults(&c);
    snprintf(c.redis_socket, sizeof(c.redis_socket), "/nonexistent/tandem.sock");
    assert_null(rds_connect(&c, 500, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "/nonexistent/tandem.sock"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_task_round_trip),
        cmocka_unit_test(test_task_decode_fills_defaults),
        cmocka_unit_test(test_task_decode_rejects_malformed),
        cmocka_unit_test(test_task_origin_names),
        cmocka_unit_test(test_task_cron_delays),
        cmocka_unit_test(test_task_extra_fields_are_encoded),
        cmocka_unit_test(test_task_rds_connect_reports_where),
    };
    const struct CMUnitTest live[] = {
        cmocka_unit_test(test_task_enqueue_adds_entry_and_status),
        cmocka_unit_test(test_task_enqueue_many_one_pipeline_each_its_verdict),
        cmocka_unit_test(test_task_enqueue_due_later_goes_to_delayed),
        cmocka_unit_test(test_task_rds_eval_survives_script_flush),
    };
    int rc = cmocka_run_group_tests_name("task", pure, NULL, NULL);
    rc += cmocka_run_group_tests_name("task-redis", live, redis_up, redis_down);
    return rc;
}
