/* tandem-supervisor: one per node. Runs keepalived as its child, follows the
 * ordered lines of its notify fifo, and runs the stack (worker, server, beat)
 * only while this node is the primary. See DESIGN.md "Failover". */
#include "sv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "log.h"
#include "rds.h"
#include "sv_epoch.h"
#include "sv_notify.h"
#include "sv_relay.h"

#define PROG "tandem-supervisor"
#define TICK_MS 50
#define HOLD_MS 3000 /* standing down: FAULT at least this long */
#define UNHEALTHY_HOLD_MS 10000
#define UNHEALTHY_AFTER_MS 5000 /* bad health this long while the backend answers */
#define STARTUP_GRACE_MS 15000  /* a fresh stack gets this long to become healthy */
#define PROMOTE_RETRY_MS 200
#define WARM_WAIT_MS 3000     /* planned handover: the most we wait for the peer's server */
#define WARM_KEY_MS 5000      /* the warm-up request expires (a primary that died) */
#define PLANNED_SERVE_MS 1000 /* after the VIP moved, the old server answers stragglers */
#define WARM_SETTLE_MS 400    /* a warm server must keep answering this long before it is ready */

extern char **environ;

static void notify_status(struct sv *s)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "STATUS=%s, epoch %lld%s", sv_role_name(s->fsm.role),
             (long long)s->fsm.epoch, s->maint ? ", maintenance" : "");
    sv_notify(msg);
}

/* --- holds and the track file ------------------------------------------ */

void sv_track_update(struct sv *s)
{
    /* maintenance gives the VIP away, but a planned handover in progress
     * moves it itself once the peer is warm (planned_tick) */
    int want =
        ((s->maint && !s->planned_at) || mono_ms() < s->hold_until) ? SV_TRACK_FAULT : SV_TRACK_OK;
    if (want == s->track_value)
        return;
    if (sv_track_write(s->kp.track, want) == -1) {
        log_warn("track file %s", s->kp.track);
        return;
    }
    log_info("track file: %d (%s)", want, want ? "FAULT: giving the VIP away" : "ok");
    s->track_value = want;
}

/* --- role changes ------------------------------------------------------ */

static void promote_try(struct sv *s);

static void do_actions(struct sv *s, unsigned act, enum sv_role from, int hold_ms)
{
    if (act & SV_ACT_DEMOTE) {
        s->promote_pending = false;
        pthread_mutex_lock(&s->hl.lock);
        s->hl.check_server = false;
        pthread_mutex_unlock(&s->hl.lock);
        sv_stack_stop_begin(s);
    }
    if (act & SV_ACT_DROP_VIP)
        sv_vip_drop(&s->conf);
    /* Say we are no longer primary before the VIP moves, so the peer's
     * promotion guard does not mistake us for a live primary. */
    if (from != s->fsm.role && !(act & SV_ACT_PROMOTE))
        sv_health_publish(s, sv_role_name(s->fsm.role));
    if (act & SV_ACT_HOLD) {
        int64_t until = mono_ms() + hold_ms;
        if (until > s->hold_until)
            s->hold_until = until;
        sv_track_update(s);
    }
    if (from != s->fsm.role && !(act & SV_ACT_PROMOTE)) {
        sv_event(s, sv_role_name(from), sv_role_name(s->fsm.role), s->fsm.cause, s->fsm.epoch);
        notify_status(s);
    }
    if (act & SV_ACT_PROMOTE) {
        s->promote_pending = true;
        s->promote_retry = 0;
        s->guard_ts = 0;
        promote_try(s);
    }
}

static void step(struct sv *s, const struct sv_input *in, int hold_ms)
{
    enum sv_role from = s->fsm.role;
    unsigned act = sv_fsm_step(&s->fsm, in);
    if (act || from != s->fsm.role)
        do_actions(s, act, from, hold_ms);
}

static int64_t epoch_floor(struct sv *s)
{
    int64_t f = s->epoch_seen > s->fsm.epoch ? s->epoch_seen : s->fsm.epoch;
    int64_t db = sv_events_db_max_epoch(s);
    if (db < 0)
        log_warnx("promotion: failover_event's highest epoch is unknown (MariaDB not read "
                  "yet): the floor is what this node saw, %lld",
                  (long long)f);
    return db > f ? db : f;
}

/* MASTER: take a new epoch, then start the stack with it. Refuses while the
 * peer is still seen running a primary (a VRRP partition, not a failure). */
static void promote_try(struct sv *s)
{
    int64_t now = mono_ms();
    if (!s->promote_pending || now < s->promote_retry)
        return;
    if (sv_stack_running(s) && !s->warm) { /* the previous stack is still draining */
        s->promote_retry = now + TICK_MS;
        return;
    }
    /* A fresh "master" entry alone is not proof of a live primary: a peer
     * whose keepalived left with a priority-0 advert just before it died
     * hands over within milliseconds of its last publication. Only a newer
     * publication within the freshness window proves it alive (a VRRP
     * partition); otherwise it is gone and we promote. */
    char who[160];
    int64_t ts = 0;
    bool fresh = sv_peer_fresh_master(s, who, sizeof(who), &ts);
    if (fresh && s->guard_ts == 0) {
        s->guard_ts = ts;
        s->guard_until = now + sv_fresh_ms(&s->conf);
        s->promote_retry = now + TICK_MS;
        log_info("peer %s looks primary: checking it is alive before promoting", who);
        return;
    }
    if (fresh && ts == s->guard_ts && now < s->guard_until) {
        s->promote_retry = now + TICK_MS;
        return;
    }
    int64_t seen = s->guard_ts;
    s->guard_ts = 0;
    if (fresh && ts != seen) {
        char cause[160];
        snprintf(cause, sizeof(cause), "peer %.100s still primary: not promoting", who);
        struct sv_input in = {.ev = SV_EV_PEER_MASTER};
        enum sv_role from = s->fsm.role;
        unsigned act = sv_fsm_step(&s->fsm, &in);
        memcpy(s->fsm.cause, cause, sizeof(cause));
        do_actions(s, act, from, HOLD_MS);
        return;
    }
    char key[128];
    rds_key(key, sizeof(key), &s->conf, "epoch");
    int64_t floor = epoch_floor(s);
    char err[160];
    int64_t e = sv_epoch_take(s->rc, key, floor, err, sizeof(err));
    if (e < 0) {
        if (s->promote_retry == 0)
            log_warnx("MASTER but cannot take a new epoch in %s (%s): stack waits for Redis", key,
                      err);
        if (s->rc && s->rc->err) {
            redisFree(s->rc);
            s->rc = NULL;
        }
        s->promote_retry = now + PROMOTE_RETRY_MS;
        return;
    }
    s->fsm.epoch = e;
    if (s->warm) { /* worker and server already run: the beat completes the stack */
        s->warm = false;
        /* the old primary answers what reaches it for PLANNED_SERVE_MS,
         * then drains (its accept linger and failover.drain_grace) */
        if (s->relay_on)
            s->relay_until =
                mono_ms() + PLANNED_SERVE_MS + 2000 + (int64_t)s->conf.fo_drain_grace * 1000;
        rds_key(key, sizeof(key), &s->conf, "sv:warm");
        redisReply *r = redisCommand(s->rc, "DEL %s", key);
        if (r)
            freeReplyObject(r);
    }
    if (s->fsm.epoch > s->epoch_seen)
        s->epoch_seen = s->fsm.epoch;
    s->promote_pending = false;
    sv_health_publish(s, "master");
    sv_event(s, "backup", "master", s->fsm.cause, s->fsm.epoch);
    sv_stack_start(s);
    pthread_mutex_lock(&s->hl.lock);
    s->hl.check_server = true;
    s->hl.view.server_bad_since = 0;
    pthread_mutex_unlock(&s->hl.lock);
    s->ready_sent = false;
    notify_status(s);
}

void sv_on_ka_died(struct sv *s, const char *why)
{
    struct sv_input in = {.ev = SV_EV_KA_DIED};
    enum sv_role from = s->fsm.role;
    unsigned act = sv_fsm_step(&s->fsm, &in);
    snprintf(s->fsm.cause, sizeof(s->fsm.cause), "%s", why);
    do_actions(s, act, from, HOLD_MS);
    log_warnx("%s: keepalived restarts in %d ms", why, s->ka.backoff_ms / 2);
}

void sv_handover(struct sv *s, const char *why)
{
    if (strncmp(why, "unhealthy", 9) == 0) {
        struct sv_input in = {.ev = SV_EV_HANDOVER, .why = why};
        step(s, &in, UNHEALTHY_HOLD_MS);
        return;
    }
    /* Planned: no call may fail. The beat goes now (it must never run on
     * two nodes); the peer is asked to start its worker and server while
     * this node still holds the VIP; once the peer's server answers (or
     * WARM_WAIT_MS passed) the VIP moves, and this server keeps answering
     * what still reaches this node for PLANNED_SERVE_MS (planned_tick). */
    if (s->planned_at)
        return;
    snprintf(s->planned_why, sizeof(s->planned_why), "%s", why);
    int64_t now = mono_ms();
    s->planned_begun = now;
    s->planned_at = now + WARM_WAIT_MS;
    s->planned_peer[0] = '\0';
    struct sv_child *b = &s->stack[SV_BEAT];
    if (b->pid > 0 && b->term_sent == 0) {
        kill(b->pid, SIGTERM);
        b->term_sent = now;
    }
    char peer[64], key[128];
    if (sv_peer_ready_backup(s, peer, sizeof(peer)) && sv_main_rc(s)) {
        snprintf(s->planned_peer, sizeof(s->planned_peer), "%s", peer);
        rds_key(key, sizeof(key), &s->conf, "sv:warm");
        redisReply *r = redisCommand(s->rc, "SET %s %s PX %d", key, peer, WARM_KEY_MS);
        if (r)
            freeReplyObject(r);
    }
    if (!s->planned_peer[0]) /* nobody to warm up (--force): move now */
        s->planned_at = now;
    log_info("%s: beat stopped; %s%s, the VIP moves once its server answers (<= %d ms)", why,
             s->planned_peer[0] ? "asked " : "no backup to warm up",
             s->planned_peer[0] ? s->planned_peer : "", WARM_WAIT_MS);
}

static bool peer_warm(struct sv *s)
{
    bool ok = false;
    pthread_mutex_lock(&s->hl.lock);
    for (int i = 0; i < s->hl.view.npeers; i++)
        if (strcmp(s->hl.view.peers[i].node, s->planned_peer) == 0 && s->hl.view.peers[i].warm &&
            strcmp(s->hl.view.peers[i].role, "backup") == 0 && s->hl.view.peers[i].age_ms < 3000)
            ok = true;
    pthread_mutex_unlock(&s->hl.lock);
    return ok;
}

static void planned_tick(struct sv *s)
{
    if (!s->planned_at)
        return;
    if (s->fsm.role != SV_ROLE_MASTER) { /* overtaken by keepalived or the epoch */
        s->planned_at = 0;
        return;
    }
    int64_t now = mono_ms();
    bool warm = s->planned_peer[0] && peer_warm(s);
    if (!warm && now < s->planned_at)
        return;
    s->planned_at = 0;
    log_info("%s: peer %s after %lld ms: moving the VIP", s->planned_why,
             warm ? "ready" : "not ready (moving anyway)", (long long)(now - s->planned_begun));
    if (sv_vip_lo(&s->conf, true) == 0)
        s->vip_on_lo = true;
    s->server_hold_until = now + PLANNED_SERVE_MS;
    struct sv_input in = {.ev = SV_EV_HANDOVER, .why = s->planned_why};
    step(s, &in, HOLD_MS);
}

/* The relay (sv_relay.c) towards the old primary: on while this node warms
 * up for a planned handover and, after its promotion, as long as the old
 * primary may still serve connections (promote_try sets relay_until). A
 * host without nft still hands over, with a warning: calls caught mid-way
 * by the VIP's move are then reset, as before. */
static void relay_set(struct sv *s, bool on)
{
    char err[256];
    if (on == s->relay_on)
        return;
    long relayed = on ? 0 : sv_relay_packets();
    if (sv_relay_apply(&s->conf, on, err, sizeof(err)) == -1) {
        if (on && !s->relay_warned)
            log_warnx("planned handover: no relay to the old primary (%s): connections that "
                      "straddle the VIP's move will be reset",
                      err);
        s->relay_warned = true;
        if (on)
            return;
    } else if (on) {
        log_info("relay on: packets of connections begun on the old primary go on to it");
    } else {
        log_info("relay off: %ld packets went on to the old primary", relayed);
    }
    s->relay_on = on;
    s->relay_until = 0;
}

/* A backup asked to warm up starts worker and server, says so once its
 * server answers, and stops them again if no promotion follows. */
static void warm_tick(struct sv *s, const struct sv_health_view *h)
{
    int64_t now = mono_ms();
    bool asked = h->warm_for[0] && strcmp(h->warm_for, s->conf.node_name) == 0;
    if (!s->warm) {
        if (asked && s->fsm.role == SV_ROLE_BACKUP && !s->maint && !s->stack_stopping &&
            !s->shutting_down && !sv_stack_running(s)) {
            s->warm = true;
            s->warm_since = now;
            s->warm_ok_since = 0;
            log_info("the primary hands over: starting worker and server ahead of the VIP");
            relay_set(s, true);
            sv_stack_warm(s);
            pthread_mutex_lock(&s->hl.lock);
            s->hl.check_server = true;
            s->hl.view.server_bad_since = 0;
            s->hl.view.server_status = 0;
            pthread_mutex_unlock(&s->hl.lock);
        }
        return;
    }
    if (s->fsm.role == SV_ROLE_MASTER)
        return; /* promote_try completes the stack */
    bool published = s->hl.self.warm;
    /* /api/v1/health can say 200 a moment before the server's API and key
     * caches are loaded (its first calls would get 503): ready means it has
     * kept answering 200 for WARM_SETTLE_MS. Its own worker may still be
     * starting its children (the health counts the old primary's workers
     * too): the old primary keeps its worker until one is (sv_proc.c) */
    if (h->server_status != 200)
        s->warm_ok_since = 0;
    else if (s->warm_ok_since == 0)
        s->warm_ok_since = now;
    if (s->warm_ok_since && now - s->warm_ok_since >= WARM_SETTLE_MS && !published) {
        log_info("warm: server answers %lld ms after the request",
                 (long long)(now - s->warm_since));
        sv_health_publish(s, sv_role_name(s->fsm.role));
    }
    if (s->fsm.role != SV_ROLE_BACKUP || (!asked && now - s->warm_since >= WARM_WAIT_MS) ||
        now - s->warm_since >= WARM_KEY_MS + WARM_WAIT_MS) {
        log_info("warm: no promotion followed (%s): stopping worker and server",
                 s->fsm.role != SV_ROLE_BACKUP ? "role changed" : "request gone");
        s->warm = false;
        relay_set(s, false);
        pthread_mutex_lock(&s->hl.lock);
        s->hl.check_server = false;
        pthread_mutex_unlock(&s->hl.lock);
        sv_stack_stop_begin(s);
        sv_health_publish(s, sv_role_name(s->fsm.role));
    }
}

void sv_set_maint(struct sv *s, bool on)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/maintenance", s->conf.run_dir);
    if (on) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd != -1)
            close(fd);
    } else {
        unlink(path);
    }
    if (s->maint == on)
        return;
    s->maint = on;
    sv_event(s, sv_role_name(s->fsm.role), sv_role_name(s->fsm.role),
             on ? "maintenance on" : "maintenance off", s->fsm.epoch);
    if (on && s->fsm.role == SV_ROLE_MASTER)
        sv_handover(s, "maintenance on");
    sv_health_publish(s, sv_role_name(s->fsm.role));
    sv_track_update(s);
    notify_status(s);
}

/* --- inputs -------------------------------------------------------------- */

static void on_fifo_line(void *arg, const char *line, int overlong)
{
    struct sv *s = arg;
    if (overlong) {
        log_warnx("notify fifo: line longer than %d bytes ignored", SV_LINEBUF - 1);
        return;
    }
    struct sv_fifo_msg m;
    char err[128];
    if (sv_fifo_parse(line, &m, err, sizeof(err)) == -1) {
        log_warnx("notify fifo: malformed line \"%.80s\": %s", line, err);
        return;
    }
    if (strcmp(m.kind, "INSTANCE") != 0 || strcmp(m.name, SV_INSTANCE) != 0) {
        log_debug("notify fifo: ignoring %s \"%s\" %s", m.kind, m.name, m.word);
        return;
    }
    log_debug("notify fifo: %s %d", m.word, m.priority);
    if (m.state == SV_VRRP_NONE)
        return;
    struct sv_input in = {.ev = SV_EV_VRRP, .vrrp = m.state};
    step(s, &in, HOLD_MS);
}

static void read_fifo(struct sv *s)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(s->fifo_fd, buf, sizeof(buf));
        if (n > 0) {
            sv_linebuf_feed(&s->fifo_lb, buf, (size_t)n, on_fifo_line, s);
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        return;
    }
}

static void epoch_raise(struct sv *s, int64_t seen)
{
    if (sv_main_rc(s) == NULL)
        return;
    char key[128], err[160];
    rds_key(key, sizeof(key), &s->conf, "epoch");
    int64_t was = sv_epoch_raise(s->rc, key, s->fsm.epoch, err, sizeof(err));
    if (was >= 0)
        log_warnx("epoch in Redis went back to %lld below ours %lld (Redis lost writes: "
                  "restarted without its append-only file, or restored from a snapshot?): "
                  "set back to %lld",
                  (long long)was, (long long)s->fsm.epoch, (long long)s->fsm.epoch);
    else if (was == -2)
        log_warnx("epoch in Redis is %lld, below ours %lld, and cannot be raised: %s",
                  (long long)seen, (long long)s->fsm.epoch, err);
    if (s->rc->err) {
        redisFree(s->rc);
        s->rc = NULL;
    }
}

static void discard_fifo(struct sv *s)
{
    char buf[4096];
    ssize_t n;
    size_t dropped = s->fifo_lb.len;
    while ((n = read(s->fifo_fd, buf, sizeof(buf))) > 0 || (n == -1 && errno == EINTR))
        if (n > 0)
            dropped += (size_t)n;
    s->fifo_lb.len = 0;
    s->fifo_lb.overlong = 0;
    if (dropped)
        log_info("notify fifo: %zu bytes from the previous keepalived dropped", dropped);
}

static void check_health(struct sv *s)
{
    uint64_t v;
    if (read(s->hl.wake_fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
        log_warn("eventfd");
    pthread_mutex_lock(&s->hl.lock);
    struct sv_health_view h = s->hl.view;
    pthread_mutex_unlock(&s->hl.lock);

    warm_tick(s, &h);
    if (h.redis_epoch > s->epoch_seen)
        s->epoch_seen = h.redis_epoch;
    for (int i = 0; i < h.npeers; i++)
        if (h.peers[i].epoch > s->epoch_seen)
            s->epoch_seen = h.peers[i].epoch;
    if (s->fsm.role != SV_ROLE_MASTER || s->promote_pending)
        return;
    if (h.redis_ok && h.redis_epoch >= 0 && h.redis_epoch < s->fsm.epoch)
        epoch_raise(s, h.redis_epoch);
    if (h.redis_epoch > s->fsm.epoch) {
        struct sv_input in = {.ev = SV_EV_EPOCH_SEEN, .epoch = h.redis_epoch};
        step(s, &in, HOLD_MS);
        return;
    }
    int64_t now = mono_ms();
    if (h.server_status == 200 && !s->ready_sent) {
        s->ready_sent = true;
        log_info("stack ready: /api/v1/health answered 200 %lld ms after the start (epoch %lld)",
                 (long long)(now - s->stack_started_mono), (long long)s->fsm.epoch);
    }
    char peer[64];
    if (h.server_bad_since && now - h.server_bad_since >= UNHEALTHY_AFTER_MS &&
        now - s->stack_started_mono >= STARTUP_GRACE_MS && h.redis_ok && !s->stack_stopping &&
        now - s->last_unhealthy_handover >= 60000 && sv_peer_ready_backup(s, peer, sizeof(peer))) {
        char why[160];
        snprintf(why, sizeof(why), "unhealthy for %lld ms (%.80s): handing over to %.40s",
                 (long long)(now - h.server_bad_since), h.server_detail, peer);
        s->last_unhealthy_handover = now;
        sv_handover(s, why);
    }
}

static void finish_shutdown(struct sv *s)
{
    s->shutdown_deadline = mono_ms() + (int64_t)s->conf.fo_drain_grace * 1000 + 5000;
    struct sv_input in = {.ev = SV_EV_SHUTDOWN};
    step(s, &in, 0);
    sv_health_publish(s, "down");
    /* keepalived leaves with a priority-0 advert: the peer takes over now */
    if (s->ka.pid > 0) {
        kill(s->ka.pid, SIGTERM);
        s->ka.term_sent = mono_ms();
    }
}

static void begin_shutdown(struct sv *s, int sig)
{
    if (s->shutting_down)
        return;
    log_info("%s: stopping", strsignal(sig));
    sv_notify("STOPPING=1");
    s->shutting_down = true;
    char peer[64];
    /* `systemctl stop` on the primary is a planned handover: the service
     * moves to the peer first, without a failed call, then we stop. */
    if (s->fsm.role == SV_ROLE_MASTER && !s->promote_pending &&
        sv_peer_ready_backup(s, peer, sizeof(peer))) {
        s->stop_after_handover = true;
        s->shutdown_deadline = mono_ms() + WARM_WAIT_MS + 2000;
        sv_handover(s, "stopping: handing over first");
        return;
    }
    finish_shutdown(s);
}

static void read_signals(struct sv *s)
{
    struct signalfd_siginfo si;
    while (read(s->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            sv_proc_reap(s);
        else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            begin_shutdown(s, (int)si.ssi_signo);
        else if (si.ssi_signo == SIGHUP) /* systemctl reload: the certificate */
            sv_tls_send(s);
    }
}

static void tick(struct sv *s)
{
    int64_t now = mono_ms();
    if (!s->shutting_down && s->ka.pid == 0 && now >= s->ka.next_start) {
        /* Whatever the dead keepalived left in the fifo is stale: drop it
         * before its successor can write, then count lines again. */
        discard_fifo(s);
        if (sv_ka_start(s) == -1) {
            s->ka.next_start = now + 5000;
        } else {
            struct sv_input in = {.ev = SV_EV_KA_STARTED};
            step(s, &in, HOLD_MS);
            if (s->ka.restarts)
                sv_event(s, sv_role_name(s->fsm.role), sv_role_name(s->fsm.role),
                         "keepalived restarted", s->fsm.epoch);
        }
    }
    if (s->promote_pending)
        promote_try(s);
    planned_tick(s);
    if (s->relay_on &&
        ((s->relay_until && now >= s->relay_until) || (!s->warm && s->fsm.role != SV_ROLE_MASTER)))
        relay_set(s, false);
    if (s->track_value != SV_TRACK_OK || s->maint)
        sv_track_update(s);
    sv_proc_tick(s);
}

/* --- start-up -------------------------------------------------------------- */

static char **env_without_notify(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **e = calloc(n + 1, sizeof(char *));
    if (e == NULL)
        fatal("calloc");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
            e[k++] = environ[i];
    return e;
}

static void setup_privs(struct sv *s)
{
    /* The stack runs users' Python: as root only when the operator said so. */
    struct passwd *pw = getpwnam(s->conf.fo_user);
    if (pw == NULL || pw->pw_uid == 0) {
        if (!s->conf.fo_allow_root)
            fatalx("%s: failover.user \"%s\" %s: refusing to run the stack (user Python "
                   "included) as root; create the user (the package does) or set "
                   "failover.allow_root = true",
                   s->conf_path, s->conf.fo_user, pw ? "is root" : "does not exist");
        log_warnx("failover.user \"%s\" %s and failover.allow_root is set: the stack runs as "
                  "root",
                  s->conf.fo_user, pw ? "is root" : "does not exist");
        return;
    }
    s->uid = pw->pw_uid;
    s->gid = pw->pw_gid;
    s->drop_privs = true;
}

static void setup_fifo(struct sv *s)
{
    struct stat st;
    if (lstat(s->kp.fifo, &st) == 0 && !S_ISFIFO(st.st_mode))
        unlink(s->kp.fifo);
    if (mkfifo(s->kp.fifo, 0600) == -1 && errno != EEXIST)
        fatal("mkfifo %s", s->kp.fifo);
    /* O_RDWR: we hold a writer too, so keepalived's restarts never give us EOF */
    s->fifo_fd = open(s->kp.fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (s->fifo_fd == -1)
        fatal("open %s", s->kp.fifo);
}

static void setup(struct sv *s, const char *conf_path)
{
    static char abs[PATH_MAX];
    if (realpath(conf_path, abs) == NULL)
        fatal("%s", conf_path);
    s->conf_path = abs;
    s->sig_fd = s->fifo_fd = s->ctl_fd = -1;
    s->tls_wfd = -1;
    if (geteuid() != 0)
        fatalx("must run as root (keepalived, the VIP, and dropping privileges need it)");
    if (s->conf.fo_vip[0] == '\0')
        fatalx("%s: failover.vip is not set", s->conf_path);
    if (mkdir(s->conf.run_dir, 0755) == -1 && errno != EEXIST)
        fatal("mkdir %s", s->conf.run_dir);
    if (sv_kpaths_init(&s->kp, s->conf.run_dir) == -1)
        fatalx("paths.run %s is too long", s->conf.run_dir);
    char err[256];
    struct sv_kpaths probe = s->kp;
    char buf[8192];
    if (sv_kconf_render(&s->conf, &probe, buf, sizeof(buf), err, sizeof(err)) == -1)
        fatalx("%s: %s", s->conf_path, err);
    s->child_env = env_without_notify();
    setup_privs(s);
    sv_proc_init(s);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, NULL);
    s->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->sig_fd == -1)
        fatal("signalfd");

    setup_fifo(s);
    char mpath[300];
    snprintf(mpath, sizeof(mpath), "%s/maintenance", s->conf.run_dir);
    s->maint = access(mpath, F_OK) == 0;
    s->track_value = -1;
    sv_track_update(s);
    if (s->track_value == -1)
        fatal("cannot write the track file %s", s->kp.track);
    /* A supervisor that died with the VIP (SIGKILL, crash) must not start
     * out holding it: only an election hands it out. */
    if (sv_vip_present(&s->conf)) {
        log_warnx("VIP %s is on %s from a previous run: removing it", s->conf.fo_vip,
                  s->conf.fo_interface);
        sv_vip_drop(&s->conf);
    }
    /* a relay left by a supervisor that was killed: removed (quietly: a
     * host without nft has none) */
    char rerr[256];
    if (sv_relay_apply(&s->conf, false, rerr, sizeof(rerr)) == -1)
        log_debug("relay cleanup: %s", rerr);
    if (sv_events_start(s) == -1 || sv_health_start(s) == -1)
        fatalx("cannot start threads");
    if (sv_ctl_open(s) == -1)
        fatalx("cannot open the control socket %s", s->conf.fo_socket);
    log_info("node %s: VIP %s on %s, vrid %d, priority %d, advert %gs%s; control %s",
             s->conf.node_name, s->conf.fo_vip, s->conf.fo_interface, s->conf.fo_vrid,
             s->conf.fo_priority, s->conf.fo_advert_int, s->conf.fo_nopreempt ? ", nopreempt" : "",
             s->conf.fo_socket);
}

static void run(struct sv *s)
{
    bool ready = false;
    int64_t next_console = 0;
    for (;;) {
        struct pollfd p[4] = {
            {.fd = s->sig_fd, .events = POLLIN},
            {.fd = s->fifo_fd, .events = POLLIN},
            {.fd = s->ctl_fd, .events = POLLIN},
            {.fd = s->hl.wake_fd, .events = POLLIN},
        };
        int n = poll(p, 4, TICK_MS);
        if (n == -1 && errno != EINTR)
            fatal("poll");
        if (p[0].revents)
            read_signals(s);
        if (p[1].revents)
            read_fifo(s);
        if (p[2].revents && !s->shutting_down)
            sv_ctl_accept(s);
        if (p[3].revents)
            check_health(s);
        tick(s);
        if (mono_ms() >= next_console) {
            next_console = mono_ms() + 500;
            sv_ctl_console_request(s);
        }
        if (!ready && s->ka.pid > 0) {
            ready = true;
            sv_notify("READY=1");
            notify_status(s);
        }
        if (s->shutting_down && s->stop_after_handover &&
            (s->fsm.role != SV_ROLE_MASTER || mono_ms() > s->shutdown_deadline)) {
            s->stop_after_handover = false;
            finish_shutdown(s);
        }
        if (s->shutting_down && !s->stop_after_handover) {
            if (!sv_stack_running(s) && s->ka.pid == 0)
                break;
            if (mono_ms() > s->shutdown_deadline) {
                log_warnx("children still running at the shutdown deadline: SIGKILL");
                sv_kill_all(s);
                s->shutdown_deadline = mono_ms() + 2000;
            }
        }
    }
}

/* --check-config: the common checks, then the keepalived.conf that would
 * be generated from the file. */
static void check_config(struct sv *s, const struct cli_opts *o)
{
    char *err = NULL;
    if (tconf_load(&s->conf, o->config_path, &err) == -1) {
        fprintf(stderr, "%s\n", err ? err : "bad configuration");
        exit(1);
    }
    struct sv_kpaths kp;
    char buf[8192], e[256];
    if (s->conf.fo_vip[0] == '\0') {
        fprintf(stderr, "%s: failover.vip: not set (the supervisor needs a VIP)\n", o->config_path);
        exit(1);
    }
    if (sv_kpaths_init(&kp, s->conf.run_dir) == -1 ||
        sv_kconf_render(&s->conf, &kp, buf, sizeof(buf), e, sizeof(e)) == -1) {
        fprintf(stderr, "%s: %s\n", o->config_path, e);
        exit(1);
    }
    printf("%s: %s: ok\n", PROG, o->config_path);
    exit(0);
}

int main(int argc, char **argv)
{
    static struct sv s;
    struct cli_opts o;
    cli_parse(&o, argc, argv, PROG, NULL);
    if (o.check_config)
        check_config(&s, &o);
    cli_load_config(&s.conf, &o, PROG);
    setup(&s, o.config_path);
    run(&s);
    relay_set(&s, false);
    sv_vip_drop(&s.conf);
    sv_health_publish(&s, "down");
    sv_ctl_close(&s);
    sv_health_stop(&s);
    sv_events_stop(&s);
    log_info("stopped");
    return 0;
}
