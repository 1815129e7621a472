/* Logging: one line per call, to stderr and optionally syslog.
 *
 * When stderr is a plain file (appliance/local, appliance/lab: `>>FILE`), it
 * is kept under a size cap (TANDEM_LOG_MAX_BYTES, default LOG_CAP_DEFAULT,
 * 0 = no cap) by copy-and-truncate: the file is copied to FILE.1 (the one
 * older generation kept) and truncated. Not rename-and-reopen: the worker's
 * children, Python code printing, and the lab's stack under its supervisor
 * all write through inherited descriptors that a reopen in one process
 * would leave on the old file; with O_APPEND every writer simply continues
 * at the new end. Lines another process writes between the copy and the
 * truncate are lost (a window of one copy). Under systemd stderr is the
 * journal (a socket), which rotates itself: nothing happens then. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "clock.h"

/* Process-wide logger settings; written once at start-up by log_init(). */
static struct {
    char ident[64];
    enum log_level level;
    bool use_syslog;
} lg = {"tandem", LOG_LVL_INFO, false};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

#define LOG_CAP_DEFAULT (64LL << 20)

static long long cap_bytes = -1; /* -1: not decided yet; 0: no cap */
static atomic_llong since_check; /* bytes written since the last size look */
static pthread_mutex_t rot_mu = PTHREAD_MUTEX_INITIALIZER;

/* Decided once per process: a regular file on stderr, and the cap. */
static void cap_init(void)
{
    struct stat st;
    const char *env = getenv("TANDEM_LOG_MAX_BYTES");
    long long cap = LOG_CAP_DEFAULT;
    if (env && *env) {
        char *end;
        long long v = strtoll(env, &end, 10);
        cap = (*end || v < 0) ? LOG_CAP_DEFAULT : v;
    }
    /* O_APPEND too: after a truncate a writer at its own offset would leave
     * a hole the size of the old file */
    int fl = fcntl(STDERR_FILENO, F_GETFL);
    if (fstat(STDERR_FILENO, &st) != 0 || !S_ISREG(st.st_mode) || fl == -1 || !(fl & O_APPEND))
        cap = 0;
    cap_bytes = cap;
}

/* Copies path to path.1 (through a temporary name, so a reader never sees a
 * half copy) and truncates the original; fd is open on path, locked. */
static void rotate(int fd, const char *path)
{
    char tmp[PATH_MAX + 8], old[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.1.tmp", path);
    snprintf(old, sizeof old, "%s.1", path);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out == -1)
        return;
    char buf[65536];
    ssize_t n;
    bool ok = true;
    while (ok && (n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t w = 0, k; ok && w < n; w += k)
            if ((k = write(out, buf + w, (size_t)(n - w))) <= 0)
                ok = false;
    if (close(out) != 0 || !ok || rename(tmp, old) != 0) {
        unlink(tmp);
        return; /* a full disk: keep the log rather than lose it */
    }
    if (ftruncate(STDERR_FILENO, 0) != 0)
        return;
}

/* Called after each line: every cap/8 bytes (at most 64 KiB) looks at the
 * file's size; over the cap, one process (flock on a fresh open file
 * description, so processes sharing stderr exclude each other) rotates. */
static void cap_check(size_t wrote)
{
    if (cap_bytes < 0)
        cap_init();
    if (cap_bytes == 0)
        return;
    long long every = cap_bytes / 8 < 65536 ? cap_bytes / 8 : 65536;
    if (atomic_fetch_add(&since_check, (long long)wrote) + (long long)wrote < every)
        return;
    if (pthread_mutex_trylock(&rot_mu) != 0)
        return;
    atomic_store(&since_check, 0);
    struct stat st;
    char link[64], path[PATH_MAX];
    ssize_t n;
    snprintf(link, sizeof link, "/proc/self/fd/%d", STDERR_FILENO);
    if (fstat(STDERR_FILENO, &st) == 0 && st.st_size > cap_bytes &&
        (n = readlink(link, path, sizeof path - 1)) > 0) {
        path[n] = '\0';
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd != -1) {
            if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
                /* another process may have rotated it just now */
                if (fstat(fd, &st) == 0 && st.st_size > cap_bytes)
                    rotate(fd, path);
                flock(fd, LOCK_UN);
            }
            close(fd);
        }
    }
    pthread_mutex_unlock(&rot_mu);
}

void log_init(const char *ident, enum log_level level, bool use_syslog)
{
    snprintf(lg.ident, sizeof(lg.ident), "%s", ident ? ident : "tandem");
    lg.level = level;
    if (lg.use_syslog)
        closelog();
    lg.use_syslog = use_syslog;
    if (use_syslog)
        openlog(lg.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level level)
{
    lg.level = level;
}

int log_level_parse(const char *s)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    if ((int)level < 0 || level > LOG_LVL_ERR)
        return "unknown";
    return level_names[level];
}

static void vlog(enum log_level level, int errnum, const char *fmt, va_list ap)
{
    if (level < lg.level)
        return;
    char msg[4096];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        snprintf(msg, sizeof(msg), "(bad log format)");
    if (errnum) {
        size_t len = strlen(msg);
        if (len < sizeof(msg))
            snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(errnum));
    }
    char ts[32];
    iso8601_ms(now_ms(), ts, sizeof(ts));
    /* One fprintf per line so lines from threads do not interleave. */
    int len = fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, lg.ident, (int)getpid(),
                      level_names[level], msg);
    if (len > 0)
        cap_check((size_t)len);
    if (lg.use_syslog) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        syslog(prio[level], "%s: %s", level_names[level], msg);
    }
}

void log_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LVL_DEBUG, 0, fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LVL_INFO, 0, fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LVL_WARN, e, fmt, ap);
    va_end(ap);
    errno = e;
}

void log_warnx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LVL_WARN, 0, fmt, ap);
    va_end(ap);
}

void log_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LVL_ERR, 0, fmt, ap);
    va_end(ap);
}

void fatal(const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LVL_ERR, e, fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LVL_ERR, 0, fmt, ap);
    va_end(ap);
    exit(1);
}
