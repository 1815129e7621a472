/* Logging: one line per call, to stderr and optionally syslog. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, lg.ident, (int)getpid(), level_names[level], msg);
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
