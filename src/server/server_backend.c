/* Per-thread backend connections: each HTTP thread owns one Redis context
 * and, once an admin endpoint needs it, one MariaDB connection. Dropped on
 * I/O errors and reconnected by the next request. */
#include <errno.h>
#include <stdio.h>
#include <errmsg.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"

/* the one context struct of the process (main is in server_main.c, which
 * unit tests leave out) */
struct srv_ctx S;

static pthread_key_t rc_key, db_key;
static __thread redisContext *t_rc;
static __thread MYSQL *t_db;
/* Last use: a connection idle for a while may have been dropped (backend
 * restarted, wait_timeout), so it is pinged before use rather than failing
 * the request that happens to come first. */
static __thread int64_t t_rc_used, t_db_used;
#define RC_IDLE_PING_MS 5000
#define DB_IDLE_PING_MS 10000

static void rc_destroy(void *p)
{
    if (p)
        redisFree(p);
}

static void db_destroy(void *p)
{
    if (p) {
        mysql_close(p);
        mysql_thread_end();
    }
}

void backend_init(void)
{
    pthread_key_create(&rc_key, rc_destroy);
    pthread_key_create(&db_key, db_destroy);
}

const struct tconf *srv_conf(void)
{
    return &S.conf;
}

const char *srv_id(void)
{
    return S.id;
}

int64_t srv_epoch(void)
{
    return S.epoch;
}

redisContext *srv_redis_thread(char **err)
{
    if (t_rc && !t_rc->err && mono_ms() - t_rc_used > RC_IDLE_PING_MS) {
        redisReply *rep = redisCommand(t_rc, "PING");
        if (!rep || rep->type == REDIS_REPLY_ERROR)
            srv_redis_broken();
        if (rep)
            freeReplyObject(rep);
    }
    if (t_rc && t_rc->err) {
        srv_redis_broken();
    }
    t_rc_used = mono_ms();
    if (!t_rc) {
        t_rc = rds_connect(&S.conf, 2000, err);
        pthread_setspecific(rc_key, t_rc);
    }
    return t_rc;
}

redisContext *srv_redis(struct srv_req *r)
{
    char *err = NULL;
    redisContext *rc = srv_redis_thread(&err);
    if (!rc) {
        req_err(r, 503, "EBackend", NULL, "redis unreachable: %s", err ? err : "?");
        free(err);
    }
    return rc;
}

void srv_redis_broken(void)
{
    if (t_rc)
        redisFree(t_rc);
    t_rc = NULL;
    pthread_setspecific(rc_key, NULL);
}

MYSQL *srv_db(struct srv_req *r)
{
    if (t_db && mono_ms() - t_db_used > DB_IDLE_PING_MS && mysql_ping(t_db) != 0)
        srv_db_broken();
    t_db_used = mono_ms();
    if (!t_db) {
        char *err = NULL;
        t_db = db_connect(&S.conf, 5, &err);
        if (!t_db) {
            req_err(r, 503, "EBackend", NULL, "database unreachable: %s", err ? err : "?");
            free(err);
            return NULL;
        }
        pthread_setspecific(db_key, t_db);
    }
    return t_db;
}

void srv_db_broken(void)
{
    if (t_db)
        mysql_close(t_db);
    t_db = NULL;
    pthread_setspecific(db_key, NULL);
}

static bool db_gone(unsigned e)
{
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
           e == CR_CONN_HOST_ERROR || e == 0;
}

void req_db_err(struct srv_req *r, MYSQL *m, char *err)
{
    unsigned e = m ? mysql_errno(m) : 0;
    if (db_gone(e)) {
        req_err(r, 503, "EBackend", NULL, "database error: %s", err ? err : "connection lost");
        srv_db_broken();
    } else {
        req_err(r, 500, "EServerInternal", NULL, "database error: %s", err ? err : mysql_error(m));
    }
    free(err);
}

void req_redis_err(struct srv_req *r, redisContext *rc, redisReply *rep, const char *what)
{
    if (!rep || (rc && rc->err)) {
        req_err(r, 503, "EBackend", NULL, "redis: %s: %s", what,
                rc && rc->err ? rc->errstr : "no reply");
        srv_redis_broken();
    } else {
        req_err(r, 503, "EBackend", NULL, "redis: %s: %s", what, rep->str ? rep->str : "error");
    }
}

/* INCR <prefix>gen; why it failed goes to why[]. */
static int gen_bump(char *why, size_t whyn)
{
    char *err = NULL;
    redisContext *rc = srv_redis_thread(&err);
    if (!rc) {
        snprintf(why, whyn, "redis: %s", err ? err : "?");
        log_warnx("cannot bump generation: %s", why);
        free(err);
        return -1;
    }
    char key[128];
    rds_key(key, sizeof key, &S.conf, "gen");
    redisReply *rep = redisCommand(rc, "INCR %s", key);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        snprintf(why, whyn, "redis: INCR gen: %s",
                 rc->err ? rc->errstr : (rep && rep->str ? rep->str : "no reply"));
        log_warnx("cannot bump generation: %s", why);
        if (rc->err)
            srv_redis_broken();
        if (rep)
            freeReplyObject(rep);
        return -1;
    }
    int64_t gen = rep->integer;
    freeReplyObject(rep);

    /* read-your-writes: wake the poller and wait until it loaded `gen` */
    pthread_mutex_lock(&S.kick_mu);
    S.kick = true;
    pthread_cond_signal(&S.kick_cv);
    pthread_mutex_unlock(&S.kick_mu);
    struct timespec ts;
    mono_deadline(&ts, 2000);
    pthread_mutex_lock(&S.cache_mu);
    while (S.cache->gen < gen) {
        if (pthread_cond_timedwait(&S.cache_cv, &S.cache_mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&S.cache_mu);
    return 0;
}

int srv_gen_bump(void)
{
    char why[256];
    return gen_bump(why, sizeof why);
}
