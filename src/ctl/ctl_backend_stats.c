/* The backend's size (issue 16), for `tandemctl status` and `doctor`: Redis
 * memory, keys and AOF; task_record's rows and bytes; the keeper's last
 * retention pass; and, for doctor, whether retention is on and how full the
 * backend's disks are.
 *
 * What this node can see of the backend's disks: Redis and MariaDB report
 * their data directories (CONFIG GET dir, @@datadir), but a path is only
 * meaningful on the machine that holds it. The disk is measured here with
 * statvfs when the backend is on this machine (a unix socket, a loopback
 * address, or MariaDB's @@hostname equal to ours); MariaDB's DISKS plugin
 * (information_schema.DISKS), when installed, reports its disks from any
 * node. Anything else is said to be not visible, never guessed. */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "clock.h"
#include "ctl_backend_stats.h"
#include "db.h"
#include "rds.h"

#define BACKEND_TIMEOUT_MS 1500 /* status must stay quick with a dead backend */
#define DISK_WARN_PCT 80

static bool host_is_loopback(const char *h)
{
    return !strcmp(h, "127.0.0.1") || !strcmp(h, "localhost") || !strcmp(h, "::1") ||
           !strncmp(h, "127.", 4);
}

/* Pstats:purge's fields (decimal strings) as integers. */
static json_t *purge_hash(redisContext *rc, const struct tconf *t)
{
    char key[256];
    rds_key(key, sizeof key, t, "stats:purge");
    redisReply *r = redisCommand(rc, "HGETALL %s", key);
    json_t *o = NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        o = json_object();
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                r->element[i + 1]->type == REDIS_REPLY_STRING)
                json_object_set_new(o, r->element[i]->str,
                                    json_integer(strtoll(r->element[i + 1]->str, NULL, 10)));
    }
    if (r)
        freeReplyObject(r);
    return o;
}

static char *redis_dir(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "CONFIG GET dir");
    char *dir = NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        dir = strdup(r->element[1]->str);
    if (r)
        freeReplyObject(r);
    return dir;
}

/* One row of a one-row query, NULL when it failed (*err set) or was empty. */
static char **row1(MYSQL *m, MYSQL_RES **res, char **err, const char *sql)
{
    *res = db_query(m, err, "%s", sql);
    MYSQL_ROW row = *res ? mysql_fetch_row(*res) : NULL;
    return row;
}

static void add_disk(json_t *o, const char *how, unsigned long long total, unsigned long long avail)
{
    json_object_set_new(o, "disk",
                        json_pack("{s:s, s:I, s:I, s:i}", "seen", how, "total", (json_int_t)total,
                                  "available", (json_int_t)avail, "used_pct",
                                  total ? (int)(100 - avail * 100 / total) : 0));
}

/* statvfs of a path on this machine; false when it is not here. */
static bool local_disk(json_t *o, const char *path)
{
    struct statvfs sv;
    if (!path || statvfs(path, &sv) != 0)
        return false;
    add_disk(o, "statvfs on this node", (unsigned long long)sv.f_blocks * sv.f_frsize,
             (unsigned long long)sv.f_bavail * sv.f_frsize);
    return true;
}

static json_t *redis_part(const struct tconf *t, bool disk)
{
    char *err = NULL;
    redisContext *rc = rds_connect(t, BACKEND_TIMEOUT_MS, &err);
    if (!rc) {
        json_t *o = json_pack("{s:s}", "error", err ? err : "cannot connect");
        free(err);
        return o;
    }
    json_t *o = rds_size_stats(rc, &err);
    if (!o) {
        o = json_pack("{s:s}", "error", err ? err : "INFO refused");
        free(err);
        redisFree(rc);
        return o;
    }
    json_t *p = purge_hash(rc, t);
    if (p)
        json_object_set_new(o, "purge", p);
    if (disk) {
        char *dir = redis_dir(rc);
        bool local =
            t->redis_socket[0] || (!t->redis_nsentinels && host_is_loopback(t->redis_host));
        if (dir)
            json_object_set_new(o, "dir", json_string(dir));
        if (!local || !local_disk(o, dir))
            json_object_set_new(o, "disk_unseen",
                                json_string(!dir    ? "CONFIG GET dir is refused"
                                            : local ? "its dir is not visible from this node"
                                                    : "Redis is on another machine: check its disk "
                                                      "there (df on CONFIG GET dir)"));
        free(dir);
    }
    redisFree(rc);
    return o;
}

static json_t *mariadb_part(const struct tconf *t, bool disk)
{
    char *err = NULL;
    int secs = BACKEND_TIMEOUT_MS / 1000 ? BACKEND_TIMEOUT_MS / 1000 : 1;
    MYSQL *m = db_connect(t, secs, &err);
    if (!m) {
        json_t *o = json_pack("{s:s}", "error", err ? err : "cannot connect");
        free(err);
        return o;
    }
    json_t *o = json_object();
    MYSQL_RES *res;
    char **row =
        row1(m, &res, &err,
             "SELECT TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
             "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'task_record'");
    if (row && row[0] && row[1]) {
        json_object_set_new(o, "task_record_rows_estimate", json_integer(strtoll(row[0], 0, 10)));
        json_object_set_new(o, "task_record_bytes", json_integer(strtoll(row[1], 0, 10)));
    } else {
        json_object_set_new(o, "error", json_string(err ? err : "no task_record table"));
    }
    if (res)
        mysql_free_result(res);
    free(err);
    err = NULL;
    if (disk) {
        char me[256] = "";
        gethostname(me, sizeof me - 1);
        row = row1(m, &res, &err, "SELECT @@datadir, @@hostname");
        char *dir = row && row[0] ? strdup(row[0]) : NULL;
        bool local = t->db_socket[0] || host_is_loopback(t->db_host) ||
                     (row && row[1] && strcmp(row[1], me) == 0);
        if (res)
            mysql_free_result(res);
        free(err);
        err = NULL;
        if (dir)
            json_object_set_new(o, "datadir", json_string(dir));
        bool seen = local && local_disk(o, dir);
        if (!seen && dir) {
            /* the DISKS plugin: sizes in KiB, the disk holding datadir */
            char *qd = db_q(m, dir);
            MYSQL_RES *r2 =
                qd ? db_query(m, &err,
                              "SELECT Total, Available FROM information_schema.DISKS WHERE %s "
                              "LIKE CONCAT(Path, '%%') ORDER BY LENGTH(Path) DESC LIMIT 1",
                              qd)
                   : NULL;
            MYSQL_ROW d = r2 ? mysql_fetch_row(r2) : NULL;
            if (d && d[0] && d[1]) {
                add_disk(o, "information_schema.DISKS", strtoull(d[0], 0, 10) * 1024,
                         strtoull(d[1], 0, 10) * 1024);
                seen = true;
            }
            if (r2)
                mysql_free_result(r2);
            free(qd);
            free(err);
        }
        if (!seen)
            json_object_set_new(
                o, "disk_unseen",
                json_string(!dir ? "@@datadir is unknown"
                            : local
                                ? "its datadir is not visible from this node"
                                : "MariaDB is on another machine: check its disk there, or "
                                  "INSTALL SONAME 'disks' so information_schema.DISKS shows it"));
        free(dir);
    }
    mysql_close(m);
    return o;
}

json_t *ctl_backend_stats(const struct tconf *t, bool disk)
{
    return json_pack("{s:o, s:o}", "redis", redis_part(t, disk), "mariadb", mariadb_part(t, disk));
}

static const char *mib(long long b, char *buf, size_t n)
{
    if (b < 0)
        snprintf(buf, n, "?");
    else
        snprintf(buf, n, "%.1f MiB", (double)b / (1 << 20));
    return buf;
}

static long long jint(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

void ctl_backend_print(const json_t *b)
{
    json_t *r = json_object_get(b, "redis"), *m = json_object_get(b, "mariadb");
    json_t *p = json_object_get(r, "purge");
    char a[32], c[32];
    if (json_object_get(r, "error"))
        printf("redis size:  unknown (%s)\n", json_string_value(json_object_get(r, "error")));
    else if (json_is_true(json_object_get(r, "aof_enabled")))
        printf("redis size:  %s used, %lld keys, AOF %s\n",
               mib(jint(r, "used_memory"), a, sizeof a), jint(r, "keys"),
               mib(jint(r, "aof_size"), c, sizeof c));
    else
        printf("redis size:  %s used, %lld keys, no AOF\n",
               mib(jint(r, "used_memory"), a, sizeof a), jint(r, "keys"));
    if (json_object_get(m, "error"))
        printf("task_record: unknown (%s)\n", json_string_value(json_object_get(m, "error")));
    else
        printf("task_record: ~%lld rows (InnoDB's estimate), %s\n",
               jint(m, "task_record_rows_estimate"),
               mib(jint(m, "task_record_bytes"), a, sizeof a));
    if (!p) {
        printf("last purge:  none recorded (retention off, or no keeper has run one)\n");
    } else if (jint(p, "last_pass_end_ms") <= 0) {
        printf("last purge:  no pass finished yet (%lld rows deleted since the keeper started)\n",
               jint(p, "deleted_total"));
    } else {
        char when[40];
        iso8601_ms(jint(p, "last_pass_end_ms"), when, sizeof when);
        printf("last purge:  %s, %lld rows in %.1f ms (%lld rows since the keeper started)\n", when,
               jint(p, "last_pass_rows"), (double)jint(p, "last_pass_us") / 1000.0,
               jint(p, "deleted_total"));
    }
}

void ctl_backend_doctor(const struct tconf *t, doctor_report_fn report, void *d)
{
    /* retention: off entirely, or an origin without any bound */
    const struct {
        const char *name;
        int cap;
    } caps[] = {{"sync_api", t->ret_sync_api},
                {"async_api", t->ret_async_api},
                {"cron", t->ret_cron},
                {"func", t->ret_func},
                {"other", t->ret_other}};
    char unbounded[128] = "";
    size_t off = 0;
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        if (caps[i].cap == 0 && off < sizeof unbounded)
            off += (size_t)snprintf(unbounded + off, sizeof unbounded - off, "%s%s",
                                    off ? ", " : "", caps[i].name);
    if (t->ret_max_age_days == 0 && off)
        report(d, 1, "retention", "set retention.max_age_days and the caps in tandem.conf",
               "task_record grows without bound for %s (no cap and max_age_days = 0)", unbounded);
    else
        report(d, 0, "retention", NULL, "task records kept %d days at most%s%s",
               t->ret_max_age_days, off ? "; no count cap for " : "", unbounded);

    /* TANDEM_DOCTOR_DISK_WARN_PCT: another threshold (the test sets 0 to see
     * the warning without filling a disk) */
    long warn_pct = DISK_WARN_PCT;
    const char *env = getenv("TANDEM_DOCTOR_DISK_WARN_PCT");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (!*end && v >= 0 && v <= 100)
            warn_pct = v;
    }
    json_t *b = ctl_backend_stats(t, true);
    static const char *const parts[] = {"redis", "mariadb"};
    for (int i = 0; i < 2; i++) {
        json_t *o = json_object_get(b, parts[i]);
        json_t *disk = json_object_get(o, "disk");
        char check[32];
        snprintf(check, sizeof check, "%s-disk", parts[i]);
        const char *path = json_string_value(json_object_get(o, i == 0 ? "dir" : "datadir"));
        if (!path)
            path = "?";
        if (json_object_get(o, "error")) {
            report(d, 1, check, "fix the connection first (see the checks above)",
                   "not checked: %s", json_string_value(json_object_get(o, "error")));
        } else if (disk) {
            long long pct = jint(disk, "used_pct");
            char av[32];
            mib(jint(disk, "available"), av, sizeof av);
            if (pct > warn_pct)
                report(d, 1, check,
                       "free space there or grow the disk; lower the retention caps "
                       "(retention.*) if task_record is the bulk",
                       "%s is %lld %% full (%s free; %s)", path, pct, av,
                       json_string_value(json_object_get(disk, "seen")));
            else
                report(d, 0, check, NULL, "%s is %lld %% full (%s free; %s)", path, pct, av,
                       json_string_value(json_object_get(disk, "seen")));
        } else {
            report(d, 0, check, NULL, "not checked: %s",
                   json_string_value(json_object_get(o, "disk_unseen")));
        }
    }
    json_decref(b);
}
