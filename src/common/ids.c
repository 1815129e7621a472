#include "ids.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"

static void random_bytes(uint8_t *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            fatal("getrandom");
        }
        got += (size_t)r;
    }
}

/* Ids take their random bytes from a per-thread pool filled by one
 * getrandom() per 512 bytes (a task id per call made getrandom one of the
 * server's most frequent syscalls). A fork() empties the pool of the
 * forking thread, the only one the child has, so a forked process never
 * hands out its parent's ids. Secrets read getrandom() directly. */
static __thread uint8_t pool[512];
static __thread size_t pool_left;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
    pool_left = 0;
}

static void pool_init(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

static void pooled_bytes(uint8_t *b, size_t n)
{
    pthread_once(&pool_once, pool_init);
    if (n > sizeof(pool)) {
        random_bytes(b, n);
        return;
    }
    if (pool_left < n) {
        random_bytes(pool, sizeof(pool));
        pool_left = sizeof(pool);
    }
    uint8_t *src = pool + sizeof(pool) - pool_left;
    memcpy(b, src, n);
    memset(src, 0, n); /* handed out once */
    pool_left -= n;
}

static void hex_random(char *buf, size_t n, const char *prefix, size_t nhex, bool pooled)
{
    uint8_t raw[32];
    static const char hex[] = "0123456789abcdef";
    char tmp[2 * sizeof(raw) + 1];

    if (pooled)
        pooled_bytes(raw, (nhex + 1) / 2);
    else
        random_bytes(raw, (nhex + 1) / 2);
    for (size_t i = 0; i < nhex; i++)
        tmp[i] = hex[(raw[i / 2] >> ((i % 2) ? 0 : 4)) & 0xf];
    tmp[nhex] = '\0';
    snprintf(buf, n, "%s%s", prefix ? prefix : "", tmp);
}

void id_new(char *buf, size_t n, const char *prefix)
{
    hex_random(buf, n, prefix, 24, true);
}

void secret_new(char *buf, size_t n)
{
    hex_random(buf, n, "tk_", 40, false);
}

static bool word_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

static bool all_word(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!word_char(s[i]))
            return false;
    return true;
}

static bool copy_part(char *dst, size_t dstn, const char *src, size_t len)
{
    if (dst == NULL)
        return true;
    if (len >= dstn)
        return false;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

/* A script id is "<set>__<name>": the first "__" splits; the set must not
 * contain "__", and neither part may be empty. */
static bool script_split(const char *s, size_t len, size_t *set_len)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < len; i++)
        if (s[i] == '_' && s[i + 1] == '_') {
            sep = s + i;
            break;
        }
    if (sep == NULL || sep == s)
        return false;
    size_t name_off = (size_t)(sep - s) + 2;
    if (name_off >= len)
        return false;
    if (!all_word(s, len))
        return false;
    *set_len = (size_t)(sep - s);
    return true;
}

bool script_id_valid(const char *script_id)
{
    size_t set_len;
    if (script_id == NULL)
        return false;
    size_t len = strlen(script_id);
    if (len == 0 || len >= 256)
        return false;
    return script_split(script_id, len, &set_len);
}

bool func_id_split(const char *func_id, char *set, size_t setn, char *script_id, size_t scriptn,
                   char *func, size_t funcn)
{
    if (func_id == NULL)
        return false;
    const char *dot = strchr(func_id, '.');
    if (dot == NULL || strchr(dot + 1, '.') != NULL)
        return false;
    size_t script_len = (size_t)(dot - func_id);
    size_t func_len = strlen(dot + 1);
    size_t set_len;
    if (func_len == 0 || !all_word(dot + 1, func_len))
        return false;
    if (!script_split(func_id, script_len, &set_len))
        return false;
    return copy_part(set, setn, func_id, set_len) &&
           copy_part(script_id, scriptn, func_id, script_len) &&
           copy_part(func, funcn, dot + 1, func_len);
}

bool id_valid(const char *id)
{
    if (id == NULL)
        return false;
    size_t len = strlen(id);
    if (len == 0 || len >= ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!word_char(id[i]) && id[i] != '.' && id[i] != '-')
            return false;
    return true;
}
