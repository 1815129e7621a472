/* Routing table matcher: every endpoint lands on its handler, a known path
 * with the wrong method is a 405 with Allow, anything else a 404. */
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server_int.h"

static const struct srv_route *match(const char *method, const char *path, char **params, int *np,
                                     bool *pm, char *allow)
{
    return route_match(srv_routes, srv_nroutes, method, path, params, np, pm, allow, 128);
}

static void free_params(char **p, int n)
{
    for (int i = 0; i < n; i++)
        free(p[i]);
}

static void test_server_route_every_endpoint_reaches_its_handler(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        srv_handler fn;
        const char *p0;
    } cases[] = {
        {"GET", "/api/v1/do/ping", h_ping, NULL},
        {"GET", "/api/v1/health", h_health, NULL},
        {"GET", "/metrics", h_metrics, NULL},
        {"POST", "/api/v1/func/demo__hello.greet", h_func_call, "demo__hello.greet"},
        {"GET", "/api/v1/sync/sapi-1", h_sync_api, "sapi-1"},
        {"POST", "/api/v1/sync/sapi-1/simplified", h_sync_api, "sapi-1"},
        {"GET", "/api/v1/al/auln-x", h_sync_api, "auln-x"},
        {"POST", "/api/v1/async/aapi-2", h_async_api, "aapi-2"},
        {"GET", "/api/v1/bat/aapi-2/simplified", h_async_api, "aapi-2"},
        {"GET", "/api/v1/sync/sapi-1/s", h_sync_api, "sapi-1"},
        {"POST", "/api/v1/sync/sapi-1/normal/any/path.txt", h_sync_api, "sapi-1"},
        {"POST", "/api/v1/async/aapi-2/s/x", h_async_api, "aapi-2"},
        {"GET", "/api/v1/tasks/task-abc", h_task_get, "task-abc"},
        {"GET", "/api/v1/scripts/do/list", h_res_list, NULL},
        {"GET", "/api/v1/scripts/do/list/", h_res_list, NULL},
        {"POST", "/api/v1/scripts/demo__hello/do/modify", h_res_modify, "demo__hello"},
        {"POST", "/api/v1/scripts/demo__hello/do/publish", h_script_publish, "demo__hello"},
        {"GET", "/api/v1/scripts/demo__hello/do/delete", h_res_delete, "demo__hello"},
        {"GET", "/api/v1/funcs/do/list", h_res_list, NULL},
        {"POST", "/api/v1/sync-apis/do/add", h_res_add, NULL},
        {"POST", "/api/v1/async-apis/aapi-1/do/modify", h_res_modify, "aapi-1"},
        {"POST", "/api/v1/env-variables/DB_HOST/do/modify", h_res_modify, "DB_HOST"},
        {"GET", "/api/v1/access-keys/ak-1/do/delete", h_res_delete, "ak-1"},
        {"GET", "/api/v1/task-records/do/list", h_res_list, NULL},
        {"GET", "/api/v1/failover-events", h_failover_events, NULL},
        {"GET", "/api/v1/cron-jobs/do/list", h_res_list, NULL},
        {"GET", "/api/v1/cron-jobs/cron-1/do/get", h_res_get, "cron-1"},
        {"GET", "/api/v1/cron-jobs/_settings", h_cron, NULL},
        {"PATCH", "/api/v1/cron-jobs/_settings", h_cron, NULL},
        {"POST", "/api/v1/cron/cron-1", h_cron, "cron-1"},
        {"GET", "/api/v1/connectors/do/list", h_connectors, NULL},
        {"POST", "/api/v1/connectors/db1/do/test", h_connectors, "db1"},
        {"HEAD", "/api/v1/do/ping", h_ping, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p[SRV_MAX_PARAMS] = {0};
        int n = -1;
        bool pm;
        char allow[128];
        const struct srv_route *rt = match(cases[i].method, cases[i].path, p, &n, &pm, allow);
        if (!rt)
            fail_msg("%s %s: no route", cases[i].method, cases[i].path);
        assert_ptr_equal(rt->fn, cases[i].fn);
        if (cases[i].p0) {
            assert_true(n >= 1);
            assert_string_equal(p[0], cases[i].p0);
        } else {
            assert_int_equal(n, 0);
        }
        free_params(p, n);
    }
}

static void test_server_route_wrong_method_is_405_with_allow(void **state)
{
    (void)state;
    char *p[SRV_MAX_PARAMS] = {0};
    int n;
    bool pm;
    char allow[128];
    assert_null(match("DELETE", "/api/v1/do/ping", p, &n, &pm, allow));
    assert_true(pm);
    assert_string_equal(allow, "GET");
    assert_null(match("PUT", "/api/v1/connectors/c1/do/delete", p, &n, &pm, allow));
    assert_true(pm);
    assert_string_equal(allow, "GET, POST");
    assert_null(match("GET", "/api/v1/sync-apis/sapi-1/do/modify", p, &n, &pm, allow));
    assert_true(pm);
    assert_string_equal(allow, "POST");
    assert_null(match("GET", "/api/v1/func/a__b.c", p, &n, &pm, allow));
    assert_true(pm);
    assert_string_equal(allow, "POST");
    assert_int_equal(n, 0);
}

/* DFF's /<id>/<format>/<anything> paths: the format and the tail are captured. */
static void test_server_route_api_format_and_tail(void **state)
{
    (void)state;
    char *p[SRV_MAX_PARAMS] = {0};
    int n = -1;
    bool pm;
    char allow[128];
    const struct srv_route *rt = match("GET", "/api/v1/al/sapi-9/s/a/b.csv", p, &n, &pm, allow);
    assert_non_null(rt);
    assert_ptr_equal(rt->fn, h_sync_api);
    assert_int_equal(n, 3);
    assert_string_equal(p[0], "sapi-9");
    assert_string_equal(p[1], "s");
    assert_string_equal(p[2], "a/b.csv");
    free_params(p, n);
    rt = match("POST", "/api/v1/bat/aapi-1/normal", p, &n, &pm, allow);
    assert_non_null(rt);
    assert_ptr_equal(rt->fn, h_async_api);
    assert_int_equal(n, 2);
    assert_string_equal(p[1], "normal");
    free_params(p, n);
}

static void test_server_route_unknown_path_is_404(void **state)
{
    (void)state;
    char *p[SRV_MAX_PARAMS] = {0};
    int n;
    bool pm;
    char allow[128];
    /* "/" is the console's redirect (test_server_console) */
    const char *paths[] = {"/nope", "/api", "/api/v1/nope", "/api/v1/sync/", "/api/v1/syncx/x/y",
                           "/api/v1/scripts/a/b/c", "/api/v1/connectors", "/api/v1/connectors/c1",
                           /* Tandem's first paths, gone for DFF's shapes */
                           "/api/v1/scripts", "/api/v1/scripts/demo__hello", "/api/v1/sync-apis",
                           "/api/v1/async-apis/aapi-1", "/api/v1/task-records", "/api/v1/cron-jobs",
                           "/api/v1/cron-jobs/cron-1", "/metricsx", "/api/v1/func//x"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        assert_null(match("GET", paths[i], p, &n, &pm, allow));
        assert_false(pm);
    }
    /* a path longer than any buffer is refused, not overflowed */
    char *longp = malloc(5000);
    memset(longp, 'a', 4999);
    longp[0] = '/';
    longp[4999] = '\0';
    assert_null(match("GET", longp, p, &n, &pm, allow));
    free(longp);
}

int main(int argc, char **argv)
{
    /* The table as data for tests/integration/test_dff_mgmt_routes.py,
     * which sends a keyless and a call-only request to every admin row. */
    if (argc > 1 && strcmp(argv[1], "--list-routes") == 0) {
        for (size_t i = 0; i < srv_nroutes; i++)
            printf("%s\t%s\t%d\n", srv_routes[i].method, srv_routes[i].pattern,
                   (int)srv_routes[i].need);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_route_every_endpoint_reaches_its_handler),
        cmocka_unit_test(test_server_route_wrong_method_is_405_with_allow),
        cmocka_unit_test(test_server_route_unknown_path_is_404),
        cmocka_unit_test(test_server_route_api_format_and_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
