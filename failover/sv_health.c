/* The health thread: publishes this supervisor in Redis (Psv hash), reads
 * the epoch and the other supervisors, and probes the local server's
 * /api/v1/health while the stack runs. Blocking I/O lives here so the main
 * loop never waits on the network while the fifo has lines to read. */
#include "sv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "rds.h"

#define HTTP_EVERY_MS 500
#define HTTP_TIMEOUT_MS 1000

/* How often we publish; a peer older than sv_fresh_ms() is gone. Both stay
 * below keepalived's master-down interval (3 adverts + skew), so a dead
 * primary is never "fresh" when its backup is elected. */
static int64_t period_ms(const struct tconf *c)
{
    int64_t p = (int64_t)(c->fo_advert_int * 1000.0);
    return p < 100 ? 100 : p > 1000 ? 1000 : p;
}

int64_t sv_fresh_ms(const struct tconf *c)
{
    return 2 * period_ms(c) + 50;
}

/* Connects on demand. After a failed attempt the next one waits a second:
 * the main thread calls this on the failover path and must not stall there
 * once per transition while Redis is away. */
static redisContext *ensure_ex(redisContext **rc, const struct tconf *c, int timeout_ms,
                               int64_t *last_fail)
{
    if (*rc && (*rc)->err) {
        redisFree(*rc);
        *rc = NULL;
    }
    if (*rc == NULL && (*last_fail == 0 || mono_ms() - *last_fail >= 1000)) {
        char *err = NULL;
        *rc = rds_connect(c, timeout_ms, &err);
        if (*rc == NULL) {
            *last_fail = mono_ms();
            log_debug("redis: %s", err ? err : "connect failed");
            free(err);
        }
    }
    return *rc;
}

static redisContext *ensure(redisContext **rc, const struct tconf *c)
{
    static _Thread_local int64_t last_fail;
    return ensure_ex(rc, c, 300, &last_fail);
}

/* Accepted tasks and the epoch live in Redis: one that keeps no
 * append-only file loses everything since its last snapshot when it is
 * killed or restarted. Said loudly at every (re)connection, since a Redis
 * restarted with another config is a new Redis. */
static void check_durable(const struct tconf *c, redisContext *rc)
{
    redisReply *r = redisCommand(rc, "CONFIG GET appendonly");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        if (strcmp(r->element[1]->str, "yes") != 0)
            log_warnx("NOT DURABLE: Redis at %s:%d runs without an append-only file "
                      "(appendonly %s): accepted tasks and the fencing epoch are lost when it "
                      "restarts; set appendonly yes (see docs/two-servers.md)",
                      c->redis_socket[0] ? c->redis_socket : c->redis_host,
                      c->redis_socket[0] ? 0 : c->redis_port, r->element[1]->str);
        else
            log_info("Redis keeps an append-only file (durable)");
    } else {
        log_warnx("cannot tell whether Redis is durable (CONFIG GET appendonly: %s)",
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
    }
    if (r)
        freeReplyObject(r);
}

redisContext *sv_main_rc(struct sv *s)
{
    return ensure(&s->rc, &s->conf);
}

static char *self_json(struct sv *s)
{
    pthread_mutex_lock(&s->hl.lock);
    struct sv_self_view me = s->hl.self;
    pthread_mutex_unlock(&s->hl.lock);
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:i,s:b,s:b}", "node", s->conf.node_name, "role",
                          me.role, "epoch", (json_int_t)me.epoch, "ts", (json_int_t)now_ms(), "pid",
                          (int)getpid(), "maint", me.maint, "warm", me.warm);
    char *js = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return js;
}

/* HSET Psv <node> <json> with "rts": Redis's clock at the write, stamped by
 * the script so that a peer judges this entry's age on Redis's clock alone
 * (rds_sv_age_ms). KEYS Psv; ARGV node, the JSON without its closing brace. */
static const char PUBLISH_LUA[] =
    "local t = redis.call('TIME')\n"
    "local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ',\"rts\":' .. string.format('%d', ms) .. "
    "'}')\n"
    "return 1\n";

/* With pub_lock held, so the newest state wins. */
static void publish(struct sv *s, redisContext *rc)
{
    char key[128];
    rds_key(key, sizeof(key), &s->conf, "sv");
    char *js = self_json(s);
    if (js == NULL)
        return;
    size_t n = strlen(js);
    if (n >= 2 && js[n - 1] == '}') {
        js[n - 1] = '\0';
        const char *argv[] = {key, s->conf.node_name, js};
        redisReply *r = rds_eval(rc, PUBLISH_LUA, s->hl.pub_sha, 1, argv, 3);
        if (r && r->type == REDIS_REPLY_ERROR)
            log_warnx("health: publishing to Redis: %s", r->str);
        if (r)
            freeReplyObject(r);
    }
    free(js);
}

void sv_health_publish(struct sv *s, const char *role)
{
    pthread_mutex_lock(&s->hl.lock);
    snprintf(s->hl.self.role, sizeof(s->hl.self.role), "%s", role);
    s->hl.self.epoch = s->fsm.epoch;
    s->hl.self.maint = s->maint;
    s->hl.self.warm = s->warm && s->warm_ok_since && s->hl.view.server_status == 200;
    pthread_mutex_unlock(&s->hl.lock);
    pthread_mutex_lock(&s->hl.pub_lock);
    if (ensure(&s->rc, &s->conf))
        publish(s, s->rc);
    pthread_mutex_unlock(&s->hl.pub_lock);
}

/* Reads every other supervisor's entry, and Redis's clock right after it
 * (one round trip) to judge their ages by. Returns the count, -1 on error. */
static int read_peers(struct sv *s, redisContext *rc, struct sv_health_view *v)
{
    char key[128];
    rds_key(key, sizeof(key), &s->conf, "sv");
    int64_t rnow;
    redisReply *r = rds_command_timed(rc, &rnow, "HGETALL %s", key);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    v->npeers = 0;
    for (size_t i = 0; i + 1 < r->elements && v->npeers < SV_MAX_PEERS; i += 2) {
        if (strcmp(r->element[i]->str, s->conf.node_name) == 0)
            continue;
        json_t *o = json_loads(r->element[i + 1]->str, 0, NULL);
        if (o == NULL)
            continue;
        const char *role = json_string_value(json_object_get(o, "role"));
        json_t *rts = json_object_get(o, "rts");
        int k = v->npeers++;
        snprintf(v->peers[k].node, sizeof(v->peers[k].node), "%s", r->element[i]->str);
        snprintf(v->peers[k].role, sizeof(v->peers[k].role), "%s", role ? role : "?");
        v->peers[k].epoch = json_integer_value(json_object_get(o, "epoch"));
        v->peers[k].ts = json_integer_value(json_is_integer(rts) ? rts : json_object_get(o, "ts"));
        v->peers[k].age_ms = rds_sv_age_ms(o, rnow);
        v->peers[k].maint = json_is_true(json_object_get(o, "maint"));
        v->peers[k].warm = json_is_true(json_object_get(o, "warm"));
        json_decref(o);
    }
    freeReplyObject(r);
    return v->npeers;
}

/* <prefix>sv:warm names the backup a primary asks to start its worker and
 * server ahead of a planned handover (PX: a request outlives no primary). */
static void read_warm(struct sv *s, redisContext *rc, struct sv_health_view *v)
{
    char key[128];
    rds_key(key, sizeof(key), &s->conf, "sv:warm");
    redisReply *r = redisCommand(rc, "GET %s", key);
    v->warm_for[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(v->warm_for, sizeof(v->warm_for), "%s", r->str);
    if (r)
        freeReplyObject(r);
}

static int64_t read_epoch(struct sv *s, redisContext *rc)
{
    char key[128];
    rds_key(key, sizeof(key), &s->conf, "epoch");
    redisReply *r = redisCommand(rc, "GET %s", key);
    int64_t e = -1;
    if (r && r->type == REDIS_REPLY_STRING)
        e = strtoll(r->str, NULL, 10);
    else if (r && r->type == REDIS_REPLY_NIL)
        e = 0;
    if (r)
        freeReplyObject(r);
    return e;
}

bool sv_peer_fresh_master(struct sv *s, char *who, size_t n, int64_t *ts)
{
    struct sv_health_view v = {0};
    if (!ensure(&s->rc, &s->conf) || read_peers(s, s->rc, &v) < 0)
        return false;
    int64_t fresh = sv_fresh_ms(&s->conf);
    for (int i = 0; i < v.npeers && i < SV_MAX_PEERS; i++)
        if (strcmp(v.peers[i].role, "master") == 0 && v.peers[i].age_ms < fresh) {
            snprintf(who, n, "%s (epoch %lld, seen %lld ms ago)", v.peers[i].node,
                     (long long)v.peers[i].epoch, (long long)v.peers[i].age_ms);
            *ts = v.peers[i].ts;
            return true;
        }
    return false;
}

bool sv_peer_ready_backup(struct sv *s, char *who, size_t n)
{
    pthread_mutex_lock(&s->hl.lock);
    bool ok = false;
    for (int i = 0; i < s->hl.view.npeers && !ok; i++) {
        if (strcmp(s->hl.view.peers[i].role, "backup") == 0 && !s->hl.view.peers[i].maint &&
            s->hl.view.peers[i].age_ms < 3000) {
            snprintf(who, n, "%s", s->hl.view.peers[i].node);
            ok = true;
        }
    }
    pthread_mutex_unlock(&s->hl.lock);
    return ok;
}

/* GET /api/v1/health on the local server's port `port`. Returns the HTTP
 * status, 0 if no answer; *refused when nothing listens there. */
static int probe_port(const struct tconf *c, int port, char *detail, size_t n, bool *refused)
{
    const char *host = c->server_listen;
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    *refused = false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(detail, n, "server.listen %s is not an IPv4 address", host);
        return 0;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return 0;
    struct timeval tv = {.tv_sec = HTTP_TIMEOUT_MS / 1000,
                         .tv_usec = (HTTP_TIMEOUT_MS % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int status = 0;
    char buf[2048];
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        *refused = errno == ECONNREFUSED;
        snprintf(detail, n, "connect %s:%d: %s", host, port, strerror(errno));
        goto out;
    }
    int k = snprintf(buf, sizeof(buf),
                     "GET /api/v1/health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host);
    if (write(fd, buf, (size_t)k) != k) {
        snprintf(detail, n, "send: %s", strerror(errno));
        goto out;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof(buf) && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        snprintf(detail, n, "no HTTP answer from %s:%d", host, port);
        status = 0;
        goto out;
    }
    char *body = strstr(buf, "\r\n\r\n");
    snprintf(detail, n, "HTTP %d %.120s", status, body ? body + 4 : "");
out:
    close(fd);
    return status;
}

/* The server's health listener (server.health_port) has its own socket and
 * connection slots, so slow clients holding the main port cannot make the
 * probe fail; the main port is the fallback when the server runs without
 * one (server.health_port = -1, or server.port + 1 was taken). */
static int probe_server(const struct tconf *c, char *detail, size_t n)
{
    bool refused = false;
    int hp = tconf_health_port(c);
    if (hp > 0) {
        int st = probe_port(c, hp, detail, n, &refused);
        if (!refused)
            return st;
    }
    return probe_port(c, c->server_port, detail, n, &refused);
}

/* Ready worker children per the heartbeats: this node's and the others'.
 * A planned handover stops the old primary's worker only once another
 * node's can run a call (/api/v1/health counts every node's workers, so a
 * warm backup's server says ready before its own worker children are). */
static void read_children(struct sv *s, redisContext *rc, struct sv_health_view *v)
{
    json_t *arr = NULL;
    v->own_children = v->peer_children = -1;
    if (rds_hb_list(rc, &s->conf, "worker", &arr) < 0) {
        json_decref(arr);
        return;
    }
    v->own_children = v->peer_children = 0;
    size_t i;
    json_t *hb;
    json_array_foreach(arr, i, hb)
    {
        const char *node = json_string_value(json_object_get(hb, "node"));
        int n = (int)json_integer_value(json_object_get(hb, "children"));
        if (node && strcmp(node, s->conf.node_name) == 0)
            v->own_children += n;
        else
            v->peer_children += n;
    }
    json_decref(arr);
}

static void *health_main(void *arg)
{
    struct sv *s = arg;
    int64_t period = period_ms(&s->conf), last_http = 0;
    for (;;) {
        pthread_mutex_lock(&s->hl.lock);
        bool stop = s->hl.stop, check = s->hl.check_server;
        s->hl.kick = false;
        pthread_mutex_unlock(&s->hl.lock);
        if (stop)
            break;

        struct sv_health_view v;
        pthread_mutex_lock(&s->hl.lock);
        v = s->hl.view;
        pthread_mutex_unlock(&s->hl.lock);

        bool fresh_conn = s->hl.rc == NULL || s->hl.rc->err;
        redisContext *rc = ensure(&s->hl.rc, &s->conf);
        v.redis_ok = rc != NULL;
        if (rc && fresh_conn)
            check_durable(&s->conf, rc);
        if (rc) {
            pthread_mutex_lock(&s->hl.pub_lock);
            publish(s, rc);
            pthread_mutex_unlock(&s->hl.pub_lock);
            v.redis_epoch = read_epoch(s, rc);
            read_warm(s, rc, &v);
            read_children(s, rc, &v);
            if (read_peers(s, rc, &v) < 0 || rc->err)
                v.redis_ok = false;
        } else {
            v.redis_epoch = -1;
        }
        int64_t now = mono_ms();
        if (check && now - last_http >= HTTP_EVERY_MS) {
            last_http = now;
            char detail[160] = "";
            v.server_status = probe_server(&s->conf, detail, sizeof(detail));
            snprintf(v.server_detail, sizeof(v.server_detail), "%s", detail);
            if (v.server_status == 200) {
                v.server_ok_mono = now;
                v.server_bad_since = 0;
            } else if (v.server_bad_since == 0) {
                v.server_bad_since = now;
            }
        } else if (!check) {
            v.server_status = 0;
            v.server_bad_since = 0;
            v.server_detail[0] = '\0';
        }

        pthread_mutex_lock(&s->hl.lock);
        /* main may have switched probing off meanwhile; keep its reset */
        if (!s->hl.check_server)
            v.server_bad_since = 0;
        s->hl.view = v;
        pthread_mutex_unlock(&s->hl.lock);
        uint64_t one = 1;
        if (write(s->hl.wake_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
            log_warn("health: eventfd");

        pthread_mutex_lock(&s->hl.lock);
        if (!s->hl.stop && !s->hl.kick) {
            struct timespec ts;
            mono_deadline(&ts, period);
            pthread_cond_timedwait(&s->hl.cond, &s->hl.lock, &ts);
        }
        pthread_mutex_unlock(&s->hl.lock);
    }
    if (s->hl.rc)
        redisFree(s->hl.rc);
    return NULL;
}

int sv_health_start(struct sv *s)
{
    pthread_mutex_init(&s->hl.lock, NULL);
    pthread_mutex_init(&s->hl.pub_lock, NULL);
    cond_init_mono(&s->hl.cond);
    s->hl.view.redis_epoch = -1;
    snprintf(s->hl.self.role, sizeof(s->hl.self.role), "init");
    s->hl.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->hl.wake_fd == -1) {
        log_warn("eventfd");
        return -1;
    }
    int e = pthread_create(&s->hl.thread, NULL, health_main, s);
    if (e != 0) {
        errno = e;
        log_warn("health thread");
        return -1;
    }
    return 0;
}

void sv_health_stop(struct sv *s)
{
    pthread_mutex_lock(&s->hl.lock);
    s->hl.stop = true;
    pthread_cond_signal(&s->hl.cond);
    pthread_mutex_unlock(&s->hl.lock);
    pthread_join(s->hl.thread, NULL);
}
