/* Connectors (DFF.CONN) in DataFlux Func's shapes, and draft runs (DFF's
 * debugger). Self-contained so each can become a row of the management
 * table engine later.
 *
 *   GET  /api/v1/connectors/do/list              [{id,title,type,configJSON,description,...}]
 *   POST /api/v1/connectors/do/add               {data:{id,title,type,configJSON,description},
 *                                                 skipTest}
 *   POST /api/v1/connectors/:id/do/modify        {data:{title,description,configJSON}, skipTest}
 *   GET  /api/v1/connectors/:id/do/delete        (POST too)
 *   GET  /api/v1/connectors/:id/do/test          connects through a worker: {ok,message}
 *   POST /api/v1/func-draft/:funcId              {kwargs}              (DFF's path)
 *   POST /api/v1/scripts/:id/do/debug            {funcName, kwargs}
 *
 * Secret fields of configJSON (DFF's: password, secretKey, guanceAPIKey) are
 * sealed with tandem.conf secret.key before they are stored and never
 * answered. The test runs on a worker (__sys.connector_test): the server
 * has no Python and no client libraries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "secret.h"
#include "server_int.h"

static const char *const SECRET_FIELDS[] = {"password", "secretKey", "guanceAPIKey"};
#define NSECRET (sizeof SECRET_FIELDS / sizeof SECRET_FIELDS[0])

/* The types the worker has helpers for (src/python/tandem_conn.py HELPERS),
 * and DFF's others, refused by name. */
static const char *const SUPPORTED[] = {"mysql", "mariadb",   "postgresql",
                                        "redis", "memcached", "mqtt"};
static const char *const DFF_OTHERS[] = {"guance",   "df_dataway",    "df_datakit", "dff_sidecar",
                                         "influxdb", "clickhouse",    "oracle",     "sqlserver",
                                         "mongodb",  "elasticsearch", "nsq",        "kafka"};

#define CONNECTOR_TEST_TIMEOUT 15 /* s, DFF's _CONNECTOR_CHECK_TASK_TIMEOUT */
#define DEBUG_TIMEOUT 65          /* s: the worker's draft fork stops at 60 (DFF's debugger) */

static bool in_list(const char *s, const char *const *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, l[i]) == 0)
            return true;
    return false;
}

static bool type_ok(struct srv_req *r, const char *type)
{
    if (in_list(type, SUPPORTED, sizeof SUPPORTED / sizeof *SUPPORTED))
        return true;
    bool dff = in_list(type, DFF_OTHERS, sizeof DFF_OTHERS / sizeof *DFF_OTHERS);
    req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "type", type),
            "connector type `%s` is not supported by Tandem (%s; supported: mysql, mariadb, "
            "postgresql, redis, memcached, mqtt)",
            type, dff ? "a DataFlux Func connector type" : "not a connector type");
    return false;
}

/* DFF's id rule: ^[a-zA-Z_][a-zA-Z0-9_]*$, at most 64 characters. */
static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64 || (id[0] >= '0' && id[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Seal every plain secret field of cfg in place. -1 after answering. */
static int seal_secrets(struct srv_req *r, json_t *cfg)
{
    for (size_t i = 0; i < NSECRET; i++) {
        json_t *v = json_object_get(cfg, SECRET_FIELDS[i]);
        if (v == NULL || json_is_null(v))
            continue;
        if (!json_is_string(v)) {
            req_err(r, 400, "EClientBadRequest", NULL, "configJSON.%s must be a string",
                    SECRET_FIELDS[i]);
            return -1;
        }
        if (secret_is_sealed(json_string_value(v)) || json_string_length(v) == 0)
            continue;
        char *out = NULL, *err = NULL;
        if (secret_seal(srv_conf()->secret_key, json_string_value(v), &out, &err) == -1) {
            req_err(r, 500, "EServerInternal", NULL,
                    "cannot seal configJSON.%s: %s (set secret.key in tandem.conf)",
                    SECRET_FIELDS[i], err ? err : "?");
            free(err);
            return -1;
        }
        json_object_set_new(cfg, SECRET_FIELDS[i], json_string(out));
        free(out);
    }
    return 0;
}

/* ---- import and export (server_resource.c's script-set export) ---------- */

int connector_import_config(struct srv_req *r, const char *id, json_t *cfg, json_t *warnings)
{
    for (size_t i = 0; i < NSECRET; i++) {
        const char *f = SECRET_FIELDS[i];
        char cipher[32];
        snprintf(cipher, sizeof cipher, "%sCipher", f);
        /* DFF's own export: "<field>Cipher" emptied (it never exports a
         * secret); its ciphertext, when present, is under DFF's key. */
        if (json_object_get(cfg, cipher)) {
            json_object_del(cfg, cipher);
            if (!json_object_get(cfg, f))
                json_array_append_new(
                    warnings, json_sprintf("connector %s: configJSON.%s is not in the export "
                                           "(DataFlux Func leaves secrets out); set it with "
                                           "/api/v1/connectors/%s/do/modify",
                                           id, f, id));
        }
        const char *v = json_string_value(json_object_get(cfg, f));
        if (!v || !secret_is_sealed(v))
            continue;
        /* a Tandem export made with withSecrets: only this stack's key opens it */
        char *plain = NULL, *err = NULL;
        if (secret_open(srv_conf()->secret_key, v, &plain, &err) != 0) {
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s,s:s}", "id", id, "field", f),
                    "connector %s: configJSON.%s does not open with this stack's secret.key (%s); "
                    "nothing was imported: import on a stack with the exporter's secret.key, "
                    "or export without withSecrets",
                    id, f, err ? err : "?");
            free(err);
            return -1;
        }
        free(plain);
    }
    return seal_secrets(r, cfg);
}

void connector_export_config(json_t *cfg, bool with_secrets)
{
    if (with_secrets)
        return; /* stays sealed under secret.key */
    for (size_t i = 0; i < NSECRET; i++) {
        if (!json_object_get(cfg, SECRET_FIELDS[i]))
            continue;
        json_object_del(cfg, SECRET_FIELDS[i]);
        char cipher[32];
        snprintf(cipher, sizeof cipher, "%sCipher", SECRET_FIELDS[i]);
        json_object_set_new(cfg, cipher, json_string(""));
    }
}

bool connector_type_ok(struct srv_req *r, const char *type)
{
    return type_ok(r, type);
}

/* configJSON as answered: secret fields left out, as DFF does. */
static json_t *public_config(const char *text)
{
    json_t *cfg = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return json_object();
    }
    for (size_t i = 0; i < NSECRET; i++)
        json_object_del(cfg, SECRET_FIELDS[i]);
    return cfg;
}

static json_t *row_json(MYSQL_ROW row)
{
    return json_pack("{s:s,s:s,s:s,s:o,s:s?,s:s?,s:s?}", "id", row[0], "title",
                     row[1] ? row[1] : "", "type", row[2], "configJSON", public_config(row[3]),
                     "description", row[4], "createTime", row[5], "updateTime", row[6]);
}

#define CONN_COLS "id, title, type, config_json, description, created_at, updated_at"

static void connectors_list(struct srv_req *r)
{
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    const char *type = req_query(r, "type");
    char *qt = type ? db_q(m, type) : NULL;
    char where[160] = "";
    if (qt && strlen(qt) < 120)
        snprintf(where, sizeof where, "WHERE type = %s", qt);
    free(qt);
    MYSQL_RES *res =
        req_sql_query(r, m, "SELECT " CONN_COLS " FROM connector %s ORDER BY id", where);
    if (!res)
        return;
    json_t *out = json_array();
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL)
        json_array_append_new(out, row_json(row));
    mysql_free_result(res);
    req_ok(r, out);
}

/* The stored row of id as {type, config (sealed)}; NULL after answering 404. */
static json_t *load_connector(struct srv_req *r, MYSQL *m, const char *id)
{
    char *q = db_q(m, id);
    struct sql_row1 o;
    int found = req_sql_row1(r, m, &o, "SELECT " CONN_COLS " FROM connector WHERE id = %s", q);
    free(q);
    if (found == -1)
        return NULL;
    if (!found) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "connector %s not found", id);
        return NULL;
    }
    MYSQL_ROW row = o.row;
    json_t *cfg = json_loads(row[3] ? row[3] : "{}", 0, NULL);
    json_t *out =
        json_pack("{s:s,s:s,s:o,s:s?}", "title", row[1] ? row[1] : "", "type", row[2], "config",
                  json_is_object(cfg) ? cfg : json_object(), "description", row[4]);
    if (!json_is_object(cfg))
        json_decref(cfg);
    sql_row1_done(&o);
    return out;
}

/* ---- saving, after the test when one is asked for ------------------------ */

struct save_ctx {
    bool insert;
    char id[80];
    json_t *row; /* {title, type, config (sealed), description} */
};

static void save_free(struct save_ctx *s)
{
    json_decref(s->row);
    free(s);
}

static void save_now(struct srv_req *r, struct save_ctx *s)
{
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *cfg = json_dumps(json_object_get(s->row, "config"), JSON_COMPACT);
    const char *desc = json_string_value(json_object_get(s->row, "description"));
    char *qid = db_q(m, s->id), *qt = db_q(m, json_string_value(json_object_get(s->row, "title"))),
         *qty = db_q(m, json_string_value(json_object_get(s->row, "type"))), *qc = db_q(m, cfg),
         *qd = db_q(m, desc);
    long long n;
    if (s->insert)
        n = req_sql_exec(r, m,
                         "INSERT INTO connector (id, title, type, config_json, description) "
                         "VALUES (%s, %s, %s, %s, %s)",
                         qid, qt, qty, qc, qd);
    else
        n = req_sql_exec(r, m,
                         "UPDATE connector SET title = %s, config_json = %s, description = %s, "
                         "updated_at = NOW(3) WHERE id = %s",
                         qt, qc, qd, qid);
    free(cfg);
    free(qid);
    free(qt);
    free(qty);
    free(qc);
    free(qd);
    if (n < 0)
        return; /* answered (a duplicate id is 500 with MariaDB's message) */
    if (srv_gen_bump() != 0)
        log_warnx("connector %s saved; generation not announced (redis)", s->id);
    req_ok(r, json_pack("{s:s}", "id", s->id));
}

/* A test outcome: NULL when it connected, else what failed (malloc'd). */
static char *test_failure(json_t *outcome)
{
    const char *status = json_string_value(json_object_get(outcome, "status"));
    json_t *res = json_object_get(outcome, "result");
    if (status && strcmp(status, "success") == 0 && json_is_true(json_object_get(res, "ok")))
        return NULL;
    const char *msg = json_string_value(json_object_get(res, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(outcome, "message"));
    return strdup(msg ? msg : status ? status : "no answer from a worker");
}

static void save_tested(struct srv_req *r, json_t *outcome, void *ud)
{
    struct save_ctx *s = ud;
    char *why = test_failure(outcome);
    if (why) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s,s:s}", "id", s->id, "test", why),
                "connector %s (%s) failed its test: %s (pass skipTest to save it anyway)", s->id,
                json_string_value(json_object_get(s->row, "type")), why);
        free(why);
    } else {
        save_now(r, s);
    }
    save_free(s);
}

/* Run the connection test on a worker; `done` answers. -1 after answering. */
static int run_test(struct srv_req *r, json_t *kwargs, srv_call_done done, void *ud)
{
    struct task t;
    srv_task_init(&t, "__sys.connector_test", kwargs, true, CONNECTOR_TEST_TIMEOUT);
    t.origin = ORIGIN_SYSTEM;
    snprintf(t.origin_id, sizeof t.origin_id, "%s", "connector");
    int rv = srv_call(r, &t, done, ud);
    task_free(&t);
    return rv;
}

static void save(struct srv_req *r, struct save_ctx *s, bool skip_test)
{
    if (skip_test) {
        save_now(r, s);
        save_free(s);
        return;
    }
    json_t *kw = json_pack("{s:O,s:O}", "type", json_object_get(s->row, "type"), "config",
                           json_object_get(s->row, "config"));
    if (run_test(r, kw, save_tested, s) != 0)
        save_free(s);
}

static void connector_add(struct srv_req *r)
{
    json_t *body = req_body_object(r, true), *data = NULL, *cfg = NULL;
    const char *id = NULL, *type = NULL, *title = "", *desc = NULL;
    bool skip = false;
    if (!body)
        return;
    if (req_field_obj(r, body, "data", true, &data) == -1 ||
        req_field_bool(r, body, "skipTest", false, &skip) == -1 ||
        req_field_str(r, data, "id", true, &id) == -1 ||
        req_field_str(r, data, "type", true, &type) == -1 ||
        req_field_str(r, data, "title", false, &title) == -1 ||
        req_field_str(r, data, "description", false, &desc) == -1 ||
        req_field_obj(r, data, "configJSON", true, &cfg) == -1)
        goto out;
    if (!id_ok(id)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "id", id),
                "data.id '%s': a connector id is letters, digits and _, not starting with a "
                "digit, at most 64 characters",
                id);
        goto out;
    }
    if (!type_ok(r, type))
        goto out;
    json_t *sealed = json_deep_copy(cfg);
    if (seal_secrets(r, sealed) == -1) {
        json_decref(sealed);
        goto out;
    }
    struct save_ctx *s = calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(sealed);
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        goto out;
    }
    s->insert = true;
    snprintf(s->id, sizeof s->id, "%s", id);
    s->row = json_pack("{s:s,s:s,s:o,s:s?}", "title", title ? title : "", "type", type, "config",
                       sealed, "description", desc);
    save(r, s, skip);
out:
    json_decref(body);
}

static void connector_modify(struct srv_req *r, const char *id)
{
    json_t *body = req_body_object(r, true), *data = NULL, *cfg = NULL, *old = NULL;
    const char *title = NULL, *desc = NULL;
    bool skip = false;
    if (!body)
        return;
    if (req_field_obj(r, body, "data", true, &data) == -1 ||
        req_field_bool(r, body, "skipTest", false, &skip) == -1 ||
        req_field_str(r, data, "title", false, &title) == -1 ||
        req_field_str(r, data, "description", false, &desc) == -1 ||
        req_field_obj(r, data, "configJSON", false, &cfg) == -1)
        goto out;
    MYSQL *m = srv_db(r);
    if (!m || (old = load_connector(r, m, id)) == NULL)
        goto out;
    if (title)
        json_object_set_new(old, "title", json_string(title));
    if (desc)
        json_object_set_new(old, "description", json_string(desc));
    if (cfg) {
        /* A secret left out keeps its stored value: clients never get it back. */
        json_t *merged = json_deep_copy(cfg), *prev = json_object_get(old, "config");
        for (size_t i = 0; i < NSECRET; i++)
            if (!json_object_get(merged, SECRET_FIELDS[i]) &&
                json_object_get(prev, SECRET_FIELDS[i]))
                json_object_set(merged, SECRET_FIELDS[i], json_object_get(prev, SECRET_FIELDS[i]));
        if (seal_secrets(r, merged) == -1) {
            json_decref(merged);
            goto out;
        }
        json_object_set_new(old, "config", merged);
    }
    struct save_ctx *s = calloc(1, sizeof *s);
    if (s == NULL) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        goto out;
    }
    snprintf(s->id, sizeof s->id, "%s", id);
    s->row = old;
    old = NULL;
    save(r, s, skip || !cfg);
out:
    json_decref(old);
    json_decref(body);
}

static void connector_delete(struct srv_req *r, const char *id)
{
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *q = db_q(m, id);
    long long n = req_sql_exec(r, m, "DELETE FROM connector WHERE id = %s", q);
    free(q);
    if (n < 0)
        return;
    if (n == 0) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "connector %s not found", id);
        return;
    }
    srv_gen_bump();
    req_ok(r, json_pack("{s:s}", "id", id));
}

struct test_ctx {
    char id[80];
};

static void test_done(struct srv_req *r, json_t *outcome, void *ud)
{
    struct test_ctx *t = ud;
    char *why = test_failure(outcome);
    if (why)
        req_err(r, 400, "EClientBadRequest",
                json_pack("{s:s,s:b,s:s}", "id", t->id, "ok", 0, "message", why),
                "connector %s failed its test: %s", t->id, why);
    else
        req_ok(r, json_pack("{s:s,s:b,s:s}", "id", t->id, "ok", 1, "message", "connected"));
    free(why);
    free(t);
}

static void connector_test(struct srv_req *r, const char *id)
{
    MYSQL *m = srv_db(r);
    json_t *row = m ? load_connector(r, m, id) : NULL;
    if (!row)
        return;
    const char *type = json_string_value(json_object_get(row, "type"));
    if (!type_ok(r, type)) {
        json_decref(row);
        return;
    }
    struct test_ctx *t = calloc(1, sizeof *t);
    if (!t) {
        json_decref(row);
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        return;
    }
    snprintf(t->id, sizeof t->id, "%s", id);
    json_t *kw = json_pack("{s:s,s:O}", "type", type, "config", json_object_get(row, "config"));
    json_decref(row);
    if (run_test(r, kw, test_done, t) != 0)
        free(t);
}

/* One handler for DFF's connector paths (rows of server_route.c, which
 * admit only do/list, do/add, :id/do/modify|delete|test with their methods):
 * what follows /api/v1/connectors/ says which. */
void h_connectors(struct srv_req *r)
{
    const char *rest = r->path + strlen("/api/v1/connectors/");
    if (strncmp(rest, "do/list", 7) == 0)
        return connectors_list(r);
    if (strncmp(rest, "do/add", 6) == 0)
        return connector_add(r);
    char id[80];
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= sizeof id) {
        req_err(r, 404, "ENotFound", NULL, "no connector route %s", r->path);
        return;
    }
    memcpy(id, rest, n);
    id[n] = '\0';
    const char *act = rest[n] ? rest + n + 1 : "";
    if (strncmp(act, "do/modify", 9) == 0)
        return connector_modify(r, id);
    if (strncmp(act, "do/delete", 9) == 0)
        return connector_delete(r, id);
    if (strncmp(act, "do/test", 7) == 0)
        return connector_test(r, id);
    req_err(r, 404, "ENotFound", NULL, "no connector action %s (do/modify, do/delete, do/test)",
            act);
}

/* ---- draft runs ---------------------------------------------------------- */

static void debug_done(struct srv_req *r, json_t *outcome, void *ud)
{
    (void)ud;
    const char *status = json_string_value(json_object_get(outcome, "status"));
    if (status && strcmp(status, "success") == 0)
        req_ok(r, json_incref(json_object_get(outcome, "result")));
    else
        srv_answer_outcome(r, outcome, false);
}

/* Run func_name of script_id's draft with kwargs (stolen) on a worker. */
static void debug_run(struct srv_req *r, const char *script_id, const char *func_name,
                      json_t *kwargs)
{
    MYSQL *m = srv_db(r);
    if (!m) {
        json_decref(kwargs);
        return;
    }
    char *q = db_q(m, script_id);
    struct sql_row1 o;
    int found = req_sql_row1(r, m, &o, "SELECT code_draft FROM script WHERE id = %s", q);
    free(q);
    if (found != 1) {
        json_decref(kwargs);
        if (found == 0)
            req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", script_id), "script %s not found",
                    script_id);
        return;
    }
    json_t *kw = json_pack("{s:s,s:s,s:s,s:o}", "code", o.row[0] ? o.row[0] : "", "script_id",
                           script_id, "func_name", func_name, "kwargs", kwargs);
    sql_row1_done(&o);
    struct task t;
    srv_task_init(&t, "__sys.debug", kw, true, DEBUG_TIMEOUT);
    t.timeout = DEBUG_TIMEOUT; /* DFF's debugger limit, whatever server.sync_timeout says */
    t.origin = ORIGIN_SYSTEM;
    snprintf(t.origin_id, sizeof t.origin_id, "%s", "debug");
    srv_call(r, &t, debug_done, NULL);
    task_free(&t);
}

/* POST /api/v1/scripts/:id/do/debug {funcName|func_name, kwargs} and DFF's
 * POST /api/v1/func-draft/:funcId {kwargs}. */
void h_script_debug(struct srv_req *r)
{
    json_t *body = req_body_object(r, false), *kwargs = NULL;
    const char *fname = NULL;
    char script[256];
    if (!body)
        return;
    if (req_field_obj(r, body, "kwargs", false, &kwargs) == -1)
        goto out;
    if (strncmp(r->path, "/api/v1/func-draft/", 19) == 0) {
        const char *fid = r->params[0], *dot = strrchr(fid, '.');
        if (!dot || dot == fid || !dot[1] || (size_t)(dot - fid) >= sizeof script) {
            req_err(r, 400, "EClientBadRequest", NULL,
                    "'%s' is not a func id (<set>__<script>.<func>)", fid);
            goto out;
        }
        memcpy(script, fid, (size_t)(dot - fid));
        script[dot - fid] = '\0';
        fname = dot + 1;
    } else {
        if (req_field_str(r, body, "funcName", false, &fname) == -1 ||
            (!fname && req_field_str(r, body, "func_name", false, &fname) == -1))
            goto out;
        snprintf(script, sizeof script, "%s", r->params[0]);
    }
    debug_run(r, script, fname ? fname : "", kwargs ? json_incref(kwargs) : json_object());
out:
    json_decref(body);
}
