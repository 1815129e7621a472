/* tandemctl's view of the backend's topology (issue 13): the Redis master,
 * its replicas and their lag, the Sentinels (reachable, agreeing), and the
 * MariaDB servers with their read_only state. One probe, built as JSON, is
 * printed by `status` and judged by `doctor`, so both say the same thing. */
#include "ctl_topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "rds.h"

/* "k=v,k=v" (one slaveN line of INFO replication): the value of key, or "". */
static void kv_get(const char *line, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    out[0] = '\0';
    for (const char *p = line; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t len = strcspn(p + kl + 1, ",\r\n");
            snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), p + kl + 1);
            return;
        }
    }
}

/* The master's INFO replication: its replicas, their state, lag (seconds
 * since their last ack) and how many bytes they are behind. */
static void redis_replicas(redisContext *rc, json_t *redis)
{
    json_t *reps = json_array();
    json_object_set_new(redis, "replicas", reps);
    redisReply *r = redisCommand(rc, "INFO replication");
    if (!r || r->type != REDIS_REPLY_STRING) {
        json_object_set_new(redis, "replicas_error",
                            json_string(r && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr));
        if (r)
            freeReplyObject(r);
        return;
    }
    long long master_off = 0;
    const char *m = strstr(r->str, "master_repl_offset:");
    if (m)
        master_off = atoll(m + strlen("master_repl_offset:"));
    for (const char *line = r->str; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "slave", 5) != 0 || line[5] < '0' || line[5] > '9')
            continue;
        const char *v = strchr(line, ':');
        if (!v)
            continue;
        char ip[64], port[16], state[32], off[32], lag[32], addr[96];
        kv_get(v + 1, "ip", ip, sizeof ip);
        kv_get(v + 1, "port", port, sizeof port);
        kv_get(v + 1, "state", state, sizeof state);
        kv_get(v + 1, "offset", off, sizeof off);
        kv_get(v + 1, "lag", lag, sizeof lag);
        snprintf(addr, sizeof addr, "%s:%s", ip, port);
        json_array_append_new(reps, json_pack("{s:s, s:s, s:I, s:I}", "addr", addr, "state", state,
                                              "lag_s", (json_int_t)atoll(lag), "behind_bytes",
                                              (json_int_t)(master_off - atoll(off))));
    }
    freeReplyObject(r);
}

static json_t *redis_probe(const struct tconf *t, int timeout_ms)
{
    json_t *redis = json_object(), *sents = json_array();
    char first[160] = "";
    bool agree = true;
    int reachable = 0;

    json_object_set_new(redis, "mode", json_string(t->redis_nsentinels ? "sentinel" : "single"));
    for (int i = 0; i < t->redis_nsentinels; i++) {
        char host[128], named[160];
        int port = 0;
        char *err = NULL;
        json_t *s = json_pack("{s:s}", "addr", t->redis_sentinels[i]);
        if (rds_sentinel_ask(t, t->redis_sentinels[i], timeout_ms, host, sizeof host, &port,
                             &err) == 0) {
            reachable++;
            snprintf(named, sizeof named, "%s:%d", host, port);
            json_object_set_new(s, "master", json_string(named));
            if (!first[0])
                snprintf(first, sizeof first, "%s", named);
            else if (strcmp(first, named) != 0)
                agree = false;
        } else {
            json_object_set_new(s, "error", json_string(err ? err : "no answer"));
        }
        free(err);
        json_array_append_new(sents, s);
    }
    if (t->redis_nsentinels) {
        json_object_set_new(redis, "sentinels", sents);
        json_object_set_new(redis, "sentinels_reachable", json_integer(reachable));
        json_object_set_new(redis, "sentinels_agree", json_boolean(reachable > 0 && agree));
    } else {
        json_decref(sents);
    }

    char *err = NULL;
    redisContext *rc = rds_connect(t, timeout_ms, &err);
    if (!rc) {
        json_object_set_new(redis, "error", json_string(err ? err : "cannot connect"));
        free(err);
        return redis;
    }
    char addr[CONF_STR + 16];
    if (rc->connection_type == REDIS_CONN_UNIX)
        snprintf(addr, sizeof addr, "unix:%s", t->redis_socket);
    else
        snprintf(addr, sizeof addr, "%s:%d", rc->tcp.host, rc->tcp.port);
    json_object_set_new(redis, "master", json_string(addr));
    redis_replicas(rc, redis);
    redisFree(rc);
    return redis;
}

/* One MariaDB server: reachable, read_only, GTID position. */
static json_t *mysql_one(const struct tconf *t, const char *hostport, int timeout_s)
{
    json_t *h = json_pack("{s:s}", "addr", hostport ? hostport : "");
    char *err = NULL;
    MYSQL *m =
        hostport ? db_connect_host(t, hostport, timeout_s, &err) : db_connect(t, timeout_s, &err);
    if (!m) {
        json_object_set_new(h, "error", json_string(err ? err : "cannot connect"));
        free(err);
        return h;
    }
    MYSQL_RES *res = db_query(m, &err, "SELECT @@global.read_only, @@global.gtid_current_pos");
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (row) {
        json_object_set_new(h, "read_only", json_boolean(row[0] && strcmp(row[0], "0") != 0));
        json_object_set_new(h, "gtid", json_string(row[1] ? row[1] : ""));
    } else {
        json_object_set_new(h, "error", json_string(err ? err : "no answer to SELECT @@read_only"));
    }
    if (res)
        mysql_free_result(res);
    free(err);
    mysql_close(m);
    return h;
}

static json_t *mysql_probe(const struct tconf *t, int timeout_ms)
{
    json_t *my = json_object(), *hosts = json_array();
    int timeout_s = timeout_ms < 1000 ? 1 : timeout_ms / 1000;
    int writable = 0;
    if (t->db_nhosts == 0) {
        char one[CONF_STR + 16];
        if (t->db_socket[0])
            snprintf(one, sizeof one, "unix:%s", t->db_socket);
        else
            snprintf(one, sizeof one, "%s:%d", t->db_host, t->db_port);
        json_t *h = mysql_one(t, NULL, timeout_s);
        json_object_set_new(h, "addr", json_string(one));
        json_array_append_new(hosts, h);
    }
    for (int i = 0; i < t->db_nhosts; i++)
        json_array_append_new(hosts, mysql_one(t, t->db_hosts[i], timeout_s));
    size_t i;
    json_t *h;
    json_array_foreach(hosts, i, h)
    {
        json_t *ro = json_object_get(h, "read_only");
        if (json_is_false(ro)) {
            if (!writable)
                json_object_set(my, "primary", json_object_get(h, "addr"));
            writable++;
        }
    }
    json_object_set_new(my, "hosts", hosts);
    json_object_set_new(my, "writable", json_integer(writable));
    return my;
}

json_t *ctl_topology_probe(const struct tconf *t, int timeout_ms)
{
    return json_pack("{s:o, s:o}", "redis", redis_probe(t, timeout_ms), "mysql",
                     mysql_probe(t, timeout_ms));
}

static const char *js(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

void ctl_topology_print(json_t *topo)
{
    json_t *redis = json_object_get(topo, "redis"), *my = json_object_get(topo, "mysql"), *v;
    size_t i;
    if (json_object_get(redis, "error"))
        printf("redis:       %s\n", js(redis, "error"));
    else
        printf("redis:       master %s, %zu replica(s)\n", js(redis, "master"),
               json_array_size(json_object_get(redis, "replicas")));
    json_array_foreach(json_object_get(redis, "replicas"), i, v)
    {
        printf("  replica    %s %s, lag %lld s, %lld bytes behind\n", js(v, "addr"), js(v, "state"),
               (long long)json_integer_value(json_object_get(v, "lag_s")),
               (long long)json_integer_value(json_object_get(v, "behind_bytes")));
    }
    json_t *sents = json_object_get(redis, "sentinels");
    if (sents)
        printf("sentinels:   %lld of %zu reachable, %s\n",
               (long long)json_integer_value(json_object_get(redis, "sentinels_reachable")),
               json_array_size(sents),
               json_is_true(json_object_get(redis, "sentinels_agree")) ? "agreeing"
                                                                       : "NOT agreeing");
    json_array_foreach(sents, i, v)
    {
        if (json_object_get(v, "error"))
            printf("  sentinel   %s: %s\n", js(v, "addr"), js(v, "error"));
        else
            printf("  sentinel   %s: master %s\n", js(v, "addr"), js(v, "master"));
    }
    printf("mariadb:     primary %s (%lld writable)\n",
           json_object_get(my, "primary") ? js(my, "primary") : "NONE",
           (long long)json_integer_value(json_object_get(my, "writable")));
    json_array_foreach(json_object_get(my, "hosts"), i, v)
    {
        if (json_object_get(v, "error"))
            printf("  server     %s: %s\n", js(v, "addr"), js(v, "error"));
        else
            printf("  server     %s: read_only %s, gtid %s\n", js(v, "addr"),
                   json_is_true(json_object_get(v, "read_only")) ? "on" : "off", js(v, "gtid"));
    }
}

/* doctor's verdicts on one probe: what stops failover or durability FAILs,
 * what weakens it warns. */
static void judge_redis(const struct tconf *t, json_t *redis, doctor_report_fn report, void *d)
{
    json_t *v;
    size_t i;
    if (json_object_get(redis, "error")) {
        /* the redis check has FAILed already, with the same cause */
        report(d, 1, "redis-topo", "fix the redis check first", "not judged: no master: %s",
               js(redis, "error"));
        return;
    }
    int online = 0, lagging = 0, acking = 0;
    char reps[512] = "";
    json_array_foreach(json_object_get(redis, "replicas"), i, v)
    {
        bool on = strcmp(js(v, "state"), "online") == 0;
        long long lag = json_integer_value(json_object_get(v, "lag_s"));
        online += on;
        lagging += on && lag > t->redis_replica_lag_warn;
        /* the enqueue's own rule (rds_replicas_acking) */
        acking += on && lag <= t->redis_wait_max_lag;
        size_t len = strlen(reps);
        snprintf(reps + len, sizeof reps - len, "%s%s %s lag %lld s", len ? ", " : "",
                 js(v, "addr"), js(v, "state"), lag);
    }
    json_t *sents = json_object_get(redis, "sentinels");
    int nsent = (int)json_array_size(sents);
    int reach = (int)json_integer_value(json_object_get(redis, "sentinels_reachable"));
    char msg[900];
    snprintf(msg, sizeof msg, "master %s; %d replica(s) online%s%s%s", js(redis, "master"), online,
             reps[0] ? " (" : "", reps, reps[0] ? ")" : "");
    if (nsent) {
        size_t len = strlen(msg);
        snprintf(msg + len, sizeof msg - len, "; %d of %d Sentinels reachable, %s", reach, nsent,
                 json_is_true(json_object_get(redis, "sentinels_agree")) ? "agreeing"
                                                                         : "NOT agreeing");
    }
    if (t->redis_wait_replicas > 0) {
        size_t len = strlen(msg);
        snprintf(msg + len, sizeof msg - len,
                 "; enqueues WAIT for %d replica(s) up to %d ms, counting those with lag <= %d s "
                 "(redis.wait_replicas, wait_timeout_ms, wait_max_lag)",
                 t->redis_wait_replicas, t->redis_wait_timeout_ms, t->redis_wait_max_lag);
    }
    /* the first finding that applies decides the verdict; the message
     * always carries the whole picture */
    int verdict = 0;
    const char *fix = NULL;
    char why[256] = "";
    bool agree = json_is_true(json_object_get(redis, "sentinels_agree"));
    if (t->redis_wait_replicas > acking) {
        verdict = t->redis_wait_refuse ? 2 : 1;
        fix = "start or repair the replica (INFO replication on the master)";
        snprintf(why, sizeof why,
                 ": redis.wait_replicas = %d but %d online and acknowledging (lag <= "
                 "redis.wait_max_lag = %d s), so every enqueue %s",
                 t->redis_wait_replicas, acking, t->redis_wait_max_lag,
                 t->redis_wait_refuse ? "is refused (503)"
                                      : "is accepted without a replica's copy");
    } else if (nsent && reach < nsent / 2 + 1) {
        verdict = 2, fix = "start the Sentinels that do not answer, or fix redis.sentinels";
        snprintf(why, sizeof why, ": no majority of Sentinels, so no failover can happen");
    } else if (nsent && !agree) {
        verdict = 1, fix = "wait for the failover to settle, or check each Sentinel's monitor";
        snprintf(why, sizeof why, ": the Sentinels name different masters");
    } else if (nsent && online == 0) {
        verdict = 1, fix = "start a replica of the master";
        snprintf(why, sizeof why, ": a failover would have nothing to promote");
    } else if (nsent && reach < nsent) {
        verdict = 1, fix = "start the Sentinels that do not answer";
    } else if (lagging) {
        verdict = 1, fix = "check the replica's link and load";
        snprintf(why, sizeof why,
                 ": %d replica(s) more than %d s behind (redis.replica_lag_warn): a promotion "
                 "would lose what they have not acknowledged",
                 lagging, t->redis_replica_lag_warn);
    }
    report(d, verdict, "redis-topo", fix, "%s%s", msg, why);
}

static void judge_mysql(json_t *my, doctor_report_fn report, void *d)
{
    json_t *v;
    size_t i;
    int writable = (int)json_integer_value(json_object_get(my, "writable")), down = 0;
    char msg[900] = "";
    json_array_foreach(json_object_get(my, "hosts"), i, v)
    {
        size_t len = strlen(msg);
        bool err = json_object_get(v, "error") != NULL;
        down += err;
        snprintf(msg + len, sizeof msg - len, "%s%s %s", len ? "; " : "", js(v, "addr"),
                 err                                             ? "unreachable"
                 : json_is_true(json_object_get(v, "read_only")) ? "read_only"
                                                                 : "writable");
        if (!err && js(v, "gtid")[0]) {
            len = strlen(msg);
            snprintf(msg + len, sizeof msg - len, " (gtid %s)", js(v, "gtid"));
        }
    }
    if (down == (int)json_array_size(json_object_get(my, "hosts")))
        report(d, 1, "mysql-topo", "fix the mariadb check first", "not judged: none answers: %s",
               msg);
    else if (writable == 0)
        report(d, 2, "mysql-topo",
               "turn read_only off on the primary (SET GLOBAL read_only = 0) or fix mysql.hosts",
               "no writable MariaDB: %s", msg);
    else if (writable > 1)
        report(d, 2, "mysql-topo", "SET GLOBAL read_only = 1 on every server but the primary",
               "%d writable MariaDB servers, writes can split between them: %s", writable, msg);
    else if (down)
        report(d, 1, "mysql-topo", "start the server named or remove it from mysql.hosts", "%s",
               msg);
    else
        report(d, 0, "mysql-topo", NULL, "%s", msg);
}

void ctl_topology_doctor(const struct tconf *t, doctor_report_fn report, void *d)
{
    json_t *topo = ctl_topology_probe(t, 2000);
    judge_redis(t, json_object_get(topo, "redis"), report, d);
    judge_mysql(json_object_get(topo, "mysql"), report, d);
    json_decref(topo);
}
