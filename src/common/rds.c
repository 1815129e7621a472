#include "rds.h"

#include <jansson.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

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

redisContext *rds_connect(const struct tconf *c, int timeout_ms, char **err)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct timeval connect_tv = tv;
    char where[CONF_STR + 32];
    redisContext *rc;

    if (err)
        *err = NULL;
    if (timeout_ms <= 0) {
        /* Connecting must never hang forever even when commands may block. */
        connect_tv.tv_sec = 5;
        connect_tv.tv_usec = 0;
    }
    if (c->redis_socket[0]) {
        snprintf(where, sizeof(where), "unix:%s", c->redis_socket);
        rc = redisConnectUnixWithTimeout(c->redis_socket, connect_tv);
    } else {
        snprintf(where, sizeof(where), "%s:%d", c->redis_host, c->redis_port);
        rc = redisConnectWithTimeout(c->redis_host, c->redis_port, connect_tv);
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
    if (c->redis_socket[0] == '\0')
        redisEnableKeepAlive(rc);
    if (c->redis_password[0]) {
        const char *argv[] = {"AUTH", c->redis_password};
        if (setup_cmd(rc, where, err, "AUTH", 2, argv) == -1) {
            redisFree(rc);
            return NULL;
        }
    }
    if (c->redis_db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", c->redis_db);
        const char *argv[] = {"SELECT", db};
        if (setup_cmd(rc, where, err, "SELECT", 2, argv) == -1) {
            redisFree(rc);
            return NULL;
        }
    }
    return rc;
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

int rds_ok(redisContext *rc, redisReply *r, const char *what)
{
    if (r == NULL) {
        log_warnx("redis %s: %s", what, rc && rc->errstr[0] ? rc->errstr : "no reply");
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        log_warnx("redis %s: %s", what, r->str);
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
    return r;
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
