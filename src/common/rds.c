#include "rds.h"

#include <jansson.h>

#include <pthread.h>
#include <stdbool.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"
#include "log.h"
#include "util.h"

/* Runs a setup command (AUTH, SELECT); 0 or -1 with *err. */
static int setup_cmd(redisContext *rc, const char *where, char **err, const char *what, int argc,
                     const char **argv)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    if (r == NULL) {
        err_set(err, "redis %s: %s: %s", where, what, rc->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        err_set(err, "redis %s: %s: %s", where, what, r->str);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

/* Connects to one address (unix socket when sock is set), with AUTH and
 * SELECT when asked. NULL and *err on failure, naming `where`. */
static redisContext *open_addr(const char *host, int port, const char *sock, int timeout_ms,
                               const char *password, int db, char **err)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct timeval connect_tv = tv;
    char where[CONF_STR + 32];
    redisContext *rc;

    if (timeout_ms <= 0) {
        /* Connecting must never hang forever even when commands may block. */
        connect_tv.tv_sec = 5;
        connect_tv.tv_usec = 0;
    }
    if (sock && sock[0]) {
        snprintf(where, sizeof(where), "unix:%s", sock);
        rc = redisConnectUnixWithTimeout(sock, connect_tv);
    } else {
        snprintf(where, sizeof(where), "%s:%d", host, port);
        rc = redisConnectWithTimeout(host, port, connect_tv);
    }
    if (rc == NULL) {
        err_set(err, "redis %s: cannot allocate context", where);
        return NULL;
    }
    if (rc->err) {
        err_set(err, "redis %s: connect: %s", where, rc->errstr);
        redisFree(rc);
        return NULL;
    }
    struct timeval cmd_tv = timeout_ms > 0 ? tv : (struct timeval){0, 0};
    if (redisSetTimeout(rc, cmd_tv) != REDIS_OK) {
        err_set(err, "redis %s: set timeout: %s", where, rc->errstr);
        redisFree(rc);
        return NULL;
    }
    if (!(sock && sock[0]))
        redisEnableKeepAlive(rc);
    if (password && password[0]) {
        const char *argv[] = {"AUTH", password};
        if (setup_cmd(rc, where, err, "AUTH", 2, argv) == -1) {
            redisFree(rc);
            return NULL;
        }
    }
    if (db != 0) {
        char dbs[16];
        snprintf(dbs, sizeof(dbs), "%d", db);
        const char *argv[] = {"SELECT", dbs};
        if (setup_cmd(rc, where, err, "SELECT", 2, argv) == -1) {
            redisFree(rc);
            return NULL;
        }
    }
    return rc;
}

int rds_sentinel_ask(const struct tconf *c, const char *addr, int timeout_ms, char *host,
                     size_t hostn, int *port, char **err)
{
    char sh[128];
    int sp;
    if (hostport_split(addr, sh, sizeof sh, &sp) == -1) {
        err_set(err, "sentinel %s: not host:port", addr);
        return -1;
    }
    redisContext *sc = open_addr(sh, sp, NULL, timeout_ms, c->redis_sentinel_password, 0, err);
    if (!sc)
        return -1;
    redisReply *r = redisCommand(sc, "SENTINEL get-master-addr-by-name %s", c->redis_master_name);
    int ret = -1;
    if (r == NULL)
        err_set(err, "sentinel %s: %s", addr, sc->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        err_set(err, "sentinel %s: %s", addr, r->str);
    else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
             r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        err_set(err, "sentinel %s: does not know a master named \"%s\" (redis.master_name)", addr,
                c->redis_master_name);
    else if (snprintf(host, hostn, "%s", r->element[0]->str) >= (int)hostn)
        err_set(err, "sentinel %s: master address too long", addr);
    else {
        *port = atoi(r->element[1]->str);
        ret = 0;
    }
    if (r)
        freeReplyObject(r);
    redisFree(sc);
    return ret;
}

/* A Sentinel may answer with a master it has not yet seen demoted: believe
 * only a server that says ROLE master itself. */
static bool is_master(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "ROLE");
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
              r->element[0]->type == REDIS_REPLY_STRING &&
              strcmp(r->element[0]->str, "master") == 0;
    if (r)
        freeReplyObject(r);
    return ok;
}

static pthread_mutex_t g_master_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_master[160]; /* the last master this process connected to, for the log */

static redisContext *connect_sentinel(const struct tconf *c, int timeout_ms, char **err)
{
    /* Asking a Sentinel is short whatever the caller's command timeout. */
    int ask_ms = timeout_ms > 0 && timeout_ms < 1000 ? timeout_ms : 1000;
    char *why = NULL;
    for (int i = 0; i < c->redis_nsentinels; i++) {
        char host[128], *e = NULL;
        int port = 0;
        if (rds_sentinel_ask(c, c->redis_sentinels[i], ask_ms, host, sizeof host, &port, &e) == 0) {
            redisContext *rc =
                open_addr(host, port, NULL, timeout_ms, c->redis_password, c->redis_db, &e);
            if (rc && is_master(rc)) {
                char now[160];
                snprintf(now, sizeof now, "%s:%d", host, port);
                pthread_mutex_lock(&g_master_lock);
                bool changed = strcmp(now, g_master) != 0;
                if (changed)
                    snprintf(g_master, sizeof g_master, "%s", now);
                pthread_mutex_unlock(&g_master_lock);
                if (changed)
                    log_info("redis: master \"%s\" is %s (from sentinel %s)", c->redis_master_name,
                             now, c->redis_sentinels[i]);
                free(why);
                return rc;
            }
            if (rc) {
                e = xasprintf("sentinel %s names %s:%d, which is not a master (yet)",
                              c->redis_sentinels[i], host, port);
                redisFree(rc);
            }
        }
        char *joined = why ? xasprintf("%s; %s", why, e ? e : "?") : (e ? strdup(e) : NULL);
        free(why);
        free(e);
        why = joined;
    }
    err_set(err, "redis: no master \"%s\" found through %d sentinel(s): %s", c->redis_master_name,
            c->redis_nsentinels, why ? why : "none answered");
    free(why);
    return NULL;
}

redisContext *rds_connect(const struct tconf *c, int timeout_ms, char **err)
{
    if (err)
        *err = NULL;
    if (c->redis_nsentinels > 0 && c->redis_socket[0] == '\0')
        return connect_sentinel(c, timeout_ms, err);
    return open_addr(c->redis_host, c->redis_port, c->redis_socket, timeout_ms, c->redis_password,
                     c->redis_db, err);
}

char *rds_key(char *buf, size_t n, const struct tconf *c, const char *fmt, ...)
{
    va_list ap;
    int len = snprintf(buf, n, "%s", c->redis_prefix);
    if (len < 0 || (size_t)len >= n)
        return buf;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - (size_t)len, fmt, ap);
    va_end(ap);
    return buf;
}

bool rds_readonly(redisContext *rc, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ERROR || strncmp(r->str, "READONLY", 8) != 0)
        return false;
    /* Connected to a replica (Sentinel promoted another server): mark the
     * context broken so the caller's reconnect path asks the Sentinels
     * again; hiredis fails every later command on a context with err set. */
    if (rc && rc->err == 0) {
        rc->err = REDIS_ERR_OTHER;
        snprintf(rc->errstr, sizeof rc->errstr, "READONLY: this Redis is a replica now");
    }
    return true;
}

int rds_ok(redisContext *rc, redisReply *r, const char *what)
{
    if (r == NULL) {
        log_warnx("redis %s: %s", what, rc && rc->errstr[0] ? rc->errstr : "no reply");
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        log_warnx("redis %s: %s", what, r->str);
        rds_readonly(rc, r);
        return 0;
    }
    return 1;
}

int rds_script_load(redisContext *rc, const char *script, char sha[41])
{
    const char *argv[] = {"SCRIPT", "LOAD", script};
    redisReply *r = redisCommandArgv(rc, 3, argv, NULL);
    if (!rds_ok(rc, r, "SCRIPT LOAD")) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        log_warnx("redis SCRIPT LOAD: unexpected reply type %d", r->type);
        freeReplyObject(r);
        return -1;
    }
    memcpy(sha, r->str, 40);
    sha[40] = '\0';
    freeReplyObject(r);
    return 0;
}

/* EVAL/EVALSHA argv: cmd, script-or-sha, numkeys, keys and args. */
static redisReply *eval_cmd(redisContext *rc, const char *cmd, const char *body, int nkeys,
                            const char **argv, int argc)
{
    char nk[16];
    const char *stack[32];
    const char **av = stack;
    int total = argc + 3;

    if (total > (int)(sizeof(stack) / sizeof(stack[0]))) {
        av = malloc(sizeof(*av) * (size_t)total);
        if (av == NULL)
            return NULL;
    }
    snprintf(nk, sizeof(nk), "%d", nkeys);
    av[0] = cmd;
    av[1] = body;
    av[2] = nk;
    for (int i = 0; i < argc; i++)
        av[3 + i] = argv[i];
    redisReply *r = redisCommandArgv(rc, total, av, NULL);
    if (av != stack)
        free(av);
    return r;
}

redisReply *rds_eval(redisContext *rc, const char *script, char sha[41], int nkeys,
                     const char **argv, int argc)
{
    if (sha == NULL)
        return eval_cmd(rc, "EVAL", script, nkeys, argv, argc);
    if (sha[0] == '\0' && rds_script_load(rc, script, sha) == -1) {
        sha[0] = '\0';
        return eval_cmd(rc, "EVAL", script, nkeys, argv, argc);
    }
    redisReply *r = eval_cmd(rc, "EVALSHA", sha, nkeys, argv, argc);
    /* The script cache is empty after a Redis restart or SCRIPT FLUSH:
     * EVAL both runs and re-caches it, so the sha stays valid. */
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        r = eval_cmd(rc, "EVAL", script, nkeys, argv, argc);
    }
    rds_readonly(rc, r);
    return r;
}

/* One "slaveN:ip=...,state=online,offset=...,lag=N" line of INFO
 * replication: the replica counts when online and lagging at most
 * max_lag_s seconds (lag = seconds since its last ack). */
static bool replica_line_acking(const char *line, const char *end, int max_lag_s)
{
    const char *st = strstr(line, "state=");
    const char *lag = strstr(line, "lag=");
    if (!st || st >= end || !lag || lag >= end)
        return false;
    return strncmp(st + 6, "online", 6) == 0 && strtol(lag + 4, NULL, 10) <= max_lag_s;
}

int rds_replicas_acking_in(const char *info, int max_lag_s)
{
    if (!strstr(info, "role:master"))
        return -1;
    int n = 0;
    for (const char *p = info; p && *p;) {
        const char *end = strchr(p, '\n');
        if (!end)
            end = p + strlen(p);
        if (strncmp(p, "slave", 5) == 0 && p[5] >= '0' && p[5] <= '9' &&
            replica_line_acking(p, end, max_lag_s))
            n++;
        p = *end ? end + 1 : NULL;
    }
    return n;
}

/* The last count per process, for one master (by address) and lag limit:
 * every enqueue asks, so it is read again only when older than
 * RDS_REPLICA_CHECK_MS, by one caller while the others use the count it
 * replaces. */
static struct {
    pthread_mutex_t mu;
    char addr[CONF_STR + 16];
    int max_lag_s;
    int64_t at;
    int count;
    bool reading;
} g_acking = {.mu = PTHREAD_MUTEX_INITIALIZER};

int rds_replicas_acking(redisContext *rc, int max_lag_s)
{
    char addr[sizeof g_acking.addr];
    if (rc->connection_type == REDIS_CONN_UNIX)
        snprintf(addr, sizeof addr, "unix:%s", rc->unix_sock.path ? rc->unix_sock.path : "");
    else
        snprintf(addr, sizeof addr, "%s:%d", rc->tcp.host ? rc->tcp.host : "", rc->tcp.port);
    int64_t now = mono_ms();
    pthread_mutex_lock(&g_acking.mu);
    bool same = strcmp(addr, g_acking.addr) == 0 && g_acking.max_lag_s == max_lag_s;
    if (same && (now - g_acking.at < RDS_REPLICA_CHECK_MS || g_acking.reading)) {
        int n = g_acking.count;
        pthread_mutex_unlock(&g_acking.mu);
        return n;
    }
    g_acking.reading = true;
    pthread_mutex_unlock(&g_acking.mu);

    redisReply *r = redisCommand(rc, "INFO replication");
    int n = r && r->type == REDIS_REPLY_STRING ? rds_replicas_acking_in(r->str, max_lag_s) : -1;
    if (r)
        freeReplyObject(r);

    pthread_mutex_lock(&g_acking.mu);
    snprintf(g_acking.addr, sizeof g_acking.addr, "%s", addr);
    g_acking.max_lag_s = max_lag_s;
    g_acking.at = mono_ms();
    g_acking.count = n;
    g_acking.reading = false;
    pthread_mutex_unlock(&g_acking.mu);
    return n;
}

/* Both commands in one round trip; -1 if either failed. */
static int hb_pair(redisContext *rc)
{
    int ok = 0;
    for (int i = 0; i < 2; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK)
            return -1;
        if (r->type == REDIS_REPLY_ERROR)
            ok = -1;
        freeReplyObject(r);
    }
    return ok;
}

int rds_hb_set(redisContext *rc, const struct tconf *c, const char *kind, const char *node, int pid,
               const char *json, int ttl_ms)
{
    char key[256], set[128];
    rds_key(key, sizeof key, c, "hb:%s:%s:%d", kind, node, pid);
    rds_key(set, sizeof set, c, "hb:%s", kind);
    redisAppendCommand(rc, "SET %s %s PX %d", key, json, ttl_ms);
    redisAppendCommand(rc, "SADD %s %s", set, key);
    return hb_pair(rc);
}

int rds_hb_del(redisContext *rc, const struct tconf *c, const char *kind, const char *node, int pid)
{
    char key[256], set[128];
    rds_key(key, sizeof key, c, "hb:%s:%s:%d", kind, node, pid);
    rds_key(set, sizeof set, c, "hb:%s", kind);
    redisAppendCommand(rc, "DEL %s", key);
    redisAppendCommand(rc, "SREM %s %s", set, key);
    return hb_pair(rc);
}

long long rds_hb_list(redisContext *rc, const struct tconf *c, const char *kind, json_t **out)
{
    char set[128];
    rds_key(set, sizeof set, c, "hb:%s", kind);
    if (out)
        *out = NULL;
    redisReply *names = redisCommand(rc, "SMEMBERS %s", set);
    if (names == NULL || names->type != REDIS_REPLY_ARRAY) {
        if (names)
            freeReplyObject(names);
        return -1;
    }
    json_t *list = out ? json_array() : NULL;
    long long live = 0;
    if (names->elements > 0) {
        size_t n = names->elements;
        const char **argv = malloc((n + 1) * sizeof *argv);
        size_t *lens = malloc((n + 1) * sizeof *lens);
        if (argv == NULL || lens == NULL) {
            free(argv);
            free(lens);
            freeReplyObject(names);
            json_decref(list);
            return -1;
        }
        argv[0] = "MGET";
        lens[0] = 4;
        for (size_t i = 0; i < n; i++) {
            argv[i + 1] = names->element[i]->str;
            lens[i + 1] = names->element[i]->len;
        }
        redisReply *vals = redisCommandArgv(rc, (int)n + 1, argv, lens);
        free(argv);
        free(lens);
        if (vals == NULL || vals->type != REDIS_REPLY_ARRAY || vals->elements != n) {
            if (vals)
                freeReplyObject(vals);
            freeReplyObject(names);
            json_decref(list);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            redisReply *v = vals->element[i];
            if (v->type != REDIS_REPLY_STRING) {
                /* expired: the process died without deleting its heartbeat */
                redisReply *r = redisCommand(rc, "SREM %s %b", set, names->element[i]->str,
                                             names->element[i]->len);
                if (r)
                    freeReplyObject(r);
                continue;
            }
            live++;
            if (list) {
                json_t *hb = json_loadb(v->str, v->len, 0, NULL);
                if (hb)
                    json_array_append_new(list, hb);
            }
        }
        freeReplyObject(vals);
    }
    freeReplyObject(names);
    if (out)
        *out = list;
    return live;
}

/* One "name:value" line of an INFO reply as an integer; -1 when absent. */
static long long info_int(const char *info, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = info; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ':')
            return strtoll(p + n + 1, NULL, 10);
    return -1;
}

json_t *rds_size_stats(redisContext *rc, char **err)
{
    static const char *const cmds[] = {"INFO memory", "INFO persistence", "DBSIZE"};
    redisReply *r[3] = {NULL, NULL, NULL};
    json_t *o = NULL;
    for (int i = 0; i < 3; i++) {
        r[i] = redisCommand(rc, cmds[i]);
        if (!r[i] || r[i]->type == REDIS_REPLY_ERROR ||
            r[i]->type != (i < 2 ? REDIS_REPLY_STRING : REDIS_REPLY_INTEGER)) {
            err_set(err, "%s: %s", cmds[i],
                    !r[i]                             ? rc->errstr
                    : r[i]->type == REDIS_REPLY_ERROR ? r[i]->str
                                                      : "unexpected reply type");
            goto out;
        }
    }
    long long aof = info_int(r[1]->str, "aof_enabled");
    o = json_pack("{s:I, s:I, s:b}", "used_memory", (json_int_t)info_int(r[0]->str, "used_memory"),
                  "keys", (json_int_t)r[2]->integer, "aof_enabled", aof == 1);
    if (aof == 1)
        json_object_set_new(o, "aof_size", json_integer(info_int(r[1]->str, "aof_current_size")));
out:
    for (int i = 0; i < 3; i++)
        if (r[i])
            freeReplyObject(r[i]);
    return o;
}

int64_t rds_time_reply_ms(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return -1;
    return strtoll(r->element[0]->str, NULL, 10) * 1000 +
           strtoll(r->element[1]->str, NULL, 10) / 1000;
}

redisReply *rds_command_timed(redisContext *rc, int64_t *redis_now_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc_app = redisvAppendCommand(rc, fmt, ap);
    va_end(ap);
    *redis_now_ms = -1;
    if (rc_app != REDIS_OK)
        return NULL;
    redisAppendCommand(rc, "TIME");
    redisReply *r = NULL, *t = NULL;
    if (redisGetReply(rc, (void **)&r) != REDIS_OK)
        return NULL;
    if (redisGetReply(rc, (void **)&t) == REDIS_OK) {
        *redis_now_ms = rds_time_reply_ms(t);
        freeReplyObject(t);
    }
    return r;
}

int64_t rds_sv_age_ms(const json_t *o, int64_t redis_now_ms)
{
    const json_t *rts = json_object_get(o, "rts");
    if (redis_now_ms >= 0 && json_is_integer(rts))
        return redis_now_ms - json_integer_value(rts);
    return now_ms() - json_integer_value(json_object_get(o, "ts"));
}
