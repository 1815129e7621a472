/* The beat lease: <prefix>beat:lease = "<node>:<epoch>:<nonce>" with PX.
 * Acquire is SET NX PX inside a script that also refuses a stale epoch and
 * lets a newer epoch take over a lease left by an older one (the old primary
 * is fenced by the epoch anyway, so waiting out its lease buys nothing).
 * Renew and release are compare-and-set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beat.h"
#include "clock.h"
#include "log.h"
#include "rds.h"

/* KEYS lease, epoch; ARGV value, epoch, px. 1 acquired/renewed, 2 took over
 * from an older epoch, 0 held by another, -2 our epoch is stale. */
static const char ACQUIRE_LUA[] =
    "local ep = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "local mine = tonumber(ARGV[2])\n"
    "if mine < ep then return -2 end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[3]) return 1 end\n"
    "if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) return 1 end\n"
    "local e = string.match(cur, ':(%d+):[^:]*$')\n"
    "if e and tonumber(e) < mine then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) return 2 "
    "end\n"
    "return 0\n";

/* KEYS lease, epoch; ARGV value, epoch, px. 1 renewed, 0 not ours, -2 stale. */
static const char RENEW_LUA[] =
    "local ep = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "if tonumber(ARGV[2]) < ep then\n"
    "  if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "  return -2\n"
    "end\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[3]) return "
    "1 end\n"
    "return 0\n";

static const char RELEASE_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then return "
                                  "redis.call('DEL', KEYS[1]) end return 0\n";

static void new_value(struct beat *b)
{
    char nonce[ID_MAX];
    id_new(nonce, sizeof nonce, "");
    snprintf(b->lease_val, sizeof b->lease_val, "%s:%lld:%s", b->node, (long long)b->epoch, nonce);
}

void beat_lease_init(struct beat *b)
{
    new_value(b);
    b->leader = false;
    b->next_lease_mono = 0;
}

void beat_lease_lost(struct beat *b, const char *why)
{
    if (b->leader)
        log_warnx("beat: lost the lease (%s); standing down, firing nothing until it is ours again",
                  why);
    b->leader = false;
    b->lease_until_mono = 0;
}

/* Without --epoch the beat follows <prefix>epoch, so a promotion elsewhere
 * does not leave it stuck with an old one. */
static void follow_epoch(struct beat *b, redisContext *rc)
{
    if (b->epoch_fixed)
        return;
    char k[128];
    rds_key(k, sizeof k, &b->conf, "epoch");
    redisReply *r = redisCommand(rc, "GET %s", k);
    if (!r) {
        beat_redis_broken(b, "GET epoch");
        return;
    }
    if (r->type == REDIS_REPLY_STRING) {
        int64_t e = strtoll(r->str, NULL, 10);
        if (e != b->epoch) {
            log_info("beat: epoch %lld -> %lld", (long long)b->epoch, (long long)e);
            b->epoch = e;
            new_value(b);
        }
    }
    freeReplyObject(r);
}

/* No Redis to ask: the next attempt goes with the next connection attempt.
 * Left in the past, it would make the loop's sleep (which wakes for it)
 * return at once, spinning while Redis is away. */
static void retry_with_redis(struct beat *b, int64_t t0)
{
    b->next_lease_mono = b->rc_retry_mono > t0 ? b->rc_retry_mono : t0 + 100;
}

bool beat_lease_tick(struct beat *b)
{
    int64_t t0 = mono_ms();
    if (b->leader && t0 >= b->lease_until_mono)
        beat_lease_lost(b, "not renewed in time: this process was stalled or Redis was slow");
    if (t0 < b->next_lease_mono)
        return b->leader;
    redisContext *rc = beat_redis(b);
    if (!rc) {
        if (b->leader && t0 >= b->lease_until_mono)
            beat_lease_lost(b, "Redis unreachable");
        retry_with_redis(b, t0);
        return b->leader;
    }
    if (!b->leader)
        follow_epoch(b, rc);
    rc = beat_redis(b);
    if (!rc) {
        retry_with_redis(b, t0);
        return b->leader;
    }
    char klease[128], kepoch[128], ep[32], px[32];
    rds_key(klease, sizeof klease, &b->conf, "beat:lease");
    rds_key(kepoch, sizeof kepoch, &b->conf, "epoch");
    snprintf(ep, sizeof ep, "%lld", (long long)b->epoch);
    snprintf(px, sizeof px, "%d", b->conf.lease_ms);
    const char *argv[] = {klease, kepoch, b->lease_val, ep, px};
    bool renewing = b->leader;
    redisReply *r = rds_eval(rc, renewing ? RENEW_LUA : ACQUIRE_LUA,
                             renewing ? b->sha_renew : b->sha_acquire, 2, argv, 5);
    if (!r) {
        beat_redis_broken(b, renewing ? "lease renew" : "lease acquire");
        return b->leader;
    }
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -99;
    if (r->type == REDIS_REPLY_ERROR)
        log_warnx("beat: lease script: %s", r->str);
    freeReplyObject(r);
    /* Renew at a third of the lease; after a refusal, try again soon. */
    b->next_lease_mono = t0 + (v == 1 || v == 2 ? b->conf.lease_ms / 3 : b->conf.lease_ms / 6);
    if (b->next_lease_mono > t0 + b->conf.beat_tick_ms * 5 && !(v == 1 || v == 2))
        b->next_lease_mono = t0 + b->conf.beat_tick_ms * 5;
    if (v == 1 || v == 2) {
        /* Counted from before the request was sent, minus a margin for clock
         * rate differences: we stop before Redis lets the key go. */
        b->lease_until_mono = t0 + b->conf.lease_ms - b->conf.lease_ms / 10;
        if (!b->leader) {
            log_info("beat: took the lease as %s%s", b->lease_val,
                     v == 2 ? " (from an older epoch)" : "");
            b->leader = true;
            b->st.takeovers++;
            int64_t now_s = now_ms() / 1000;
            beat_jobs_takeover(b, now_s);
        }
        return true;
    }
    if (v == -2) {
        if (b->leader || !b->epoch_fixed)
            log_warnx("beat: epoch %lld is stale (a newer one exists); standing down",
                      (long long)b->epoch);
        beat_lease_lost(b, "stale epoch");
        return false;
    }
    if (renewing)
        beat_lease_lost(b, "another beat holds it");
    return false;
}

void beat_lease_release(struct beat *b)
{
    if (!b->leader || !b->rc)
        return;
    char klease[128];
    rds_key(klease, sizeof klease, &b->conf, "beat:lease");
    const char *argv[] = {klease, b->lease_val};
    redisReply *r = rds_eval(b->rc, RELEASE_LUA, NULL, 1, argv, 2);
    if (r)
        freeReplyObject(r);
    b->leader = false;
    log_info("beat: released the lease");
}
