/* log.c's size cap on a plain-file stderr (copy-and-truncate to FILE.1).
 * Each case runs in a child process: the cap is decided once per process,
 * and stderr is redirected there, not in the test runner. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

struct logdir {
    char dir[64], file[96], old[96];
};

static void mk(struct logdir *d)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/tandem-logtest-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->file, sizeof d->file, "%s/x.log", d->dir);
    snprintf(d->old, sizeof d->old, "%s/x.log.1", d->dir);
}

static void rm(struct logdir *d)
{
    unlink(d->file);
    unlink(d->old);
    rmdir(d->dir);
}

static long long fsize(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* Child: stderr onto the file (flags as given), cap from env, n lines from
 * `procs` processes sharing the descriptor (as the worker's children do). */
static void run_child(struct logdir *d, int flags, const char *cap, int n, int procs)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(d->file, O_WRONLY | O_CREAT | flags, 0640);
        if (fd == -1 || dup2(fd, STDERR_FILENO) == -1)
            _exit(2);
        if (cap)
            setenv("TANDEM_LOG_MAX_BYTES", cap, 1);
        else
            unsetenv("TANDEM_LOG_MAX_BYTES");
        log_init("test-log", LOG_LVL_INFO, false);
        for (int p = 1; p < procs; p++)
            if (fork() == 0)
                break;
        for (int i = 0; i < n; i++)
            log_info("line %05d from %d, padding to make it a realistic length", i, (int)getpid());
        while (wait(NULL) > 0)
            ;
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void test_log_caps_an_append_file(void **state)
{
    (void)state;
    struct logdir d;
    mk(&d);
    run_child(&d, O_APPEND, "8192", 2000, 1); /* ~200 KB written */
    long long now = fsize(d.file), old = fsize(d.old);
    /* checked every cap/8 bytes: never more than the cap + one interval + a line */
    assert_true(now >= 0 && now <= 8192 + 1024 + 256);
    assert_true(old > 8192 && old <= 8192 + 1024 + 256);
    /* the newest line is kept: in the live file, or in FILE.1 when it was the
     * line that tipped the file over the cap */
    assert_true(file_has(d.file, "line 01999") || file_has(d.old, "line 01999"));
    rm(&d);
}

static void test_log_cap_shared_by_processes(void **state)
{
    (void)state;
    struct logdir d;
    mk(&d);
    run_child(&d, O_APPEND, "16384", 1500, 3);
    long long now = fsize(d.file);
    /* three writers: the cap holds within their check intervals */
    assert_true(now >= 0 && now <= 16384 + 3 * (2048 + 256));
    assert_true(fsize(d.old) > 16384);
    rm(&d);
}

static void test_log_no_cap_when_off_or_not_append(void **state)
{
    (void)state;
    struct logdir d;
    mk(&d);
    run_child(&d, O_APPEND, "0", 2000, 1);
    assert_true(fsize(d.file) > 100000);
    assert_int_equal(fsize(d.old), -1);
    unlink(d.file);
    /* without O_APPEND a truncate would leave a hole: no rotation */
    run_child(&d, O_TRUNC, "8192", 2000, 1);
    assert_true(fsize(d.file) > 100000);
    assert_int_equal(fsize(d.old), -1);
    rm(&d);
}

static void test_log_default_cap_is_large(void **state)
{
    (void)state;
    struct logdir d;
    mk(&d);
    run_child(&d, O_APPEND, NULL, 2000, 1);
    assert_true(fsize(d.file) > 100000); /* default 64 MiB: untouched here */
    assert_int_equal(fsize(d.old), -1);
    rm(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_caps_an_append_file),
        cmocka_unit_test(test_log_cap_shared_by_processes),
        cmocka_unit_test(test_log_no_cap_when_off_or_not_append),
        cmocka_unit_test(test_log_default_cap_is_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
