/* Cron jobs over HTTP beside DFF's cron-jobs rows (server_resource.c, which
 * checks expressions and zones with the beat's own engine): their "state"
 * (the beat's Redis hash and the next fire), the global pause
 * (/api/v1/cron-jobs/_settings, setting k='cron.paused'), DFF's POST
 * /api/v1/cron/<id> (run once now), and autoRun jobs on publish. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cron.h"
#include "db.h"
#include "ids.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"

static json_t *iso_or_null(const char *ts)
{
    if (!ts)
        return json_null();
    char buf[40];
    return json_string(iso8601_ms((int64_t)llround(strtod(ts, NULL) * 1000.0), buf, sizeof buf));
}

/* Zones loaded once per request: a list of 10,000 jobs reads each zone
 * file once, not once per job. */
struct zcache {
    struct {
        char name[64];
        struct cron_tz *tz;
    } z[16];
    int n;
};

static struct cron_tz *zone(struct zcache *zc, const char *name, char **err)
{
    for (int i = 0; i < zc->n; i++)
        if (strcmp(zc->z[i].name, name) == 0)
            return zc->z[i].tz;
    struct cron_tz *tz = cron_tz_load(name, err);
    if (tz && zc->n < 16) {
        snprintf(zc->z[zc->n].name, sizeof zc->z[zc->n].name, "%s", name);
        zc->z[zc->n++].tz = tz;
    } else if (tz) {
        cron_tz_free(zc->z[0].tz); /* full: replace the oldest */
        snprintf(zc->z[0].name, sizeof zc->z[0].name, "%s", name);
        zc->z[0].tz = tz;
    }
    return tz;
}

static void zcache_free(struct zcache *zc)
{
    for (int i = 0; i < zc->n; i++)
        cron_tz_free(zc->z[i].tz);
    zc->n = 0;
}

/* A job's "state": the beat's Redis hash, and its next fire from now,
 * computed here: right whether or not a beat runs at the moment. */
static json_t *job_state(redisReply *state, const char *expr, const char *tzname, int64_t exp_s,
                         struct zcache *zc)
{
    json_t *st = json_object();
    if (state && state->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < state->elements; i += 2) {
            const char *k = state->element[i]->str, *v = state->element[i + 1]->str;
            if (!k || !v)
                continue;
            if (strcmp(k, "last_fire_ms") == 0) {
                char buf[40];
                json_object_set_new(st, "last_fire",
                                    json_string(iso8601_ms(atoll(v), buf, sizeof buf)));
            } else if (strcmp(k, "last_slot") == 0 || strcmp(k, "next") == 0) {
                json_object_set_new(st, k, json_integer(atoll(v)));
            } else {
                json_object_set_new(st, k, json_string(v));
            }
        }
    }
    struct cron_expr e;
    struct cron_tz *tz = NULL;
    char *err = NULL;
    if (expr && tzname && cron_parse(&e, expr, &err) == 0 && (tz = zone(zc, tzname, &err))) {
        int64_t n = cron_next(&e, tz, now_ms() / 1000);
        char buf[64];
        json_object_set_new(st, "next_fire",
                            n >= 0 && (!exp_s || n <= exp_s)
                                ? json_string(cron_format(n, tz, buf, sizeof buf))
                                : json_null());
    } else {
        json_object_set_new(st, "error", json_string(err ? err : "cannot schedule"));
    }
    free(err);
    return st;
}

int server_cron_rows_state(struct srv_req *r, json_t *rows)
{
    size_t n = json_array_size(rows);
    if (n == 0)
        return 0;
    redisContext *rc = srv_redis(r);
    if (!rc)
        return -1; /* srv_redis answered 503 */
    char k[192];
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(rows, i), "id"));
        rds_key(k, sizeof k, srv_conf(), "cron:state:%s", id ? id : "");
        redisAppendCommand(rc, "HGETALL %s", k);
    }
    struct zcache zc = {.n = 0};
    bool broken = false;
    for (size_t i = 0; i < n; i++) {
        redisReply *st = NULL;
        if (!broken && redisGetReply(rc, (void **)&st) != REDIS_OK) {
            srv_redis_broken(); /* a Redis outage only hides the state */
            broken = true;
            st = NULL;
        }
        json_t *row = json_array_get(rows, i);
        const char *exp = json_string_value(json_object_get(row, "expireTime"));
        int64_t exp_ms = exp ? parse_time_str_ms(exp) : -1;
        json_object_set_new(row, "state",
                            job_state(st, json_string_value(json_object_get(row, "cronExpr")),
                                      json_string_value(json_object_get(row, "timezone")),
                                      exp_ms > 0 ? exp_ms / 1000 : 0, &zc));
        if (st)
            freeReplyObject(st);
    }
    zcache_free(&zc);
    return 0;
}

int server_cron_forget(struct srv_req *r, const char *id)
{
    redisContext *rc = srv_redis(r);
    if (!rc)
        return -1; /* answered 503: the row is gone, its state stays (harmless) */
    char k[192];
    rds_key(k, sizeof k, srv_conf(), "cron:state:%s", id);
    redisReply *rep = redisCommand(rc, "DEL %s", k);
    if (rep)
        freeReplyObject(rep);
    else
        srv_redis_broken();
    return 0;
}

/* GET/PATCH /api/v1/cron-jobs/_settings {"paused": bool}: all jobs at once. */
static void h_settings(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    if (strcmp(r->method, "PATCH") == 0 || strcmp(r->method, "PUT") == 0) {
        json_t *body = req_body_object(r, true);
        bool paused = false;
        if (!body)
            return;
        if (req_field_bool(r, body, "paused", true, &paused)) {
            json_decref(body);
            return;
        }
        json_decref(body);
        if (req_sql_exec(
                r, m,
                "INSERT INTO setting (k, v, updated_at) VALUES ('cron.paused', '%d', NOW(3)) "
                "ON DUPLICATE KEY UPDATE v = VALUES(v), updated_at = NOW(3)",
                paused ? 1 : 0) < 0 ||
            req_gen_bump(r, "setting", "cron.paused", "saved") != 0)
            return;
    } else if (strcmp(r->method, "GET") != 0) {
        req_err(r, 405, "EClientMethodNotAllowed", NULL, "%s not allowed here (GET, PATCH)",
                r->method);
        return;
    }
    struct sql_row1 s;
    int found = req_sql_row1(
        r, m, &s, "SELECT v, UNIX_TIMESTAMP(updated_at) FROM setting WHERE k = 'cron.paused'");
    if (found == -1)
        return;
    json_t *o = json_pack("{s:b, s:o}", "paused", found && s.row[0] && strcmp(s.row[0], "1") == 0,
                          "updated_at", iso_or_null(found ? s.row[1] : NULL));
    sql_row1_done(&s);
    req_ok(r, o);
}

/* POST /api/v1/cron/<id>: one run now, outside the schedule (no slot, so
 * neither the fired key nor overlap apply). */
static void h_run_now(struct srv_req *r, const char *id)
{
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *q = db_q(m, id);
    struct sql_row1 o;
    int found = req_sql_row1(r, m, &o,
                             "SELECT c.func_id, c.kwargs_json, f.timeout FROM cron_job c LEFT JOIN "
                             "func f ON f.id = c.func_id WHERE c.id = %s",
                             q);
    free(q);
    if (found == -1)
        return;
    if (!found) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "cron job %s not found", id);
        return;
    }
    MYSQL_ROW row = o.row;
    if (!row[2]) {
        req_err(r, 404, "ENotFound", json_pack("{s:s,s:s}", "id", id, "func_id", row[0]),
                "func %s of cron job %s not found (unpublished?)", row[0], id);
        sql_row1_done(&o);
        return;
    }
    json_t *kw = json_loads(row[1] ? row[1] : "{}", 0, NULL);
    if (!json_is_object(kw)) {
        json_decref(kw);
        kw = json_object();
    }
    struct task t;
    srv_task_init(&t, row[0], kw, false, atoi(row[2]));
    sql_row1_done(&o);
    t.origin = ORIGIN_CRON;
    snprintf(t.origin_id, sizeof t.origin_id, "%s", id);
    snprintf(t.queue, sizeof t.queue, "cron");
    srv_accept(r, &t, json_pack("{s:s, s:s}", "id", t.id, "cron_id", id), NULL, NULL);
    task_free(&t);
}

int server_cron_route(struct srv_req *r)
{
    if (strncmp(r->path, "/api/v1/cron/", 13) == 0) {
        if (r->nparams < 1 || !id_valid(r->params[0])) {
            req_err(r, 404, "ENotFound", NULL, "no such cron job");
            return 0;
        }
        h_run_now(r, r->params[0]);
        return 0;
    }
    /* what follows /api/v1/cron-jobs, without the slashes around it */
    char rest[256];
    const char *p = r->path + strlen("/api/v1/cron-jobs");
    while (*p == '/')
        p++;
    snprintf(rest, sizeof rest, "%s", p);
    for (size_t n = strlen(rest); n > 0 && rest[n - 1] == '/'; n--)
        rest[n - 1] = '\0';
    if (strcmp(rest, "_settings") == 0) {
        h_settings(r);
        return 0;
    }
    /* the rest of /api/v1/cron-jobs is DFF's, in server_resource.c */
    req_err(r, 404, "ENotFound", NULL, "no such cron job path: %s", r->path);
    return 0;
}

/* One more finding for the publish's error text: "; "-separated. */
static void pub_err(FILE *ef, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pub_err(FILE *ef, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ftell(ef))
        fputs("; ", ef);
    vfprintf(ef, fmt, ap);
    va_end(ap);
}

/* The one fixed (system-owned) job of func fid runs expr: created, or its
 * expression updated. 0, or -1 with the reason in ef. */
static int autorun_upsert(MYSQL *m, const char *fid, const char *expr, bool *changed, FILE *ef)
{
    char *qf = db_q(m, fid), *qe = db_q(m, expr), *qerr = NULL;
    MYSQL_RES *res =
        db_query(m, &qerr, "SELECT id, expr FROM cron_job WHERE func_id = %s AND fixed = 1", qf);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    int rc = 0;
    if (!res) {
        rc = -1;
    } else if (row) {
        if (strcmp(row[1], expr) != 0) {
            char *qid = db_q(m, row[0]);
            rc = db_exec(m, &qerr,
                         "UPDATE cron_job SET expr = %s, updated_at = NOW(3) WHERE id = %s", qe,
                         qid);
            free(qid);
            *changed = true;
        }
    } else {
        char id[ID_MAX];
        id_new(id, sizeof id, "cron-");
        char *qid = db_q(m, id), *qz = db_q(m, srv_conf()->timezone);
        rc = db_exec(m, &qerr,
                     "INSERT INTO cron_job (id, func_id, title, expr, timezone, kwargs_json, "
                     "enabled, overlap, fixed, created_at, updated_at) VALUES (%s, %s, '', %s, "
                     "%s, '{}', 1, 'skip', 1, NOW(3), NOW(3))",
                     qid, qf, qe, qz);
        free(qid);
        free(qz);
        *changed = true;
    }
    if (res)
        mysql_free_result(res);
    if (rc)
        pub_err(ef, "func %s: %s", fid, qerr ? qerr : "database error");
    free(qerr);
    free(qf);
    free(qe);
    return rc;
}

/* The fixed jobs of script_id's funcs that `keep` does not name go:
 * system-owned with no kwargs, they go with their autoRun (and so do the
 * {} jobs older versions made from fixed_cron_expr). */
static void autorun_prune(MYSQL *m, const char *script_id, json_t *keep, bool *changed, FILE *ef)
{
    char *like = NULL;
    if (asprintf(&like, "%s.%%", script_id) < 0)
        like = NULL;
    char *ql = db_q(m, like ? like : ""), *qerr = NULL;
    free(like);
    MYSQL_RES *res = db_query(
        m, &qerr, "SELECT id, func_id FROM cron_job WHERE fixed = 1 AND func_id LIKE %s", ql);
    if (!res)
        pub_err(ef, "finding the autoRun jobs that go: %s", qerr ? qerr : "database error");
    size_t sl = strlen(script_id);
    MYSQL_ROW row;
    while (res && (row = mysql_fetch_row(res))) {
        /* LIKE treats '_' as a wildcard: check the prefix exactly */
        if (json_object_get(keep, row[1]) || strncmp(row[1], script_id, sl) != 0 ||
            row[1][sl] != '.')
            continue;
        char *qid = db_q(m, row[0]);
        if (db_exec(m, NULL, "DELETE FROM cron_job WHERE id = %s", qid) == 0)
            *changed = true;
        free(qid);
    }
    if (res)
        mysql_free_result(res);
    free(qerr);
    free(ql);
}

/* After a publish: each func with integration='autoRun' gets (or keeps) one
 * job marked fixed, with its expression and no kwargs; a fixed job whose
 * func no longer declares one goes. fixed_cron_expr creates nothing: the
 * beat applies it to the func's configured jobs. Bad expressions are
 * reported, the other funcs still get theirs. */
int server_cron_on_publish(MYSQL *m, const char *script_id, json_t *funcs, char **err)
{
    char *errs = NULL;
    size_t errlen = 0;
    FILE *ef = open_memstream(&errs, &errlen);
    if (!ef) {
        if (err)
            *err = strdup("out of memory");
        return -1;
    }
    bool changed = false;
    json_t *keep = json_object(); /* func ids whose autoRun job stays */
    size_t i;
    json_t *f;
    json_array_foreach(funcs, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        /* fixed_cron_expr (DFF): overrides the expression of the jobs the
         * user configured for this func; the beat reads it from func at load
         * time, so nothing is created here, only the expression checked.
         * integration='autoRun' (auto_run_cron_expr) is what creates a job
         * with no configuration: one system-owned job (fixed = 1), {} kwargs. */
        const char *fixed = json_string_value(json_object_get(f, "fixed_cron_expr"));
        const char *expr = json_string_value(json_object_get(f, "auto_run_cron_expr"));
        char fid[300];
        snprintf(fid, sizeof fid, "%s.%s", script_id, name ? name : "");
        struct cron_expr e;
        char *perr = NULL;
        if (name && fixed && *fixed && cron_parse(&e, fixed, &perr))
            pub_err(ef, "func %s: fixed_cron_expr: %s", fid, perr ? perr : "bad expression");
        free(perr);
        perr = NULL;
        if (!name || !expr || !*expr)
            continue;
        if (cron_parse(&e, expr, &perr)) {
            pub_err(ef, "func %s: autoRun cron expression: %s", fid,
                    perr ? perr : "bad expression");
            free(perr);
            continue;
        }
        json_object_set_new(keep, fid, json_true());
        autorun_upsert(m, fid, expr, &changed, ef);
    }
    autorun_prune(m, script_id, keep, &changed, ef);
    json_decref(keep);
    long pos = ftell(ef);
    fclose(ef);
    if (changed)
        srv_gen_bump();
    if (pos > 0) {
        if (err)
            *err = errs;
        else
            free(errs);
        return -1;
    }
    free(errs);
    return 0;
}
