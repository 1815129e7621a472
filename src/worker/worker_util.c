/* Small pure helpers, unit-tested in tests/unit/test_worker_util.c. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sha256.h"

int64_t statm_rss_bytes(const char *text, long page_size)
{
    /* statm: size resident shared text lib data dt (pages) */
    char *end;
    long long size, rss;

    if (text == NULL || page_size <= 0)
        return -1;
    errno = 0;
    size = strtoll(text, &end, 10);
    if (errno || end == text || *end != ' ' || size < 0)
        return -1;
    text = end + 1;
    rss = strtoll(text, &end, 10);
    if (errno || end == text || rss < 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
        return -1;
    return (int64_t)rss * page_size;
}

int64_t proc_rss_bytes(int pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return statm_rss_bytes(buf, sysconf(_SC_PAGESIZE));
}

int64_t backoff_ms(int fails, int64_t base, int64_t cap)
{
    if (fails <= 0)
        return 0;
    int64_t d = base;
    for (int i = 1; i < fails && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

const char *signal_name(int sig, char *buf, size_t n)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, n, "SIG%s", abbrev);
    else
        snprintf(buf, n, "signal %d", sig);
    return buf;
}

void wait_status_text(int status, char *buf, size_t n)
{
    char sb[32];
    if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "killed by signal %s%s", signal_name(WTERMSIG(status), sb, sizeof(sb)),
                 WCOREDUMP(status) ? " (core dumped)" : "");
    else
        snprintf(buf, n, "stopped (wait status 0x%x)", status);
}
