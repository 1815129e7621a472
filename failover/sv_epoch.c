/* The fencing epoch's two Lua scripts (see sv_epoch.h). */
#include "sv_epoch.h"

#include <stdio.h>

static const char take_lua[] = "local c = tonumber(redis.call('GET', KEYS[1]) or '0') or 0 "
                               "local f = tonumber(ARGV[1]) or 0 "
                               "if f > c then c = f end "
                               "c = c + 1 redis.call('SET', KEYS[1], c) return c";

static const char raise_lua[] = "local c = tonumber(redis.call('GET', KEYS[1]) or '0') or 0 "
                                "local f = tonumber(ARGV[1]) "
                                "if c < f then redis.call('SET', KEYS[1], f) return c end "
                                "return -1";

static int64_t eval(redisContext *rc, const char *lua, const char *key, int64_t arg, char *err,
                    size_t errn, int64_t fail)
{
    if (rc == NULL) {
        snprintf(err, errn, "not connected to Redis");
        return fail;
    }
    redisReply *r = redisCommand(rc, "EVAL %s 1 %s %lld", lua, key, (long long)arg);
    int64_t v = fail;
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else
        snprintf(err, errn, "%s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str
                 : rc->err                         ? rc->errstr
                                                   : "unexpected reply");
    if (r)
        freeReplyObject(r);
    return v;
}

int64_t sv_epoch_take(redisContext *rc, const char *key, int64_t floor, char *err, size_t errn)
{
    return eval(rc, take_lua, key, floor, err, errn, -1);
}

int64_t sv_epoch_raise(redisContext *rc, const char *key, int64_t to, char *err, size_t errn)
{
    return eval(rc, raise_lua, key, to, err, errn, -2);
}
