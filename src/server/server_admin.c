/* Admin endpoints: scripts (draft, publish), funcs, Sync/Async APIs, env
 * variables, access keys, task records, failover events. SQL on the
 * thread's own MariaDB connection; every write that changes what calls see
 * bumps <prefix>gen after its commit. */
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

MYSQL_RES *req_sql_query(struct srv_req *r, MYSQL *m, const char *fmt, ...)
{
    char *sql = NULL, *err = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&sql, fmt, ap);
    va_end(ap);
    if (n < 0) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        return NULL;
    }
    MYSQL_RES *res = db_query(m, &err, "%s", sql);
    free(sql);
    if (!res)
        req_db_err(r, m, err);
    return res;
}

long long req_sql_exec(struct srv_req *r, MYSQL *m, const char *fmt, ...)
{
    char *sql = NULL, *err = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = vasprintf(&sql, fmt, ap);
    va_end(ap);
    if (len < 0) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        return -1;
    }
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

/* Answers the list a query returns. */
static void answer_rows(struct srv_req *r, MYSQL_RES *res)
{
    json_t *a = db_rows_json(res);
    mysql_free_result(res);
    req_ok(r, a);
}

/* Answers the single row, or 404 "<what> <id> not found". */
static void answer_row(struct srv_req *r, MYSQL_RES *res, const char *what, const char *id)
{
    MYSQL_ROW row = mysql_fetch_row(res);
    if (!row) {
        mysql_free_result(res);
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "%s %s not found", what, id);
        return;
    }
    json_t *o = db_row_json(res, row);
    mysql_free_result(res);
    req_ok(r, o);
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

/* ---- scripts ----------------------------------------------------------------- */

#define SCRIPT_COLS                                                                                \
    "id, script_set_id, title, publish_version, published_at, created_at, updated_at"

void h_scripts_list(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    MYSQL_RES *res =
        m ? req_sql_query(r, m, "SELECT " SCRIPT_COLS " FROM script ORDER BY id") : NULL;
    if (res)
        answer_rows(r, res);
}

static void script_answer(struct srv_req *r, MYSQL *m, const char *id)
{
    char *q = db_q(m, id);
    MYSQL_RES *res = req_sql_query(
        r, m, "SELECT " SCRIPT_COLS ", code, code_draft FROM script WHERE id = %s", q);
    free(q);
    if (res)
        answer_row(r, res, "script", id);
}

static bool check_script_id(struct srv_req *r, const char *id)
{
    if (script_id_valid(id))
        return true;
    req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "id", id),
            "bad script id '%s': expected <script_set>__<name> of [A-Za-z0-9_]", id);
    return false;
}

void h_script_get(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    if (m)
        script_answer(r, m, r->params[0]);
}

void h_script_put(struct srv_req *r)
{
    const char *id = r->params[0];
    if (!check_script_id(r, id))
        return;
    json_t *body = req_body_object(r, true);
    if (!body)
        return;
    const char *code = NULL, *title = NULL;
    if (req_field_str(r, body, "code_draft", true, &code) ||
        req_field_str(r, body, "title", false, &title))
        goto out;
    MYSQL *m = srv_db(r);
    if (!m)
        goto out;
    const char *sep = strstr(id, "__");
    char *qset = db_qn(m, id, (size_t)(sep - id));
    char *qid = db_q(m, id), *qcode = db_q(m, code), *qtitle = db_q(m, title ? title : "");
    if (req_sql_exec(
            r, m,
            "INSERT INTO script_set (id) VALUES (%s) ON DUPLICATE KEY UPDATE updated_at = NOW(3)",
            qset) >= 0 &&
        req_sql_exec(
            r, m,
            "INSERT INTO script (id, script_set_id, title, code_draft) VALUES (%s, %s, %s, %s) "
            "ON DUPLICATE KEY UPDATE code_draft = VALUES(code_draft), title = %s, updated_at = "
            "NOW(3)",
            qid, qset, qtitle, qcode, title ? "VALUES(title)" : "title") >= 0)
        script_answer(r, m, id);
    free(qset);
    free(qid);
    free(qcode);
    free(qtitle);
out:
    json_decref(body);
}

void h_script_delete(struct srv_req *r)
{
    const char *id = r->params[0];
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *q = db_q(m, id);
    long long n = -1;
    if (req_sql_exec(r, m, "START TRANSACTION") >= 0 &&
        req_sql_exec(r, m, "DELETE FROM func WHERE script_id = %s", q) >= 0 &&
        (n = req_sql_exec(r, m, "DELETE FROM script WHERE id = %s", q)) >= 0 &&
        req_sql_exec(r, m, "COMMIT") >= 0) {
        if (n == 0) {
            req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "script %s not found", id);
        } else {
            if (req_gen_bump(r, "script", id, "deleted") == 0)
                req_ok(r, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
        }
    } else {
        rollback(m);
    }
    free(q);
}

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
    MYSQL_RES *res = req_sql_query(r, m, "SELECT code_draft FROM script WHERE id = %s", q);
    free(q);
    if (!res)
        return;
    MYSQL_ROW row = mysql_fetch_row(res);
    if (!row) {
        mysql_free_result(res);
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "script %s not found", id);
        return;
    }
    struct publish_ctx *p = calloc(1, sizeof *p);
    if (p)
        p->code = strdup(row[0] ? row[0] : "");
    mysql_free_result(res);
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

void h_funcs_list(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    const char *script = req_query(r, "script");
    char *q = script ? db_q(m, script) : NULL;
    char where[512] = "";
    if (q)
        snprintf(where, sizeof where, "WHERE script_id = %s", q);
    free(q);
    MYSQL_RES *res = req_sql_query(
        r, m,
        "SELECT id, script_id, name, title, timeout, cache_result, fixed_cron_expr, args_json, "
        "extra_json, created_at FROM func %s ORDER BY id",
        where);
    if (res)
        answer_rows(r, res);
}

/* ---- Sync / Async APIs ------------------------------------------------------- */

static bool is_sync_path(struct srv_req *r)
{
    return strstr(r->path, "/sync-apis") != NULL;
}

#define API_COLS "id, func_id, title, kwargs_json, need_key, enabled, timeout, created_at"

static void api_answer(struct srv_req *r, MYSQL *m, const char *table, const char *id)
{
    char *q = db_q(m, id);
    MYSQL_RES *res = req_sql_query(r, m, "SELECT " API_COLS " FROM %s WHERE id = %s", table, q);
    free(q);
    if (res)
        answer_row(r, res, is_sync_path(r) ? "sync API" : "async API", id);
}

void h_apis_list(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    MYSQL_RES *res = m ? req_sql_query(r, m, "SELECT " API_COLS " FROM %s ORDER BY created_at, id",
                                       is_sync_path(r) ? "sync_api" : "async_api")
                       : NULL;
    if (res)
        answer_rows(r, res);
}

/* Validated fields of a create/patch body; absent ones stay unset. */
struct api_fields {
    const char *func_id, *title;
    json_t *kwargs;
    bool need_key, enabled, has_need_key, has_enabled, has_timeout;
    int64_t timeout; /* 0 = null */
};

static int api_fields_parse(struct srv_req *r, json_t *body, bool create, struct api_fields *f)
{
    memset(f, 0, sizeof *f);
    if (req_field_str(r, body, "func_id", create, &f->func_id) ||
        req_field_str(r, body, "title", false, &f->title) ||
        req_field_obj(r, body, "kwargs", false, &f->kwargs))
        return -1;
    if (f->func_id && !func_id_split(f->func_id, NULL, 0, NULL, 0, NULL, 0)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "func_id"),
                "field 'func_id' must be <script_set>__<script>.<func>, got '%s'", f->func_id);
        return -1;
    }
    f->has_need_key =
        json_object_get(body, "need_key") && !json_is_null(json_object_get(body, "need_key"));
    f->has_enabled =
        json_object_get(body, "enabled") && !json_is_null(json_object_get(body, "enabled"));
    f->has_timeout = json_object_get(body, "timeout") != NULL;
    if (req_field_bool(r, body, "need_key", false, &f->need_key) ||
        req_field_bool(r, body, "enabled", false, &f->enabled) ||
        req_field_int(r, body, "timeout", false, 1, 3600, &f->timeout))
        return -1;
    return 0;
}

void h_api_create(struct srv_req *r)
{
    bool sync = is_sync_path(r);
    json_t *body = req_body_object(r, true);
    if (!body)
        return;
    struct api_fields f;
    if (api_fields_parse(r, body, true, &f))
        goto out;
    MYSQL *m = srv_db(r);
    if (!m)
        goto out;
    char id[ID_MAX], timeout[32] = "NULL";
    id_new(id, sizeof id, sync ? "sapi-" : "aapi-");
    if (f.timeout)
        snprintf(timeout, sizeof timeout, "%lld", (long long)f.timeout);
    char *kw = f.kwargs ? json_dumps(f.kwargs, JSON_COMPACT) : strdup("{}");
    char *qid = db_q(m, id), *qf = db_q(m, f.func_id), *qt = db_q(m, f.title ? f.title : ""),
         *qk = db_q(m, kw);
    const char *table = sync ? "sync_api" : "async_api";
    if (req_sql_exec(r, m,
                     "INSERT INTO %s (id, func_id, title, kwargs_json, need_key, enabled, timeout) "
                     "VALUES (%s, %s, %s, %s, %d, %d, %s)",
                     table, qid, qf, qt, qk, f.need_key ? 1 : 0,
                     (!f.has_enabled || f.enabled) ? 1 : 0, timeout) >= 0) {
        if (req_gen_bump(r, table, id, "created") == 0)
            api_answer(r, m, table, id);
    }
    free(kw);
    free(qid);
    free(qf);
    free(qt);
    free(qk);
out:
    json_decref(body);
}

void h_api_get(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    if (m)
        api_answer(r, m, is_sync_path(r) ? "sync_api" : "async_api", r->params[0]);
}

void h_api_patch(struct srv_req *r)
{
    const char *table = is_sync_path(r) ? "sync_api" : "async_api";
    const char *id = r->params[0];
    json_t *body = req_body_object(r, true);
    if (!body)
        return;
    struct api_fields f;
    MYSQL *m;
    if (api_fields_parse(r, body, false, &f) || !(m = srv_db(r)))
        goto out;
    char *set = NULL;
    size_t setlen = 0;
    FILE *sf = open_memstream(&set, &setlen);
    const char *sep = "";
    char *q;
    if (f.func_id) {
        q = db_q(m, f.func_id);
        fprintf(sf, "%sfunc_id = %s", sep, q), sep = ", ";
        free(q);
    }
    if (f.title) {
        q = db_q(m, f.title);
        fprintf(sf, "%stitle = %s", sep, q), sep = ", ";
        free(q);
    }
    if (f.kwargs) {
        char *kw = json_dumps(f.kwargs, JSON_COMPACT);
        q = db_q(m, kw);
        fprintf(sf, "%skwargs_json = %s", sep, q), sep = ", ";
        free(q);
        free(kw);
    }
    if (f.has_need_key)
        fprintf(sf, "%sneed_key = %d", sep, f.need_key ? 1 : 0), sep = ", ";
    if (f.has_enabled)
        fprintf(sf, "%senabled = %d", sep, f.enabled ? 1 : 0), sep = ", ";
    if (f.has_timeout) {
        if (f.timeout)
            fprintf(sf, "%stimeout = %lld", sep, (long long)f.timeout);
        else
            fprintf(sf, "%stimeout = NULL", sep);
        sep = ", ";
    }
    fclose(sf);
    q = db_q(m, id);
    long long n = 0;
    if (*sep)
        n = req_sql_exec(r, m, "UPDATE %s SET %s WHERE id = %s", table, set, q);
    free(set);
    free(q);
    if (n < 0)
        goto out;
    if (*sep && req_gen_bump(r, table, id, "modified") != 0)
        goto out;
    api_answer(r, m, table, id);
out:
    json_decref(body);
}

void h_api_delete(struct srv_req *r)
{
    const char *id = r->params[0];
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *q = db_q(m, id);
    long long n = req_sql_exec(r, m, "DELETE FROM %s WHERE id = %s",
                               is_sync_path(r) ? "sync_api" : "async_api", q);
    free(q);
    if (n == 0)
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "%s %s not found",
                is_sync_path(r) ? "sync API" : "async API", id);
    else if (n > 0) {
        if (req_gen_bump(r, "API", id, "deleted") == 0)
            req_ok(r, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
    }
}

/* ---- env variables ------------------------------------------------------------ */

#define ENV_COLS "id, value, created_at, updated_at"

void h_env_list(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    MYSQL_RES *res =
        m ? req_sql_query(r, m, "SELECT " ENV_COLS " FROM env_variable ORDER BY id") : NULL;
    if (res)
        answer_rows(r, res);
}

static void env_answer(struct srv_req *r, MYSQL *m, const char *id)
{
    char *q = db_q(m, id);
    MYSQL_RES *res = req_sql_query(r, m, "SELECT " ENV_COLS " FROM env_variable WHERE id = %s", q);
    free(q);
    if (res)
        answer_row(r, res, "env variable", id);
}

void h_env_get(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    if (m)
        env_answer(r, m, r->params[0]);
}

void h_env_put(struct srv_req *r)
{
    const char *id = r->params[0];
    if (!id_valid(id)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "id", id),
                "bad env variable name '%s': [A-Za-z0-9_.-], up to 63 characters", id);
        return;
    }
    json_t *body = req_body_object(r, true);
    if (!body)
        return;
    const char *value = NULL;
    MYSQL *m;
    if (req_field_str(r, body, "value", true, &value) || !(m = srv_db(r)))
        goto out;
    char *qid = db_q(m, id), *qv = db_q(m, value);
    if (req_sql_exec(r, m,
                     "INSERT INTO env_variable (id, value) VALUES (%s, %s) "
                     "ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = NOW(3)",
                     qid, qv) >= 0) {
        if (req_gen_bump(r, "env variable", id, "saved") == 0)
            env_answer(r, m, id);
    }
    free(qid);
    free(qv);
out:
    json_decref(body);
}

void h_env_delete(struct srv_req *r)
{
    const char *id = r->params[0];
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *q = db_q(m, id);
    long long n = req_sql_exec(r, m, "DELETE FROM env_variable WHERE id = %s", q);
    free(q);
    if (n == 0)
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "env variable %s not found", id);
    else if (n > 0) {
        if (req_gen_bump(r, "env variable", id, "deleted") == 0)
            req_ok(r, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
    }
}

/* ---- access keys ---------------------------------------------------------------- */

void h_keys_list(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    MYSQL_RES *res =
        m ? req_sql_query(
                r, m,
                "SELECT id, name, created_at, revoked_at FROM access_key ORDER BY created_at, id")
          : NULL;
    if (res)
        answer_rows(r, res);
}

void h_key_create(struct srv_req *r)
{
    json_t *body = req_body_object(r, false);
    if (!body)
        return;
    const char *name = NULL;
    MYSQL *m;
    if (req_field_str(r, body, "name", false, &name) || !(m = srv_db(r)))
        goto out;
    char id[ID_MAX], secret[64], hex[65];
    id_new(id, sizeof id, "ak-");
    secret_new(secret, sizeof secret);
    sha256_hex(secret, strlen(secret), hex);
    char *qid = db_q(m, id), *qn = db_q(m, name ? name : ""), *qh = db_q(m, hex);
    if (req_sql_exec(r, m, "INSERT INTO access_key (id, name, secret_sha256) VALUES (%s, %s, %s)",
                     qid, qn, qh) >= 0) {
        if (req_gen_bump(r, "access key", id, "created") == 0)
            req_ok(r, json_pack("{s:s,s:s,s:s}", "id", id, "name", name ? name : "", "secret",
                                secret));
    }
    free(qid);
    free(qn);
    free(qh);
out:
    json_decref(body);
}

void h_key_delete(struct srv_req *r)
{
    const char *id = r->params[0];
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *q = db_q(m, id);
    MYSQL_RES *res = req_sql_query(r, m, "SELECT revoked_at FROM access_key WHERE id = %s", q);
    if (!res)
        goto out;
    MYSQL_ROW row = mysql_fetch_row(res);
    bool found = row != NULL, revoked = row && row[0];
    mysql_free_result(res);
    if (!found) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "access key %s not found", id);
        goto out;
    }
    if (!revoked &&
        req_sql_exec(
            r, m, "UPDATE access_key SET revoked_at = NOW(3) WHERE id = %s AND revoked_at IS NULL",
            q) < 0)
        goto out;
    if (req_gen_bump(r, "access key", id, "revoked") == 0)
        req_ok(r, json_pack("{s:s,s:b}", "id", id, "revoked", 1));
out:
    free(q);
}

/* ---- task records / failover events ------------------------------------------- */

static int add_time_filter(struct srv_req *r, FILE *w, const char **sep, const char *arg,
                           const char *op)
{
    const char *s = req_query(r, arg);
    if (!s || !*s)
        return 0;
    int64_t ms = parse_time_str_ms(s);
    if (ms < 0) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", arg),
                "query argument '%s' must be an ISO-8601 time or unix seconds, got '%s'", arg, s);
        return -1;
    }
    char dt[40];
    fprintf(w, "%sended_at %s '%s'", *sep, op, sql_datetime_ms(ms, dt, sizeof dt));
    *sep = " AND ";
    return 0;
}

static void paged(struct srv_req *r, MYSQL *m, const char *cols, const char *table,
                  const char *where, const char *order, long long page, long long size)
{
    MYSQL_RES *res = req_sql_query(r, m, "SELECT COUNT(*) FROM %s %s", table, where);
    if (!res)
        return;
    MYSQL_ROW row = mysql_fetch_row(res);
    long long total = row && row[0] ? strtoll(row[0], NULL, 10) : 0;
    mysql_free_result(res);
    res = req_sql_query(r, m, "SELECT %s FROM %s %s ORDER BY %s LIMIT %lld, %lld", cols, table,
                        where, order, (page - 1) * size, size);
    if (!res)
        return;
    json_t *items = db_rows_json(res);
    mysql_free_result(res);
    req_ok(r, json_pack("{s:o,s:I,s:I,s:I}", "items", items, "page", (json_int_t)page, "pageSize",
                        (json_int_t)size, "total", (json_int_t)total));
}

void h_task_records(struct srv_req *r)
{
    long long page, size;
    if (req_query_int(r, "page", 1, 1000000, 1, &page) ||
        req_query_int(r, "pageSize", 1, 1000, 50, &size))
        return;
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *where = NULL;
    size_t wl = 0;
    FILE *w = open_memstream(&where, &wl);
    const char *sep = "WHERE ";
    static const struct {
        const char *arg, *col;
    } eq[] = {{"func", "func_id"},
              {"status", "status"},
              {"origin", "origin"},
              {"origin_id", "origin_id"}};
    for (size_t i = 0; i < sizeof eq / sizeof eq[0]; i++) {
        const char *v = req_query(r, eq[i].arg);
        if (v && *v) {
            char *q = db_q(m, v);
            fprintf(w, "%s%s = %s", sep, eq[i].col, q);
            sep = " AND ";
            free(q);
        }
    }
    int bad =
        add_time_filter(r, w, &sep, "since", ">=") || add_time_filter(r, w, &sep, "until", "<");
    fclose(w);
    if (!bad)
        paged(r, m,
              "seq, id, func_id, origin, origin_id, queue, status, reason, message, traceback, "
              "output, node, "
              "epoch, nominal_at, enqueued_at, started_at, ended_at, cost_ms, kwargs_json, "
              "return_value_json, call_chain_json, root_task_id, trigger_at",
              "task_record", where, "seq DESC", page, size);
    free(where);
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
