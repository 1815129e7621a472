/* DataFlux Func's management API, one engine for every resource:
 * /api/v1/<resource>/do/list|add, /api/v1/<resource>/:id/do/get|modify|delete,
 * bodies {"data": {...}} with camelCase fields, lists with DFF's pageInfo.
 * Each resource is a row of `resources[]`: its table, id rule, and fields
 * (wire name <-> column, type, flags). Hooks cover what data cannot say
 * (a script's set, an access key's secret, a password's hash). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mysqld_error.h>
#include "clock.h"
#include "cron.h"
#include "db.h"
#include "ids.h"
#include "log.h"
#include "secret.h"
#include "sha256.h"
#include "server_int.h"
#include "userpw.h"

enum ftype {
    FT_STR,
    FT_INT,
    FT_BOOL,
    FT_NBOOL, /* a boolean stored inverted (isDisabled <-> enabled) */
    FT_JSON,  /* any JSON value in a TEXT column */
    FT_TIME,  /* DATETIME(3), ISO-8601 on the wire */
    FT_PASSWD /* write-only, stored as userpw_hash() */
};

enum {
    F_REQ = 1,     /* required by add */
    F_RO = 2,      /* never written from a body */
    F_NOLIST = 4,  /* only in do/get (large: code) */
    F_FUNCID = 8,  /* must be <set>__<script>.<func> */
    F_NOMOD = 16,  /* set by add only */
    F_HIDDEN = 32, /* never answered */
};

struct field {
    const char *wire, *col; /* col may be an SQL expression for F_RO */
    enum ftype type;
    int flags;
    const char *dflt;           /* SQL literal used by add when absent */
    const char *const *choices; /* allowed strings, NULL-terminated */
};

struct resource;
/* Hook: extra column=value pairs (SQL) for add/modify, or -1 after answering. */
typedef int (*res_hook)(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id,
                        json_t *data, bool add, FILE *cols, FILE *vals, json_t *answer);
typedef int (*res_delete)(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id);

struct resource {
    const char *wire; /* path segment, e.g. "sync-apis" */
    const char *label;
    const char *table;
    const char *id_prefix; /* add without id generates one; NULL = id required */
    bool (*id_ok)(const char *id);
    const struct field *fields;
    const char *list_where; /* always applied, e.g. "revoked_at IS NULL" */
    const char *order;
    bool bumps;      /* a write changes what calls see: bump the generation */
    bool has_update; /* table has updated_at */
    res_hook hook;
    res_delete del;
    long long page_default; /* a list without pageSize: 0 = everything */
    /* Tandem's ?since=&until= list filters (ISO-8601 or unix s) apply to
     * this column; NULL = none */
    const char *time_col;
    /* adds to the answered rows (do/list, do/get); 0, or -1 after answering */
    int (*rows_hook)(struct srv_req *r, json_t *rows);
};

static const char *const VALUE_TYPES[] = {"string",  "password", "integer",    "float",
                                          "boolean", "json",     "commaArray", NULL};
static const char *const AUTH_TYPES[] = {"fixedField", "httpBasic", "httpDigest", "func", NULL};
static const char *const KEY_SCOPES[] = {"admin", "call", NULL};
static const char *const OVERLAPS[] = {"skip", "allow", NULL};

#define TIMES                                                                                      \
    {"createTime", "created_at", FT_TIME, F_RO, NULL, NULL},                                       \
    {                                                                                              \
        "updateTime", "updated_at", FT_TIME, F_RO, NULL, NULL                                      \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, NULL, 0, 0, NULL, NULL                                                               \
    }

static const struct field script_set_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"title", "title", FT_STR, 0, NULL, NULL},
    {"description", "description", FT_STR, 0, NULL, NULL},
    TIMES,
    END,
};

static const struct field script_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"scriptSetId", "script_set_id", FT_STR, F_RO, NULL, NULL},
    {"title", "title", FT_STR, 0, NULL, NULL},
    {"description", "description", FT_STR, 0, NULL, NULL},
    {"codeDraft", "code_draft", FT_STR, F_NOLIST, "''", NULL},
    {"code", "code", FT_STR, F_RO | F_NOLIST, NULL, NULL},
    {"publishVersion", "publish_version", FT_INT, F_RO, NULL, NULL},
    {"publishTime", "published_at", FT_TIME, F_RO, NULL, NULL},
    TIMES,
    END,
};

static const struct field func_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"scriptId", "script_id", FT_STR, F_RO, NULL, NULL},
    {"scriptSetId", "SUBSTRING_INDEX(script_id, '__', 1)", FT_STR, F_RO, NULL, NULL},
    {"name", "name", FT_STR, F_RO, NULL, NULL},
    {"title", "title", FT_STR, F_RO, NULL, NULL},
    {"argsJSON", "args_json", FT_JSON, F_RO, NULL, NULL},
    {"extraConfigJSON", "extra_json", FT_JSON, F_RO, NULL, NULL},
    {"timeout", "timeout", FT_INT, F_RO, NULL, NULL},
    {"cacheResult", "cache_result", FT_INT, F_RO, NULL, NULL},
    {"fixedCronExpr", "fixed_cron_expr", FT_STR, F_RO, NULL, NULL},
    {"createTime", "created_at", FT_TIME, F_RO, NULL, NULL},
    END,
};

/* Sync APIs (auth links) and async APIs (batches): one shape */
static const struct field api_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"funcId", "func_id", FT_STR, F_REQ | F_FUNCID, NULL, NULL},
    {"funcCallKwargsJSON", "kwargs_json", FT_JSON, 0, "'{}'", NULL},
    {"title", "title", FT_STR, 0, NULL, NULL},
    {"tagsJSON", "tags_json", FT_JSON, 0, NULL, NULL},
    {"note", "note", FT_STR, 0, NULL, NULL},
    {"apiAuthId", "api_auth_id", FT_STR, 0, NULL, NULL},
    {"expireTime", "expire_time", FT_TIME, 0, NULL, NULL},
    {"throttlingJSON", "throttling_json", FT_JSON, 0, NULL, NULL},
    {"showInDoc", "show_in_doc", FT_BOOL, 0, NULL, NULL},
    {"isDisabled", "enabled", FT_NBOOL, 0, NULL, NULL},
    {"needKey", "need_key", FT_BOOL, 0, NULL, NULL},
    {"timeout", "timeout", FT_INT, 0, NULL, NULL},
    {"createTime", "created_at", FT_TIME, F_RO, NULL, NULL},
    END,
};

static const struct field cron_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"funcId", "func_id", FT_STR, F_REQ | F_FUNCID, NULL, NULL},
    {"funcCallKwargsJSON", "kwargs_json", FT_JSON, 0, "'{}'", NULL},
    {"cronExpr", "expr", FT_STR, 0, "''", NULL},
    {"timezone", "timezone", FT_STR, 0, NULL, NULL},
    {"title", "title", FT_STR, 0, NULL, NULL},
    {"tagsJSON", "tags_json", FT_JSON, 0, NULL, NULL},
    {"note", "note", FT_STR, 0, NULL, NULL},
    {"expireTime", "expires_at", FT_TIME, 0, NULL, NULL},
    {"isDisabled", "enabled", FT_NBOOL, 0, NULL, NULL},
    {"isFixed", "fixed", FT_BOOL, F_RO, NULL, NULL},
    /* Tandem's: a slot whose run is still going is skipped or run anyway;
     * a slot missed by more than misfireGrace s (null: the beat's default)
     * is recorded missed instead of fired late */
    {"overlap", "overlap", FT_STR, 0, NULL, OVERLAPS},
    {"misfireGrace", "misfire_grace", FT_INT, 0, NULL, NULL},
    TIMES,
    END,
};

static const struct field env_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"title", "title", FT_STR, 0, NULL, NULL},
    {"description", "description", FT_STR, 0, NULL, NULL},
    /* written by env_hook (a password is sealed); a password reads as null */
    {"valueTEXT", "IF(value_type = 'password', NULL, value)", FT_STR, F_RO, NULL, NULL},
    {"autoTypeCasting", "value_type", FT_STR, 0, NULL, VALUE_TYPES},
    TIMES,
    END,
};

static const struct field key_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"name", "name", FT_STR, 0, NULL, NULL},
    {"title", "name", FT_STR, F_RO, NULL, NULL}, /* DFF's newer name; written by key_hook */
    {"scope", "scope", FT_STR, 0, NULL, KEY_SCOPES},
    {"createTime", "created_at", FT_TIME, F_RO, NULL, NULL},
    END,
};

static const struct field user_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"username", "username", FT_STR, F_REQ, NULL, NULL},
    {"password", "password_hash", FT_PASSWD, F_REQ | F_HIDDEN, NULL, NULL},
    {"name", "name", FT_STR, 0, NULL, NULL},
    {"mobile", "mobile", FT_STR, 0, NULL, NULL},
    {"email", "email", FT_STR, 0, NULL, NULL},
    {"roles", "roles_json", FT_JSON, 0, NULL, NULL},
    {"isDisabled", "is_disabled", FT_BOOL, 0, NULL, NULL},
    TIMES,
    END,
};

/* Connectors are served by server_connector.c; this row is for the
 * script-set import and export only (no route reaches it otherwise). */
static const struct field connector_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"title", "title", FT_STR, 0, "''", NULL},
    {"description", "description", FT_STR, 0, NULL, NULL},
    {"type", "type", FT_STR, F_REQ, NULL, NULL},
    /* written by connector_hook (secrets sealed) */
    {"configJSON", "config_json", FT_JSON, F_RO, NULL, NULL},
    TIMES,
    END,
};

static const struct field api_auth_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"name", "name", FT_STR, 0, NULL, NULL},
    {"type", "type", FT_STR, F_REQ | F_NOMOD, NULL, AUTH_TYPES},
    {"configJSON", "config_json", FT_JSON, F_REQ, NULL, NULL},
    {"note", "note", FT_STR, 0, NULL, NULL},
    TIMES,
    END,
};

/* Task records under DFF's names: its origins and its four statuses. */
#define TR_ORIGIN                                                                                  \
    "CASE origin WHEN 'func' THEN 'direct' WHEN 'sync-api' THEN 'syncAPI' WHEN 'async-api' THEN "  \
    "'asyncAPI' WHEN 'cron' THEN 'cronJob' WHEN 'subtask' THEN 'subTask' ELSE origin END"
#define TR_STATUS                                                                                  \
    "CASE status WHEN 'crashed' THEN 'failure' WHEN 'expired' THEN 'timeout' WHEN 'skipped' THEN " \
    "'skip' WHEN 'missed' THEN 'skip' ELSE status END"
#define TR_MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

static const struct field task_record_fields[] = {
    {"id", "id", FT_STR, F_RO, NULL, NULL},
    {"funcId", "func_id", FT_STR, F_RO, NULL, NULL},
    {"scriptId", "SUBSTRING_INDEX(func_id, '.', 1)", FT_STR, F_RO, NULL, NULL},
    {"scriptSetId", "SUBSTRING_INDEX(func_id, '__', 1)", FT_STR, F_RO, NULL, NULL},
    {"origin", TR_ORIGIN, FT_STR, F_RO, NULL, NULL},
    {"originId", "origin_id", FT_STR, F_RO, NULL, NULL},
    {"queue", "queue", FT_STR, F_RO, NULL, NULL},
    {"status", TR_STATUS, FT_STR, F_RO, NULL, NULL},
    {"tandemStatus", "status", FT_STR, F_RO, NULL, NULL}, /* crashed, expired, missed kept */
    {"exceptionType", "NULLIF(reason, '')", FT_STR, F_RO, NULL, NULL},
    {"exceptionTEXT", "message", FT_STR, F_RO, NULL, NULL},
    {"tracebackTEXT", "traceback", FT_STR, F_RO, NULL, NULL},
    {"printLogsTEXT", "output", FT_STR, F_RO, NULL, NULL},
    {"node", "node", FT_STR, F_RO, NULL, NULL},
    {"triggerTimeMs", TR_MS("COALESCE(trigger_at, nominal_at, enqueued_at, ended_at)"), FT_INT,
     F_RO, NULL, NULL},
    {"startTimeMs", TR_MS("started_at"), FT_INT, F_RO, NULL, NULL},
    {"endTimeMs", TR_MS("ended_at"), FT_INT, F_RO, NULL, NULL},
    {"costMs", "cost_ms", FT_INT, F_RO, NULL, NULL},
    /* DFF keeps these as JSON text and answers them as such (migration 008) */
    {"rootTaskId", "root_task_id", FT_STR, F_RO, NULL, NULL},
    {"funcCallKwargsJSON", "kwargs_json", FT_STR, F_RO, NULL, NULL},
    {"returnValueJSON", "return_value_json", FT_STR, F_RO, NULL, NULL},
    {"callChainJSON", "call_chain_json", FT_STR, F_RO, NULL, NULL},
    /* DFF's scheduling fields, seconds (migration 011) */
    {"cronExpr", "cron_expr", FT_STR, F_RO, NULL, NULL},
    {"delay", "delay_s", FT_INT, F_RO, NULL, NULL},
    {"timeout", "timeout_s", FT_INT, F_RO, NULL, NULL},
    {"expires", "expires_s", FT_INT, F_RO, NULL, NULL},
    END,
};

/* ---- id rules ---------------------------------------------------------------- */

static bool ident_ok(const char *id) /* DFF: ^[a-zA-Z_][a-zA-Z0-9_]*$ */
{
    if (!id || !*id || strlen(id) >= 64 || isdigit((unsigned char)*id))
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

static bool script_set_id_ok(const char *id)
{
    return ident_ok(id) && !strstr(id, "__");
}

/* ---- hooks --------------------------------------------------------------------- */

static void pair(FILE *cols, FILE *vals, bool add, const char *col, const char *lit)
{
    if (add) {
        fprintf(cols, ", %s", col);
        fprintf(vals, ", %s", lit);
    } else {
        fprintf(cols, ", %s = %s", col, lit);
    }
}

static int script_hook(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id,
                       json_t *data, bool add, FILE *cols, FILE *vals, json_t *answer)
{
    (void)rs;
    (void)data;
    (void)answer;
    if (!add)
        return 0;
    const char *sep = strstr(id, "__");
    char *qset = db_qn(m, id, (size_t)(sep - id));
    int found = req_sql_row1(r, m, NULL, "SELECT 1 FROM script_set WHERE id = %s", qset);
    if (found == -1) {
        free(qset);
        return -1;
    }
    if (!found) {
        req_err(r, 404, "EClientNotFound", json_pack("{s:s}", "scriptSetId", id),
                "script set of script %s does not exist: add it first (/api/v1/script-sets/do/add)",
                id);
        free(qset);
        return -1;
    }
    pair(cols, vals, add, "script_set_id", qset);
    free(qset);
    return 0;
}

static int key_hook(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id,
                    json_t *data, bool add, FILE *cols, FILE *vals, json_t *answer)
{
    (void)rs;
    (void)id;
    const char *title = json_string_value(json_object_get(data, "title"));
    if (title && !json_object_get(data, "name")) {
        char *q = db_q(m, title);
        pair(cols, vals, add, "name", q);
        free(q);
    }
    if (!add)
        return 0;
    char secret[64], hex[65], *sealed = NULL, *err = NULL;
    secret_new(secret, sizeof secret);
    sha256_hex(secret, strlen(secret), hex);
    if (secret_seal(S.conf.secret_key, secret, &sealed, &err) != 0) {
        req_err(r, 500, "EServerInternal", NULL,
                "cannot seal the new access key's secret (secret.key in tandem.conf): %s",
                err ? err : "?");
        free(err);
        return -1;
    }
    char *qh = db_q(m, hex), *qs = db_q(m, sealed);
    pair(cols, vals, add, "secret_sha256", qh);
    pair(cols, vals, add, "secret_sealed", qs);
    free(qh);
    free(qs);
    free(sealed);
    json_object_set_new(answer, "secret", json_string(secret));
    return 0;
}

/* valueTEXT: a password is sealed; the type is the body's or the stored one. */
static int env_hook(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id,
                    json_t *data, bool add, FILE *cols, FILE *vals, json_t *answer)
{
    (void)rs;
    (void)answer;
    json_t *v = json_object_get(data, "valueTEXT");
    if (v && !json_is_string(v) && !json_is_null(v)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "valueTEXT"),
                "field 'data.valueTEXT' must be a string");
        return -1;
    }
    if (!v || json_is_null(v)) {
        if (add)
            pair(cols, vals, add, "value", "''");
        return 0;
    }
    char type[32] = "string";
    const char *bt = json_string_value(json_object_get(data, "autoTypeCasting"));
    if (bt) {
        snprintf(type, sizeof type, "%s", bt);
    } else if (!add) {
        char *q = db_q(m, id);
        struct sql_row1 o;
        int found = req_sql_row1(r, m, &o, "SELECT value_type FROM env_variable WHERE id = %s", q);
        free(q);
        if (found == -1)
            return -1;
        if (found && o.row[0])
            snprintf(type, sizeof type, "%s", o.row[0]);
        sql_row1_done(&o);
    }
    char *sealed = NULL, *err = NULL;
    const char *val = json_string_value(v);
    if (strcmp(type, "password") == 0 && secret_is_sealed(val)) {
        /* already sealed (a Tandem export made withSecrets): kept as is, but
         * only if this stack's secret.key opens it */
        char *plain = NULL;
        if (secret_open(S.conf.secret_key, val, &plain, &err) != 0) {
            req_err(r, 400, "EClientBadRequest",
                    json_pack("{s:s,s:s}", "id", id, "field", "valueTEXT"),
                    "env variable %s: the sealed password does not open with this stack's "
                    "secret.key (%s): "
                    "import on a stack with the exporter's secret.key, or export without "
                    "withSecrets",
                    id, err ? err : "?");
            free(err);
            return -1;
        }
        free(plain);
    } else if (strcmp(type, "password") == 0) {
        if (secret_seal(S.conf.secret_key, val, &sealed, &err) != 0) {
            req_err(r, 500, "EServerInternal", NULL,
                    "cannot seal the password value (secret.key in tandem.conf): %s",
                    err ? err : "?");
            free(err);
            return -1;
        }
        val = sealed;
    }
    char *q = db_q(m, val);
    pair(cols, vals, add, "value", q);
    free(q);
    free(sealed);
    return 0;
}

static int connector_hook(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id,
                          json_t *data, bool add, FILE *cols, FILE *vals, json_t *answer)
{
    (void)rs;
    const char *type = json_string_value(json_object_get(data, "type"));
    if (type && !connector_type_ok(r, type))
        return -1;
    json_t *cfg = json_object_get(data, "configJSON");
    if (cfg && !json_is_null(cfg) && !json_is_object(cfg)) {
        req_err(r, 400, "EClientBadRequest",
                json_pack("{s:s,s:s}", "id", id, "field", "configJSON"),
                "connector %s: configJSON must be an object", id);
        return -1;
    }
    /* none at all is an empty configuration, as DFF's import takes it */
    json_t *c = json_is_object(cfg) ? json_deep_copy(cfg) : json_object(), *w = json_array();
    int ret = connector_import_config(r, id, c, w);
    char *text = ret == 0 ? json_dumps(c, JSON_COMPACT) : NULL;
    if (ret == 0 && !text) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        ret = -1;
    }
    if (text) {
        char *q = db_q(m, text);
        pair(cols, vals, add, "config_json", q);
        free(q);
        free(text);
    }
    if (ret == 0 && json_array_size(w))
        json_object_set(answer, "warnings", w);
    json_decref(w);
    json_decref(c);
    return ret;
}

/* The import writes cron jobs of scripts it brings as drafts: their funcs
 * exist only after the publish that follows, so only do/add and do/modify
 * insist on a published func. */
static bool is_import(struct srv_req *r)
{
    return strstr(r->path, "/do/import") != NULL;
}

static int cron_hook(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id,
                     json_t *data, bool add, FILE *cols, FILE *vals, json_t *answer)
{
    (void)rs;
    (void)answer;
    json_t *kw = json_object_get(data, "funcCallKwargsJSON");
    if (kw && !json_is_null(kw) && !json_is_object(kw)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "funcCallKwargsJSON"),
                "field 'data.funcCallKwargsJSON' must be a JSON object (the func's kwargs)");
        return -1;
    }
    const char *expr = json_string_value(json_object_get(data, "cronExpr"));
    char *err = NULL;
    if (expr && *expr) {
        struct cron_expr e;
        if (cron_parse(&e, expr, &err)) {
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "cronExpr"),
                    "field 'data.cronExpr': %s", err ? err : "bad cron expression");
            free(err);
            return -1;
        }
    }
    /* the beat's own engine checks the zone: a job accepted here is one it
     * can schedule */
    const char *tzname = json_string_value(json_object_get(data, "timezone"));
    if (tzname) {
        struct cron_tz *tz = cron_tz_load(tzname, &err);
        if (!tz) {
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "timezone"),
                    "field 'data.timezone': %s", err ? err : "unknown time zone");
            free(err);
            return -1;
        }
        cron_tz_free(tz);
    }
    json_t *g = json_object_get(data, "misfireGrace");
    if (json_is_integer(g) && (json_integer_value(g) < 0 || json_integer_value(g) > 86400)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "misfireGrace"),
                "field 'data.misfireGrace' must be 0..86400 seconds or null, got %lld",
                (long long)json_integer_value(g));
        return -1;
    }
    const char *func_id = json_string_value(json_object_get(data, "funcId"));
    if (func_id && !is_import(r)) {
        char *q = db_q(m, func_id);
        int found = req_sql_row1(r, m, NULL, "SELECT 1 FROM func WHERE id = %s", q);
        free(q);
        if (found == -1)
            return -1;
        if (!found) {
            req_err(r, 404, "EClientNotFound",
                    json_pack("{s:s,s:s}", "field", "funcId", "funcId", func_id),
                    "func %s not found (is its script published?)", func_id);
            return -1;
        }
    }
    if (!add && (expr || func_id)) {
        char *q = db_q(m, id);
        struct sql_row1 o;
        int found = req_sql_row1(r, m, &o, "SELECT fixed FROM cron_job WHERE id = %s", q);
        free(q);
        if (found == -1)
            return -1;
        bool fixed = found && o.row[0] && atoi(o.row[0]);
        sql_row1_done(&o);
        if (fixed && !is_import(r)) {
            req_err(r, 400, "EClientBadRequest",
                    json_pack("{s:s,s:s}", "id", id, "field", expr ? "cronExpr" : "funcId"),
                    "cron job %s comes from integration='autoRun' in its script: change the "
                    "code and publish",
                    id);
            return -1;
        }
    }
    if (add && !tzname) {
        char *q = db_q(m, srv_conf()->timezone);
        pair(cols, vals, add, "timezone", q);
        free(q);
    }
    return 0;
}

static int user_hook(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id,
                     json_t *data, bool add, FILE *cols, FILE *vals, json_t *answer)
{
    (void)m;
    (void)rs;
    (void)cols;
    (void)vals;
    (void)answer;
    json_t *dis = json_object_get(data, "isDisabled");
    if (!add && (json_object_get(data, "password") || json_is_true(dis))) {
        /* a new password or a disabled user ends the sessions signed in */
        redisContext *rc = srv_redis(r);
        if (!rc)
            return -1;
        auth_drop_user_tokens(rc, id);
    }
    return 0;
}

/* ---- deletes ------------------------------------------------------------------- */

static long long del_exec(struct srv_req *r, MYSQL *m, const char *sql_fmt, const char *q)
{
    return req_sql_exec(r, m, sql_fmt, q);
}

/* Statements on one quoted id in one transaction, the last deleting the
 * row itself: 1 deleted, 0 no such row, -1 answered (rolled back). */
static int delete_in_tx(struct srv_req *r, MYSQL *m, const char *id, const char *const *stmts)
{
    char *q = db_q(m, id);
    long long n = -1;
    bool ok = req_sql_exec(r, m, "START TRANSACTION") >= 0;
    for (size_t i = 0; ok && stmts[i]; i++)
        ok = (n = del_exec(r, m, stmts[i], q)) >= 0;
    ok = ok && req_sql_exec(r, m, "COMMIT") >= 0;
    free(q);
    if (!ok) {
        db_exec(m, NULL, "ROLLBACK");
        return -1;
    }
    return n > 0 ? 1 : 0;
}

/* A script set takes its scripts and their funcs with it. */
static int script_set_delete(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id)
{
    (void)rs;
    static const char *const stmts[] = {
        "DELETE f FROM func f JOIN script s ON f.script_id = s.id WHERE s.script_set_id = %s",
        "DELETE FROM script WHERE script_set_id = %s", "DELETE FROM script_set WHERE id = %s",
        NULL};
    return delete_in_tx(r, m, id, stmts);
}

static int script_delete(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id)
{
    (void)rs;
    static const char *const stmts[] = {"DELETE FROM func WHERE script_id = %s",
                                        "DELETE FROM script WHERE id = %s", NULL};
    return delete_in_tx(r, m, id, stmts);
}

/* A cron job's Redis state (last fire, next slot) goes with it. */
static int cron_delete(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id)
{
    (void)rs;
    char *q = db_q(m, id);
    long long n = req_sql_exec(r, m, "DELETE FROM cron_job WHERE id = %s", q);
    free(q);
    if (n > 0 && server_cron_forget(r, id) != 0)
        return -1;
    return n < 0 ? -1 : n > 0 ? 1 : 0;
}

/* server_cron.c's; these defaults serve builds (unit tests) without it */
__attribute__((weak)) int server_cron_rows_state(struct srv_req *r, json_t *rows)
{
    (void)r;
    (void)rows;
    return 0;
}

__attribute__((weak)) int server_cron_forget(struct srv_req *r, const char *id)
{
    (void)r;
    (void)id;
    return 0;
}

/* An access key is revoked, not forgotten: task records may name it. */
static int key_delete(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id)
{
    (void)rs;
    char *q = db_q(m, id);
    long long n = req_sql_exec(
        r, m, "UPDATE access_key SET revoked_at = NOW(3) WHERE id = %s AND revoked_at IS NULL", q);
    free(q);
    return n < 0 ? -1 : n > 0 ? 1 : 0;
}

static int user_delete(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id)
{
    (void)rs;
    char *q = db_q(m, id);
    long long n = req_sql_exec(r, m, "DELETE FROM user WHERE id = %s", q);
    free(q);
    if (n > 0) {
        redisContext *rc = srv_redis(r);
        if (!rc)
            return -1;
        auth_drop_user_tokens(rc, id);
    }
    return n < 0 ? -1 : n > 0 ? 1 : 0;
}

/* ---- the table -------------------------------------------------------------------- */

/* Designated rows: a resource names what it has; the rest is off (false,
 * NULL, 0: no hook, no paging default, no time filter). DFF serves the
 * same table under two names in two cases: one row shape each. */
#define API_ROW(w, l, tbl, pfx)                                                                    \
    {                                                                                              \
        .wire = w, .label = l, .table = tbl, .id_prefix = pfx, .id_ok = id_valid,                  \
        .fields = api_fields, .order = "created_at, id", .bumps = true                             \
    }
#define CRON_ROW(w, l)                                                                             \
    {                                                                                              \
        .wire = w, .label = l, .table = "cron_job", .id_prefix = "cron-", .id_ok = id_valid,       \
        .fields = cron_fields, .order = "created_at, id", .bumps = true, .has_update = true,       \
        .hook = cron_hook, .del = cron_delete, .rows_hook = server_cron_rows_state                 \
    }

static const struct resource resources[] = {
    {.wire = "script-sets",
     .label = "script set",
     .table = "script_set",
     .id_ok = script_set_id_ok,
     .fields = script_set_fields,
     .order = "id",
     .bumps = true,
     .has_update = true,
     .del = script_set_delete},
    {.wire = "scripts",
     .label = "script",
     .table = "script",
     .id_ok = script_id_valid,
     .fields = script_fields,
     .order = "id",
     .bumps = true,
     .has_update = true,
     .hook = script_hook,
     .del = script_delete},
    {.wire = "funcs", .label = "func", .table = "func", .fields = func_fields, .order = "id"},
    API_ROW("sync-apis", "sync API", "sync_api", "sapi-"),
    API_ROW("auth-links", "auth link", "sync_api", "sapi-"),
    API_ROW("async-apis", "async API", "async_api", "aapi-"),
    API_ROW("batches", "batch", "async_api", "aapi-"),
    CRON_ROW("cron-jobs", "cron job"),
    CRON_ROW("crontab-configs", "crontab config"),
    {.wire = "env-variables",
     .label = "env variable",
     .table = "env_variable",
     .id_ok = ident_ok,
     .fields = env_fields,
     .order = "id",
     .bumps = true,
     .has_update = true,
     .hook = env_hook},
    {.wire = "access-keys",
     .label = "access key",
     .table = "access_key",
     .id_prefix = "ak-",
     .id_ok = id_valid,
     .fields = key_fields,
     .list_where = "revoked_at IS NULL",
     .order = "created_at, id",
     .bumps = true,
     .hook = key_hook,
     .del = key_delete},
    {.wire = "users",
     .label = "user",
     .table = "user",
     .id_prefix = "u-",
     .id_ok = id_valid,
     .fields = user_fields,
     .order = "created_at, id",
     .has_update = true,
     .hook = user_hook,
     .del = user_delete},
    {.wire = "api-auth",
     .label = "API auth",
     .table = "api_auth",
     .id_prefix = "apia-",
     .id_ok = id_valid,
     .fields = api_auth_fields,
     .order = "created_at, id",
     .bumps = true,
     .has_update = true},
    {.wire = "connectors",
     .label = "connector",
     .table = "connector",
     .id_ok = ident_ok,
     .fields = connector_fields,
     .order = "id",
     .bumps = true,
     .has_update = true,
     .hook = connector_hook},
    {.wire = "task-records",
     .label = "task record",
     .table = "task_record",
     .fields = task_record_fields,
     .order = "seq DESC",
     .page_default = 50,
     .time_col = "ended_at"},
};

/* The resource named by the path segment after /api/v1/. */
static const struct resource *res_of(struct srv_req *r)
{
    const char *p = r->path + strlen("/api/v1/");
    size_t n = strcspn(p, "/");
    for (size_t i = 0; i < sizeof resources / sizeof resources[0]; i++)
        if (strlen(resources[i].wire) == n && strncmp(resources[i].wire, p, n) == 0)
            return &resources[i];
    req_err(r, 404, "EClientNotFound", NULL, "no such resource in %s", r->path);
    return NULL;
}

/* ---- reading rows ------------------------------------------------------------------- */

static void select_cols(FILE *w, const struct resource *rs, bool full)
{
    const char *sep = "";
    for (const struct field *f = rs->fields; f->wire; f++) {
        if ((f->flags & F_HIDDEN) || (!full && (f->flags & F_NOLIST)))
            continue;
        fprintf(w, "%s%s", sep, f->col);
        sep = ", ";
    }
}

static json_t *row_json(const struct resource *rs, MYSQL_ROW row, bool full)
{
    json_t *o = json_object();
    int i = 0;
    for (const struct field *f = rs->fields; f->wire; f++) {
        if ((f->flags & F_HIDDEN) || (!full && (f->flags & F_NOLIST)))
            continue;
        const char *v = row[i++];
        json_t *j = NULL;
        if (!v) {
            j = f->type == FT_NBOOL ? json_false() : json_null();
        } else {
            switch (f->type) {
            case FT_INT:
                j = json_integer(strtoll(v, NULL, 10));
                break;
            case FT_BOOL:
                j = json_boolean(atoi(v) != 0);
                break;
            case FT_NBOOL:
                j = json_boolean(atoi(v) == 0);
                break;
            case FT_JSON:
                j = json_loads(v, JSON_DECODE_ANY, NULL);
                if (!j)
                    j = json_string(v);
                break;
            case FT_TIME: {
                char iso[40];
                snprintf(iso, sizeof iso, "%.10sT%sZ", v, strlen(v) > 11 ? v + 11 : "00:00:00");
                j = json_string(iso);
                break;
            }
            default:
                j = json_string(v);
            }
        }
        json_object_set_new(o, f->wire, j ? j : json_null());
    }
    return o;
}

/* WHERE for the list: the resource's own condition, then ?<field>=a,b,c
 * for every plain string field (DFF's commaArray "in" filters), then
 * Tandem's ?since= / ?until= time range. 0, or -1 after answering. */
static int list_where(struct srv_req *r, MYSQL *m, const struct resource *rs, FILE *w)
{
    const char *sep = " WHERE ";
    static const struct {
        const char *arg, *op;
    } range[] = {{"since", ">="}, {"until", "<"}};
    for (size_t i = 0; rs->time_col && i < sizeof range / sizeof range[0]; i++) {
        const char *v = req_query(r, range[i].arg);
        if (!v || !*v)
            continue;
        int64_t ms = parse_time_str_ms(v);
        if (ms < 0) {
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", range[i].arg),
                    "query argument '%s' must be an ISO-8601 time or unix seconds, got '%s'",
                    range[i].arg, v);
            return -1;
        }
        char dt[40];
        fprintf(w, "%s%s %s '%s'", sep, rs->time_col, range[i].op,
                sql_datetime_ms(ms, dt, sizeof dt));
        sep = " AND ";
    }
    if (rs->list_where) {
        fprintf(w, "%s%s", sep, rs->list_where);
        sep = " AND ";
    }
    for (const struct field *f = rs->fields; f->wire; f++) {
        if (f->type != FT_STR || (f->flags & (F_HIDDEN | F_NOLIST)))
            continue;
        const char *v = req_query(r, f->wire);
        if (!v)
            continue;
        char *in = NULL;
        size_t inl = 0;
        FILE *iw = open_memstream(&in, &inl);
        const char *p = v, *isep = "";
        for (;;) {
            size_t n = strcspn(p, ",");
            char *q = db_qn(m, p, n);
            fprintf(iw, "%s%s", isep, q);
            free(q);
            isep = ", ";
            if (!p[n])
                break;
            p += n + 1;
        }
        fclose(iw);
        /* DFF: ?rootTaskId=X lists the root task X itself and its subtasks */
        if (strcmp(f->col, "root_task_id") == 0)
            fprintf(w, "%s(id IN (%s) OR root_task_id IN (%s))", sep, in, in);
        else
            fprintf(w, "%s%s IN (%s)", sep, f->col, in);
        free(in);
        sep = " AND ";
    }
    return 0;
}

void h_res_list(struct srv_req *r)
{
    const struct resource *rs = res_of(r);
    if (!rs)
        return;
    long long size, page;
    if (req_query_int(r, "pageSize", 1, 1000, rs->page_default, &size) ||
        req_query_int(r, "pageNumber", 1, 1000000, 1, &page))
        return;
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    char *where = NULL, *cols = NULL;
    size_t wl = 0, cl = 0;
    FILE *w = open_memstream(&where, &wl);
    int bad = list_where(r, m, rs, w);
    fclose(w);
    if (bad) {
        free(where);
        return;
    }
    FILE *c = open_memstream(&cols, &cl);
    select_cols(c, rs, false);
    fclose(c);
    long long total = -1;
    struct sql_row1 cnt;
    MYSQL_RES *res = NULL;
    int counted = req_sql_row1(r, m, &cnt, "SELECT COUNT(*) FROM %s%s", rs->table, where);
    if (counted != -1) {
        total = counted && cnt.row[0] ? strtoll(cnt.row[0], NULL, 10) : 0;
        sql_row1_done(&cnt);
        char limit[64] = "";
        if (size > 0)
            snprintf(limit, sizeof limit, " LIMIT %lld, %lld", (page - 1) * size, size);
        res = req_sql_query(r, m, "SELECT %s FROM %s%s ORDER BY %s%s", cols, rs->table, where,
                            rs->order, limit);
    }
    free(where);
    free(cols);
    if (!res)
        return;
    json_t *a = json_array();
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)))
        json_array_append_new(a, row_json(rs, row, false));
    mysql_free_result(res);
    if (rs->rows_hook && rs->rows_hook(r, a) != 0) {
        json_decref(a);
        return;
    }
    long long psize = size > 0 ? size : total;
    long long pages = psize > 0 ? (total + psize - 1) / psize : 1;
    json_t *pi = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:b}", "pagingStyle", "normal", "pageSize",
                           (json_int_t)psize, "count", (json_int_t)json_array_size(a), "totalCount",
                           (json_int_t)total, "pageNumber", (json_int_t)page, "pageCount",
                           (json_int_t)(pages ? pages : 1), "isFirstPage", page == 1);
    req_ok_extra(r, a, json_pack("{s:o}", "pageInfo", pi));
}

/* 1 found (row answered or not), 0 not found (404 answered), -1 error answered. */
static int res_fetch(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id,
                     json_t **out)
{
    char *cols = NULL;
    size_t cl = 0;
    FILE *c = open_memstream(&cols, &cl);
    select_cols(c, rs, true);
    fclose(c);
    char *q = db_q(m, id);
    struct sql_row1 o;
    int found = req_sql_row1(r, m, &o, "SELECT %s FROM %s WHERE id = %s%s%s", cols, rs->table, q,
                             rs->list_where ? " AND " : "", rs->list_where ? rs->list_where : "");
    free(q);
    free(cols);
    if (found == -1)
        return -1;
    if (found && out)
        *out = row_json(rs, o.row, true);
    sql_row1_done(&o);
    if (!found) {
        req_err(r, 404, "EClientNotFound", json_pack("{s:s}", "id", id), "%s %s not found",
                rs->label, id);
        return 0;
    }
    return 1;
}

void h_res_get(struct srv_req *r)
{
    const struct resource *rs = res_of(r);
    MYSQL *m = rs ? srv_db(r) : NULL;
    json_t *o = NULL;
    if (!m || res_fetch(r, m, rs, r->params[0], &o) != 1)
        return;
    json_t *one = json_pack("[O]", o);
    if (rs->rows_hook && rs->rows_hook(r, one) != 0)
        json_decref(o);
    else
        req_ok(r, o);
    json_decref(one);
}

/* ---- writing ---------------------------------------------------------------------------- */

static int bad_field(struct srv_req *r, const struct field *f, const char *want)
{
    req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", f->wire),
            "field 'data.%s' must be %s", f->wire, want);
    return -1;
}

/* SQL literal for a field's value from the body; malloc'd, or NULL after answering. */
static char *field_literal(struct srv_req *r, MYSQL *m, const struct field *f, json_t *v)
{
    char buf[64];
    if (json_is_null(v)) {
        if (f->type == FT_NBOOL || f->type == FT_BOOL)
            return strdup(f->type == FT_NBOOL ? "1" : "0");
        if (f->flags & F_REQ) {
            bad_field(r, f, "set (it cannot be null)");
            return NULL;
        }
        return f->dflt ? strdup(f->dflt) : strdup("NULL");
    }
    switch (f->type) {
    case FT_STR:
        if (!json_is_string(v)) {
            bad_field(r, f, "a string");
            return NULL;
        }
        if (f->choices) {
            bool ok = false;
            for (const char *const *c = f->choices; *c && !ok; c++)
                ok = strcmp(*c, json_string_value(v)) == 0;
            if (!ok) {
                char list[256] = "";
                for (const char *const *c = f->choices; *c; c++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                             c == f->choices ? "" : ", ", *c);
                req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", f->wire),
                        "field 'data.%s' must be one of %s, got '%s'", f->wire, list,
                        json_string_value(v));
                return NULL;
            }
        }
        if ((f->flags & F_FUNCID) &&
            !func_id_split(json_string_value(v), NULL, 0, NULL, 0, NULL, 0)) {
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", f->wire),
                    "field 'data.%s' must be <script_set>__<script>.<func>, got '%s'", f->wire,
                    json_string_value(v));
            return NULL;
        }
        return db_q(m, json_string_value(v));
    case FT_INT:
        if (!json_is_integer(v)) {
            bad_field(r, f, "an integer");
            return NULL;
        }
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return strdup(buf);
    case FT_BOOL:
    case FT_NBOOL:
        if (!json_is_boolean(v)) {
            bad_field(r, f, "a boolean");
            return NULL;
        }
        return strdup((json_is_true(v) != 0) == (f->type == FT_BOOL) ? "1" : "0");
    case FT_JSON: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char *q = s ? db_q(m, s) : NULL;
        free(s);
        if (!q)
            req_err(r, 500, "EServerInternal", NULL, "cannot encode field '%s'", f->wire);
        return q;
    }
    case FT_TIME: {
        int64_t ms = parse_time_ms(v);
        if (ms < 0) {
            bad_field(r, f, "an ISO-8601 time or unix seconds");
            return NULL;
        }
        char dt[40];
        snprintf(buf, sizeof buf, "'%s'", sql_datetime_ms(ms, dt, sizeof dt));
        return strdup(buf);
    }
    case FT_PASSWD: {
        if (!json_is_string(v) || !*json_string_value(v)) {
            bad_field(r, f, "a non-empty string");
            return NULL;
        }
        char *h = userpw_hash(json_string_value(v));
        char *q = h ? db_q(m, h) : NULL;
        free(h);
        if (!q)
            req_err(r, 500, "EServerInternal", NULL, "cannot hash the password");
        return q;
    }
    }
    return NULL;
}

/* Runs a write; a duplicate key is 409 EClientDuplicated. 0 or -1 answered. */
static int write_sql(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *sql)
{
    if (mysql_real_query(m, sql, (unsigned long)strlen(sql)) == 0) {
        MYSQL_RES *res = mysql_store_result(m);
        if (res)
            mysql_free_result(res);
        return 0;
    }
    if (mysql_errno(m) == ER_DUP_ENTRY) {
        req_err(r, 409, "EClientDuplicated", NULL, "%s: %s", rs->label, mysql_error(m));
        return -1;
    }
    char *err = strdup(mysql_error(m));
    req_db_err(r, m, err);
    return -1;
}

static int bump(struct srv_req *r, const struct resource *rs, const char *what, const char *id)
{
    return rs->bumps ? req_gen_bump(r, rs->label, id, what) : 0;
}

/* The INSERT (add) or UPDATE (modify) of one item, checked field by field;
 * *sql malloc'd, or -1 after answering. */
static int build_write(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *id,
                       json_t *data, bool add, json_t *answer, char **sql)
{
    char *cols = NULL, *vals = NULL;
    size_t cl = 0, vl = 0;
    int ret = -1;
    *sql = NULL;
    FILE *cw = open_memstream(&cols, &cl), *vw = open_memstream(&vals, &vl);
    if (!cw || !vw) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        goto out;
    }
    char *qid = db_q(m, id);
    if (add) {
        fprintf(cw, "id");
        fprintf(vw, "%s", qid);
    } else {
        fprintf(cw, "id = id");
    }
    for (const struct field *f = rs->fields; f->wire; f++) {
        if (f->flags & F_RO)
            continue;
        json_t *v = json_object_get(data, f->wire);
        if (!v || (!add && (f->flags & F_NOMOD))) {
            if (add && (f->flags & F_REQ)) {
                req_err(r, 400, "EClientBadRequest",
                        json_pack("{s:s,s:s}", "field", f->wire, "id", id),
                        "%s %s: field 'data.%s' is required", rs->label, id, f->wire);
                goto out_q;
            }
            if (add && f->dflt)
                pair(cw, vw, add, f->col, f->dflt);
            continue;
        }
        char *lit = field_literal(r, m, f, v);
        if (!lit)
            goto out_q;
        pair(cw, vw, add, f->col, lit);
        free(lit);
    }
    if (rs->hook && rs->hook(r, m, rs, id, data, add, cw, vw, answer) != 0)
        goto out_q;
    if (rs->has_update && !add)
        fprintf(cw, ", updated_at = NOW(3)");
    fclose(cw);
    fclose(vw);
    cw = vw = NULL;
    int n = add ? asprintf(sql, "INSERT INTO %s (%s) VALUES (%s)", rs->table, cols, vals)
                : asprintf(sql, "UPDATE %s SET %s WHERE id = %s", rs->table, cols, qid);
    if (n < 0) {
        *sql = NULL;
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
    } else {
        ret = 0;
    }
out_q:
    free(qid);
out:
    if (cw)
        fclose(cw);
    if (vw)
        fclose(vw);
    free(cols);
    free(vals);
    return ret;
}

static void res_write(struct srv_req *r, bool add)
{
    const struct resource *rs = res_of(r);
    if (!rs)
        return;
    json_t *body = req_body_object(r, true);
    if (!body)
        return;
    json_t *data = NULL;
    char *sql = NULL;
    json_t *answer = json_object();
    if (req_field_obj(r, body, "data", true, &data))
        goto out;
    MYSQL *m = srv_db(r);
    if (!m)
        goto out;
    char id[ID_MAX + 64];
    if (add) {
        json_t *jid = json_object_get(data, "id");
        if (jid && !json_is_null(jid)) {
            if (!json_is_string(jid)) {
                req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "id"),
                        "field 'data.id' must be a string");
                goto out;
            }
            snprintf(id, sizeof id, "%s", json_string_value(jid));
        } else if (rs->id_prefix) {
            id_new(id, sizeof id, rs->id_prefix);
        } else {
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "id"),
                    "field 'data.id' is required for a %s", rs->label);
            goto out;
        }
    } else {
        snprintf(id, sizeof id, "%s", r->params[0]);
    }
    if (!rs->id_ok || !rs->id_ok(id)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "id", id), "bad %s id '%s'",
                rs->label, id);
        goto out;
    }
    if (!add && res_fetch(r, m, rs, id, NULL) != 1)
        goto out;
    if (build_write(r, m, rs, id, data, add, answer, &sql) != 0)
        goto out;
    if (write_sql(r, m, rs, sql) != 0 || bump(r, rs, add ? "added" : "modified", id) != 0)
        goto out;
    json_object_set_new(answer, "id", json_string(id));
    req_ok(r, answer);
    answer = NULL;
out:
    free(sql);
    json_decref(answer);
    json_decref(body);
}

void h_res_add(struct srv_req *r)
{
    res_write(r, true);
}

void h_res_modify(struct srv_req *r)
{
    res_write(r, false);
}

void h_res_delete(struct srv_req *r)
{
    const struct resource *rs = res_of(r);
    MYSQL *m = rs ? srv_db(r) : NULL;
    if (!m)
        return;
    const char *id = r->params[0];
    int found;
    if (rs->del) {
        found = rs->del(r, m, rs, id);
    } else {
        char *q = db_q(m, id);
        long long n = req_sql_exec(r, m, "DELETE FROM %s WHERE id = %s", rs->table, q);
        free(q);
        found = n < 0 ? -1 : n > 0;
    }
    if (found < 0)
        return;
    if (found == 0) {
        req_err(r, 404, "EClientNotFound", json_pack("{s:s}", "id", id), "%s %s not found",
                rs->label, id);
        return;
    }
    if (bump(r, rs, "deleted", id) == 0)
        req_ok(r, json_pack("{s:s}", "id", id));
}

/* ---- import of a DFF script-set export ------------------------------------------------ */

/* The export's sections (DFF's META.yaml, its legacy names second) and the
 * resource each is written as. Scripts come nested in their script set. */
static const struct {
    const char *key, *legacy, *wire;
} import_sections[] = {
    {"scriptSets", NULL, "script-sets"},     {"connectors", NULL, "connectors"},
    {"envVariables", NULL, "env-variables"}, {"syncAPIs", "authLinks", "sync-apis"},
    {"asyncAPIs", "batches", "async-apis"},  {"cronJobs", "crontabConfigs", "cron-jobs"},
};

static const struct resource *res_named(const char *wire)
{
    for (size_t i = 0; i < sizeof resources / sizeof resources[0]; i++)
        if (strcmp(resources[i].wire, wire) == 0)
            return &resources[i];
    return NULL;
}

/* DFF's export holds database rows: JSON columns as JSON text, booleans as
 * 0/1. Make them what the fields expect. */
static void import_normalize(const struct resource *rs, json_t *item)
{
    for (const struct field *f = rs->fields; f->wire; f++) {
        json_t *v = json_object_get(item, f->wire);
        if (!v)
            continue;
        if (f->type == FT_JSON && json_is_string(v)) {
            json_t *j = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
            if (j)
                json_object_set_new(item, f->wire, j);
        } else if ((f->type == FT_BOOL || f->type == FT_NBOOL) && json_is_integer(v)) {
            json_object_set_new(item, f->wire, json_boolean(json_integer_value(v) != 0));
        }
    }
}

int import_collect(struct srv_req *r, json_t *data, struct import_item **out, size_t *n)
{
    size_t cap = 16;
    *n = 0;
    *out = calloc(cap, sizeof **out);
    if (!*out) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        return -1;
    }
    for (size_t s = 0; s < sizeof import_sections / sizeof import_sections[0]; s++) {
        const char *key = import_sections[s].key;
        json_t *list = json_object_get(data, key);
        if (!list && import_sections[s].legacy)
            list = json_object_get(data, key = import_sections[s].legacy);
        if (!list || json_is_null(list))
            continue;
        if (!json_is_array(list)) {
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "section", key),
                    "malformed export: '%s' must be a list", key);
            return -1;
        }
        const struct resource *rs = res_named(import_sections[s].wire);
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item)
        {
            for (int nested = 0; nested < 2; nested++) {
                json_t *scripts = nested ? json_object_get(item, "scripts") : NULL;
                size_t nk = nested ? (json_is_array(scripts) ? json_array_size(scripts) : 0) : 1;
                for (size_t k = 0; k < nk; k++) {
                    json_t *it = nested ? json_array_get(scripts, k) : item;
                    const struct resource *irs = nested ? res_named("scripts") : rs;
                    const char *id = json_string_value(json_object_get(it, "id"));
                    if (!json_is_object(it) || !id || !irs->id_ok(id)) {
                        req_err(r, 400, "EClientBadRequest",
                                json_pack("{s:s,s:I}", "section", nested ? "scripts" : key, "index",
                                          (json_int_t)(nested ? k : i)),
                                "malformed export: %s item %zu has no valid id", key,
                                nested ? k : i);
                        return -1;
                    }
                    if (nested && !json_object_get(it, "codeDraft")) {
                        json_t *code = json_object_get(it, "code");
                        json_object_set_new(it, "codeDraft",
                                            code ? json_incref(code) : json_string(""));
                    }
                    import_normalize(irs, it);
                    if (*n == cap) {
                        struct import_item *nb = realloc(*out, 2 * cap * sizeof **out);
                        if (!nb) {
                            req_err(r, 500, "EServerInternal", NULL, "out of memory");
                            return -1;
                        }
                        *out = nb;
                        cap *= 2;
                    }
                    (*out)[(*n)++] = (struct import_item){irs, nested ? "scripts" : key, it, false};
                }
                if (!nested && !json_is_object(item))
                    break;
            }
        }
    }
    return 0;
}

/* POST /api/v1/script-sets/do/import {"data": <DFF export, as JSON>,
 * "overwrite": false}: all or nothing, in one transaction. Ids that exist
 * are a 409 listing them unless overwrite. Scripts arrive as drafts: the
 * answer's "publish" lists them (tandemctl import publishes them). */
void h_res_import(struct srv_req *r)
{
    json_t *body = req_body_object(r, true), *data = NULL;
    struct import_item *items = NULL;
    size_t n = 0;
    bool overwrite = false;
    json_t *conflicts = NULL, *imported = NULL, *publish = NULL, *warnings = NULL;
    if (!body)
        return;
    if (req_field_obj(r, body, "data", true, &data) ||
        req_field_bool(r, body, "overwrite", false, &overwrite) ||
        import_collect(r, data, &items, &n) != 0)
        goto out;
    MYSQL *m = srv_db(r);
    if (!m)
        goto out;
    conflicts = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(items[i].item, "id"));
        for (size_t j = 0; j < i; j++)
            if (items[j].rs->table == items[i].rs->table &&
                strcmp(id, json_string_value(json_object_get(items[j].item, "id"))) == 0) {
                req_err(r, 400, "EClientBadRequest",
                        json_pack("{s:s,s:s}", "section", items[i].section, "id", id),
                        "malformed export: %s %s appears twice", items[i].rs->label, id);
                goto out;
            }
        char *q = db_q(m, id);
        int found =
            req_sql_row1(r, m, NULL, "SELECT 1 FROM %s WHERE id = %s", items[i].rs->table, q);
        free(q);
        if (found == -1)
            goto out;
        items[i].exists = found;
        if (items[i].exists) {
            json_t *l = json_object_get(conflicts, items[i].section);
            if (!l)
                json_object_set_new(conflicts, items[i].section, l = json_array());
            json_array_append_new(l, json_string(id));
        }
    }
    size_t nconf = 0;
    for (size_t i = 0; i < n; i++)
        nconf += items[i].exists;
    if (nconf && !overwrite) {
        req_err(r, 409, "EBizRequestConflict", json_pack("{s:O}", "conflicts", conflicts),
                "the export names %zu item(s) that exist here; nothing was imported (send "
                "\"overwrite\": true to replace them)",
                nconf);
        goto out;
    }
    if (req_sql_exec(r, m, "START TRANSACTION") < 0)
        goto out;
    imported = json_object();
    publish = json_array();
    warnings = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(items[i].item, "id"));
        char *sql = NULL;
        json_t *ans = json_object();
        int rc = build_write(r, m, items[i].rs, id, items[i].item, !items[i].exists, ans, &sql);
        json_array_extend(warnings, json_object_get(ans, "warnings"));
        json_decref(ans);
        if (rc == 0)
            rc = write_sql(r, m, items[i].rs, sql);
        free(sql);
        if (rc != 0) {
            db_exec(m, NULL, "ROLLBACK");
            goto out;
        }
        json_t *l = json_object_get(imported, items[i].section);
        if (!l)
            json_object_set_new(imported, items[i].section, l = json_array());
        json_array_append_new(l, json_string(id));
        if (strcmp(items[i].section, "scripts") == 0)
            json_array_append_new(publish, json_string(id));
    }
    if (req_sql_exec(r, m, "COMMIT") < 0) {
        db_exec(m, NULL, "ROLLBACK");
        goto out;
    }
    if (bump(r, res_named("scripts"), "imported", "(export)") != 0)
        goto out;
    req_ok(r, json_pack("{s:O,s:O,s:O,s:O}", "imported", imported, "overwritten", conflicts,
                        "publish", publish, "warnings", warnings));
out:
    free(items);
    json_decref(conflicts);
    json_decref(imported);
    json_decref(publish);
    json_decref(warnings);
    json_decref(body);
}

/* ---- export in DFF's format -------------------------------------------------------------- */

/* Rows of a resource matching an SQL condition, as answered by do/get
 * (full) or do/list; NULL after answering. */
static json_t *rows_where(struct srv_req *r, MYSQL *m, const struct resource *rs, const char *where,
                          bool full)
{
    char *cols = NULL;
    size_t cl = 0;
    FILE *c = open_memstream(&cols, &cl);
    select_cols(c, rs, full);
    fclose(c);
    MYSQL_RES *res =
        req_sql_query(r, m, "SELECT %s FROM %s WHERE %s ORDER BY id", cols, rs->table, where);
    free(cols);
    if (!res)
        return NULL;
    json_t *a = json_array();
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)))
        json_array_append_new(a, row_json(rs, row, full));
    mysql_free_result(res);
    return a;
}

/* "'a', 'b'" from a JSON list of ids; NULL after answering. */
static char *sql_id_list(struct srv_req *r, MYSQL *m, json_t *ids, const char *field)
{
    if (!json_is_array(ids) || !json_array_size(ids)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", field),
                "field '%s' must be a non-empty list of ids", field);
        return NULL;
    }
    char *out = NULL;
    size_t ol = 0;
    FILE *w = open_memstream(&out, &ol);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!json_is_string(v)) {
            fclose(w);
            free(out);
            req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", field),
                    "field '%s' must list ids (strings)", field);
            return NULL;
        }
        char *q = db_q(m, json_string_value(v));
        fprintf(w, "%s%s", i ? ", " : "", q);
        free(q);
    }
    fclose(w);
    return out;
}

/* Secrets in an export: by default DFF's way, which never exports one (a
 * password variable becomes an empty string variable, a connector's secret
 * fields become empty "<field>Cipher"). withSecrets keeps them, still sealed
 * under secret.key, so a stack sharing that key (a restore, a move between
 * Tandem stacks) gets everything back; elsewhere the import refuses them. */
static int export_secrets(struct srv_req *r, MYSQL *m, const char *wire, json_t *rows,
                          bool with_secrets)
{
    size_t i;
    json_t *e;
    json_array_foreach(rows, i, e)
    {
        json_t *cfg = json_object_get(e, "configJSON");
        if (strcmp(wire, "connectors") == 0 && json_is_object(cfg))
            connector_export_config(cfg, with_secrets);
        if (strcmp(wire, "env-variables") != 0)
            continue;
        const char *t = json_string_value(json_object_get(e, "autoTypeCasting"));
        if (!t || strcmp(t, "password") != 0)
            continue;
        if (!with_secrets) {
            json_object_set_new(e, "autoTypeCasting", json_string("string"));
            json_object_set_new(e, "valueTEXT", json_string(""));
            continue;
        }
        char *q = db_q(m, json_string_value(json_object_get(e, "id")));
        struct sql_row1 o;
        int found = req_sql_row1(r, m, &o, "SELECT value FROM env_variable WHERE id = %s", q);
        free(q);
        if (found == -1)
            return -1;
        json_object_set_new(e, "valueTEXT", json_string(found && o.row[0] ? o.row[0] : ""));
        sql_row1_done(&o);
    }
    return 0;
}

/* Rows of a resource whose col_expr is in ids ("'a', 'b'"); NULL after answering. */
static json_t *rows_in(struct srv_req *r, MYSQL *m, const char *wire, const char *col_expr,
                       const char *ids)
{
    char *where = NULL;
    if (asprintf(&where, "%s IN (%s)", col_expr, ids) < 0) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        return NULL;
    }
    json_t *a = rows_where(r, m, res_named(wire), where, true);
    free(where);
    return a;
}

/* POST /api/v1/script-sets/do/export {"scriptSetIds":[…], "includeSyncAPIs",
 * "includeAsyncAPIs", "includeCronJobs" (or DFF's legacy names),
 * "envVariableIds":[…], "connectorIds":[…], "withSecrets"}: the export's
 * META as JSON, scripts with their code (tandemctl export writes DFF's zip). */
void h_res_export(struct srv_req *r)
{
    json_t *body = req_body_object(r, true);
    char *sets = NULL;
    json_t *out = NULL;
    bool with_secrets = false;
    if (!body)
        return;
    MYSQL *m = srv_db(r);
    if (!m || req_field_bool(r, body, "withSecrets", false, &with_secrets) ||
        !(sets = sql_id_list(r, m, json_object_get(body, "scriptSetIds"), "scriptSetIds")))
        goto out;
    out = json_object();
    json_t *ss = rows_in(r, m, "script-sets", "id", sets);
    if (!ss)
        goto out;
    json_object_set_new(out, "scriptSets", ss);
    size_t i;
    json_t *set;
    json_array_foreach(ss, i, set)
    {
        char *q = db_q(m, json_string_value(json_object_get(set, "id")));
        json_t *sc = rows_in(r, m, "scripts", "script_set_id", q);
        free(q);
        if (!sc)
            goto out;
        json_object_set_new(set, "scripts", sc);
    }
    /* what hangs off the sets' funcs, when asked for */
    static const struct {
        const char *flag, *legacy, *key, *wire;
    } parts[] = {{"includeSyncAPIs", "includeAuthLinks", "syncAPIs", "sync-apis"},
                 {"includeAsyncAPIs", "includeBatches", "asyncAPIs", "async-apis"},
                 {"includeCronJobs", "includeCrontabConfigs", "cronJobs", "cron-jobs"}};
    for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
        if (!json_is_true(json_object_get(body, parts[p].flag)) &&
            !json_is_true(json_object_get(body, parts[p].legacy)))
            continue;
        json_t *a = rows_in(r, m, parts[p].wire, "SUBSTRING_INDEX(func_id, '__', 1)", sets);
        if (!a)
            goto out;
        json_object_set_new(out, parts[p].key, a);
    }
    /* what is named by id */
    static const struct {
        const char *field, *key, *wire;
    } named[] = {{"envVariableIds", "envVariables", "env-variables"},
                 {"connectorIds", "connectors", "connectors"}};
    for (size_t p = 0; p < sizeof named / sizeof named[0]; p++) {
        json_t *ids = json_object_get(body, named[p].field);
        if (!ids || json_is_null(ids))
            continue;
        char *list = sql_id_list(r, m, ids, named[p].field);
        json_t *a = list ? rows_in(r, m, named[p].wire, "id", list) : NULL;
        free(list);
        if (!a)
            goto out;
        json_object_set_new(out, named[p].key, a);
        if (export_secrets(r, m, named[p].wire, a, with_secrets) != 0)
            goto out;
    }
    json_object_set_new(
        out, "extra", json_pack("{s:s,s:b}", "exportedBy", "tandem", "withSecrets", with_secrets));
    req_ok(r, out);
    out = NULL;
out:
    json_decref(out);
    free(sets);
    json_decref(body);
}
