/* One small log module, used the same way everywhere (OpenBSD style):
 * log_warn() appends strerror(errno), log_warnx() does not, fatal() exits 1. */
#ifndef TANDEM_LOG_H
#define TANDEM_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

/* ident: "tandem-server" etc. Logs go to stderr as
 * "2026-11-27T23:59:01.123Z tandem-server[123]: warn: message",
 * and to syslog(3) as well when use_syslog is set. Safe to call again. */
void log_init(const char *ident, enum log_level level, bool use_syslog);
void log_set_level(enum log_level level);
/* "debug" | "info" | "warn" | "error"; returns -1 for anything else. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level level);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
