/* Small helpers every module wants the same way. */
#ifndef TANDEM_UTIL_H
#define TANDEM_UTIL_H

/* vasprintf into a new string; NULL when out of memory. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The char **err out-parameter convention (HAProxy style): when err is
 * non-NULL, *err becomes a malloc'd message the caller prints with its
 * context and frees; when NULL, nothing is kept. */
void err_set(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
