/* tandem-worker outcome building: the reply outcome, the Ptask status, the
 * task_record row, long-text cutting and the SQL row the keeper inserts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "worker.h"

static char *fake_quote(void *ud, const char *s);

static struct wtask sample(void)
{
    struct wtask t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "task-abc");
    snprintf(t.func, sizeof(t.func), "demo__hello.greet");
    snprintf(t.queue, sizeof(t.queue), "cron");
    snprintf(t.origin_id, sizeof(t.origin_id), "cron-1");
    snprintf(t.entry, sizeof(t.entry), "1-0");
    t.origin = ORIGIN_CRON;
    t.timeout = 5;
    t.enq_ms = 1764280000000;
    t.nominal = 1764280000;
    t.start_ms = 1764280000100;
    return t;
}

static void test_worker_success_outcome_carries_result_and_cost(void **state)
{
    (void)state;
    struct wtask t = sample();
    json_t *res = json_pack("{s:i}", "sum", 3);
    struct woutcome o = {
        .status = "success", .result = res, .output = "hi\n", .start_ms = 1000, .end_ms = 1012};
    json_t *j = wrec_outcome(&t, &o, "node-a");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "success");
    assert_true(json_equal(json_object_get(j, "result"), res));
    assert_int_equal(json_integer_value(json_object_get(j, "cost")), 12);
    assert_string_equal(json_string_value(json_object_get(j, "node")), "node-a");
    assert_string_equal(json_string_value(json_object_get(j, "output")), "hi\n");
    assert_null(json_object_get(j, "reason"));
    json_decref(j);
    json_decref(res);
}

static void test_worker_failure_outcome_has_reason_message_traceback(void **state)
{
    (void)state;
    struct wtask t = sample();
    json_t *data = json_pack("{s:i}", "line", 3);
    struct woutcome o = {.status = "failure",
                         .reason = "EFuncFailed",
                         .message = "ZeroDivisionError: division by zero",
                         .traceback = "Traceback (most recent call last):\n",
                         .data = data,
                         .start_ms = 1,
                         .end_ms = 2};
    json_t *j = wrec_status(&t, &o, "n");
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "EFuncFailed");
    assert_non_null(json_object_get(j, "traceback"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "data"), "line")), 3);
    assert_null(json_object_get(j, "result"));
    assert_string_equal(json_string_value(json_object_get(j, "origin")), "cron");
    assert_string_equal(json_string_value(json_object_get(j, "func")), "demo__hello.greet");
    json_decref(j);
    json_decref(data);
}

static void test_worker_record_has_task_record_columns(void **state)
{
    (void)state;
    struct wtask t = sample();
    struct woutcome o = {.status = "timeout",
                         .reason = "EFuncTimeout",
                         .message = "killed",
                         .start_ms = t.start_ms,
                         .end_ms = t.start_ms + 5000};
    json_t *j = wrec_record(&t, &o, "node-b", 7);
    static const char *const cols[] = {
        "id",         "func_id",     "origin",     "origin_id", "queue",  "status",
        "reason",     "message",     "traceback",  "output",    "node",   "epoch",
        "nominal_at", "enqueued_at", "started_at", "ended_at",  "cost_ms"};
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
        assert_non_null(json_object_get(j, cols[i]));
    assert_int_equal(json_integer_value(json_object_get(j, "epoch")), 7);
    assert_int_equal(json_integer_value(json_object_get(j, "nominal_at")), 1764280000000LL);
    assert_int_equal(json_integer_value(json_object_get(j, "cost_ms")), 5000);
    assert_true(json_is_null(json_object_get(j, "traceback")));
    json_decref(j);
}

static void test_worker_long_text_is_cut_on_a_utf8_boundary(void **state)
{
    (void)state;
    char s[16];
    snprintf(s, sizeof(s), "ab\xc3\xa9z"); /* "abéz" */
    wrec_cut_utf8(s, 3);                   /* would split é */
    assert_string_equal(s, "ab");
    snprintf(s, sizeof(s), "ab\xc3\xa9z");
    wrec_cut_utf8(s, 4);
    assert_string_equal(s, "ab\xc3\xa9");

    struct wtask t = sample();
    size_t n = 200000;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    struct woutcome o = {
        .status = "failure", .reason = "EFuncFailed", .message = big, .start_ms = 1, .end_ms = 1};
    json_t *j = wrec_record(&t, &o, "n", 0);
    assert_true(json_string_length(json_object_get(j, "message")) <= 65535);
    json_decref(j);
    free(big);
}

static void test_worker_record_has_dff_fields(void **state)
{
    (void)state;
    struct wtask t = sample();
    json_t *kw = json_pack("{s:i,s:s}", "x", 1, "y", "é");
    json_t *res = json_pack("[i,i]", 1, 2);
    json_t *chain = json_pack("[s,s]", "a__b.c", "a__b.d");
    struct woutcome o = {.status = "success",
                         .result = res,
                         .kwargs = kw,
                         .root_task = "task-root",
                         .chain = chain,
                         .start_ms = 1,
                         .end_ms = 2};
    json_t *j = wrec_record(&t, &o, "n", 0);
    assert_string_equal(json_string_value(json_object_get(j, "kwargs_json")),
                        "{\"x\":1,\"y\":\"\xc3\xa9\"}");
    assert_string_equal(json_string_value(json_object_get(j, "return_value_json")), "[1,2]");
    assert_string_equal(json_string_value(json_object_get(j, "call_chain_json")),
                        "[\"a__b.c\",\"a__b.d\"]");
    assert_string_equal(json_string_value(json_object_get(j, "root_task_id")), "task-root");
    /* a cron run was triggered by its slot */
    assert_int_equal(json_integer_value(json_object_get(j, "trigger_at")), 1764280000000LL);
    json_decref(j);

    /* a failure has no return value; a task nobody called is its own root
     * (DFF: "ROOT"); without a slot the trigger is the enqueue time */
    t.nominal = 0;
    t.enq_ms = 1764280000999;
    struct woutcome f = {.status = "failure", .reason = "EFuncFailed", .start_ms = 1, .end_ms = 2};
    j = wrec_record(&t, &f, "n", 0);
    assert_true(json_is_null(json_object_get(j, "return_value_json")));
    assert_true(json_is_null(json_object_get(j, "kwargs_json")));
    assert_string_equal(json_string_value(json_object_get(j, "root_task_id")), "ROOT");
    assert_int_equal(json_integer_value(json_object_get(j, "trigger_at")), 1764280000999LL);
    json_decref(j);
    json_decref(kw);
    json_decref(res);
    json_decref(chain);
}

static void test_worker_record_huge_return_value_is_cut_with_a_marker(void **state)
{
    (void)state;
    struct wtask t = sample();
    size_t n = 3 * WREC_JSON_MAX;
    char *big = malloc(n + 1);
    memset(big, 'v', n);
    big[n] = '\0';
    json_t *res = json_string(big);
    struct woutcome o = {.status = "success", .result = res, .start_ms = 1, .end_ms = 2};
    json_t *j = wrec_record(&t, &o, "n", 0);
    const char *s = json_string_value(json_object_get(j, "return_value_json"));
    assert_non_null(s);
    assert_true(strlen(s) <= WREC_JSON_MAX);
    assert_non_null(strstr(s, "...[cut: "));
    assert_int_equal(strncmp(s, "\"vvv", 4), 0);
    char *err = NULL, *row = wrec_sql_row(j, fake_quote, NULL, &err);
    assert_non_null(row); /* still one valid row for the keeper */
    free(row);
    json_decref(j);
    json_decref(res);
    free(big);
}

static char *fake_quote(void *ud, const char *s)
{
    (void)ud;
    char *q = malloc(strlen(s) + 3);
    sprintf(q, "'%s'", s);
    return q;
}

static void test_worker_sql_row_from_record(void **state)
{
    (void)state;
    char *err = NULL;
    json_t *rec = json_loads("{\"id\":\"task-1\",\"func_id\":\"a__b.c\",\"origin\":\"cron\","
                             "\"status\":\"missed\",\"epoch\":3,\"nominal_at\":1764280000000,"
                             "\"ended_at\":\"2026-11-27T23:59:01.123Z\",\"cost_ms\":0,"
                             "\"message\":null}",
                             0, NULL);
    char *row = wrec_sql_row(rec, fake_quote, NULL, &err);
    assert_non_null(row);
    assert_string_equal(row, "('task-1','a__b.c','cron','','','missed','',NULL,NULL,NULL,'',3,"
                             "'2025-11-27 21:46:40.000',NULL,NULL,'2026-11-27 23:59:01.123',0,"
                             "NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL)");
    free(row);
    json_decref(rec);
}

/* DFF's cronExpr, delay, timeout and expires (migration 011) travel from
 * the task to the record and its SQL row, in seconds. */
static void test_worker_record_keeps_dff_scheduling_fields(void **state)
{
    (void)state;
    struct wtask t = sample();
    snprintf(t.cron_expr, sizeof(t.cron_expr), "*/5 * * * *");
    t.delay = 7;
    t.expires_ms = t.enq_ms + 30000;
    struct woutcome o = {.status = "success", .start_ms = 1, .end_ms = 2};
    json_t *j = wrec_record(&t, &o, "n", 0);
    assert_string_equal(json_string_value(json_object_get(j, "cron_expr")), "*/5 * * * *");
    assert_int_equal(json_integer_value(json_object_get(j, "delay_s")), 7);
    assert_int_equal(json_integer_value(json_object_get(j, "timeout_s")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "expires_s")), 30);
    char *err = NULL, *row = wrec_sql_row(j, fake_quote, NULL, &err);
    assert_non_null(row);
    assert_non_null(strstr(row, ",'*/5 * * * *',7,5,30)"));
    free(row);
    json_decref(j);
    /* no expiry: NULL, not 0 */
    t.expires_ms = 0;
    t.cron_expr[0] = '\0';
    j = wrec_record(&t, &o, "n", 0);
    assert_true(json_is_null(json_object_get(j, "expires_s")));
    assert_true(json_is_null(json_object_get(j, "cron_expr")));
    json_decref(j);
}

static void test_worker_sql_row_accepts_the_beats_lua_records(void **state)
{
    (void)state;
    char *err = NULL;
    /* cjson may encode numbers as reals */
    json_t *rec = json_loads("{\"id\":\"task-2\",\"func_id\":\"a__b.c\",\"status\":\"missed\","
                             "\"epoch\":3.0,\"nominal_at\":1.76428e+12,\"ended_at\":1764280000000,"
                             "\"cost_ms\":0}",
                             0, NULL);
    char *row = wrec_sql_row(rec, fake_quote, NULL, &err);
    assert_non_null(row);
    assert_non_null(strstr(row, ",3,'2025-11-27 21:46:40.000',"));
    free(row);
    json_decref(rec);
}

static void test_worker_sql_row_rejects_malformed_records(void **state)
{
    (void)state;
    char *err = NULL;
    const char *bad[] = {"{\"func_id\":\"a\",\"status\":\"x\"}",          /* no id */
                         "{\"id\":\"t\",\"func_id\":\"a\",\"status\":1}", /* status type */
                         "{\"id\":\"t\",\"func_id\":\"a\",\"status\":\"s\",\"epoch\":\"x\"}",
                         "{\"id\":\"t\",\"func_id\":\"a\",\"status\":\"s\",\"ended_at\":[]}",
                         "[1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *rec = json_loads(bad[i], 0, NULL);
        assert_null(wrec_sql_row(rec, fake_quote, NULL, &err));
        assert_non_null(err);
        free(err);
        err = NULL;
        json_decref(rec);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_success_outcome_carries_result_and_cost),
        cmocka_unit_test(test_worker_record_keeps_dff_scheduling_fields),
        cmocka_unit_test(test_worker_failure_outcome_has_reason_message_traceback),
        cmocka_unit_test(test_worker_record_has_task_record_columns),
        cmocka_unit_test(test_worker_long_text_is_cut_on_a_utf8_boundary),
        cmocka_unit_test(test_worker_record_has_dff_fields),
        cmocka_unit_test(test_worker_record_huge_return_value_is_cut_with_a_marker),
        cmocka_unit_test(test_worker_sql_row_from_record),
        cmocka_unit_test(test_worker_sql_row_accepts_the_beats_lua_records),
        cmocka_unit_test(test_worker_sql_row_rejects_malformed_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
