/* tandemctl connector add|list|show|test|delete (DFF.CONN's connectors,
 * src/server/server_connector.c) and tandemctl script run (a draft run,
 * DFF's debugger). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ids.h"

static const char USAGE[] =
    "usage: tandemctl connector add ID --type TYPE --config JSON [--title T]\n"
    "                 [--description D] [--skip-test]\n"
    "       tandemctl connector list [--type TYPE] | show ID | test ID | delete ID\n"
    "       tandemctl script run SCRIPT_ID FUNC [--kwargs JSON]\n"
    "types: mysql, mariadb, postgresql, redis, memcached, mqtt\n";

#define usage(...) ctl_usage(USAGE, "", __VA_ARGS__)

static void print_json(json_t *j)
{
    char *s = json_dumps(j ? j : json_null(), JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s)
        puts(s);
    free(s);
}

/* One request; CTL_OK with *resp (caller decrefs) and *data borrowed. */
static int request(struct ctl *c, const char *method, const char *path, json_t *body, json_t **resp,
                   json_t **data)
{
    long status = 0;
    char *err = NULL;
    *resp = *data = NULL;
    if (ctl_http(c, method, path, body, &status, resp, &err) == -1) {
        int rc = ctl_report_error(c, 0, NULL, err);
        free(err);
        return rc;
    }
    if (status < 200 || status > 299 || !json_is_object(*resp) ||
        json_is_false(json_object_get(*resp, "ok"))) {
        int rc = ctl_report_error(c, status, *resp, NULL);
        json_decref(*resp);
        *resp = NULL;
        return rc;
    }
    *data = json_object_get(*resp, "data");
    return CTL_OK;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int connector_add(struct ctl *c, int argc, char **argv)
{
    const char *pos[1], *type = NULL, *config = NULL, *title = NULL, *desc = NULL;
    bool skip = false;
    int npos, rc;
    struct ctl_opt opts[] = {{"type", true, &type, NULL},       {"config", true, &config, NULL},
                             {"title", true, &title, NULL},     {"description", true, &desc, NULL},
                             {"skip-test", false, NULL, &skip}, {NULL, false, NULL, NULL}};
    if ((rc = ctl_parse_opts(argc, argv, opts, pos, 1, &npos, "", USAGE)) != CTL_OK)
        return rc;
    if (npos != 1 || !type || !config)
        return usage("connector add needs ID, --type and --config");
    json_error_t je;
    json_t *cfg = json_loads(config, 0, &je);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return usage("--config: not a JSON object (%s)", cfg ? "another JSON value" : je.text);
    }
    json_t *body =
        json_pack("{s:{s:s,s:s,s:o,s:s?,s:s?},s:b}", "data", "id", pos[0], "type", type,
                  "configJSON", cfg, "title", title, "description", desc, "skipTest", skip);
    json_t *resp, *data;
    rc = request(c, "POST", "/api/v1/connectors/do/add", body, &resp, &data);
    json_decref(body);
    if (rc == CTL_OK) {
        if (c->json)
            print_json(data);
        else
            printf("added connector %s (%s)%s\n", pos[0], type, skip ? "" : ", test passed");
    }
    json_decref(resp);
    return rc;
}

static int connector_list(struct ctl *c, int argc, char **argv)
{
    const char *pos[1], *type = NULL;
    int npos, rc;
    struct ctl_opt opts[] = {{"type", true, &type, NULL}, {NULL, false, NULL, NULL}};
    if ((rc = ctl_parse_opts(argc, argv, opts, pos, 0, &npos, "", USAGE)) != CTL_OK)
        return rc;
    char path[256];
    if (type && !id_valid(type))
        return usage("--type '%s' is not a connector type", type);
    snprintf(path, sizeof path, "/api/v1/connectors/do/list%s%s", type ? "?type=" : "",
             type ? type : "");
    json_t *resp, *data;
    rc = request(c, "GET", path, NULL, &resp, &data);
    if (rc == CTL_OK && c->json) {
        print_json(data);
    } else if (rc == CTL_OK) {
        size_t i;
        json_t *o;
        printf("%-32s %-12s %s\n", "ID", "TYPE", "TITLE");
        json_array_foreach(data, i, o)
        {
            printf("%-32s %-12s %s\n", jstr(o, "id"), jstr(o, "type"), jstr(o, "title"));
        }
    }
    json_decref(resp);
    return rc;
}

static int connector_show(struct ctl *c, const char *id)
{
    json_t *resp, *data;
    int rc = request(c, "GET", "/api/v1/connectors/do/list", NULL, &resp, &data);
    if (rc != CTL_OK)
        return rc;
    size_t i;
    json_t *o, *found = NULL;
    json_array_foreach(data, i, o) if (strcmp(jstr(o, "id"), id) == 0) found = o;
    if (!found) {
        fprintf(stderr, "tandemctl: connector %s not found\n", id);
        rc = CTL_REFUSED;
    } else {
        print_json(found);
    }
    json_decref(resp);
    return rc;
}

static int connector_action(struct ctl *c, const char *id, const char *action)
{
    char path[256];
    json_t *resp, *data;
    snprintf(path, sizeof path, "/api/v1/connectors/%s/do/%s", id, action);
    int rc = request(c, "GET", path, NULL, &resp, &data);
    if (rc == CTL_OK) {
        if (c->json)
            print_json(data);
        else if (strcmp(action, "test") == 0)
            printf("connector %s: %s\n", id, jstr(data, "message"));
        else
            printf("deleted connector %s\n", id);
    }
    json_decref(resp);
    return rc;
}

int ctl_connector_main(struct ctl *c, int argc, char **argv)
{
    if (argc < 1)
        return usage(NULL);
    const char *sub = argv[0];
    if (strcmp(sub, "add") == 0)
        return connector_add(c, argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return connector_list(c, argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0 || strcmp(sub, "test") == 0 || strcmp(sub, "delete") == 0) {
        if (argc != 2)
            return usage("connector %s needs exactly one ID", sub);
        if (!id_valid(argv[1]))
            return usage("'%s' is not a connector id", argv[1]);
        if (strcmp(sub, "show") == 0)
            return connector_show(c, argv[1]);
        return connector_action(c, argv[1], sub);
    }
    return usage("connector: unknown subcommand '%s' (add, list, show, test, delete)", sub);
}

/* tandemctl script run SCRIPT_ID FUNC [--kwargs JSON]: the draft's FUNC,
 * unpublished; prints its output, result and traceback. Exit 1 when the
 * function failed. */
int ctl_script_run(struct ctl *c, int argc, char **argv)
{
    const char *pos[2], *kw = NULL;
    int npos, rc;
    struct ctl_opt opts[] = {{"kwargs", true, &kw, NULL}, {NULL, false, NULL, NULL}};
    if ((rc = ctl_parse_opts(argc, argv, opts, pos, 2, &npos, "", USAGE)) != CTL_OK)
        return rc;
    if (npos != 2)
        return usage("script run needs SCRIPT_ID and FUNC");
    if (!id_valid(pos[0]))
        return usage("'%s' is not a script id (SET__NAME)", pos[0]);
    json_t *kwargs = NULL;
    if (kw) {
        json_error_t je;
        kwargs = json_loads(kw, 0, &je);
        if (!json_is_object(kwargs)) {
            json_decref(kwargs);
            return usage("--kwargs: not a JSON object (%s)",
                         kwargs ? "another JSON value" : je.text);
        }
    }
    char path[300];
    snprintf(path, sizeof path, "/api/v1/scripts/%s/do/debug", pos[0]);
    json_t *body =
        json_pack("{s:s,s:o}", "funcName", pos[1], "kwargs", kwargs ? kwargs : json_object());
    json_t *resp, *data;
    rc = request(c, "POST", path, body, &resp, &data);
    json_decref(body);
    if (rc != CTL_OK)
        return rc;
    const char *status = jstr(data, "status");
    bool ok = strcmp(status, "success") == 0;
    if (c->json) {
        print_json(data);
    } else {
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(data, "printLogs"), i, l) puts(json_string_value(l));
        if (ok) {
            char *s = json_dumps(json_object_get(data, "result"), JSON_ENCODE_ANY | JSON_COMPACT);
            printf("result: %s\n", s ? s : jstr(data, "returnValue"));
            free(s);
        } else {
            fprintf(stderr, "%s: %s\n", status, jstr(data, "exception"));
            if (json_string_value(json_object_get(data, "traceback")))
                fputs(jstr(data, "traceback"), stderr);
        }
    }
    json_decref(resp); /* status pointed into it */
    return ok ? CTL_OK : CTL_REFUSED;
}
