/* The call tables (funcs, Sync/Async APIs, access keys) in memory, loaded
 * from MariaDB and reloaded when <prefix>gen changes. Readers hold a
 * refcounted snapshot; a reload builds a new one and swaps the pointer, so
 * a call never waits for SQL. The same thread writes this server's
 * heartbeat. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"

struct srv_cache *cache_new_empty(void)
{
    struct srv_cache *c = calloc(1, sizeof *c);
    c->refs = 1;
    c->funcs = json_object();
    c->sapis = json_object();
    c->aapis = json_object();
    c->keys = json_object();
    c->auths = json_object();
    return c;
}

static void cache_free(struct srv_cache *c)
{
    json_decref(c->funcs);
    json_decref(c->sapis);
    json_decref(c->aapis);
    json_decref(c->keys);
    json_decref(c->auths);
    free(c);
}

struct srv_cache *srv_cache_get(void)
{
    pthread_mutex_lock(&S.cache_mu);
    struct srv_cache *c = S.cache;
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&S.cache_mu);
    return c;
}

void srv_cache_put(struct srv_cache *c)
{
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
        cache_free(c);
}

void cache_swap(struct srv_cache *c)
{
    pthread_mutex_lock(&S.cache_mu);
    struct srv_cache *old = S.cache;
    S.cache = c;
    pthread_cond_broadcast(&S.cache_cv);
    pthread_mutex_unlock(&S.cache_mu);
    srv_cache_put(old);
}

/* The JSON object stored in s; dflt (stolen) for anything else: NULL (SQL
 * NULL), text that is not JSON, or JSON that is not an object. */
static json_t *object_or(const char *s, json_t *dflt)
{
    json_t *j = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return dflt;
    }
    json_decref(dflt);
    return j;
}

static int load_apis(MYSQL *m, const char *table, json_t *into, char **err)
{
    MYSQL_RES *res = db_query(m, err,
                              "SELECT id, func_id, kwargs_json, need_key, enabled, timeout, "
                              "api_auth_id, FLOOR(UNIX_TIMESTAMP(expire_time) * 1000), "
                              "throttling_json FROM %s",
                              table);
    if (!res)
        return -1;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        json_t *kw = object_or(row[2], json_object());
        json_t *thr = object_or(row[8], json_null());
        json_object_set_new(
            into, row[0],
            json_pack(
                "{s:s,s:o,s:b,s:b,s:o,s:o,s:o,s:o}", "func_id", row[1], "kwargs", kw, "need_key",
                row[3] && atoi(row[3]) != 0, "enabled", row[4] && atoi(row[4]) != 0, "timeout",
                row[5] ? json_integer(atoi(row[5])) : json_null(), "api_auth_id",
                row[6] && *row[6] ? json_string(row[6]) : json_null(), "expire_ms",
                row[7] ? json_integer(strtoll(row[7], NULL, 10)) : json_null(), "throttling", thr));
    }
    mysql_free_result(res);
    return 0;
}

/* API Auth configurations (migrations/003): {"<id>": {"type","config"}}. */
static int load_auths(MYSQL *m, json_t *into, char **err)
{
    MYSQL_RES *res = db_query(m, err, "SELECT id, type, config_json FROM api_auth");
    if (!res)
        return -1;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        json_t *cfg = object_or(row[2], json_object());
        json_object_set_new(into, row[0], json_pack("{s:s,s:o}", "type", row[1], "config", cfg));
    }
    mysql_free_result(res);
    return 0;
}

int cache_load(MYSQL *m, redisContext *rc, struct srv_cache **out, char **err)
{
    char key[128];
    rds_key(key, sizeof key, &S.conf, "gen");
    redisReply *rep = redisCommand(rc, "GET %s", key);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        if (asprintf(err, "redis GET gen: %s", rc->err ? rc->errstr : (rep ? rep->str : "?")) < 0)
            *err = NULL;
        if (rep)
            freeReplyObject(rep);
        return -1;
    }
    int64_t gen = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);

    struct srv_cache *c = cache_new_empty();
    c->gen = gen;
    MYSQL_RES *res =
        db_query(m, err,
                 "SELECT f.id, f.script_id, f.name, f.title, f.timeout, f.cache_result, "
                 "s.publish_version, f.extra_json FROM func f JOIN script s ON s.id = f.script_id "
                 "WHERE s.code IS NOT NULL");
    if (!res)
        goto fail;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        json_t *extra = object_or(row[7], json_object());
        json_object_set_new(
            c->funcs, row[0],
            json_pack("{s:s,s:s,s:s,s:i,s:i,s:I,s:o}", "script_id", row[1], "name", row[2], "title",
                      row[3] ? row[3] : "", "timeout", row[4] ? atoi(row[4]) : 0, "cache_result",
                      row[5] ? atoi(row[5]) : 0, "ver",
                      (json_int_t)(row[6] ? strtoll(row[6], NULL, 10) : 0), "extra", extra));
    }
    mysql_free_result(res);
    if (load_apis(m, "sync_api", c->sapis, err) || load_apis(m, "async_api", c->aapis, err) ||
        load_auths(m, c->auths, err))
        goto fail;
    res = db_query(m, err, "SELECT id, secret_sha256 FROM access_key WHERE revoked_at IS NULL");
    if (!res)
        goto fail;
    while ((row = mysql_fetch_row(res)))
        json_object_set_new(c->keys, row[1], json_string(row[0]));
    mysql_free_result(res);
    c->loaded = true;
    *out = c;
    return 0;
fail:
    cache_free(c);
    return -1;
}

/* Counts keys matching pattern with SCAN (never KEYS on a shared Redis).
 * -1 on error. */
/* The housekeeper counts live heartbeats once a second and /health and
 * /metrics read the result; only when that is stale do they count
 * themselves (rds_hb_list: one SMEMBERS + one MGET, not a keyspace walk). */
static struct {
    pthread_mutex_t mu;
    long long workers, servers;
    int64_t at_mono;
} hbc = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};

static void hb_count_now(redisContext *rc)
{
    long long w = rds_hb_list(rc, &S.conf, "worker", NULL);
    long long sv = w >= 0 ? rds_hb_list(rc, &S.conf, "server", NULL) : -1;
    if (w < 0 || sv < 0)
        return;
    pthread_mutex_lock(&hbc.mu);
    hbc.workers = w;
    hbc.servers = sv;
    hbc.at_mono = mono_ms();
    pthread_mutex_unlock(&hbc.mu);
}

long long hb_live(redisContext *rc, const char *kind)
{
    bool workers = strcmp(kind, "worker") == 0;
    pthread_mutex_lock(&hbc.mu);
    bool fresh = hbc.at_mono && mono_ms() - hbc.at_mono < 2500;
    long long n = workers ? hbc.workers : hbc.servers;
    pthread_mutex_unlock(&hbc.mu);
    if (fresh || !rc)
        return n;
    n = rds_hb_list(rc, &S.conf, kind, NULL);
    return n < 0 ? 0 : n;
}

void epoch_read(redisContext *rc)
{
    char key[128];
    rds_key(key, sizeof key, &S.conf, "epoch");
    redisReply *rep = redisCommand(rc, "GET %s", key);
    if (rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_NIL)) {
        /* a missing key is epoch 0 (INTERNALS) */
        S.epoch = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
        S.epoch_known = true;
    }
    if (rep)
        freeReplyObject(rep);
}

static void heartbeat(redisContext *rc)
{
    json_t *hb = json_pack("{s:s,s:s,s:i,s:I,s:I,s:i,s:i,s:s,s:i}", "kind", "server", "node",
                           S.conf.node_name, "pid", (int)getpid(), "epoch", (json_int_t)S.epoch,
                           "ts", (json_int_t)now_ms(), "busy", atomic_load(&S.inflight), "children",
                           0, "id", S.id, "port", S.conf.server_port);
    char *s = json_dumps(hb, JSON_COMPACT);
    json_decref(hb);
    /* after the heartbeat: the worker's keeper gives the reply list of a
     * member without one 60 s to live (worker_keeper.c reply_sweep) */
    if (s && rds_hb_set(rc, &S.conf, "server", S.conf.node_name, (int)getpid(), s, 5000) == 0) {
        char k[160];
        rds_key(k, sizeof k, &S.conf, "reply:servers");
        redisReply *r = redisCommand(rc, "SADD %s %s", k, S.id);
        if (r)
            freeReplyObject(r);
    }
    free(s);
}

static void heartbeat_delete(redisContext *rc)
{
    rds_hb_del(rc, &S.conf, "server", S.conf.node_name, (int)getpid());
}

void *housekeeper_main(void *arg)
{
    (void)arg;
    redisContext *rc = NULL;
    MYSQL *m = NULL;
    int64_t last_hb = 0, last_fail_log = 0, last_load = 0;
    char gkey[128];
    rds_key(gkey, sizeof gkey, &S.conf, "gen");
    while (!S.stop) {
        char *err = NULL;
        if (rc && rc->err) {
            redisFree(rc);
            rc = NULL;
        }
        if (!rc)
            rc = rds_connect(&S.conf, 1000, &err);
        if (!rc) {
            if (mono_ms() - last_fail_log > 10000) {
                log_warnx("housekeeper: redis: %s", err ? err : "?");
                last_fail_log = mono_ms();
            }
            free(err);
            err = NULL;
        } else {
            if (!S.epoch_known)
                epoch_read(rc);
            if (mono_ms() - last_hb >= 1000) {
                heartbeat(rc);
                hb_count_now(rc);
                last_hb = mono_ms();
            }
            redisReply *rep = redisCommand(rc, "GET %s", gkey);
            int64_t gen = rep && rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
            bool ok = rep && rep->type != REDIS_REPLY_ERROR;
            if (rep)
                freeReplyObject(rep);
            pthread_mutex_lock(&S.cache_mu);
            bool need = !S.cache->loaded || S.cache->gen != gen;
            pthread_mutex_unlock(&S.cache_mu);
            /* A change whose gen INCR failed (Redis refused it after the SQL
             * commit) is never announced: reload anyway every SRV_RELOAD_MS
             * so a revoked key or deleted API cannot stay in force. */
            need = need || mono_ms() - last_load >= SRV_RELOAD_MS;
            if (ok && need) {
                if (!m)
                    m = db_connect(&S.conf, 2, &err); /* short: heartbeats wait */
                struct srv_cache *c = NULL;
                if (m && cache_load(m, rc, &c, &err) == 0) {
                    log_debug("cache: loaded generation %lld: %zu funcs, %zu sync APIs, %zu async "
                              "APIs, %zu keys",
                              (long long)c->gen, json_object_size(c->funcs),
                              json_object_size(c->sapis), json_object_size(c->aapis),
                              json_object_size(c->keys));
                    cache_swap(c);
                    last_load = mono_ms();
                } else {
                    if (mono_ms() - last_fail_log > 10000) {
                        log_warnx("cache: cannot load from the database: %s", err ? err : "?");
                        last_fail_log = mono_ms();
                    }
                    if (m) {
                        mysql_close(m);
                        m = NULL;
                    }
                }
                free(err);
            }
        }
        /* sleep 200 ms or until an admin write kicks us */
        struct timespec ts;
        mono_deadline(&ts, 200);
        pthread_mutex_lock(&S.kick_mu);
        while (!S.kick && !S.stop) {
            if (pthread_cond_timedwait(&S.kick_cv, &S.kick_mu, &ts) == ETIMEDOUT)
                break;
        }
        S.kick = false;
        pthread_mutex_unlock(&S.kick_mu);
    }
    if (rc) {
        heartbeat_delete(rc);
        redisFree(rc);
    }
    if (m)
        mysql_close(m);
    mysql_thread_end();
    return NULL;
}
