/* tandem-beat: main and the loop. See beat.h for how exactly-once works. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "beat.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "rds.h"

static struct beat B;

static void on_signal(int sig)
{
    (void)sig;
    B.stop = 1;
}

redisContext *beat_redis(struct beat *b)
{
    if (b->rc)
        return b->rc;
    int64_t t = mono_ms();
    if (t < b->rc_retry_mono)
        return NULL;
    char *err = NULL;
    /* Commands time out well inside the lease, so a hung Redis cannot keep
     * us believing we lead. */
    int to = b->conf.lease_ms / 3;
    if (to < 200)
        to = 200;
    b->rc = rds_connect(&b->conf, to, &err);
    if (!b->rc) {
        static int64_t last_log;
        if (t - last_log > 5000) {
            log_warnx("beat: %s (retrying)", err ? err : "redis: cannot connect");
            last_log = t;
        }
        free(err);
        b->rc_retry_mono = t + 300;
        return NULL;
    }
    log_info("beat: connected to Redis");
    /* A restarted Redis has an empty script cache. */
    b->sha_fire[0] = b->sha_plain[0] = b->sha_delayed[0] = b->sha_acquire[0] = b->sha_renew[0] =
        '\0';
    beat_ensure_groups(b);
    return b->rc;
}

void beat_redis_broken(struct beat *b, const char *what)
{
    if (b->rc) {
        log_warnx("beat: redis %s: %s; reconnecting", what,
                  b->rc->errstr[0] ? b->rc->errstr : "error");
        redisFree(b->rc);
    }
    b->rc = NULL;
    b->rc_retry_mono = mono_ms() + 200;
}

static void heartbeat(struct beat *b)
{
    int64_t t = mono_ms();
    if (t - b->hb_mono < 1000)
        return;
    redisContext *rc = beat_redis(b);
    if (!rc)
        return;
    b->hb_mono = t;
    json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:i, s:i, s:b, s:s, s:i, s:b}", "kind", "beat",
                          "node", b->node, "pid", b->pid, "epoch", (json_int_t)b->epoch, "ts",
                          (json_int_t)now_ms(), "busy", 0, "children", 0, "leader", b->leader,
                          "lease", b->lease_val, "jobs", b->njobs, "paused", b->paused);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s)
        return;
    int rc_hb = rds_hb_set(rc, &b->conf, "beat", b->node, b->pid, s, 5000);
    free(s);
    if (rc_hb == -1)
        beat_redis_broken(b, "heartbeat");
}

/* Reload the jobs when <prefix>gen moved (or a reload failed before). */
static void check_gen(struct beat *b)
{
    int64_t t = mono_ms();
    if (t < b->gen_check_mono)
        return;
    b->gen_check_mono = t + 200;
    redisContext *rc = beat_redis(b);
    int64_t gen = b->gen_seen;
    if (rc) {
        char k[128];
        rds_key(k, sizeof k, &b->conf, "gen");
        redisReply *r = redisCommand(rc, "GET %s", k);
        if (!r) {
            beat_redis_broken(b, "GET gen");
        } else {
            gen = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
            freeReplyObject(r);
        }
    }
    /* also every 5 s without a gen change: a change whose INCR failed after
     * its SQL commit (a paused cron, a deleted job) still applies by then */
    static int64_t last_load_mono;
    if (gen != b->gen_seen || b->reload_pending || t - last_load_mono >= 5000) {
        if (beat_jobs_load(b) == 0) {
            last_load_mono = t;
            b->gen_seen = gen;
            b->reload_pending = false;
        } else {
            b->reload_pending = true;
            b->gen_check_mono = t + 1000;
        }
    }
}

/* Sleep until the next slot, the next tick, or the next lease renewal,
 * whichever comes first. Slots are whole seconds of the wall clock: waking
 * on the boundary (not up to a tick late) is what keeps fire latency low.
 * The tick and the renewal are elapsed time (monotonic). The sleep itself is
 * on the monotonic clock in slices of at most 100 ms, re-reading the
 * wall clock after each: a step forward makes the slots it jumped over due
 * at once (fired late, or recorded missed past their grace: beat_fire_due),
 * a step back leaves the renewal and the heartbeat on time instead of
 * stretching one absolute wall-clock sleep by the step. */
#define BEAT_SLICE_US 100000

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_next(struct beat *b)
{
    int64_t tick_end = clock_us(CLOCK_MONOTONIC) + (int64_t)b->conf.beat_tick_ms * 1000;
    while (!b->stop) {
        int64_t mono = clock_us(CLOCK_MONOTONIC), now = clock_us(CLOCK_REALTIME);
        int64_t d = tick_end - mono;
        if (b->next_lease_mono * 1000 - mono < d)
            d = b->next_lease_mono * 1000 - mono;
        if (b->leader && !b->paused) {
            int64_t e = beat_jobs_earliest(b);
            if (e != INT64_MAX && e * 1000000 - now < d)
                d = e * 1000000 - now;
        }
        if (d <= 0)
            return;
        if (d > BEAT_SLICE_US)
            d = BEAT_SLICE_US;
        struct timespec ts = {(time_t)(d / 1000000), (long)(d % 1000000) * 1000};
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL); /* EINTR: stop is checked above */
    }
}

static void run(struct beat *b)
{
    while (!b->stop) {
        /* A slot due now goes first: the gen check and a lease renewal due
         * at the same boundary are round trips its fires would wait behind
         * (the fire script checks the lease itself; a job change is seen
         * within 200 ms either way). */
        if (b->leader && mono_ms() < b->lease_until_mono &&
            beat_jobs_earliest(b) <= now_ms() / 1000)
            beat_fire_due(b, now_ms());
        check_gen(b);
        if (beat_lease_tick(b)) {
            beat_fire_due(b, now_ms());
            /* The heartbeat's round trip waits until after the fires, so a
             * boundary's first fire is not behind it. */
            heartbeat(b);
            if (b->leader)
                beat_move_delayed(b, now_ms());
            /* Built (and journaled) ahead: up to 2 s, so the write-ahead
             * INSERT of a big slot (10,000 jobs: ~3 MB) is done by then */
            int64_t e = beat_jobs_earliest(b), now = now_ms();
            if (b->leader && e != INT64_MAX && e * 1000 > now && e * 1000 - now <= 2000)
                beat_fire_prepare(b, e);
        } else {
            heartbeat(b);
            beat_fire_unprepare(b);
        }
        if (b->st.delayed || b->st.takeovers || b->st.fenced)
            beat_stats_flush(b);
        sleep_until_next(b);
    }
}

int main(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv, "tandem-beat", NULL);
    cli_load_config(&B.conf, &o, "tandem-beat");

    B.pid = (int)getpid();
    if (B.conf.node_name[0])
        snprintf(B.node, sizeof B.node, "%s", B.conf.node_name);
    else if (gethostname(B.node, sizeof B.node - 1) == -1)
        snprintf(B.node, sizeof B.node, "node");
    B.epoch_fixed = o.epoch >= 0;
    B.epoch = o.epoch >= 0 ? o.epoch : 0;
    B.gen_seen = -1;
    B.reload_pending = true;
    if (B.epoch_fixed) /* started by the supervisor: never outlive it */
        prctl(PR_SET_PDEATHSIG, SIGTERM);

    char *err = NULL;
    if (!beat_zone(&B, B.conf.timezone, &err))
        fatalx("beat.timezone: %s", err ? err : "unknown time zone");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    beat_lease_init(&B);
    log_info("beat: node %s, epoch %lld%s, lease %d ms, tick %d ms, grace %d s%s", B.node,
             (long long)B.epoch, B.epoch_fixed ? "" : " (following the epoch key)", B.conf.lease_ms,
             B.conf.beat_tick_ms, B.conf.misfire_grace,
             B.conf.cron_enabled ? "" : ", cron disabled by beat.enabled");
    /* Jobs first, so the first takeover computes cursors for all of them. */
    beat_redis(&B);
    check_gen(&B);
    run(&B);

    beat_stats_flush(&B);
    /* a planned stop: the slot built ahead is not ours to fire any more,
     * and its journal rows go before the next holder can see them */
    if (B.leader)
        beat_fire_discard(&B);
    beat_lease_release(&B);
    if (B.rc) {
        rds_hb_del(B.rc, &B.conf, "beat", B.node, B.pid);
        redisFree(B.rc);
    }
    if (B.db)
        mysql_close(B.db);
    beat_fire_unprepare(&B);
    beat_jobs_free(&B);
    log_info("beat: stopped");
    return 0;
}
