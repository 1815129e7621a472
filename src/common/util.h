/* Small helpers every module wants the same way. */
#ifndef TANDEM_UTIL_H
#define TANDEM_UTIL_H

/* vasprintf into a new string; NULL when out of memory. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The char **err out-parameter convention (HAProxy style): when err is
 * non-NULL, *err becomes a malloc'd message the caller prints with its
 * context and frees; when NULL, nothing is kept. */
void err_set(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "host:port" (IPv6 as "[addr]:port") into host and port 1..65535.
 * 0, or -1 when it is not of that form or host does not fit. */
#include <stddef.h>
int hostport_split(const char *s, char *host, size_t hostn, int *port);

#endif
