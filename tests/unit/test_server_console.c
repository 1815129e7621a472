/* The console's static serving: a request path can never name a file
 * outside server.console_dir (no "..", no hidden files, no odd bytes), only
 * known file types are served and with the right MIME type, "/" and
 * "/console/..." reach the console's handlers, and the version that names
 * the page's assets changes with any of its files and with nothing else. */
#include <stdio.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
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

static void test_console_stamp_replaces_every_mark(void **state)
{
    (void)state;
    static const char page[] = "<link href=\"a.css?v=@version@\"><script src=\"b.js?v=@version@\">"
                               "@version";
    size_t n = 0;
    char *out = console_stamp(page, sizeof page - 1, "0123456789abcdef", &n);
    assert_non_null(out);
    assert_string_equal(out, "<link href=\"a.css?v=0123456789abcdef\"><script "
                             "src=\"b.js?v=0123456789abcdef\">@version");
    assert_int_equal(n, strlen(out));
    free(out);
    out = console_stamp("", 0, "x", &n);
    assert_non_null(out);
    assert_int_equal(n, 0);
    free(out);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_console_version_follows_the_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/tandem-console-ver-XXXXXX", v0[17], v1[17], v2[17], v3[17];
    assert_non_null(mkdtemp(dir));
    write_file(dir, "index.html", "<p>x</p>");
    write_file(dir, "app.js", "1;");
    assert_int_equal(console_version(dir, v0), 0);
    assert_int_equal(strlen(v0), 16);
    assert_int_equal(console_version(dir, v1), 0);
    assert_string_equal(v0, v1); /* same files, same version */
    /* a file the console does not serve (and a hidden one) changes nothing */
    write_file(dir, "README", "notes");
    write_file(dir, ".app.js.swp", "x");
    assert_int_equal(console_version(dir, v1), 0);
    assert_string_equal(v0, v1);
    /* a deploy: a served file's size or mtime changes it */
    write_file(dir, "app.js", "12;");
    assert_int_equal(console_version(dir, v2), 0);
    assert_string_not_equal(v0, v2);
    char p[300];
    snprintf(p, sizeof p, "%s/app.js", dir);
    struct timeval tv[2] = {{1000000000, 0}, {1000000000, 0}};
    assert_int_equal(utimes(p, tv), 0);
    assert_int_equal(console_version(dir, v3), 0);
    assert_string_not_equal(v2, v3);
    static const char *const names[] = {"index.html", "app.js", "README", ".app.js.swp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    assert_int_equal(console_version(dir, v3), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_console_path_refuses_traversal_and_hidden_files),
        cmocka_unit_test(test_console_mime_types),
        cmocka_unit_test(test_console_routes_reach_the_console),
        cmocka_unit_test(test_console_stamp_replaces_every_mark),
        cmocka_unit_test(test_console_version_follows_the_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
