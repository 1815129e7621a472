#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
