/* Throttling of Sync/Async APIs (DFF's throttlingJSON: at most N calls per
 * second/minute/hour/day/month/year) and the queue-depth cap of public APIs,
 * in one Redis round trip: a Lua script checks XLEN of the target stream,
 * then INCRs one counter per rule in its fixed window (DFF's windows: the
 * counter of window floor(now / seconds)) and stops at the first rule over
 * its limit. Counters expire with their window. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>
#include "clock.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"

static const struct {
    const char *name;
    int seconds;
} RULES[] = {
    {"bySecond", 1},  {"byMinute", 60},        {"byHour", 3600},
    {"byDay", 86400}, {"byMonth", 86400 * 30}, {"byYear", 86400 * 365},
};
#define NRULES (sizeof RULES / sizeof RULES[0])

int throttle_rule_seconds(const char *rule)
{
    for (size_t i = 0; i < NRULES; i++)
        if (strcmp(RULES[i].name, rule) == 0)
            return RULES[i].seconds;
    return 0;
}

/* KEYS[1] = stream, KEYS[2..] = counters; ARGV[1] = queue cap (0 = none),
 * then (limit, ttl) per counter. {0} ok; {-1, xlen} queue full; {i, count}
 * rule i (1-based) over its limit. */
static const char THROTTLE_LUA[] =
    "local cap = tonumber(ARGV[1])\n"
    "if cap > 0 then\n"
    "  local n = redis.call('XLEN', KEYS[1])\n"
    "  if n > cap then return {-1, n} end\n"
    "end\n"
    "for i = 2, #KEYS do\n"
    "  local c = redis.call('INCR', KEYS[i])\n"
    "  if c == 1 then redis.call('EXPIRE', KEYS[i], ARGV[2 * i - 1]) end\n"
    "  if c > tonumber(ARGV[2 * i - 2]) then return {i - 1, c} end\n"
    "end\n"
    "return {0}\n";

static __thread char throttle_sha[41];

/* The queue-depth cap without a Redis round trip per call: the last XLEN of
 * each stream, shared by the server's threads, plus every call admitted
 * since. The estimate only errs high (the workers' deletes are not seen
 * until the next XLEN), and a call it would refuse is checked against a
 * fresh XLEN first, so a refusal is always exact; a stale estimate admits
 * at most what other servers enqueued in the last QLEN_FRESH_MS. */
#define QLEN_FRESH_MS 100
#define QLEN_SLOTS 16
static struct {
    char key[160];
    long long est;
    int64_t at_mono;
} g_qlen[QLEN_SLOTS];
static pthread_mutex_t g_qlen_mu = PTHREAD_MUTEX_INITIALIZER;

static int qlen_slot_locked(const char *qkey)
{
    int free_slot = -1, oldest = 0;
    for (int i = 0; i < QLEN_SLOTS; i++) {
        if (strcmp(g_qlen[i].key, qkey) == 0)
            return i;
        if (!g_qlen[i].key[0] && free_slot < 0)
            free_slot = i;
        if (g_qlen[i].at_mono < g_qlen[oldest].at_mono)
            oldest = i;
    }
    int i = free_slot >= 0 ? free_slot : oldest;
    snprintf(g_qlen[i].key, sizeof g_qlen[i].key, "%s", qkey);
    g_qlen[i].est = 0;
    g_qlen[i].at_mono = INT64_MIN; /* never read: stale */
    return i;
}

/* 0: under the cap, counted as admitted; 1: full (*len: the XLEN); -1: Redis
 * failed (answered). */
static int qlen_admit(struct srv_req *r, const char *qkey, long long cap, long long *len)
{
    int64_t now = mono_ms();
    pthread_mutex_lock(&g_qlen_mu);
    int i = qlen_slot_locked(qkey);
    /* INT64_MIN marks a slot never read: now - INT64_MIN would overflow */
    bool fresh = g_qlen[i].at_mono != INT64_MIN && now - g_qlen[i].at_mono < QLEN_FRESH_MS;
    if (fresh && g_qlen[i].est <= cap) {
        g_qlen[i].est++;
        pthread_mutex_unlock(&g_qlen_mu);
        return 0;
    }
    pthread_mutex_unlock(&g_qlen_mu);
    redisContext *rc = srv_redis(r);
    if (!rc)
        return -1;
    redisReply *rep = redisCommand(rc, "XLEN %s", qkey);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        req_redis_err(r, rc, rep && rep->type == REDIS_REPLY_ERROR ? rep : NULL,
                      "XLEN of the queue");
        if (rep)
            freeReplyObject(rep);
        return -1;
    }
    long long n = rep->integer;
    freeReplyObject(rep);
    pthread_mutex_lock(&g_qlen_mu);
    i = qlen_slot_locked(qkey);
    g_qlen[i].est = n > cap ? n : n + 1;
    g_qlen[i].at_mono = mono_ms();
    pthread_mutex_unlock(&g_qlen_mu);
    *len = n;
    return n > cap ? 1 : 0;
}

/* The 429 of a refused call: which < 0 the queue is full (count: its
 * length), else rule which (1-based) is over its limit (count: calls in
 * its window sep of secs seconds). Returns -1. */
static int refuse(struct srv_req *r, long long which, long long count, long long qlimit,
                  const char *rname, long long rlimit, int secs, long long sep, int64_t now_s)
{
    char ra[24];
    if (which < 0) {
        /* the queue is deep: come back when the workers have caught up a bit */
        req_err(r, 429, "EClientRateLimit.QueueFull",
                json_pack("{s:I,s:I,s:i}", "queueLength", (json_int_t)count, "limit",
                          (json_int_t)qlimit, "waitSeconds", 5),
                "the queue of this API holds %lld tasks (server.api_queue_limit %lld); retry later",
                count, qlimit);
        snprintf(ra, sizeof ra, "5");
    } else {
        long long wait = (sep + 1) * secs - now_s + 1;
        req_err(r, 429, "EClientRateLimit.APIThrottling",
                json_pack("{s:s,s:I,s:I,s:I}", "rule", rname, "limit", (json_int_t)rlimit,
                          "currentCount", (json_int_t)count, "waitSeconds", (json_int_t)wait),
                "Maximum calling rate exceeded (%s: %lld)", rname, rlimit);
        snprintf(ra, sizeof ra, "%lld", wait);
    }
    if (r->resp)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    return -1;
}

int api_throttle(struct srv_req *r, const char *kind, const char *id, json_t *rules,
                 const char *qkey, long long qlimit)
{
    const char *argv[3 + 2 * NRULES * 2];
    char keys[NRULES][256], nums[1 + 2 * NRULES][24];
    const char *rname[NRULES];
    long long rlimit[NRULES], rsep[NRULES];
    int rsecs[NRULES];
    int nk = 0;
    int64_t now_s = now_ms() / 1000;
    const char *rule;
    json_t *v;
    json_object_foreach(rules, rule, v)
    {
        int secs = throttle_rule_seconds(rule);
        if (!secs || !json_is_integer(v) || json_integer_value(v) < 0 || nk >= (int)NRULES)
            continue; /* unknown names are ignored, as DFF's UI never writes them */
        rname[nk] = rule;
        rlimit[nk] = json_integer_value(v);
        rsecs[nk] = secs;
        rsep[nk] = now_s / secs;
        rds_key(keys[nk], sizeof keys[nk], srv_conf(), "throttle:%s:%s:%s:%lld", kind, id, rule,
                rsep[nk]);
        nk++;
    }
    if (nk == 0 && qlimit <= 0)
        return 0;
    long long qlen = 0;
    if (nk == 0) { /* the cap alone: from the estimate, no script */
        int full = qlen_admit(r, qkey, qlimit, &qlen);
        if (full <= 0)
            return full;
        return refuse(r, -1, qlen, qlimit, NULL, 0, 0, 0, now_s);
    }
    redisContext *rc = srv_redis(r);
    if (!rc)
        return -1;
    int argc = 0;
    argv[argc++] = qkey;
    for (int i = 0; i < nk; i++)
        argv[argc++] = keys[i];
    snprintf(nums[0], sizeof nums[0], "%lld", qlimit > 0 ? qlimit : 0);
    argv[argc++] = nums[0];
    for (int i = 0; i < nk; i++) {
        snprintf(nums[1 + 2 * i], sizeof nums[0], "%lld", rlimit[i]);
        snprintf(nums[2 + 2 * i], sizeof nums[0], "%d", rsecs[i]);
        argv[argc++] = nums[1 + 2 * i];
        argv[argc++] = nums[2 + 2 * i];
    }
    redisReply *rep = rds_eval(rc, THROTTLE_LUA, throttle_sha, 1 + nk, argv, argc);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        req_redis_err(r, rc, rep && rep->type == REDIS_REPLY_ERROR ? rep : NULL,
                      "throttling script");
        if (rep)
            freeReplyObject(rep);
        return -1;
    }
    long long which = rep->element[0]->integer;
    long long count = rep->elements > 1 ? rep->element[1]->integer : 0;
    freeReplyObject(rep);
    if (which == 0)
        return 0;
    int k = which > 0 ? (int)which - 1 : 0;
    return refuse(r, which, count, qlimit, rname[k], rlimit[k], rsecs[k], rsep[k], now_s);
}
