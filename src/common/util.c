#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) == -1)
        s = NULL;
    va_end(ap);
    return s;
}

void err_set(char **err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) == -1)
        *err = NULL;
    va_end(ap);
}

int hostport_split(const char *s, char *host, size_t hostn, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0')
        return -1;
    const char *h = s, *he = colon;
    if (*h == '[') { /* [v6]:port */
        if (he[-1] != ']')
            return -1;
        h++;
        he--;
    } else if (memchr(s, ':', (size_t)(colon - s))) {
        return -1; /* a bare v6 address is ambiguous */
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl >= hostn)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}
