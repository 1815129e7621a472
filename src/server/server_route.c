/* The routing table and its matcher. One row per endpoint; the HTTP layer
 * checks the row's scope (srv_auth_check) before calling the handler. This
 * table is the one place that says who may call what. */
#include <stdlib.h>
#include <string.h>
#include "server_int.h"

#define A SRV_SCOPE_ADMIN
/* DataFlux Func's management paths of one resource (server_resource.c). */
#define DFF_RES(w)                                                                                 \
    {"GET", "/api/v1/" w "/do/list", h_res_list, A, "admin"},                                      \
        {"GET", "/api/v1/" w "/:/do/get", h_res_get, A, "admin"},                                  \
        {"POST", "/api/v1/" w "/do/add", h_res_add, A, "admin"},                                   \
        {"POST", "/api/v1/" w "/:/do/modify", h_res_modify, A, "admin"},                           \
    {                                                                                              \
        "GET", "/api/v1/" w "/:/do/delete", h_res_delete, A, "admin"                               \
    }

const struct srv_route srv_routes[] = {
    {"GET", "/api/v1/do/ping", h_ping, false, "ping"},
    {"GET", "/api/v1/ping", h_ping, false, "ping"},
    {"GET", "/api/v1/health", h_health, false, "health"},
    {"GET", "/metrics", h_metrics, false, "metrics"},

    /* the web console: its files, and its session (server_console.c, server_auth.c) */
    {"GET", "/", h_console_root, SRV_SCOPE_NONE, "console"},
    {"GET", "/console", h_console_root, SRV_SCOPE_NONE, "console"},
    {"GET", "/console/**", h_console_file, SRV_SCOPE_NONE, "console"},
    {"POST", "/api/v1/console/do/sign-in", h_console_sign_in, SRV_SCOPE_NONE, "admin"},
    {"GET", "/api/v1/console/do/session", h_console_session, SRV_SCOPE_NONE, "admin"},
    /* a call-only user signs out too; the Call page lists what it may call */
    {"POST", "/api/v1/console/do/sign-out", h_console_sign_out, SRV_SCOPE_CALL, "admin"},
    {"GET", "/api/v1/console/callables", h_console_callables, SRV_SCOPE_CALL, "admin"},
    {"GET", "/api/v1/console/cluster", h_console_cluster, A, "admin"},
    {"POST", "/api/v1/console/do/switchover", h_console_switchover, A, "admin"},
    {"POST", "/api/v1/console/do/maintenance", h_console_maintenance, A, "admin"},
    {"GET", "/api/v1/console/cron-next", h_console_cron_next, A, "admin"},

    {"POST", "/api/v1/func/:", h_func_call, true, "call"},
    /* Sync/Async APIs (and DFF's legacy names al/bat): /<id>, /<id>/<format>
     * and /<id>/<format>/<anything> (format normal|simplified|s). */
    {"GET", "/api/v1/sync/:", h_sync_api, false, "api"},
    {"POST", "/api/v1/sync/:", h_sync_api, false, "api"},
    {"GET", "/api/v1/sync/:/:", h_sync_api, false, "api"},
    {"POST", "/api/v1/sync/:/:", h_sync_api, false, "api"},
    {"GET", "/api/v1/sync/:/:/**", h_sync_api, false, "api"},
    {"POST", "/api/v1/sync/:/:/**", h_sync_api, false, "api"},
    {"GET", "/api/v1/al/:", h_sync_api, false, "api"},
    {"POST", "/api/v1/al/:", h_sync_api, false, "api"},
    {"GET", "/api/v1/al/:/:", h_sync_api, false, "api"},
    {"POST", "/api/v1/al/:/:", h_sync_api, false, "api"},
    {"GET", "/api/v1/al/:/:/**", h_sync_api, false, "api"},
    {"POST", "/api/v1/al/:/:/**", h_sync_api, false, "api"},
    {"GET", "/api/v1/async/:", h_async_api, false, "api"},
    {"POST", "/api/v1/async/:", h_async_api, false, "api"},
    {"GET", "/api/v1/async/:/:", h_async_api, false, "api"},
    {"POST", "/api/v1/async/:/:", h_async_api, false, "api"},
    {"GET", "/api/v1/async/:/:/**", h_async_api, false, "api"},
    {"POST", "/api/v1/async/:/:/**", h_async_api, false, "api"},
    {"GET", "/api/v1/bat/:", h_async_api, false, "api"},
    {"POST", "/api/v1/bat/:", h_async_api, false, "api"},
    {"GET", "/api/v1/bat/:/:", h_async_api, false, "api"},
    {"POST", "/api/v1/bat/:/:", h_async_api, false, "api"},
    {"GET", "/api/v1/bat/:/:/**", h_async_api, false, "api"},
    {"POST", "/api/v1/bat/:/:/**", h_async_api, false, "api"},
    /* Task ids are 96 random bits: knowing one is the capability to read it,
     * so async API callers without an admin key can fetch their result. */
    {"GET", "/api/v1/tasks/:", h_task_get, false, "task"},

    {"POST", "/api/v1/auth/do/sign-in", h_sign_in, SRV_SCOPE_NONE, "admin"},
    {"GET", "/api/v1/auth/do/sign-out", h_sign_out, SRV_SCOPE_CALL, "admin"},
    {"POST", "/api/v1/auth/do/sign-out", h_sign_out, SRV_SCOPE_CALL, "admin"},
    DFF_RES("script-sets"),
    {"POST", "/api/v1/script-sets/do/import", h_res_import, A, "admin"},
    {"POST", "/api/v1/script-sets/do/export", h_res_export, A, "admin"},
    DFF_RES("scripts"),
    {"POST", "/api/v1/scripts/:/do/publish", h_script_publish, A, "admin"},
    {"GET", "/api/v1/funcs/do/list", h_res_list, A, "admin"},
    {"GET", "/api/v1/funcs/:/do/get", h_res_get, A, "admin"},
    DFF_RES("sync-apis"),
    DFF_RES("auth-links"),
    DFF_RES("async-apis"),
    DFF_RES("batches"),
    DFF_RES("cron-jobs"),
    DFF_RES("crontab-configs"),
    DFF_RES("env-variables"),
    DFF_RES("access-keys"),
    DFF_RES("users"),
    DFF_RES("api-auth"),
    {"GET", "/api/v1/task-records/do/list", h_res_list, A, "admin"},
    {"GET", "/api/v1/task-records/func/do/list", h_res_list, A, "admin"},
    /* connectors and draft runs: server_connector.c */
    {"GET", "/api/v1/connectors/do/list", h_connectors, A, "admin"},
    {"POST", "/api/v1/connectors/do/add", h_connectors, A, "admin"},
    {"POST", "/api/v1/connectors/:/do/modify", h_connectors, A, "admin"},
    {"GET", "/api/v1/connectors/:/do/delete", h_connectors, A, "admin"},
    {"POST", "/api/v1/connectors/:/do/delete", h_connectors, A, "admin"},
    {"GET", "/api/v1/connectors/:/do/test", h_connectors, A, "admin"},
    {"POST", "/api/v1/connectors/:/do/test", h_connectors, A, "admin"},
    {"POST", "/api/v1/scripts/:/do/debug", h_script_debug, A, "admin"},
    {"POST", "/api/v1/func-draft/:", h_script_debug, A, "admin"},
    /* DFF's "run a cron job now" (server_cron.c) */
    {"POST", "/api/v1/cron/:", h_cron, A, "cron"},

    /* Tandem's own paths, where DFF has no counterpart (docs/dff-compat.md):
     * pausing every cron job at once, and the failover history. */
    {"GET", "/api/v1/cron-jobs/_settings", h_cron, A, "cron"},
    {"PATCH", "/api/v1/cron-jobs/_settings", h_cron, A, "cron"},
    {"GET", "/api/v1/failover-events", h_failover_events, A, "admin"},
};
const size_t srv_nroutes = sizeof srv_routes / sizeof srv_routes[0];

/* Matches one pattern; captures go to params (malloc'd). */
static bool match_one(const char *pat, const char *path, char **params, int *np)
{
    int n = 0;
    const char *p = pat, *s = path;
    while (*p) {
        if (p[0] == '*' && p[1] == '*' && p[2] == '\0') {
            if (n >= SRV_MAX_PARAMS)
                goto fail;
            params[n++] = strdup(s);
            *np = n;
            return true;
        }
        if (*p == ':') {
            size_t len = strcspn(s, "/");
            if (len == 0 || n >= SRV_MAX_PARAMS)
                goto fail;
            params[n++] = strndup(s, len);
            s += len;
            p++;
            continue;
        }
        if (*p != *s)
            goto fail;
        /* literal characters must match exactly */
        p++;
        s++;
    }
    if (*s == '\0') {
        *np = n;
        return true;
    }
fail:
    for (int i = 0; i < n; i++) {
        free(params[i]);
        params[i] = NULL;
    }
    return false;
}

const struct srv_route *route_match(const struct srv_route *table, size_t n, const char *method,
                                    const char *path, char **params, int *nparams,
                                    bool *path_matched, char *allow, size_t allown)
{
    *path_matched = false;
    *nparams = 0;
    if (allow && allown)
        allow[0] = '\0';
    /* A trailing slash is the same resource ("/api/v1/scripts/"), but "/" itself stays. */
    char buf[2048];
    size_t len = strlen(path);
    if (len >= sizeof buf)
        return NULL;
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/' && !(len >= 2 && buf[len - 2] == '/'))
        buf[--len] = '\0';

    for (size_t i = 0; i < n; i++) {
        char *tmp[SRV_MAX_PARAMS] = {0};
        int tn = 0;
        if (!match_one(table[i].pattern, buf, tmp, &tn))
            continue;
        if (strcmp(table[i].method, "*") == 0 || strcmp(table[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(table[i].method, "GET") == 0)) {
            for (int k = 0; k < tn; k++)
                params[k] = tmp[k];
            *nparams = tn;
            return &table[i];
        }
        for (int k = 0; k < tn; k++)
            free(tmp[k]);
        if (allow && allown && !strstr(allow, table[i].method)) {
            size_t al = strlen(allow);
            snprintf(allow + al, allown - al, "%s%s", al ? ", " : "", table[i].method);
        }
        *path_matched = true;
    }
    return NULL;
}

/* The beat engineer's server_cron.c replaces this. */
__attribute__((weak)) int server_cron_route(struct srv_req *req)
{
    req_err(req, 404, "ENotFound", NULL, "cron jobs are not part of this build");
    return 0;
}

void h_cron(struct srv_req *r)
{
    server_cron_route(r);
}
