/* /api/v1/health without touching a backend on an HTTP thread: a health
 * thread checks Redis, MariaDB and the workers once a second with short
 * timeouts and keeps the result; the handler only reads it. An unreachable
 * database therefore costs the API nothing (it used to hold an HTTP pool
 * thread in a 5 s connect per probe), and the answer is as cheap as ping,
 * which is what the health listener (server.health_port) relies on. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"

#define HEALTH_PERIOD_MS 1000
#define HEALTH_REDIS_TIMEOUT_MS 1000
#define HEALTH_DB_TIMEOUT_S 2
/* a check older than this is not trusted (the health thread is stuck) */
#define HEALTH_STALE_MS 6000

static struct {
    pthread_mutex_t mu;
    struct srv_health h;
    pthread_t thread;
    bool running;
} H = {.mu = PTHREAD_MUTEX_INITIALIZER};

json_t *health_judge(const struct srv_health *h, int64_t now_mono, int64_t epoch, int *http,
                     char *why, size_t whyn)
{
    int64_t age = h->at_mono ? now_mono - h->at_mono : -1;
    bool stale = age < 0 || age > HEALTH_STALE_MS;
    json_t *data = json_pack("{s:b,s:b,s:I,s:I,s:I,s:I,s:b}", "redis", h->redis_ok, "db", h->db_ok,
                             "workers", (json_int_t)h->workers, "worker_children",
                             (json_int_t)h->worker_children, "epoch", (json_int_t)epoch,
                             "checked_ms_ago", (json_int_t)age, "cache", h->cache_loaded);
    why[0] = '\0';
    size_t o = 0;
#define WHY(...)                                                                                   \
    do {                                                                                           \
        if (o < whyn)                                                                              \
            o += (size_t)snprintf(why + o, whyn - o, __VA_ARGS__);                                 \
    } while (0)
    if (age < 0)
        WHY(" not checked yet (starting)");
    else if (stale)
        WHY(" last check %lld ms ago (the health check is stuck)", (long long)age);
    if (!h->redis_ok)
        WHY(" redis down%s%s", h->redis_err[0] ? ": " : "", h->redis_err);
    if (!h->db_ok)
        WHY(" db down%s%s", h->db_err[0] ? ": " : "", h->db_err);
    if (h->workers <= 0)
        WHY(" no live worker");
    else if (h->worker_children <= 0)
        WHY(" no live worker child (%lld worker master(s) without a ready child)",
            (long long)h->workers);
    /* a server that has not loaded its APIs yet answers 503 to calls of
     * them: it is not ready to take the VIP (the switchover's 503s) */
    if (!h->cache_loaded)
        WHY(" funcs, APIs and keys not loaded from the database yet");
#undef WHY
    bool ok = !stale && h->redis_ok && h->db_ok && h->workers > 0 && h->worker_children > 0 &&
              h->cache_loaded;
    *http = ok ? 200 : 503;
    return data;
}

void h_health(struct srv_req *r)
{
    struct srv_health h;
    pthread_mutex_lock(&H.mu);
    h = H.h;
    pthread_mutex_unlock(&H.mu);
    /* read now, not at the last check: ready the moment the load is in */
    struct srv_cache *c = srv_cache_get();
    h.cache_loaded = c->loaded;
    srv_cache_put(c);
    int http;
    char why[600];
    json_t *data = health_judge(&h, mono_ms(), S.epoch, &http, why, sizeof why);
    if (http == 200) {
        req_ok(r, data);
        return;
    }
    json_t *detail = json_pack("{s:o}", "health", data);
    if (h.redis_err[0])
        json_object_set_new(detail, "redis", json_string(h.redis_err));
    if (h.db_err[0])
        json_object_set_new(detail, "db", json_string(h.db_err));
    req_err(r, 503, "EBackend", detail, "not ready:%s", why);
}

/* Live worker masters, and their ready children summed. */
static void count_workers(redisContext *rc, struct srv_health *h)
{
    json_t *list = NULL;
    long long n = rds_hb_list(rc, &S.conf, "worker", &list);
    h->workers = n < 0 ? 0 : n;
    h->worker_children = 0;
    size_t i;
    json_t *hb;
    json_array_foreach(list, i, hb)
    {
        json_int_t c = json_integer_value(json_object_get(hb, "children"));
        if (c > 0)
            h->worker_children += c;
    }
    json_decref(list);
}

static void check_once(MYSQL **m)
{
    struct srv_health h;
    memset(&h, 0, sizeof h);
    char *err = NULL;
    /* a fresh connection on purpose: health must see what a new client sees */
    redisContext *rc = rds_connect(&S.conf, HEALTH_REDIS_TIMEOUT_MS, &err);
    if (rc) {
        redisReply *rep = redisCommand(rc, "PING");
        h.redis_ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (!h.redis_ok)
            snprintf(h.redis_err, sizeof h.redis_err, "PING: %s",
                     rc->err ? rc->errstr : (rep && rep->str ? rep->str : "no reply"));
        if (rep)
            freeReplyObject(rep);
        if (h.redis_ok)
            count_workers(rc, &h);
        redisFree(rc);
    } else {
        snprintf(h.redis_err, sizeof h.redis_err, "%s", err ? err : "?");
        free(err);
        err = NULL;
    }
    if (*m && mysql_ping(*m) != 0) {
        snprintf(h.db_err, sizeof h.db_err, "%s", mysql_error(*m));
        mysql_close(*m);
        *m = NULL;
    } else if (!*m) {
        *m = db_connect(&S.conf, HEALTH_DB_TIMEOUT_S, &err);
        if (!*m)
            snprintf(h.db_err, sizeof h.db_err, "%s", err ? err : "unreachable");
        free(err);
    }
    h.db_ok = *m != NULL;
    if (h.db_ok)
        h.db_err[0] = '\0';
    h.at_mono = mono_ms();
    pthread_mutex_lock(&H.mu);
    H.h = h;
    pthread_mutex_unlock(&H.mu);
}

static void *health_main(void *arg)
{
    (void)arg;
    MYSQL *m = NULL;
    while (!S.stop) {
        int64_t t0 = mono_ms();
        check_once(&m);
        while (!S.stop && mono_ms() - t0 < HEALTH_PERIOD_MS)
            usleep(50 * 1000);
    }
    if (m)
        mysql_close(m);
    mysql_thread_end();
    return NULL;
}

int health_start(void)
{
    H.running = pthread_create(&H.thread, NULL, health_main, NULL) == 0;
    return H.running ? 0 : -1;
}

void health_stop(void)
{
    if (H.running)
        pthread_join(H.thread, NULL);
    H.running = false;
}
