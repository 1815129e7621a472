/* The control socket: one JSON request line, one JSON answer line, then the
 * connection closes. Root only (0600): it can move the VIP. */
#include "sv.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "rds.h"

#define REQ_MAX 4096
#define REQ_WAIT_MS 200 /* a client gets this long to send its line */

int sv_ctl_open(struct sv *s)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(s->conf.fo_socket) >= sizeof(sa.sun_path)) {
        log_warnx("failover.control_socket %s is longer than %zu bytes", s->conf.fo_socket,
                  sizeof(sa.sun_path) - 1);
        return -1;
    }
    strcpy(sa.sun_path, s->conf.fo_socket);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        log_warn("control socket");
        return -1;
    }
    unlink(sa.sun_path);
    mode_t old = umask(077);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc == -1 || listen(fd, 8) == -1) {
        log_warn("control socket %s", sa.sun_path);
        close(fd);
        return -1;
    }
    s->ctl_fd = fd;
    return 0;
}

void sv_ctl_close(struct sv *s)
{
    if (s->ctl_fd >= 0) {
        close(s->ctl_fd);
        unlink(s->conf.fo_socket);
        s->ctl_fd = -1;
    }
}

static json_t *child_json(const struct sv_child *ch, int64_t now_mono)
{
    return json_pack("{s:s,s:i,s:I,s:i}", "name", ch->name, "pid", (int)ch->pid, "uptime_ms",
                     (json_int_t)(ch->pid > 0 ? now_mono - ch->started_mono : 0), "restarts",
                     ch->restarts);
}

static json_t *status_json(struct sv *s)
{
    int64_t now = mono_ms();
    json_t *children = json_array();
    for (int i = 0; i < SV_NSTACK; i++)
        json_array_append_new(children, child_json(&s->stack[i], now));

    json_t *peers = json_array();
    pthread_mutex_lock(&s->hl.lock);
    struct sv_health_view v = s->hl.view;
    pthread_mutex_unlock(&s->hl.lock);
    for (int i = 0; i < v.npeers; i++)
        json_array_append_new(
            peers, json_pack("{s:s,s:s,s:I,s:I,s:b}", "node", v.peers[i].node, "role",
                             v.peers[i].role, "epoch", (json_int_t)v.peers[i].epoch, "age_ms",
                             (json_int_t)v.peers[i].age_ms, "maint", v.peers[i].maint));

    json_t *tr = json_array();
    pthread_mutex_lock(&s->ev.lock);
    int n = s->ev.nrecent < SV_RECENT ? s->ev.nrecent : SV_RECENT;
    for (int k = 0; k < n; k++) {
        const struct sv_event_row *r = &s->ev.recent[(s->ev.nrecent - n + k) % SV_RECENT];
        char at[40];
        iso8601_ms(r->at, at, sizeof(at));
        json_array_append_new(tr,
                              json_pack("{s:s,s:s,s:s,s:s,s:I}", "at", at, "from", r->from, "to",
                                        r->to, "cause", r->cause, "epoch", (json_int_t)r->epoch));
    }
    pthread_mutex_unlock(&s->ev.lock);

    json_t *o =
        json_pack("{s:b,s:s,s:s,s:I,s:s,s:s,s:b,s:b,s:i,s:s,s:o,s:o,s:o,s:o,s:{s:b,s:I,s:i,s:s}}",
                  "ok", 1, "node", s->conf.node_name, "role", sv_role_name(s->fsm.role), "epoch",
                  (json_int_t)s->fsm.epoch, "cause", s->fsm.cause, "vip", s->conf.fo_vip,
                  "vip_here", sv_vip_present(&s->conf), "maintenance", s->maint, "track",
                  s->track_value, "peer_addr", s->conf.fo_peer, "keepalived",
                  child_json(&s->ka, now), "children", children, "peers", peers, "transitions", tr,
                  "backend", "redis", v.redis_ok, "redis_epoch", (json_int_t)v.redis_epoch,
                  "server_health", v.server_status, "server_detail", v.server_detail);
    return o;
}

static json_t *answer(struct sv *s, json_t *req)
{
    /* who asked, for the failover_event's cause: the console names its user */
    const char *via = json_string_value(json_object_get(req, "via"));
    char why[160];
    snprintf(why, sizeof why, "switchover requested by %s", via && *via ? via : "tandemctl");
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (cmd == NULL)
        return json_pack("{s:b,s:s}", "ok", 0, "error", "request has no \"cmd\" string");
    if (strcmp(cmd, "status") == 0)
        return status_json(s);
    if (strcmp(cmd, "switchover") == 0) {
        char peer[64];
        bool force = json_is_true(json_object_get(req, "force"));
        if (s->fsm.role != SV_ROLE_MASTER || s->promote_pending)
            return json_pack("{s:b,s:s}", "ok", 0, "error",
                             "this node is not the primary: run switchover on the primary");
        if (!sv_peer_ready_backup(s, peer, sizeof(peer)) && !force)
            return json_pack("{s:b,s:s}", "ok", 0, "error",
                             "no peer is ready to take over (none seen as backup, or it is in "
                             "maintenance); --force hands over anyway");
        sv_handover(s, why);
        return json_pack("{s:b,s:s,s:I}", "ok", 1, "message", "handing over", "epoch",
                         (json_int_t)s->fsm.epoch);
    }
    if (strcmp(cmd, "maintenance") == 0) {
        json_t *on = json_object_get(req, "on");
        if (!json_is_boolean(on))
            return json_pack("{s:b,s:s}", "ok", 0, "error", "maintenance needs \"on\": true|false");
        char peer[64];
        if (json_is_true(on) && s->fsm.role == SV_ROLE_MASTER &&
            !sv_peer_ready_backup(s, peer, sizeof(peer)) &&
            !json_is_true(json_object_get(req, "force")))
            return json_pack("{s:b,s:s}", "ok", 0, "error",
                             "this node is the primary and no peer is ready to take over: "
                             "maintenance would stop the service (--force does it anyway)");
        sv_set_maint(s, json_is_true(on));
        return json_pack("{s:b,s:b,s:s}", "ok", 1, "maintenance", s->maint, "role",
                         sv_role_name(s->fsm.role));
    }
    return json_pack("{s:b,s:s}", "ok", 0, "error",
                     "unknown cmd: expected status, switchover or maintenance");
}

void sv_ctl_accept(struct sv *s)
{
    for (;;) {
        int fd = accept4(s->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("control socket accept");
            return;
        }
        char buf[REQ_MAX + 1];
        size_t got = 0;
        int64_t deadline = mono_ms() + REQ_WAIT_MS;
        while (got < REQ_MAX && memchr(buf, '\n', got) == NULL) {
            int left = (int)(deadline - mono_ms());
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (left <= 0 || poll(&p, 1, left) <= 0)
                break;
            ssize_t r = read(fd, buf + got, REQ_MAX - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        buf[got] = '\0';
        json_t *resp;
        json_error_t je;
        char *nl = memchr(buf, '\n', got);
        if (nl == NULL) {
            resp = json_pack("{s:b,s:s}", "ok", 0, "error",
                             got >= REQ_MAX ? "request longer than 4096 bytes"
                                            : "no complete request line within 200 ms");
        } else {
            *nl = '\0';
            json_t *req = json_loads(buf, 0, &je);
            if (req == NULL || !json_is_object(req)) {
                char e[256];
                snprintf(e, sizeof(e), "request is not a JSON object: %s at column %d",
                         req ? "not an object" : je.text, je.column);
                resp = json_pack("{s:b,s:s}", "ok", 0, "error", e);
            } else {
                resp = answer(s, req);
            }
            json_decref(req);
        }
        char *out = json_dumps(resp, JSON_COMPACT);
        json_decref(resp);
        if (out) {
            size_t len = strlen(out);
            out[len] = '\n';
            if (write(fd, out, len + 1) == -1)
                log_debug("control answer: %s", strerror(errno));
            free(out);
        }
        close(fd);
    }
}

/* The web console cannot reach this root-only socket (tandem-server runs as
 * the unprivileged user), so it leaves requests in Redis instead, each a
 * JSON object naming a node, SET NX with a short PX:
 *   <prefix>sv:switchover   {"node":<the primary it saw>,"by":<user>}
 *   <prefix>sv:maintenance  {"node":<node>,"on":bool,"by":<user>}
 * The named node's supervisor takes its own (Lua GET+compare+DEL) and
 * answers it exactly as `tandemctl switchover` / `tandemctl maintenance
 * on|off` without --force: refused unless a peer is ready. The answer goes
 * to <key>:result (PX 60 s) for the page. A switchover is taken only by a
 * primary; maintenance by a node of any role. Called from the main loop;
 * a request naming another node is left alone (it is that node's, or
 * expires). */
static json_t *console_take(struct sv *s, const char *name)
{
    char key[128];
    rds_key(key, sizeof(key), &s->conf, "%s", name);
    /* s->rc is shared with the state publisher: its lock, but not across
     * answer(), which publishes a handover itself */
    pthread_mutex_lock(&s->hl.pub_lock);
    redisContext *rc = sv_main_rc(s);
    redisReply *r =
        rc ? redisCommand(
                 rc, "EVAL %s 1 %s %s",
                 "local v = redis.call('GET', KEYS[1]) if not v then return false end "
                 "local ok, o = pcall(cjson.decode, v) "
                 "if ok and type(o) == 'table' and o.node ~= ARGV[1] then return false end "
                 "redis.call('DEL', KEYS[1]) return v",
                 key, s->conf.node_name)
           : NULL;
    pthread_mutex_unlock(&s->hl.pub_lock);
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    json_t *req = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    return req ? req : json_null(); /* malformed: answered as such */
}

static void console_answer(struct sv *s, const char *name, json_t *resp)
{
    char key[160];
    rds_key(key, sizeof(key), &s->conf, "%s:result", name);
    json_object_set_new(resp, "node", json_string(s->conf.node_name));
    json_object_set_new(resp, "at", json_integer(now_ms()));
    char *js = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    if (!js)
        return;
    pthread_mutex_lock(&s->hl.pub_lock);
    redisContext *rc = sv_main_rc(s);
    redisReply *r = rc ? redisCommand(rc, "SET %s %s PX 60000", key, js) : NULL;
    pthread_mutex_unlock(&s->hl.pub_lock);
    if (r)
        freeReplyObject(r);
    free(js);
}

/* One console request (req stolen) as the control socket's cmd. */
static void console_do(struct sv *s, const char *name, json_t *req)
{
    json_t *resp;
    const char *by = json_string_value(json_object_get(req, "by"));
    bool maint = strcmp(name, "sv:maintenance") == 0;
    json_t *on = json_object_get(req, "on");
    if (!json_is_object(req) || (maint && !json_is_boolean(on))) {
        resp = json_pack("{s:b,s:s}", "ok", 0, "error", "malformed console request");
    } else {
        char via[128];
        snprintf(via, sizeof via, "the console (user %s)", by ? by : "?");
        json_t *cmd = maint
                          ? json_pack("{s:s,s:O,s:b,s:s}", "cmd", "maintenance", "on", on, "force",
                                      0, "via", via)
                          : json_pack("{s:s,s:b,s:s}", "cmd", "switchover", "force", 0, "via", via);
        resp = answer(s, cmd);
        json_decref(cmd);
        log_info("console %s request by %s: %s", maint ? "maintenance" : "switchover",
                 by ? by : "?",
                 json_is_true(json_object_get(resp, "ok"))
                     ? (maint ? (json_is_true(on) ? "maintenance on" : "maintenance off")
                              : "handing over")
                     : json_string_value(json_object_get(resp, "error")));
    }
    json_decref(req);
    console_answer(s, name, resp);
}

void sv_ctl_console_request(struct sv *s)
{
    if (s->shutting_down)
        return;
    /* only while the health thread sees Redis answer: this runs in the main
     * loop, which must not wait on a Redis that is away during a failover */
    pthread_mutex_lock(&s->hl.lock);
    bool redis_ok = s->hl.view.redis_ok;
    pthread_mutex_unlock(&s->hl.lock);
    if (!redis_ok)
        return;
    json_t *req;
    if (s->fsm.role == SV_ROLE_MASTER && !s->promote_pending &&
        (req = console_take(s, "sv:switchover")))
        console_do(s, "sv:switchover", req);
    if ((req = console_take(s, "sv:maintenance")))
        console_do(s, "sv:maintenance", req);
}
