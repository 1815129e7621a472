/* tandemctl: the admin CLI. main() resolves config, URL and key, then hands
 * the command to one row of the command table. Most commands are one HTTP
 * request to tandem-server; `db migrate` and `key create --bootstrap` talk to
 * MariaDB/Redis directly because they run before any server can. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "build_config.h"
#include "ctl.h"
#include "ctl_http.h"
#include "db.h"
#include "ids.h"
#include "rds.h"
#include "secret.h"
#include "sha256.h"

#define CALL_DEFAULT_TIMEOUT 30
#define HTTP_MARGIN_MS 15000 /* on top of a call's own timeout: queueing, server slack */

static const char usage_text[] =
    "usage: tandemctl [-c FILE] [--url URL] [--key KEY] [--json] [--cacert FILE|--insecure] CMD "
    "...\n"
    "\n"
    "  db migrate                          apply pending migrations (MariaDB, from the config)\n"
    "  db status                           count pending migrations\n"
    "  key create NAME [--scope admin|call] [--bootstrap]\n"
    "                                      new access key (--bootstrap: straight to MariaDB)\n"
    "  key list | key revoke ID\n"
    "  script push FILE --id SET__NAME [--title T]   save FILE as the script's draft\n"
    "  script publish ID                   publish the draft (refused with the SyntaxError line)\n"
    "  script list\n"
    "  func list [--script ID]\n"
    "  call FUNC_ID [--kwargs JSON] [--async] [--timeout N]\n"
    "  task show TASK_ID\n"
    "  api create-sync FUNC_ID [--kwargs JSON] [--need-key] [--title T]\n"
    "  api create-async FUNC_ID [--kwargs JSON] [--need-key] [--title T]\n"
    "  api list [sync|async]\n"
    "  cron ...  connector ...  status | switchover | maintenance on|off  doctor\n"
    "  user add|passwd USERNAME            console user; the password is read from stdin\n"
    "  user add USERNAME --role ROLE       sa (default) or admin administer; user, readonlyUser,\n"
    "                                      customUser may only call funcs and APIs\n"
    "  user disable|enable USERNAME\n"
    "  import FILE [--overwrite] [--no-publish]   a DFF script-set export (.zip), all or nothing\n"
    "  export FILE.zip SET... [--env ID,ID] [--connectors ID,ID] [--with-secrets]\n"
    "                                      the sets, their APIs and cron jobs, DFF's format\n"
    "\n"
    "URL: --url, else $TANDEM_URL, else ctl.url. Key: --key, else $TANDEM_KEY, else ctl.key_file.\n"
    "--json prints the answer's data as one JSON document. Exit: 0 ok, 1 refused/failed,\n"
    "2 usage, 3 server or backend unreachable.\n";

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
    va_list ap;
    fputs("tandemctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(tandemctl --help for usage)\n", stderr);
    return CTL_USAGE;
}

/* --- fallbacks for command families other files provide ---------------- */

__attribute__((weak)) int ctl_cron_main(struct ctl *c, int argc, char **argv)
{
    (void)c, (void)argc, (void)argv;
    fprintf(stderr, "tandemctl: cron is not part of this build\n");
    return CTL_USAGE;
}

__attribute__((weak)) int ctl_failover_main(struct ctl *c, const char *cmd, int argc, char **argv)
{
    (void)c, (void)argc, (void)argv;
    fprintf(stderr, "tandemctl: %s is not part of this build\n", cmd);
    return CTL_USAGE;
}

__attribute__((weak)) int ctl_doctor_main(struct ctl *c, int argc, char **argv)
{
    (void)c, (void)argc, (void)argv;
    fprintf(stderr, "tandemctl: doctor is not part of this build\n");
    return CTL_USAGE;
}

/* --- output helpers ----------------------------------------------------- */

static void print_json(const json_t *j, bool pretty)
{
    char *s = json_dumps(j, JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT));
    if (s)
        printf("%s\n", s);
    free(s);
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Any JSON scalar as short text for tables. */
static void jtext(const json_t *v, char *buf, size_t n)
{
    if (!v || json_is_null(v))
        snprintf(buf, n, "-");
    else if (json_is_string(v))
        snprintf(buf, n, "%s", json_string_value(v));
    else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(buf, n, "%s", s ? s : "?");
        free(s);
    }
}

/* --- requests ----------------------------------------------------------- */

/* One request; on success (2xx and ok:true or no envelope) returns CTL_OK
 * and *data (borrowed from *resp, which the caller decrefs). Otherwise
 * reports the error and returns its exit code. */
static int api(struct ctl *c, const char *method, const char *path, json_t *body, int timeout_ms,
               json_t **resp, json_t **data)
{
    struct ctl_http_resp r;
    char *b = NULL, *err = NULL;
    int rc;

    *resp = *data = NULL;
    {
        char h[256], p[16], base[256];
        if (ctl_http_parse_url(c->url, h, sizeof(h), p, sizeof(p), base, sizeof(base), &err) ==
            -1) {
            rc = usage_err("%s", err);
            free(err);
            return rc;
        }
    }
    if (body && !(b = json_dumps(body, JSON_COMPACT))) {
        fprintf(stderr, "tandemctl: cannot encode the request\n");
        return CTL_USAGE;
    }
    rc = ctl_http_request(c->url, c->key, method, path, b, b ? strlen(b) : 0, timeout_ms, &r, &err);
    free(b);
    if (rc == -1) {
        rc = ctl_report_error(c, 0, NULL, err);
        free(err);
        return rc;
    }
    *resp = r.json;
    r.json = NULL;
    if (r.status < 200 || r.status > 299 || !*resp ||
        (json_is_object(*resp) && json_is_false(json_object_get(*resp, "ok")))) {
        long st = r.status;
        if (!*resp && r.len && !c->json)
            fprintf(stderr, "tandemctl: HTTP %ld: %.300s\n", st, r.body);
        ctl_http_resp_free(&r);
        rc = ctl_report_error(c, st, *resp, NULL);
        if (st == 401 && !c->json && !c->key[0])
            fprintf(stderr,
                    "tandemctl: no access key: give --key, set TANDEM_KEY or ctl.key_file\n");
        return rc;
    }
    ctl_http_resp_free(&r);
    *data = json_is_object(*resp) && json_object_get(*resp, "ok") ? json_object_get(*resp, "data")
                                                                  : *resp;
    return CTL_OK;
}

/* Path segment from user input: reject what would change the request's meaning. */
static int check_id(const char *what, const char *id)
{
    if (!id_valid(id))
        return usage_err("%s '%s' is not a valid id ([A-Za-z0-9_.-], up to %d characters)", what,
                         id, ID_MAX - 1);
    return CTL_OK;
}

static int parse_kwargs(const char *s, json_t **out)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j)
        return usage_err("--kwargs: invalid JSON at line %d column %d: %s", je.line, je.column,
                         je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return usage_err("--kwargs: must be a JSON object like {\"x\": 1}");
    }
    *out = j;
    return CTL_OK;
}

/* Options after a command word: a tiny getopt_long wrapper that reports in
 * our words and leaves positionals in pos[]. */
struct copt {
    const char *name;
    bool has_arg;
    const char **val; /* for has_arg */
    bool *flag;       /* otherwise */
};

static int parse_cmd_opts(const char *cmd, int argc, char **argv, struct copt *opts,
                          const char **pos, int maxpos, int *npos)
{
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            const char *eq = strchr(a, '=');
            size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            struct copt *o = NULL;
            for (struct copt *p = opts; p && p->name; p++)
                if (strlen(p->name) == nl && strncmp(p->name, a + 2, nl) == 0)
                    o = p;
            if (!o)
                return usage_err("%s: unknown option '%s'", cmd, a);
            if (o->has_arg) {
                if (eq)
                    *o->val = eq + 1;
                else if (i + 1 < argc)
                    *o->val = argv[++i];
                else
                    return usage_err("%s: option --%s needs a value", cmd, o->name);
            } else {
                if (eq)
                    return usage_err("%s: option --%s takes no value", cmd, o->name);
                *o->flag = true;
            }
        } else {
            if (*npos >= maxpos)
                return usage_err("%s: unexpected argument '%s'", cmd, a);
            pos[(*npos)++] = a;
        }
    }
    return CTL_OK;
}

/* --- db ----------------------------------------------------------------- */

static int need_conf(struct ctl *c, const char *what)
{
    if (!c->have_conf)
        return usage_err(
            "%s needs a config file with the MariaDB/Redis settings (-c FILE or $TANDEM_CONFIG)",
            what);
    return CTL_OK;
}

static int cmd_db(struct ctl *c, int argc, char **argv)
{
    MYSQL *m;
    char *err = NULL;
    int n = 0, rc;
    bool migrate;

    if (argc != 1 || (strcmp(argv[0], "migrate") && strcmp(argv[0], "status")))
        return usage_err("usage: tandemctl db migrate|status");
    if ((rc = need_conf(c, "db")) != CTL_OK)
        return rc;
    migrate = !strcmp(argv[0], "migrate");
    m = db_connect(&c->conf, 10, &err);
    if (!m) {
        fprintf(stderr, "tandemctl: db %s: %s\n", argv[0], err ? err : "cannot connect to MariaDB");
        free(err);
        return CTL_UNREACHABLE;
    }
    rc = migrate ? db_migrate(m, c->conf.migrations_dir, &n, &err)
                 : db_migrations_pending(m, c->conf.migrations_dir, &n, &err);
    mysql_close(m);
    if (rc == -1) {
        fprintf(stderr, "tandemctl: db %s (%s): %s\n", argv[0], c->conf.migrations_dir,
                err ? err : "failed");
        free(err);
        return CTL_REFUSED;
    }
    if (c->json)
        printf("{\"%s\":%d}\n", migrate ? "applied" : "pending", n);
    else if (migrate)
        printf("applied %d migration%s\n", n, n == 1 ? "" : "s");
    else
        printf("%d migration%s pending\n", n, n == 1 ? "" : "s");
    return CTL_OK;
}

/* --- key ---------------------------------------------------------------- */

static void print_new_key(struct ctl *c, const char *id, const char *name, const char *secret)
{
    if (c->json) {
        json_t *o = json_pack("{s:s,s:s,s:s}", "id", id, "name", name, "secret", secret);
        print_json(o, false);
        json_decref(o);
    } else {
        printf("KEY=%s\nID=%s\n", secret, id);
    }
}

static int key_bootstrap(struct ctl *c, const char *name)
{
    char id[ID_MAX], secret[128], hash[65], gen[320];
    char *err = NULL, *qid, *qname, *qhash;
    MYSQL *m;
    redisContext *rc;
    redisReply *r;
    int ret;

    if ((ret = need_conf(c, "key create --bootstrap")) != CTL_OK)
        return ret;
    m = db_connect(&c->conf, 10, &err);
    if (!m) {
        fprintf(stderr, "tandemctl: key create --bootstrap: %s\n",
                err ? err : "cannot connect to MariaDB");
        free(err);
        return CTL_UNREACHABLE;
    }
    id_new(id, sizeof(id), "ak-");
    secret_new(secret, sizeof(secret));
    sha256_hex(secret, strlen(secret), hash);
    qid = db_q(m, id);
    qname = db_q(m, name);
    qhash = db_q(m, hash);
    /* sealed too, so the key can also sign requests (X-Dff-Ak-*); without
     * secret.key it works as a Bearer key only */
    char *sealed = NULL, *qsealed;
    if (secret_seal(c->conf.secret_key, secret, &sealed, NULL) != 0)
        sealed = NULL;
    qsealed = db_q(m, sealed);
    ret = db_exec(m, &err,
                  "INSERT INTO access_key (id, name, secret_sha256, secret_sealed) "
                  "VALUES (%s, %s, %s, %s)",
                  qid, qname, qhash, qsealed);
    free(sealed);
    free(qsealed);
    free(qid);
    free(qname);
    free(qhash);
    mysql_close(m);
    if (ret == -1) {
        fprintf(stderr, "tandemctl: key create --bootstrap: storing the key: %s\n",
                err ? err : "failed");
        free(err);
        return CTL_REFUSED;
    }
    /* The key is stored; a running server only sees it once gen moves. */
    rc = rds_connect(&c->conf, 5000, &err);
    if (!rc) {
        print_new_key(c, id, name, secret);
        fprintf(stderr,
                "tandemctl: key stored, but Redis is unreachable (%s): running servers "
                "will not see it until the next change\n",
                err ? err : "?");
        free(err);
        return CTL_UNREACHABLE;
    }
    rds_key(gen, sizeof(gen), &c->conf, "gen");
    r = redisCommand(rc, "INCR %s", gen);
    ret = r && r->type == REDIS_REPLY_INTEGER ? CTL_OK : CTL_UNREACHABLE;
    print_new_key(c, id, name, secret);
    if (ret != CTL_OK)
        fprintf(stderr, "tandemctl: key stored, but INCR %s failed (%s)\n", gen,
                r && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr);
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return ret;
}

static int cmd_key(struct ctl *c, int argc, char **argv)
{
    json_t *resp = NULL, *data = NULL;
    const char *pos[2];
    int npos, rc;
    const char *scope = NULL;
    bool bootstrap = false;
    struct copt opts[] = {{"bootstrap", false, NULL, &bootstrap},
                          {"scope", true, &scope, NULL},
                          {NULL, false, NULL, NULL}};

    if (argc < 1)
        return usage_err("usage: tandemctl key create NAME [--scope admin|call] [--bootstrap] | "
                         "list | revoke ID");
    if ((rc = parse_cmd_opts("key", argc - 1, argv + 1, opts, pos, 2, &npos)) != CTL_OK)
        return rc;
    if (!strcmp(argv[0], "create")) {
        if (npos != 1 || !pos[0][0])
            return usage_err("usage: tandemctl key create NAME [--bootstrap]");
        if (strlen(pos[0]) > 128)
            return usage_err("key name longer than 128 characters");
        if (scope && strcmp(scope, "admin") && strcmp(scope, "call"))
            return usage_err("--scope '%s': admin (everything) or call (call funcs and APIs only)",
                             scope);
        if (bootstrap && scope)
            return usage_err("--bootstrap makes an admin key; --scope goes without it");
        if (bootstrap)
            return key_bootstrap(c, pos[0]);
        json_t *body =
            json_pack("{s:{s:s,s:s}}", "data", "name", pos[0], "scope", scope ? scope : "admin");
        rc = api(c, "POST", "/api/v1/access-keys/do/add", body, 0, &resp, &data);
        json_decref(body);
        if (rc == CTL_OK)
            print_new_key(c, jstr(data, "id"), pos[0], jstr(data, "secret"));
    } else if (bootstrap || scope) {
        return usage_err("--bootstrap and --scope only go with key create");
    } else if (!strcmp(argv[0], "list")) {
        if (npos)
            return usage_err("usage: tandemctl key list");
        rc = api(c, "GET", "/api/v1/access-keys/do/list", NULL, 0, &resp, &data);
        if (rc == CTL_OK && c->json)
            print_json(data, false);
        else if (rc == CTL_OK) {
            size_t i;
            json_t *k;
            printf("%-30s %-20s %-6s %s\n", "ID", "NAME", "SCOPE", "CREATED");
            json_array_foreach(data, i, k)
            {
                char cr[64];
                jtext(json_object_get(k, "createTime"), cr, sizeof(cr));
                printf("%-30s %-20s %-6s %s\n", jstr(k, "id"), jstr(k, "name"), jstr(k, "scope"),
                       cr);
            }
        }
    } else if (!strcmp(argv[0], "revoke")) {
        char path[128];
        if (npos != 1)
            return usage_err("usage: tandemctl key revoke ID");
        if ((rc = check_id("key id", pos[0])) != CTL_OK)
            return rc;
        snprintf(path, sizeof(path), "/api/v1/access-keys/%s/do/delete", pos[0]);
        rc = api(c, "GET", path, NULL, 0, &resp, &data);
        if (rc == CTL_OK) {
            if (c->json)
                printf("{\"id\":\"%s\",\"revoked\":true}\n", pos[0]);
            else
                printf("revoked %s\n", pos[0]);
        }
    } else {
        return usage_err("key: unknown subcommand '%s' (create, list, revoke)", argv[0]);
    }
    json_decref(resp);
    return rc;
}

/* --- script ------------------------------------------------------------- */

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (!f)
        return usage_err("cannot read '%s': %s", path, strerror(errno));
    for (;;) {
        if (cap - n < 65536) {
            char *nb;
            cap = cap ? cap * 2 : 65536;
            if (cap > 64u * 1024 * 1024) {
                fclose(f);
                free(buf);
                return usage_err("'%s' is larger than 64 MiB", path);
            }
            if (!(nb = realloc(buf, cap + 1))) {
                fclose(f);
                free(buf);
                return usage_err("out of memory reading '%s'", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        free(buf);
        return usage_err("reading '%s': %s", path, strerror(e));
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return CTL_OK;
}

static int script_publish(struct ctl *c, const char *id)
{
    struct ctl_http_resp r;
    char path[256], *err = NULL;
    int rc;

    snprintf(path, sizeof(path), "/api/v1/scripts/%s/do/publish", id);
    /* publishing waits for a worker to inspect the code */
    rc = ctl_http_request(c->url, c->key, "POST", path, NULL, 0, 60000 + HTTP_MARGIN_MS, &r, &err);
    if (rc == -1) {
        rc = ctl_report_error(c, 0, NULL, err);
        free(err);
        return rc;
    }
    if (r.status >= 200 && r.status < 300 && json_is_object(r.json) &&
        !json_is_false(json_object_get(r.json, "ok"))) {
        json_t *data = json_object_get(r.json, "data"), *funcs = json_object_get(data, "funcs"), *f;
        size_t i;
        if (c->json) {
            print_json(data, false);
        } else {
            printf("published %s version %lld:", id,
                   (long long)json_integer_value(json_object_get(data, "publish_version")));
            json_array_foreach(funcs, i, f)
            {
                printf("%s %s", i ? "," : "", jstr(f, "name"));
            }
            printf("%s\n", json_array_size(funcs) ? "" : " (no functions)");
        }
        ctl_http_resp_free(&r);
        return CTL_OK;
    }
    if (!c->json && json_is_object(r.json) &&
        !strcmp(jstr(r.json, "reason"), "EScriptSyntaxError")) {
        /* the message already reads "SyntaxError at line N: msg" */
        json_t *line = json_object_get(json_object_get(r.json, "detail"), "line");
        const char *msg = jstr(r.json, "message");
        if (json_is_integer(line) && !strstr(msg, "line"))
            fprintf(stderr, "tandemctl: %s: publish refused: line %lld: %s\n", id,
                    (long long)json_integer_value(line), msg);
        else
            fprintf(stderr, "tandemctl: %s: publish refused: %s\n", id, msg);
        ctl_http_resp_free(&r);
        return CTL_REFUSED;
    }
    rc = ctl_report_error(c, r.status, r.json, NULL);
    ctl_http_resp_free(&r);
    return rc;
}

/* DFF has add and modify, no upsert: the set is added unless it exists,
 * the script modified, and added when modify finds none. */
static int script_save(struct ctl *c, const char *id, json_t *body, json_t **resp, json_t **data)
{
    char path[256], set[128];
    long st;
    char *err = NULL;
    json_t *r = NULL;
    snprintf(set, sizeof(set), "%.*s", (int)(strstr(id, "__") - id), id);
    json_t *sb = json_pack("{s:{s:s}}", "data", "id", set);
    int rc = ctl_http(c, "POST", "/api/v1/script-sets/do/add", sb, &st, &r, &err);
    json_decref(sb);
    json_decref(r);
    if (rc == -1) {
        rc = ctl_report_error(c, 0, NULL, err);
        free(err);
        return rc;
    }
    snprintf(path, sizeof(path), "/api/v1/scripts/%s/do/modify", id);
    r = NULL;
    rc = ctl_http(c, "POST", path, body, &st, &r, &err);
    if (rc == -1) {
        rc = ctl_report_error(c, 0, NULL, err);
        free(err);
        return rc;
    }
    if (st == 404) {
        json_decref(r);
        json_object_set_new(json_object_get(body, "data"), "id", json_string(id));
        return api(c, "POST", "/api/v1/scripts/do/add", body, 0, resp, data);
    }
    if (st < 200 || st > 299 || !json_is_object(r)) {
        rc = ctl_report_error(c, st, r, NULL);
        json_decref(r);
        return rc;
    }
    *resp = r;
    *data = json_object_get(r, "data");
    return CTL_OK;
}

static int cmd_script(struct ctl *c, int argc, char **argv)
{
    json_t *resp = NULL, *data = NULL;
    const char *pos[2], *id = NULL, *title = NULL;
    int npos, rc;
    struct copt opts[] = {
        {"id", true, &id, NULL}, {"title", true, &title, NULL}, {NULL, false, NULL, NULL}};

    if (argc < 1)
        return usage_err("usage: tandemctl script push FILE --id SET__NAME | publish ID | list | "
                         "run ID FUNC [--kwargs JSON]");
    if (!strcmp(argv[0], "run"))
        return ctl_script_run(c, argc - 1, argv + 1);
    if ((rc = parse_cmd_opts("script", argc - 1, argv + 1, opts, pos, 2, &npos)) != CTL_OK)
        return rc;
    if (!strcmp(argv[0], "push")) {
        char *code = NULL;
        size_t len = 0;
        json_t *body;
        if (npos != 1 || !id)
            return usage_err("usage: tandemctl script push FILE --id SET__NAME [--title T]");
        if (!script_id_valid(id))
            return usage_err("--id '%s': a script id is SET__NAME, letters, digits and _", id);
        if ((rc = read_file(pos[0], &code, &len)) != CTL_OK)
            return rc;
        body = json_pack("{s:{s:s%}}", "data", "codeDraft", code, len);
        free(code);
        if (!body)
            return usage_err("'%s' is not valid UTF-8 text", pos[0]);
        if (title)
            json_object_set_new(json_object_get(body, "data"), "title", json_string(title));
        rc = script_save(c, id, body, &resp, &data);
        json_decref(body);
        if (rc == CTL_OK) {
            if (c->json)
                print_json(data ? data : json_null(), false);
            else
                printf("saved draft of %s (%zu bytes)\n", id, len);
        }
    } else if (!strcmp(argv[0], "publish")) {
        if (npos != 1 || id || title)
            return usage_err("usage: tandemctl script publish ID");
        if (!script_id_valid(pos[0]))
            return usage_err("'%s' is not a script id (SET__NAME)", pos[0]);
        return script_publish(c, pos[0]);
    } else if (!strcmp(argv[0], "list")) {
        if (npos || id || title)
            return usage_err("usage: tandemctl script list");
        rc = api(c, "GET", "/api/v1/scripts/do/list", NULL, 0, &resp, &data);
        if (rc == CTL_OK && c->json)
            print_json(data, false);
        else if (rc == CTL_OK) {
            size_t i;
            json_t *s;
            printf("%-40s %-8s %s\n", "ID", "VERSION", "TITLE");
            json_array_foreach(data, i, s)
            {
                char v[32];
                jtext(json_object_get(s, "publishVersion"), v, sizeof(v));
                printf("%-40s %-8s %s\n", jstr(s, "id"), v, jstr(s, "title"));
            }
        }
    } else {
        return usage_err("script: unknown subcommand '%s' (push, publish, list)", argv[0]);
    }
    json_decref(resp);
    return rc;
}

/* --- import ------------------------------------------------------------- */

/* DFF's export is a zip of META.yaml and the script files; Python (which the
 * worker embeds anyway) reads it into the JSON the server imports. */
static const char dff_export_to_json[] =
    "import sys, json, zipfile\n"
    "try:\n"
    "    import yaml\n"
    "except ImportError:\n"
    "    sys.exit('reading a DFF export needs python3-yaml')\n"
    "path = sys.argv[1]\n"
    "try:\n"
    "    z = zipfile.ZipFile(path)\n"
    "    files = {n: z.read(n).decode('utf-8') for n in z.namelist() if not n.endswith('/')}\n"
    "except Exception as e:\n"
    "    sys.exit('%s is not a DFF export (zip): %s' % (path, e))\n"
    "metas = [n for n in files if n == 'META.yaml' or n.endswith('/META.yaml')]\n"
    "if not metas:\n"
    "    sys.exit('%s has no META.yaml: not a DFF script-set export' % path)\n"
    "root = metas[0][:-len('META.yaml')]\n"
    "try:\n"
    "    d = yaml.safe_load(files[metas[0]]) or {}\n"
    "except Exception as e:\n"
    "    sys.exit('%s: META.yaml: %s' % (path, e))\n"
    "for s in d.get('scriptSets') or []:\n"
    "    for sc in s.get('scripts') or []:\n"
    "        name = str(sc.get('id', '')).split('__', 1)[-1]\n"
    "        for ext in ('.py', ''):\n"
    "            p = '%sscript-sets/%s/%s%s' % (root, s.get('id'), name, ext)\n"
    "            if p in files:\n"
    "                sc['code'] = files[p]\n"
    "                break\n"
    "json.dump(d, sys.stdout, default=str)\n";

static int export_to_json(const char *path, json_t **out)
{
    int fds[2];
    if (pipe(fds) == -1)
        return usage_err("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == -1)
        return usage_err("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", "-c", dff_export_to_json, path, (char *)NULL);
        fprintf(stderr, "tandemctl import: cannot run python3: %s\n", strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    json_error_t je;
    *out = f ? json_loadf(f, 0, &je) : NULL;
    if (f)
        fclose(f);
    int st = 0;
    while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !*out) {
        json_decref(*out);
        *out = NULL;
        fprintf(stderr, "tandemctl import: cannot read %s (see above)\n", path);
        return CTL_USAGE;
    }
    return CTL_OK;
}

static int cmd_import(struct ctl *c, int argc, char **argv)
{
    json_t *resp = NULL, *data = NULL, *doc = NULL;
    const char *pos[1];
    bool overwrite = false, no_publish = false;
    int npos, rc;
    struct copt opts[] = {{"overwrite", false, NULL, &overwrite},
                          {"no-publish", false, NULL, &no_publish},
                          {NULL, false, NULL, NULL}};

    if ((rc = parse_cmd_opts("import", argc, argv, opts, pos, 1, &npos)) != CTL_OK)
        return rc;
    if (npos != 1)
        return usage_err("usage: tandemctl import FILE [--overwrite] [--no-publish]  (FILE: a "
                         "DFF script-set export .zip, or its META as JSON)");
    size_t len = strlen(pos[0]);
    if (len > 4 && !strcmp(pos[0] + len - 4, ".zip")) {
        if ((rc = export_to_json(pos[0], &doc)) != CTL_OK)
            return rc;
    } else {
        json_error_t je;
        doc = json_load_file(pos[0], 0, &je);
        if (!doc)
            return usage_err("%s: line %d: %s", pos[0], je.line, je.text);
    }
    json_t *body = json_pack("{s:o,s:b}", "data", doc, "overwrite", overwrite);
    rc = api(c, "POST", "/api/v1/script-sets/do/import", body, 0, &resp, &data);
    json_decref(body);
    if (rc != CTL_OK) {
        json_decref(resp);
        return rc;
    }
    size_t i;
    json_t *v;
    if (c->json) {
        print_json(data, false);
    } else {
        const char *k;
        json_object_foreach(json_object_get(data, "imported"), k, v)
        {
            printf("imported %zu %s\n", json_array_size(v), k);
        }
        json_array_foreach(json_object_get(data, "warnings"), i, v)
        {
            fprintf(stderr, "tandemctl import: warning: %s\n", json_string_value(v));
        }
    }
    if (!no_publish)
        json_array_foreach(json_object_get(data, "publish"), i, v)
        {
            int prc = script_publish(c, json_string_value(v));
            if (prc != CTL_OK)
                rc = prc;
        }
    json_decref(resp);
    return rc;
}

/* The zip DFF's console imports: META.yaml plus one file per script. */
static const char json_to_dff_export[] =
    "import sys, json, zipfile\n"
    "try:\n"
    "    import yaml\n"
    "except ImportError:\n"
    "    sys.exit('writing a DFF export needs python3-yaml')\n"
    "d = json.load(sys.stdin)\n"
    "with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n"
    "    for s in d.get('scriptSets') or []:\n"
    "        for sc in s.get('scripts') or []:\n"
    "            code = sc.pop('code', None)\n"
    "            draft = sc.pop('codeDraft', None)\n"
    "            name = sc['id'].split('__', 1)[-1]\n"
    "            z.writestr('script-sets/%s/%s.py' % (s['id'], name),\n"
    "                       code if code is not None else (draft or ''))\n"
    "    z.writestr('META.yaml', yaml.safe_dump(d, allow_unicode=True, sort_keys=False))\n";

/* "a,b,c" as a JSON list; NULL for NULL. */
static json_t *id_list(const char *csv)
{
    if (!csv)
        return NULL;
    json_t *a = json_array();
    for (const char *p = csv; *p;) {
        size_t n = strcspn(p, ",");
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    return a;
}

static int cmd_export(struct ctl *c, int argc, char **argv)
{
    json_t *resp = NULL, *data = NULL;
    const char *pos[64], *env = NULL, *conns = NULL;
    bool secrets = false;
    int npos, rc;
    struct copt opts[] = {{"env", true, &env, NULL},
                          {"connectors", true, &conns, NULL},
                          {"with-secrets", false, NULL, &secrets},
                          {NULL, false, NULL, NULL}};

    if ((rc = parse_cmd_opts("export", argc, argv, opts, pos, 64, &npos)) != CTL_OK)
        return rc;
    if (npos < 2)
        return usage_err("usage: tandemctl export FILE.zip SCRIPT_SET... [--env ID,ID] "
                         "[--connectors ID,ID] [--with-secrets]  (with the sets' sync/async APIs "
                         "and cron jobs; --with-secrets keeps passwords, sealed under secret.key)");
    json_t *sets = json_array();
    for (int i = 1; i < npos; i++)
        json_array_append_new(sets, json_string(pos[i]));
    json_t *body =
        json_pack("{s:o,s:b,s:b,s:b,s:o?,s:o?,s:b}", "scriptSetIds", sets, "includeSyncAPIs", 1,
                  "includeAsyncAPIs", 1, "includeCronJobs", 1, "envVariableIds", id_list(env),
                  "connectorIds", id_list(conns), "withSecrets", secrets);
    rc = api(c, "POST", "/api/v1/script-sets/do/export", body, 0, &resp, &data);
    json_decref(body);
    if (rc != CTL_OK) {
        json_decref(resp);
        return rc;
    }
    char *doc = json_dumps(data, JSON_COMPACT);
    json_decref(resp);
    int fds[2];
    if (!doc || pipe(fds) == -1) {
        free(doc);
        return usage_err("cannot hand the export to python3");
    }
    pid_t pid = fork();
    if (pid == -1) {
        free(doc);
        return usage_err("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", "-c", json_to_dff_export, pos[0], (char *)NULL);
        fprintf(stderr, "tandemctl export: cannot run python3: %s\n", strerror(errno));
        _exit(127);
    }
    close(fds[0]);
    size_t len = strlen(doc), off = 0;
    while (off < len) {
        ssize_t w = write(fds[1], doc + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fds[1]);
    free(doc);
    int st = 0;
    while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "tandemctl export: writing %s failed (see above)\n", pos[0]);
        return CTL_REFUSED;
    }
    if (!c->json)
        printf("exported to %s\n", pos[0]);
    return CTL_OK;
}

/* --- func, call, task --------------------------------------------------- */

static int cmd_func(struct ctl *c, int argc, char **argv)
{
    json_t *resp = NULL, *data = NULL;
    const char *pos[1], *script = NULL;
    char path[256];
    int npos, rc;
    struct copt opts[] = {{"script", true, &script, NULL}, {NULL, false, NULL, NULL}};

    if (argc < 1 || strcmp(argv[0], "list"))
        return usage_err("usage: tandemctl func list [--script ID]");
    if ((rc = parse_cmd_opts("func list", argc - 1, argv + 1, opts, pos, 0, &npos)) != CTL_OK)
        return rc;
    if (script && !script_id_valid(script))
        return usage_err("--script '%s' is not a script id (SET__NAME)", script);
    snprintf(path, sizeof(path), "/api/v1/funcs/do/list%s%s", script ? "?scriptId=" : "",
             script ? script : "");
    rc = api(c, "GET", path, NULL, 0, &resp, &data);
    if (rc == CTL_OK && c->json)
        print_json(data, false);
    else if (rc == CTL_OK) {
        size_t i;
        json_t *f;
        printf("%-44s %-8s %-24s %s\n", "ID", "TIMEOUT", "ARGS", "TITLE");
        json_array_foreach(data, i, f)
        {
            char to[32], args[256];
            jtext(json_object_get(f, "timeout"), to, sizeof(to));
            jtext(json_object_get(f, "argsJSON"), args, sizeof(args));
            printf("%-44s %-8s %-24s %s\n", jstr(f, "id"), to, args, jstr(f, "title"));
        }
    }
    json_decref(resp);
    return rc;
}

static int parse_timeout(const char *s, int *out)
{
    char *e;
    long v;
    errno = 0;
    v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < 1 || v > 3600)
        return usage_err("--timeout '%s': whole seconds from 1 to 3600", s);
    *out = (int)v;
    return CTL_OK;
}

static int cmd_call(struct ctl *c, int argc, char **argv)
{
    json_t *resp = NULL, *data = NULL, *kwargs = NULL, *body;
    const char *pos[1], *kw = NULL, *to = NULL;
    bool async = false;
    int npos, rc, timeout = 0;
    char path[320];
    struct copt opts[] = {{"kwargs", true, &kw, NULL},
                          {"timeout", true, &to, NULL},
                          {"async", false, NULL, &async},
                          {NULL, false, NULL, NULL}};

    if ((rc = parse_cmd_opts("call", argc, argv, opts, pos, 1, &npos)) != CTL_OK)
        return rc;
    if (npos != 1)
        return usage_err("usage: tandemctl call FUNC_ID [--kwargs JSON] [--async] [--timeout N]");
    if (!func_id_split(pos[0], NULL, 0, NULL, 0, NULL, 0))
        return usage_err("'%s' is not a func id (SET__SCRIPT.FUNC)", pos[0]);
    if (to && (rc = parse_timeout(to, &timeout)) != CTL_OK)
        return rc;
    if (kw && (rc = parse_kwargs(kw, &kwargs)) != CTL_OK)
        return rc;
    body = json_pack("{s:o,s:{s:b}}", "kwargs", kwargs ? kwargs : json_object(), "options", "async",
                     async);
    if (timeout)
        json_object_set_new(json_object_get(body, "options"), "timeout", json_integer(timeout));
    snprintf(path, sizeof(path), "/api/v1/func/%s", pos[0]);
    rc = api(c, "POST", path, body,
             (async ? 0 : (timeout ? timeout : CALL_DEFAULT_TIMEOUT) * 1000) + HTTP_MARGIN_MS +
                 20000,
             &resp, &data);
    json_decref(body);
    if (rc == CTL_OK) {
        if (c->json)
            print_json(data, false);
        else if (async)
            printf("%s\n", jstr(data, "id"));
        else
            print_json(json_object_get(data, "result") ? json_object_get(data, "result")
                                                       : json_null(),
                       true);
    }
    json_decref(resp);
    return rc;
}

static int cmd_task(struct ctl *c, int argc, char **argv)
{
    json_t *resp = NULL, *data = NULL;
    char path[128];
    int rc;

    if (argc != 2 || strcmp(argv[0], "show"))
        return usage_err("usage: tandemctl task show TASK_ID");
    if ((rc = check_id("task id", argv[1])) != CTL_OK)
        return rc;
    snprintf(path, sizeof(path), "/api/v1/tasks/%s", argv[1]);
    rc = api(c, "GET", path, NULL, 0, &resp, &data);
    if (rc == CTL_OK)
        print_json(data, !c->json);
    json_decref(resp);
    return rc;
}

/* --- api ---------------------------------------------------------------- */

static int cmd_api(struct ctl *c, int argc, char **argv)
{
    json_t *resp = NULL, *data = NULL, *kwargs = NULL, *body;
    const char *pos[1], *kw = NULL, *title = NULL;
    bool need_key = false, sync;
    int npos, rc;
    struct copt opts[] = {{"kwargs", true, &kw, NULL},
                          {"title", true, &title, NULL},
                          {"need-key", false, NULL, &need_key},
                          {NULL, false, NULL, NULL}};

    if (argc < 1)
        return usage_err(
            "usage: tandemctl api create-sync|create-async FUNC_ID ... | api list [sync|async]");
    if (!strcmp(argv[0], "list")) {
        const char *kinds[2] = {"sync", "async"};
        int from = 0, to = 2;
        json_t *all = json_object();
        if (argc > 2 || (argc == 2 && strcmp(argv[1], "sync") && strcmp(argv[1], "async")))
            return usage_err("usage: tandemctl api list [sync|async]");
        if (argc == 2)
            from = !strcmp(argv[1], "async"), to = from + 1;
        rc = CTL_OK;
        for (int k = from; k < to && rc == CTL_OK; k++) {
            char path[64];
            snprintf(path, sizeof(path), "/api/v1/%s-apis/do/list", kinds[k]);
            rc = api(c, "GET", path, NULL, 0, &resp, &data);
            if (rc == CTL_OK && !c->json) {
                size_t i;
                json_t *a;
                printf("%s%-6s %-30s %-44s %-8s %s\n", k > from ? "\n" : "", "KIND", "ID", "FUNC",
                       "NEEDKEY", "DISABLED");
                json_array_foreach(data, i, a)
                {
                    char nk[16], dis[16];
                    jtext(json_object_get(a, "needKey"), nk, sizeof(nk));
                    jtext(json_object_get(a, "isDisabled"), dis, sizeof(dis));
                    printf("%-6s %-30s %-44s %-8s %s\n", kinds[k], jstr(a, "id"), jstr(a, "funcId"),
                           nk, dis);
                }
            } else if (rc == CTL_OK) {
                json_object_set(all, kinds[k], data);
            }
            json_decref(resp);
            resp = NULL;
        }
        if (rc == CTL_OK && c->json)
            print_json(all, false);
        json_decref(all);
        return rc;
    }
    if (strcmp(argv[0], "create-sync") && strcmp(argv[0], "create-async"))
        return usage_err("api: unknown subcommand '%s' (create-sync, create-async, list)", argv[0]);
    sync = !strcmp(argv[0], "create-sync");
    if ((rc = parse_cmd_opts(argv[0], argc - 1, argv + 1, opts, pos, 1, &npos)) != CTL_OK)
        return rc;
    if (npos != 1)
        return usage_err("usage: tandemctl api %s FUNC_ID [--kwargs JSON] [--need-key] [--title T]",
                         argv[0]);
    if (!func_id_split(pos[0], NULL, 0, NULL, 0, NULL, 0))
        return usage_err("'%s' is not a func id (SET__SCRIPT.FUNC)", pos[0]);
    if (kw && (rc = parse_kwargs(kw, &kwargs)) != CTL_OK)
        return rc;
    body = json_pack("{s:{s:s,s:o,s:b,s:s}}", "data", "funcId", pos[0], "funcCallKwargsJSON",
                     kwargs ? kwargs : json_object(), "needKey", need_key, "title",
                     title ? title : "");
    rc = api(c, "POST", sync ? "/api/v1/sync-apis/do/add" : "/api/v1/async-apis/do/add", body, 0,
             &resp, &data);
    json_decref(body);
    if (rc == CTL_OK) {
        if (c->json)
            print_json(data, false);
        else
            printf("ID=%s\nURL=%s/api/v1/%s/%s\n", jstr(data, "id"), c->url,
                   sync ? "sync" : "async", jstr(data, "id"));
    }
    json_decref(resp);
    return rc;
}

/* --- main --------------------------------------------------------------- */

/* Each command gets the words after its own name (families in other files
 * too: `tandemctl cron list` calls ctl_cron_main(c, 1, {"list"})). */
static const struct command {
    const char *name;
    int (*fn)(struct ctl *c, int argc, char **argv);
} commands[] = {
    {"db", cmd_db},
    {"key", cmd_key},
    {"script", cmd_script},
    {"func", cmd_func},
    {"call", cmd_call},
    {"task", cmd_task},
    {"api", cmd_api},
    {"cron", ctl_cron_main},
    {"doctor", ctl_doctor_main},
    {"connector", ctl_connector_main},
    {"user", ctl_user_main},
    {"import", cmd_import},
    {"export", cmd_export},
    {NULL, NULL},
};

static void load_key_file(struct ctl *c, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[256];

    if (!f)
        return; /* reported only if the server then asks for a key */
    while (fgets(line, sizeof(line), f)) {
        char *s = line, *e;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!strncmp(s, "KEY=", 4))
            s += 4;
        e = s + strcspn(s, " \t\r\n");
        *e = '\0';
        if (*s && *s != '#') {
            if (strlen(s) < sizeof(c->key))
                memcpy(c->key, s, strlen(s) + 1);
            break;
        }
    }
    fclose(f);
}

/* -c FILE, else $TANDEM_CONFIG, else the installed default if it exists. */
static int load_config(struct ctl *c, const char *path)
{
    char *err = NULL;
    bool explicit = path != NULL;

    tconf_defaults(&c->conf);
    if (!path)
        path = getenv("TANDEM_CONFIG");
    if (path && *path)
        explicit = true;
    else if (access(TANDEM_DEFAULT_CONFIG, R_OK) == 0)
        path = TANDEM_DEFAULT_CONFIG;
    else
        return CTL_OK;
    if (tconf_load(&c->conf, path, &err) == -1) {
        fprintf(stderr, "tandemctl: config %s is not usable:\n%s%s", path,
                err ? err : "(unknown error)\n",
                err && err[0] && err[strlen(err) - 1] != '\n' ? "\n" : "");
        free(err);
        return CTL_USAGE;
    }
    (void)explicit;
    c->have_conf = true;
    return CTL_OK;
}

int main(int argc, char **argv)
{
    static const struct option lopts[] = {{"config", required_argument, NULL, 'c'},
                                          {"url", required_argument, NULL, 'u'},
                                          {"key", required_argument, NULL, 'k'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"cacert", required_argument, NULL, 'C'},
                                          {"insecure", no_argument, NULL, 'I'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    static struct ctl ctx; /* the process's one context; static: tconf is large */
    struct ctl *c = &ctx;
    const char *conf_path = NULL, *url = NULL, *key = NULL, *cmd;
    int opt, rc;

    /* '+' stops at the command word: its own options are its business */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+c:u:k:jhV", lopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            conf_path = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'j':
            c->json = true;
            break;
        case 'C': /* https: trust this CA file instead of the system's */
            ctl_http_tls_options(optarg, false);
            break;
        case 'I': /* https without checking the certificate: only when asked */
            ctl_http_tls_options(NULL, true);
            break;
        case 'h':
            fputs(usage_text, stdout);
            return CTL_OK;
        case 'V':
            printf("tandemctl %s\n", TANDEM_VERSION);
            return CTL_OK;
        default:
            if (optopt && strchr("cuk", optopt))
                return usage_err("option -%c needs a value", optopt);
            return usage_err("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_err("no command given");
    cmd = argv[optind];
    argc -= optind + 1;
    argv += optind + 1;
    /* --json is also accepted after the command, where people tend to type it */
    {
        int j = 0;
        for (int i = 0; i < argc; i++) {
            if (!strcmp(argv[i], "--json"))
                c->json = true;
            else
                argv[j++] = argv[i];
        }
        argc = j;
    }

    if ((rc = load_config(c, conf_path)) != CTL_OK)
        return rc;
    if (!url)
        url = getenv("TANDEM_URL");
    if (!url || !*url)
        url = c->conf.ctl_url[0] ? c->conf.ctl_url : NULL;
    if (url && strlen(url) >= sizeof(c->url))
        return usage_err("server URL longer than %zu characters", sizeof(c->url) - 1);
    if (url)
        memcpy(c->url, url, strlen(url) + 1);
    else
        snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d",
                 c->conf.server_port ? c->conf.server_port : 8088);
    if (!key)
        key = getenv("TANDEM_KEY");
    if (key && strlen(key) >= sizeof(c->key))
        return usage_err("access key longer than %zu characters", sizeof(c->key) - 1);
    if (key && *key)
        memcpy(c->key, key, strlen(key) + 1);
    else if (c->conf.ctl_key_file[0])
        load_key_file(c, c->conf.ctl_key_file);

    for (const struct command *k = commands; k->name; k++)
        if (!strcmp(cmd, k->name))
            return k->fn(c, argc, argv);
    /* the failover family shares one entry point that wants the word itself */
    if (!strcmp(cmd, "status") || !strcmp(cmd, "switchover") || !strcmp(cmd, "maintenance"))
        return ctl_failover_main(c, cmd, argc, argv);
    if (!strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return CTL_OK;
    }
    return usage_err("unknown command '%s'", cmd);
}
