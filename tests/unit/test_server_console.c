/* The console's static serving: a request path can never name a file
 * outside server.console_dir (no "..", no hidden files, no odd bytes), only
 * known file types are served and with the right MIME type, and "/" and
 * "/console/..." reach the console's handlers. */
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server_int.h"

static void test_console_path_refuses_traversal_and_hidden_files(void **state)
{
    (void)state;
    static const char *const bad[] = {"..",          "../etc/passwd", "a/../../x",   "./index.html",
                                      ".git/config", "a//b.js",       "/etc/passwd", "a/",
                                      "x\\y.js",     "a b.js",        "%2e%2e/x",    "",
                                      "a/.hidden.js"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        if (console_path_ok(bad[i], &why) != -1)
            fail_msg("path \"%s\" was accepted", bad[i]);
        assert_non_null(why);
    }
    char longp[260];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    const char *why = NULL;
    assert_int_equal(console_path_ok(longp, &why), -1);
    static const char *const good[] = {"index.html", "app.js", "css/console.css", "img/logo.svg",
                                       "a-b_c.1.js"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (console_path_ok(good[i], &why) != 0)
            fail_msg("path \"%s\" was refused: %s", good[i], why);
}

static void test_console_mime_types(void **state)
{
    (void)state;
    assert_string_equal(console_mime("index.html"), "text/html; charset=utf-8");
    assert_string_equal(console_mime("app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(console_mime("a/console.css"), "text/css; charset=utf-8");
    assert_string_equal(console_mime("logo.svg"), "image/svg+xml");
    assert_null(console_mime("README"));
    assert_null(console_mime("x.sh"));
    assert_null(console_mime("a.js/b"));
}

static void test_console_routes_reach_the_console(void **state)
{
    (void)state;
    char *params[SRV_MAX_PARAMS] = {0};
    int np = 0;
    bool pm = false;
    char allow[128];
    const struct srv_route *rt =
        route_match(srv_routes, srv_nroutes, "GET", "/", params, &np, &pm, allow, sizeof allow);
    assert_non_null(rt);
    assert_ptr_equal(rt->fn, h_console_root);
    rt = route_match(srv_routes, srv_nroutes, "GET", "/console/app.js", params, &np, &pm, allow,
                     sizeof allow);
    assert_non_null(rt);
    assert_ptr_equal(rt->fn, h_console_file);
    assert_int_equal(np, 1);
    assert_string_equal(params[0], "app.js");
    free(params[0]);
    rt = route_match(srv_routes, srv_nroutes, "GET", "/api/v1/console/cluster", params, &np, &pm,
                     allow, sizeof allow);
    assert_non_null(rt);
    assert_int_equal(rt->need, SRV_SCOPE_ADMIN);
    rt = route_match(srv_routes, srv_nroutes, "POST", "/api/v1/console/do/maintenance", params, &np,
                     &pm, allow, sizeof allow);
    assert_non_null(rt);
    assert_int_equal(rt->need, SRV_SCOPE_ADMIN);
    /* a call-only user's console signs out and lists what it may call */
    rt = route_match(srv_routes, srv_nroutes, "POST", "/api/v1/console/do/sign-out", params, &np,
                     &pm, allow, sizeof allow);
    assert_non_null(rt);
    assert_int_equal(rt->need, SRV_SCOPE_CALL);
    rt = route_match(srv_routes, srv_nroutes, "GET", "/api/v1/console/callables", params, &np, &pm,
                     allow, sizeof allow);
    assert_non_null(rt);
    assert_int_equal(rt->need, SRV_SCOPE_CALL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_console_path_refuses_traversal_and_hidden_files),
        cmocka_unit_test(test_console_mime_types),
        cmocka_unit_test(test_console_routes_reach_the_console),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
