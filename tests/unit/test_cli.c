/* The shared daemon command line. Paths that exit() run in a forked child
 * whose stdout/stderr go to files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "build_config.h"
#include "cli.h"
#include "config.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tandem-common-cli-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *files[] = {"out", "err", "good.conf", "bad.conf"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return 0;
}

static char *slurp(const char *name)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    static char buf[2][8192];
    static int which;
    char *b = buf[which++ % 2];
    size_t n = fread(b, 1, sizeof(buf[0]) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static void write_file(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs cli_parse (and cli_load_config when load is set) in a child; returns
 * its exit status, or 100 if it returned without exiting. */
static int run_child(bool load, int argc, char **argv)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid != -1);
    if (pid == 0) {
        char p[128];
        snprintf(p, sizeof(p), "%s/out", tmpdir);
        int o = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        snprintf(p, sizeof(p), "%s/err", tmpdir);
        int e = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        struct cli_opts opts;
        cli_parse(&opts, argc, argv, "tandem-test", "extra usage line");
        if (load) {
            struct tconf c;
            cli_load_config(&c, &opts, "tandem-test");
        }
        fflush(NULL);
        _exit(100);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_cli_defaults(void **state)
{
    (void)state;
    struct cli_opts o;
    char *argv[] = {"prog", NULL};
    unsetenv("TANDEM_CONFIG");
    cli_parse(&o, 1, argv, "prog", NULL);
    assert_string_equal(o.config_path, TANDEM_DEFAULT_CONFIG);
    assert_false(o.check_config);
    assert_int_equal(o.epoch, -1);
    assert_int_equal(o.log_level, -1);

    setenv("TANDEM_CONFIG", "/etc/other.conf", 1);
    cli_parse(&o, 1, argv, "prog", NULL);
    assert_string_equal(o.config_path, "/etc/other.conf");
    unsetenv("TANDEM_CONFIG");
}

static void test_cli_options(void **state)
{
    (void)state;
    struct cli_opts o;
    char *argv[] = {"prog", "-c", "/x.conf", "--epoch", "7", "-d", "--check-config", NULL};
    setenv("TANDEM_CONFIG", "/env.conf", 1); /* -c wins over the environment */
    cli_parse(&o, 7, argv, "prog", NULL);
    unsetenv("TANDEM_CONFIG");
    assert_string_equal(o.config_path, "/x.conf");
    assert_int_equal(o.epoch, 7);
    assert_int_equal(o.log_level, 0);
    assert_true(o.check_config);

    char *argv2[] = {"prog", "--config=/y.conf", "--epoch=12345678901", "--debug", NULL};
    cli_parse(&o, 4, argv2, "prog", NULL);
    assert_string_equal(o.config_path, "/y.conf");
    assert_int_equal(o.epoch, 12345678901LL);
}

static void test_cli_version_and_help_exit_0(void **state)
{
    (void)state;
    char *argv[] = {"prog", "--version", NULL};
    assert_int_equal(run_child(false, 2, argv), 0);
    assert_string_equal(slurp("out"), "tandem-test (tandem) " TANDEM_VERSION "\n");

    char *argv2[] = {"prog", "-h", NULL};
    assert_int_equal(run_child(false, 2, argv2), 0);
    char *out = slurp("out");
    assert_non_null(strstr(out, "usage: tandem-test"));
    assert_non_null(strstr(out, "--check-config"));
    assert_non_null(strstr(out, "extra usage line"));
}

static void test_cli_bad_usage_exits_2(void **state)
{
    (void)state;
    char *a1[] = {"prog", "--frobnicate", NULL};
    assert_int_equal(run_child(false, 2, a1), 2);
    assert_non_null(strstr(slurp("err"), "usage:"));
    char *a2[] = {"prog", "--epoch", "abc", NULL};
    assert_int_equal(run_child(false, 3, a2), 2);
    assert_non_null(strstr(slurp("err"), "--epoch"));
    char *a3[] = {"prog", "--epoch", "-3", NULL};
    assert_int_equal(run_child(false, 3, a3), 2);
    char *a4[] = {"prog", "-c", NULL};
    assert_int_equal(run_child(false, 2, a4), 2);
    char *a5[] = {"prog", "stray", NULL};
    assert_int_equal(run_child(false, 2, a5), 2);
    assert_non_null(strstr(slurp("err"), "stray"));
}

static void test_cli_check_config(void **state)
{
    (void)state;
    char good[128], bad[128];
    snprintf(good, sizeof(good), "%s/good.conf", tmpdir);
    snprintf(bad, sizeof(bad), "%s/bad.conf", tmpdir);
    write_file("good.conf", "server = { port = 9000; };\n");
    write_file("bad.conf", "server = {\n port = 0;\n};\n");

    char *a1[] = {"prog", "-c", good, "--check-config", NULL};
    assert_int_equal(run_child(true, 4, a1), 0);
    char want[256];
    snprintf(want, sizeof(want), "tandem-test: %s: ok\n", good);
    assert_string_equal(slurp("out"), want);

    char *a2[] = {"prog", "-c", bad, "--check-config", NULL};
    assert_int_equal(run_child(true, 4, a2), 1);
    snprintf(want, sizeof(want), "%s:2: server.port:", bad);
    assert_non_null(strstr(slurp("err"), want));

    /* Without --check-config a bad file stops the daemon with status 1... */
    char *a3[] = {"prog", "-c", bad, NULL};
    assert_int_equal(run_child(true, 3, a3), 1);
    assert_non_null(strstr(slurp("err"), want));
    /* ...and a good one lets it go on. */
    char *a4[] = {"prog", "-c", good, NULL};
    assert_int_equal(run_child(true, 3, a4), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_defaults),
        cmocka_unit_test(test_cli_options),
        cmocka_unit_test(test_cli_version_and_help_exit_0),
        cmocka_unit_test(test_cli_bad_usage_exits_2),
        cmocka_unit_test(test_cli_check_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
