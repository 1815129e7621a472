/* Admin helpers shared by the management handlers (SQL that answers its own
 * errors, rows as JSON, the generation bump), the publish of a script (DFF's
 * scripts/:id/do/publish) and the failover events. The rest of DFF's
 * management API is server_resource.c. SQL on the thread's own MariaDB
 * connection; every write that changes what calls see bumps <prefix>gen
 * after its commit. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "db.h"
#include "ids.h"
#include "log.h"
#include "sha256.h"
#include "server_int.h"

/* ---- rows as JSON ---------------------------------------------------------- */

json_t *db_row_json(MYSQL_RES *res, MYSQL_ROW row)
{
    unsigned n = mysql_num_fields(res);
    MYSQL_FIELD *fs = mysql_fetch_fields(res);
    json_t *o = json_object();
    for (unsigned i = 0; i < n; i++) {
        const char *name = fs[i].name;
        const char *v = row[i];
        json_t *j;
        size_t nl = strlen(name);
        char key[128];
        snprintf(key, sizeof key, "%s", name);
        if (!v) {
            j = json_null();
            if (nl > 5 && strcmp(name + nl - 5, "_json") == 0)
                key[nl - 5] = '\0';
        } else if (nl > 5 && strcmp(name + nl - 5, "_json") == 0) {
            key[nl - 5] = '\0';
            j = json_loads(v, JSON_DECODE_ANY, NULL);
            if (!j)
                j = json_string(v);
        } else {
            switch (fs[i].type) {
            case MYSQL_TYPE_TINY:
                j = fs[i].length == 1 ? json_boolean(atoi(v) != 0)
                                      : json_integer(strtoll(v, NULL, 10));
                break;
            case MYSQL_TYPE_SHORT:
            case MYSQL_TYPE_LONG:
            case MYSQL_TYPE_INT24:
            case MYSQL_TYPE_LONGLONG:
                j = json_integer(strtoll(v, NULL, 10));
                break;
            case MYSQL_TYPE_DECIMAL:
            case MYSQL_TYPE_NEWDECIMAL:
            case MYSQL_TYPE_FLOAT:
            case MYSQL_TYPE_DOUBLE:
                j = json_real(strtod(v, NULL));
                break;
            case MYSQL_TYPE_DATETIME:
            case MYSQL_TYPE_TIMESTAMP: {
                char iso[40];
                snprintf(iso, sizeof iso, "%.10sT%sZ", v, strlen(v) > 11 ? v + 11 : "00:00:00");
                j = json_string(iso);
                break;
            }
            default:
                j = json_string(v);
            }
        }
        json_object_set_new(o, key, j ? j : json_null());
    }
    return o;
}

json_t *db_rows_json(MYSQL_RES *res)
{
    json_t *a = json_array();
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)))
        json_array_append_new(a, db_row_json(res, row));
    return a;
}

/* ---- small SQL helpers that answer their own errors ------------------------- */

/* The statement text, or NULL after answering 500. */
static char *req_sql_text(struct srv_req *r, const char *fmt, va_list ap)
{
    char *sql = NULL;
    if (vasprintf(&sql, fmt, ap) < 0) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory building an SQL statement");
        return NULL;
    }
    return sql;
}

static MYSQL_RES *req_sql_vquery(struct srv_req *r, MYSQL *m, const char *fmt, va_list ap)
{
    char *err = NULL, *sql = req_sql_text(r, fmt, ap);
    if (sql == NULL)
        return NULL;
    MYSQL_RES *res = db_query(m, &err, "%s", sql);
    free(sql);
    if (!res)
        req_db_err(r, m, err);
    return res;
}

MYSQL_RES *req_sql_query(struct srv_req *r, MYSQL *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    MYSQL_RES *res = req_sql_vquery(r, m, fmt, ap);
    va_end(ap);
    return res;
}

int req_sql_row1(struct srv_req *r, MYSQL *m, struct sql_row1 *o, const char *fmt, ...)
{
    struct sql_row1 mine;
    if (o == NULL)
        o = &mine;
    va_list ap;
    va_start(ap, fmt);
    o->res = req_sql_vquery(r, m, fmt, ap);
    va_end(ap);
    o->row = o->res ? mysql_fetch_row(o->res) : NULL;
    int found = o->res == NULL ? -1 : o->row != NULL;
    if (o == &mine || found != 1)
        sql_row1_done(o);
    return found;
}

void sql_row1_done(struct sql_row1 *o)
{
    if (o->res)
        mysql_free_result(o->res);
    o->res = NULL;
    o->row = NULL;
}

long long req_sql_exec(struct srv_req *r, MYSQL *m, const char *fmt, ...)
{
    char *err = NULL;
    va_list ap;
    va_start(ap, fmt);
    char *sql = req_sql_text(r, fmt, ap);
    va_end(ap);
    if (sql == NULL)
        return -1;
    /* not db_exec(): it drains result sets, which resets affected_rows */
    int rc = mysql_real_query(m, sql, (unsigned long)strlen(sql));
    free(sql);
    if (rc != 0) {
        if (asprintf(&err, "%s", mysql_error(m)) < 0)
            err = NULL;
        req_db_err(r, m, err);
        return -1;
    }
    long long n = (long long)mysql_affected_rows(m);
    MYSQL_RES *res = mysql_store_result(m);
    if (res)
        mysql_free_result(res);
    return n < 0 ? 0 : n;
}

int req_gen_bump(struct srv_req *r, const char *label, const char *id, const char *done)
{
    if (srv_gen_bump() == 0)
        return 0;
    req_err(r, 503, "EBackend", json_pack("{s:s,s:s,s:s}", "saved", done, "what", label, "id", id),
            "%s %s was %s but servers were not told (Redis refused the generation bump); they "
            "reload within %d s",
            label, id, done, SRV_RELOAD_MS / 1000);
    return -1;
}

static void rollback(MYSQL *m)
{
    db_exec(m, NULL, "ROLLBACK");
}

int req_query_int(struct srv_req *r, const char *name, long long lo, long long hi, long long dflt,
                  long long *out)
{
    const char *s = req_query(r, name);
    *out = dflt;
    if (!s || !*s)
        return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < lo || v > hi) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", name),
                "query argument '%s' must be an integer between %lld and %lld, got '%s'", name, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- publish (DFF's scripts/:id/do/publish) ------------------------------------- */

struct publish_ctx {
    char *code;
    char id[160];
};

__attribute__((weak)) int server_cron_on_publish(MYSQL *m, const char *script_id, json_t *funcs,
                                                 char **err)
{
    (void)m;
    (void)script_id;
    (void)funcs;
    (void)err;
    return 0;
}

static bool func_name_valid(const char *s)
{
    if (!s || !*s || strlen(s) > 120)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

static int insert_func(struct srv_req *r, MYSQL *m, const char *script_id, json_t *f)
{
    const char *name = json_string_value(json_object_get(f, "name"));
    if (!func_name_valid(name)) {
        req_err(r, 500, "EServerInternal", NULL, "worker's inspect answer has a bad func name");
        return -1;
    }
    char fid[300];
    snprintf(fid, sizeof fid, "%s.%s", script_id, name);
    json_t *args = json_object_get(f, "args");
    json_t *extra = json_object_get(f, "extra");
    char *sargs = json_is_array(args) ? json_dumps(args, JSON_COMPACT) : strdup("[]");
    char *sextra = json_is_object(extra) ? json_dumps(extra, JSON_COMPACT) : strdup("{}");
    const char *title = json_string_value(json_object_get(f, "title"));
    const char *cron = json_string_value(json_object_get(f, "fixed_cron_expr"));
    json_int_t timeout = json_integer_value(json_object_get(f, "timeout"));
    json_int_t cache = json_integer_value(json_object_get(f, "cache_result"));
    if (timeout <= 0 || timeout > 3600)
        timeout = S.conf.func_timeout;
    char *qf = db_q(m, fid), *qs = db_q(m, script_id), *qn = db_q(m, name),
         *qt = db_q(m, title ? title : ""), *qc = db_q(m, cron), *qa = db_q(m, sargs),
         *qe = db_q(m, sextra);
    long long n = req_sql_exec(
        r, m,
        "INSERT INTO func (id, script_id, name, title, timeout, cache_result, fixed_cron_expr, "
        "args_json, extra_json) VALUES (%s, %s, %s, %s, %lld, %lld, %s, %s, %s)",
        qf, qs, qn, qt, (long long)timeout, (long long)(cache > 0 ? cache : 0), qc, qa, qe);
    free(qf);
    free(qs);
    free(qn);
    free(qt);
    free(qc);
    free(qa);
    free(qe);
    free(sargs);
    free(sextra);
    return n < 0 ? -1 : 0;
}

static void publish_done(struct srv_req *r, json_t *outcome, void *ud)
{
    struct publish_ctx *p = ud;
    const char *status = json_string_value(json_object_get(outcome, "status"));
    const char *reason = json_string_value(json_object_get(outcome, "reason"));
    if (!status || strcmp(status, "success") != 0) {
        if (reason && strcmp(reason, "EScriptSyntaxError") == 0) {
            json_t *line = json_object_get(json_object_get(outcome, "data"), "line");
            if (!line)
                line = json_object_get(outcome, "line");
            const char *msg = json_string_value(json_object_get(outcome, "message"));
            req_err(r, 400, "EScriptSyntaxError",
                    json_pack("{s:s,s:O}", "script_id", p->id, "line", line ? line : json_null()),
                    "%s", msg ? msg : "syntax error");
        } else {
            srv_answer_outcome(r, outcome, false);
        }
        goto out;
    }
    json_t *funcs = json_object_get(json_object_get(outcome, "result"), "funcs");
    if (!json_is_array(funcs)) {
        req_err(r, 500, "EServerInternal", NULL, "worker's inspect answer has no funcs list");
        goto out;
    }
    MYSQL *m = srv_db(r);
    if (!m)
        goto out;
    char *qid = db_q(m, p->id), *qcode = db_q(m, p->code);
    long long n = -1;
    bool ok =
        req_sql_exec(r, m, "START TRANSACTION") >= 0 &&
        (n = req_sql_exec(r, m,
                          "UPDATE script SET code = %s, publish_version = publish_version + 1, "
                          "published_at = NOW(3), updated_at = NOW(3) WHERE id = %s",
                          qcode, qid)) >= 0;
    if (ok && n == 0) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", p->id),
                "script %s was deleted while publishing", p->id);
        ok = false;
    }
    ok = ok && req_sql_exec(r, m, "DELETE FROM func WHERE script_id = %s", qid) >= 0;
    size_t i;
    json_t *f;
    json_array_foreach(funcs, i, f)
    {
        if (!ok)
            break;
        ok = insert_func(r, m, p->id, f) == 0;
    }
    ok = ok && req_sql_exec(r, m, "COMMIT") >= 0;
    if (!ok) {
        rollback(m);
        free(qid);
        free(qcode);
        goto out;
    }
    long long ver = 0;
    char *err = NULL;
    MYSQL_RES *res = db_query(m, &err, "SELECT publish_version FROM script WHERE id = %s", qid);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (row && row[0])
        ver = strtoll(row[0], NULL, 10);
    if (res)
        mysql_free_result(res);
    free(err);
    free(qid);
    free(qcode);
    /* on failure this answers 503; the fixed cron jobs are still synced */
    bool announced = req_gen_bump(r, "script", p->id, "published") == 0;
    err = NULL;
    json_t *data =
        json_pack("{s:s,s:I,s:O}", "id", p->id, "publish_version", (json_int_t)ver, "funcs", funcs);
    if (server_cron_on_publish(m, p->id, funcs, &err) != 0) {
        log_warnx("publish %s: fixed cron jobs: %s", p->id, err ? err : "?");
        json_object_set_new(data, "cron_error", json_string(err ? err : "failed"));
    }
    free(err);
    if (announced)
        req_ok(r, data);
    else
        json_decref(data);
out:
    free(p->code);
    free(p);
}

void h_script_publish(struct srv_req *r)
{
    const char *id = r->params[0];
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *q = db_q(m, id);
    struct sql_row1 o;
    int found = req_sql_row1(r, m, &o, "SELECT code_draft FROM script WHERE id = %s", q);
    free(q);
    if (found == -1)
        return;
    if (!found) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "script %s not found", id);
        return;
    }
    struct publish_ctx *p = calloc(1, sizeof *p);
    if (p)
        p->code = strdup(o.row[0] ? o.row[0] : "");
    sql_row1_done(&o);
    if (p == NULL || p->code == NULL) {
        free(p);
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        return;
    }
    snprintf(p->id, sizeof p->id, "%s", id);
    struct task t;
    srv_task_init(&t, "__sys.inspect", json_pack("{s:s,s:s}", "code", p->code, "script_id", id),
                  true, S.conf.func_timeout);
    t.origin = ORIGIN_SYSTEM;
    snprintf(t.origin_id, sizeof t.origin_id, "%s", "publish");
    if (srv_call(r, &t, publish_done, p) != 0) {
        free(p->code);
        free(p);
    }
    task_free(&t);
}

/* ---- failover events ------------------------------------------------------------ */

static void paged(struct srv_req *r, MYSQL *m, const char *cols, const char *table,
                  const char *where, const char *order, long long page, long long size)
{
    struct sql_row1 cnt;
    int counted = req_sql_row1(r, m, &cnt, "SELECT COUNT(*) FROM %s %s", table, where);
    if (counted == -1)
        return;
    long long total = counted && cnt.row[0] ? strtoll(cnt.row[0], NULL, 10) : 0;
    sql_row1_done(&cnt);
    MYSQL_RES *res = req_sql_query(r, m, "SELECT %s FROM %s %s ORDER BY %s LIMIT %lld, %lld", cols,
                                   table, where, order, (page - 1) * size, size);
    if (!res)
        return;
    json_t *items = db_rows_json(res);
    mysql_free_result(res);
    req_ok(r, json_pack("{s:o,s:I,s:I,s:I}", "items", items, "page", (json_int_t)page, "pageSize",
                        (json_int_t)size, "total", (json_int_t)total));
}

void h_failover_events(struct srv_req *r)
{
    long long page, size;
    if (req_query_int(r, "page", 1, 1000000, 1, &page) ||
        req_query_int(r, "pageSize", 1, 1000, 50, &size))
        return;
    MYSQL *m = srv_db(r);
    if (m)
        paged(r, m, "id, node, from_state, to_state, cause, epoch, at", "failover_event", "",
              "id DESC", page, size);
}
