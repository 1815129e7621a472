/* /metrics text: counters by route and status class, call outcomes, the
 * latency histogram (cumulative), queue gauges and every numeric field of
 * the worker/beat stats hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server_int.h"

static void assert_has(const char *text, const char *line)
{
    assert_non_null(text);
    if (strstr(text, line) == NULL) {
        print_error("metrics text lacks \"%s\":\n", line);
        print_error("%s\n", text);
        fail();
    }
}

static void test_server_metrics_counts_requests_calls_and_latency(void **state)
{
    (void)state;
    static struct srv_metrics m;
    metrics_request(&m, rclass_index("api"), 200, 800);   /* 0.8 ms */
    metrics_request(&m, rclass_index("api"), 599, 30000); /* 30 ms */
    metrics_request(&m, rclass_index("admin"), 401, 100);
    metrics_request(&m, rclass_index("nonsense"), 404, 100);
    metrics_request(&m, RC_PING, 0, 100000000); /* never answered, 100 s */
    metrics_call(&m, metrics_outcome_of("success", NULL));
    metrics_call(&m, metrics_outcome_of("failure", "EFuncFailed"));
    metrics_call(&m, metrics_outcome_of("timeout", "EWorkerNoResponse"));
    metrics_call(&m, metrics_outcome_of("failure", "EFuncResultParsingFailed"));
    char *t = metrics_format(&m, NULL);
    assert_has(t, "tandem_http_requests_total{route=\"api\",status=\"2xx\"} 1\n");
    assert_has(t, "tandem_http_requests_total{route=\"api\",status=\"5xx\"} 1\n");
    assert_has(t, "tandem_http_requests_total{route=\"admin\",status=\"4xx\"} 1\n");
    assert_has(t, "tandem_http_requests_total{route=\"other\",status=\"4xx\"} 1\n");
    assert_has(t, "tandem_http_requests_total{route=\"ping\",status=\"other\"} 1\n");
    assert_has(t, "tandem_calls_total{outcome=\"success\"} 1\n");
    assert_has(t, "tandem_calls_total{outcome=\"failure\"} 1\n");
    assert_has(t, "tandem_calls_total{outcome=\"no_response\"} 1\n");
    assert_has(t, "tandem_calls_total{outcome=\"parsing_failed\"} 1\n");
    assert_has(t, "tandem_http_request_duration_seconds_bucket{le=\"0.001\"} 3\n");
    assert_has(t, "tandem_http_request_duration_seconds_bucket{le=\"0.025\"} 3\n");
    assert_has(t, "tandem_http_request_duration_seconds_bucket{le=\"0.05\"} 4\n");
    assert_has(t, "tandem_http_request_duration_seconds_bucket{le=\"30\"} 4\n");
    assert_has(t, "tandem_http_request_duration_seconds_bucket{le=\"+Inf\"} 5\n");
    assert_has(t, "tandem_http_request_duration_seconds_count 5\n");
    free(t);
}

static void test_server_metrics_exports_queues_and_every_stats_field(void **state)
{
    (void)state;
    static struct srv_metrics m;
    json_t *ext = json_loads(
        "{\"queues\":{\"sync\":{\"length\":3,\"pending\":1}},\"workers_live\":2,"
        "\"worker\":{\"tasks\":\"10\",\"cost_ms\":\"1234\",\"odd-name\":\"5\",\"label\":\"x\"},"
        "\"beat\":{\"fired\":\"4\",\"missed\":\"0\"}}",
        0, NULL);
    char *t = metrics_format(&m, ext);
    assert_has(t, "tandem_queue_length{queue=\"sync\"} 3\n");
    assert_has(t, "tandem_queue_pending{queue=\"sync\"} 1\n");
    assert_has(t, "tandem_workers_live 2\n");
    assert_has(t, "\ntandem_worker_tasks 10\n");
    assert_has(t, "\ntandem_worker_cost_ms 1234\n");
    assert_has(t, "\ntandem_worker_odd_name 5\n");
    assert_has(t, "\ntandem_beat_fired 4\n");
    assert_has(t, "\ntandem_beat_missed 0\n");
    assert_null(strstr(t, "tandem_worker_label"));
    json_decref(ext);
    free(t);
}

/* Issue 16's size gauges: scaled to seconds, a missing source or a -1
 * (not read yet) leaves the gauge out rather than reporting 0. */
static void test_server_metrics_backend_sizes(void **state)
{
    (void)state;
    static struct srv_metrics m;
    json_t *ext = json_loads("{\"redis\":{\"used_memory\":123456,\"keys\":5,\"aof_enabled\":false},"
                             "\"purge\":{\"table_rows_est\":\"-1\",\"table_bytes\":\"65536\","
                             "\"last_pass_us\":\"1500\",\"last_pass_end_ms\":\"1795823941123\","
                             "\"busy_us\":\"2500000\",\"deleted_total\":\"42\"}}",
                             0, NULL);
    char *t = metrics_format(&m, ext);
    assert_has(t, "\ntandem_redis_used_memory_bytes 123456\n");
    assert_has(t, "\ntandem_redis_keys 5\n");
    assert_has(t, "\ntandem_redis_aof_enabled 0\n");
    assert_null(strstr(t, "tandem_redis_aof_size_bytes"));
    assert_null(strstr(t, "tandem_task_record_rows_estimate"));
    assert_has(t, "\ntandem_task_record_bytes 65536\n");
    assert_has(t, "\ntandem_purge_last_pass_seconds 0.0015\n");
    assert_has(t, "\ntandem_purge_last_pass_end_timestamp_seconds 1795823941.123\n");
    assert_has(
        t, "# TYPE tandem_purge_busy_seconds_total counter\ntandem_purge_busy_seconds_total 2.5\n");
    assert_has(t, "\ntandem_purge_deleted_total 42\n");
    json_decref(ext);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_metrics_counts_requests_calls_and_latency),
        cmocka_unit_test(test_server_metrics_exports_queues_and_every_stats_field),
        cmocka_unit_test(test_server_metrics_backend_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
