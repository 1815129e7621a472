/* tandemctl cron ...: next (offline, the beat's own engine), and the cron
 * job admin over HTTP in DFF's shapes (/api/v1/cron-jobs/do/..., POST
 * /api/v1/cron/<id>) plus Tandem's global pause (/api/v1/cron-jobs/_settings):
 * add, list, show, pause, resume, delete, run. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cron.h"
#include "ctl.h"
#include "ids.h"

static const char USAGE[] =
    "usage: tandemctl cron next EXPR [--tz TZ] [--from ISO8601] [--count N]\n"
    "       tandemctl cron add FUNC_ID EXPR [--tz TZ] [--kwargs JSON] [--title T]\n"
    "                 [--overlap skip|allow] [--grace SECONDS] [--expires ISO8601] [--disabled]\n"
    "       tandemctl cron list | show ID | delete ID | run ID\n"
    "       tandemctl cron pause ID|--all | resume ID|--all\n";

#define usage(...) ctl_usage(USAGE, "cron: ", __VA_ARGS__)

int ctl_usage(const char *usage_text, const char *prefix, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "tandemctl: %s", prefix);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    fputs(usage_text, stderr);
    return CTL_USAGE;
}

/* Options "--name VALUE" / "--name=VALUE" / "--flag"; the rest are
 * positional. Shared by the command families (ctl.h). */
int ctl_parse_opts(int argc, char **argv, struct ctl_opt *opts, const char **pos, int maxpos,
                   int *npos, const char *prefix, const char *usage_text)
{
    const char *bad = NULL, *why = NULL;
    *npos = 0;
    for (int i = 0; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            struct ctl_opt *o = NULL;
            const char *eq = strchr(a + 2, '=');
            size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            for (struct ctl_opt *p = opts; p->name; p++)
                if (strlen(p->name) == nl && strncmp(p->name, a + 2, nl) == 0)
                    o = p;
            if (!o) {
                bad = a, why = "unknown option '%s'";
            } else if (o->has_arg) {
                if (eq)
                    *o->val = eq + 1;
                else if (i + 1 < argc)
                    *o->val = argv[++i];
                else
                    bad = a, why = "option '%s' needs a value";
            } else {
                *o->flag = true;
            }
            continue;
        }
        if (*npos == maxpos)
            bad = a, why = "unexpected argument '%s'";
        else
            pos[(*npos)++] = a;
    }
    if (!bad)
        return CTL_OK;
    return ctl_usage(usage_text, prefix, why, bad);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (s)
        puts(s);
    free(s);
}

/* One request; CTL_OK with *data (borrowed from *resp) on 2xx. */
static int call(struct ctl *c, const char *method, const char *path, json_t *body, json_t **resp,
                json_t **data)
{
    long status = 0;
    char *err = NULL;
    *resp = NULL;
    *data = NULL;
    if (ctl_http(c, method, path, body, &status, resp, &err) == -1) {
        int rc = ctl_report_error(c, 0, NULL, err);
        free(err);
        return rc;
    }
    if (status < 200 || status >= 300 || !*resp)
        return ctl_report_error(c, status, *resp, NULL);
    *data = json_object_get(*resp, "data");
    return CTL_OK;
}

static int cmd_next(struct ctl *c, int argc, char **argv)
{
    const char *tzname = NULL, *from = NULL, *count = NULL, *pos[8];
    int npos, rc;
    struct ctl_opt opts[] = {{"tz", true, &tzname, NULL},
                             {"from", true, &from, NULL},
                             {"count", true, &count, NULL},
                             {NULL, false, NULL, NULL}};
    if ((rc = ctl_parse_opts(argc, argv, opts, pos, 8, &npos, "cron: ", USAGE)) != CTL_OK)
        return rc;
    if (npos == 0)
        return usage("next: an expression is required, e.g. '*/5 * * * *'");
    /* `cron next 0 9 '*' '*' MON` works too: the words are joined. */
    char expr[CRON_EXPR_MAX * 2] = "";
    for (int i = 0; i < npos; i++) {
        if (i)
            strncat(expr, " ", sizeof expr - strlen(expr) - 1);
        strncat(expr, pos[i], sizeof expr - strlen(expr) - 1);
    }
    if (!tzname)
        tzname = c->have_conf && c->conf.timezone[0] ? c->conf.timezone : "UTC";
    long n = 5;
    if (count) {
        char *end;
        n = strtol(count, &end, 10);
        if (*end || n < 1 || n > 10000)
            return usage("--count '%s': a number 1..10000", count);
    }
    struct cron_expr e;
    char *err = NULL;
    if (cron_parse(&e, expr, &err)) {
        fprintf(stderr, "tandemctl: %s\n", err ? err : "bad cron expression");
        free(err);
        return CTL_USAGE;
    }
    struct cron_tz *tz = cron_tz_load(tzname, &err);
    if (!tz) {
        fprintf(stderr, "tandemctl: --tz: %s\n", err ? err : "unknown time zone");
        free(err);
        return CTL_USAGE;
    }
    int64_t t = time(NULL);
    if (from && cron_parse_time(from, tz, &t, &err)) {
        fprintf(stderr, "tandemctl: --from: %s\n", err ? err : "bad time");
        free(err);
        cron_tz_free(tz);
        return CTL_USAGE;
    }
    json_t *a = c->json ? json_array() : NULL;
    for (long i = 0; i < n; i++) {
        t = cron_next(&e, tz, t);
        if (t < 0)
            break;
        char buf[64];
        cron_format(t, tz, buf, sizeof buf);
        if (a)
            json_array_append_new(a, json_string(buf));
        else
            puts(buf);
    }
    if (a) {
        char *s = json_dumps(a, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
        json_decref(a);
    }
    cron_tz_free(tz);
    return CTL_OK;
}

/* The job as the server answers do/get, with its "state" (CTL_OK), or the
 * error reported. */
static int get_job(struct ctl *c, const char *id, json_t **resp, json_t **data)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/cron-jobs/%s/do/get", id);
    return call(c, "GET", path, NULL, resp, data);
}

static int cmd_add(struct ctl *c, int argc, char **argv)
{
    const char *tz = NULL, *kw = NULL, *title = NULL, *overlap = NULL, *grace = NULL,
               *expires = NULL, *pos[8];
    bool disabled = false;
    int npos, rc;
    struct ctl_opt opts[] = {{"tz", true, &tz, NULL},
                             {"kwargs", true, &kw, NULL},
                             {"title", true, &title, NULL},
                             {"overlap", true, &overlap, NULL},
                             {"grace", true, &grace, NULL},
                             {"expires", true, &expires, NULL},
                             {"disabled", false, NULL, &disabled},
                             {NULL, false, NULL, NULL}};
    if ((rc = ctl_parse_opts(argc, argv, opts, pos, 8, &npos, "cron: ", USAGE)) != CTL_OK)
        return rc;
    if (npos < 2)
        return usage("add: FUNC_ID and EXPR are required");
    if (!func_id_split(pos[0], NULL, 0, NULL, 0, NULL, 0))
        return usage("add: '%s' is not a func id (SET__SCRIPT.FUNC)", pos[0]);
    char expr[CRON_EXPR_MAX * 2] = "";
    for (int i = 1; i < npos; i++) {
        if (i > 1)
            strncat(expr, " ", sizeof expr - strlen(expr) - 1);
        strncat(expr, pos[i], sizeof expr - strlen(expr) - 1);
    }
    /* DFF's cron-jobs/do/add, with Tandem's overlap and misfireGrace */
    json_t *data = json_pack("{s:s, s:s}", "funcId", pos[0], "cronExpr", expr);
    json_t *body = json_pack("{s:o}", "data", data);
    if (kw) {
        json_error_t je;
        json_t *k = json_loads(kw, JSON_DECODE_ANY, &je);
        if (!k) {
            json_decref(body);
            return usage("--kwargs: malformed JSON at column %d: %s", je.column, je.text);
        }
        json_object_set_new(data, "funcCallKwargsJSON", k); /* the server names a non-object */
    }
    if (tz)
        json_object_set_new(data, "timezone", json_string(tz));
    if (title)
        json_object_set_new(data, "title", json_string(title));
    if (overlap)
        json_object_set_new(data, "overlap", json_string(overlap));
    if (grace) {
        char *end;
        long g = strtol(grace, &end, 10);
        if (*end || g < 0) {
            json_decref(body);
            return usage("--grace '%s': seconds, 0 or more", grace);
        }
        json_object_set_new(data, "misfireGrace", json_integer(g));
    }
    if (expires) {
        int64_t t;
        char *err = NULL;
        if (cron_parse_time(expires, NULL, &t, &err)) {
            json_decref(body);
            fprintf(stderr, "tandemctl: cron: --expires: %s\n", err ? err : "bad time");
            free(err);
            return CTL_USAGE;
        }
        json_object_set_new(data, "expireTime", json_integer(t));
    }
    if (disabled)
        json_object_set_new(data, "isDisabled", json_true());
    json_t *resp, *got;
    rc = call(c, "POST", "/api/v1/cron-jobs/do/add", body, &resp, &got);
    json_decref(body);
    char id[ID_MAX] = "";
    if (rc == CTL_OK)
        snprintf(id, sizeof id, "%s", jstr(got, "id"));
    json_decref(resp);
    if (rc != CTL_OK)
        return rc;
    /* the answer is its id; its next fire comes with the job */
    if ((rc = get_job(c, id, &resp, &got)) == CTL_OK) {
        if (c->json)
            print_json(got);
        else
            printf("ID=%s\nNEXT=%s\n", id, jstr(json_object_get(got, "state"), "next_fire"));
    }
    json_decref(resp);
    return rc;
}

static int cmd_list(struct ctl *c)
{
    json_t *resp, *data;
    int rc = call(c, "GET", "/api/v1/cron-jobs/do/list", NULL, &resp, &data);
    if (rc == CTL_OK) {
        if (c->json) {
            print_json(data);
        } else {
            size_t i;
            json_t *j;
            printf("%-30s %-32s %-18s %-16s %-7s %-9s %s\n", "ID", "FUNC", "EXPR", "TZ", "ENABLED",
                   "LAST", "NEXT");
            json_array_foreach(data, i, j)
            {
                json_t *st = json_object_get(j, "state");
                const char *last = jstr(st, "last_outcome");
                printf("%-30s %-32s %-18s %-16s %-7s %-9s %s\n", jstr(j, "id"), jstr(j, "funcId"),
                       jstr(j, "cronExpr"), jstr(j, "timezone"),
                       json_is_true(json_object_get(j, "isDisabled")) ? "no" : "yes",
                       *last ? last : "-", *jstr(st, "next_fire") ? jstr(st, "next_fire") : "-");
            }
        }
    }
    json_decref(resp);
    return rc;
}

static int cmd_simple(struct ctl *c, const char *sub, const char *id)
{
    char path[256];
    json_t *resp = NULL, *data = NULL, *body = NULL;
    const char *method = "GET";
    if (!id_valid(id))
        return usage("%s: '%s' is not a cron job id", sub, id);
    snprintf(path, sizeof path, "/api/v1/cron-jobs/%s/do/get", id);
    if (!strcmp(sub, "pause") || !strcmp(sub, "resume")) {
        method = "POST";
        snprintf(path, sizeof path, "/api/v1/cron-jobs/%s/do/modify", id);
        body = json_pack("{s:{s:b}}", "data", "isDisabled", !strcmp(sub, "pause"));
    } else if (!strcmp(sub, "delete")) {
        snprintf(path, sizeof path, "/api/v1/cron-jobs/%s/do/delete", id);
    } else if (!strcmp(sub, "run")) {
        /* DFF's "run cron job manually" */
        method = "POST";
        snprintf(path, sizeof path, "/api/v1/cron/%s", id);
    }
    int rc = call(c, method, path, body, &resp, &data);
    json_decref(body);
    if (rc == CTL_OK && c->json && (!strcmp(sub, "pause") || !strcmp(sub, "resume"))) {
        /* the job as it is now, as `show` prints it */
        json_decref(resp);
        rc = get_job(c, id, &resp, &data);
    }
    if (rc == CTL_OK) {
        if (c->json || !strcmp(sub, "show"))
            print_json(data);
        else if (!strcmp(sub, "run"))
            printf("%s\n", jstr(data, "id"));
        else if (!strcmp(sub, "delete"))
            printf("deleted %s\n", id);
        else
            printf("%s %s\n", id, !strcmp(sub, "pause") ? "paused" : "resumed");
    }
    json_decref(resp);
    return rc;
}

static int cmd_all(struct ctl *c, bool pause)
{
    json_t *resp, *data, *body = json_pack("{s:b}", "paused", pause);
    int rc = call(c, "PATCH", "/api/v1/cron-jobs/_settings", body, &resp, &data);
    json_decref(body);
    if (rc == CTL_OK) {
        if (c->json)
            print_json(data);
        else
            printf("all cron jobs %s\n", pause ? "paused" : "resumed");
    }
    json_decref(resp);
    return rc;
}

int ctl_cron_main(struct ctl *c, int argc, char **argv)
{
    if (argc < 1)
        return usage(NULL);
    const char *sub = argv[0];
    if (!strcmp(sub, "next"))
        return cmd_next(c, argc - 1, argv + 1);
    if (!strcmp(sub, "add"))
        return cmd_add(c, argc - 1, argv + 1);
    if (!strcmp(sub, "list")) {
        if (argc != 1)
            return usage("list takes no arguments");
        return cmd_list(c);
    }
    if (!strcmp(sub, "pause") || !strcmp(sub, "resume")) {
        if (argc != 2)
            return usage("%s: one cron job id, or --all", sub);
        if (!strcmp(argv[1], "--all"))
            return cmd_all(c, !strcmp(sub, "pause"));
        return cmd_simple(c, sub, argv[1]);
    }
    if (!strcmp(sub, "show") || !strcmp(sub, "delete") || !strcmp(sub, "run")) {
        if (argc != 2)
            return usage("%s: one cron job id", sub);
        return cmd_simple(c, sub, argv[1]);
    }
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(USAGE, stdout);
        return CTL_OK;
    }
    return usage("unknown subcommand '%s'", sub);
}
