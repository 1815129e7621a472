/* Counters kept with atomics on the hot path, and their Prometheus text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server_int.h"

const double srv_lat_bounds_ms[LAT_NBUCKETS] = {1,   2,   5,    10,   25,   50,    100,
                                                250, 500, 1000, 2500, 5000, 10000, 30000};

static const char *const rclass_names[RC_N] = {"ping",  "health", "call",    "api",  "task",
                                               "admin", "cron",   "metrics", "other"};
static const char *const outcome_names[CO_N] = {
    "success",     "failure", "timeout",        "crashed", "parsing_failed",
    "no_response", "other",   "async_accepted", "delayed", "enqueue_error"};

int rclass_index(const char *name)
{
    for (int i = 0; name && i < RC_N; i++)
        if (strcmp(rclass_names[i], name) == 0)
            return i;
    return RC_OTHER;
}

const char *rclass_name(int i)
{
    return i >= 0 && i < RC_N ? rclass_names[i] : "other";
}

const char *call_outcome_name(int i)
{
    return i >= 0 && i < CO_N ? outcome_names[i] : "other";
}

void metrics_request(struct srv_metrics *m, int rclass, int status, int64_t cost_us)
{
    int sc = status >= 100 && status < 600 ? status / 100 : 0;
    if (status == 599)
        sc = 5;
    if (rclass < 0 || rclass >= RC_N)
        rclass = RC_OTHER;
    atomic_fetch_add_explicit(&m->req[rclass][sc], 1, memory_order_relaxed);
    double ms = (double)cost_us / 1000.0;
    int b = 0;
    while (b < LAT_NBUCKETS && ms > srv_lat_bounds_ms[b])
        b++;
    atomic_fetch_add_explicit(&m->lat_bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_sum_us, cost_us > 0 ? (unsigned long)cost_us : 0,
                              memory_order_relaxed);
}

void metrics_call(struct srv_metrics *m, int outcome)
{
    if (outcome < 0 || outcome >= CO_N)
        outcome = CO_OTHER;
    atomic_fetch_add_explicit(&m->calls[outcome], 1, memory_order_relaxed);
}

int metrics_outcome_of(const char *status, const char *reason)
{
    if (reason) {
        if (strcmp(reason, "EFuncResultParsingFailed") == 0)
            return CO_PARSING;
        if (strcmp(reason, "EWorkerNoResponse") == 0)
            return CO_NO_RESPONSE;
        if (strcmp(reason, "EFuncTimeout") == 0)
            return CO_TIMEOUT;
        if (strcmp(reason, "EWorkerCrashed") == 0)
            return CO_CRASHED;
    }
    if (!status)
        return CO_OTHER;
    if (strcmp(status, "success") == 0)
        return CO_SUCCESS;
    if (strcmp(status, "failure") == 0)
        return CO_FAILURE;
    if (strcmp(status, "timeout") == 0)
        return CO_TIMEOUT;
    if (strcmp(status, "crashed") == 0)
        return CO_CRASHED;
    return CO_OTHER;
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; a stats field that
 * breaks the rule is mapped, not dropped. */
static void metric_name(char *out, size_t n, const char *prefix, const char *field)
{
    size_t i = (size_t)snprintf(out, n, "%s", prefix);
    for (; *field && i + 1 < n; field++)
        out[i++] = (char)((*field >= 'a' && *field <= 'z') || (*field >= 'A' && *field <= 'Z') ||
                                  (*field >= '0' && *field <= '9') || *field == '_'
                              ? *field
                              : '_');
    out[i] = '\0';
}

static void emit_hash(FILE *f, const char *prefix, json_t *h)
{
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v)
    {
        const char *s = json_string_value(v);
        char *end;
        double d = s ? strtod(s, &end) : 0;
        if (!s || end == s || *end)
            continue; /* not a number: Prometheus has no place for it */
        char name[160];
        metric_name(name, sizeof name, prefix, k);
        /* counters and gauges mixed: the hash does not say which */
        fprintf(f, "# TYPE %s untyped\n%s %s\n", name, name, s);
        (void)d;
    }
}

/* Issue 16's "is the backend staying the same size": Redis's memory, keys
 * and AOF (from rds_size_stats), task_record's size and the last purge pass
 * (from Pstats:purge, which the primary's keeper writes; absent while
 * retention is off or before its first look). Each is left out when its
 * source is missing rather than shown as 0. */
static void emit_sizes(FILE *f, json_t *ext)
{
    json_t *rs = json_object_get(ext, "redis"), *pu = json_object_get(ext, "purge");
    const struct {
        json_t *src;
        const char *field, *name, *help;
        double scale;
    } g[] = {
        {rs, "used_memory", "tandem_redis_used_memory_bytes", "Redis INFO used_memory.", 1},
        {rs, "keys", "tandem_redis_keys", "Keys in Tandem's Redis database (DBSIZE).", 1},
        {rs, "aof_enabled", "tandem_redis_aof_enabled", "1 when Redis keeps an append-only file.",
         1},
        {rs, "aof_size", "tandem_redis_aof_size_bytes", "Redis INFO aof_current_size.", 1},
        {pu, "table_rows_est", "tandem_task_record_rows_estimate",
         "task_record rows, InnoDB's estimate from information_schema (not a COUNT).", 1},
        {pu, "table_bytes", "tandem_task_record_bytes",
         "task_record data + index bytes, from information_schema.", 1},
        {pu, "last_pass_end_ms", "tandem_purge_last_pass_end_timestamp_seconds",
         "When the last retention pass ended (every origin back within its cap).", 1e-3},
        {pu, "last_pass_rows", "tandem_purge_last_pass_rows", "Rows the last pass deleted.", 1},
        {pu, "last_pass_us", "tandem_purge_last_pass_seconds",
         "Time the last pass's statements took.", 1e-6},
        {pu, "busy_us", "tandem_purge_busy_seconds_total",
         "Time spent in retention statements since the keeper started (its cost).", 1e-6},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        json_t *v = json_object_get(g[i].src, g[i].field);
        double d;
        if (json_is_string(v)) { /* Redis hash fields come as strings */
            char *end;
            d = strtod(json_string_value(v), &end);
            if (end == json_string_value(v) || *end)
                continue;
        } else if (json_is_number(v) || json_is_boolean(v)) {
            d = json_is_boolean(v) ? json_is_true(v) : json_number_value(v);
        } else {
            continue;
        }
        if (d < 0) /* -1: not read yet */
            continue;
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", g[i].name, g[i].help, g[i].name,
                strstr(g[i].name, "_total") ? "counter" : "gauge", g[i].name, d * g[i].scale);
    }
}

char *metrics_format(const struct srv_metrics *m, json_t *ext)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    static const char *const sclass[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};

    fputs("# HELP tandem_http_requests_total HTTP requests by route class and status class.\n"
          "# TYPE tandem_http_requests_total counter\n",
          f);
    for (int i = 0; i < RC_N; i++)
        for (int s = 0; s < 6; s++) {
            unsigned long v = atomic_load_explicit(&m->req[i][s], memory_order_relaxed);
            if (v || s == 2)
                fprintf(f, "tandem_http_requests_total{route=\"%s\",status=\"%s\"} %lu\n",
                        rclass_names[i], sclass[s], v);
        }

    fputs(
        "# HELP tandem_calls_total Function calls by outcome.\n# TYPE tandem_calls_total counter\n",
        f);
    for (int i = 0; i < CO_N; i++)
        fprintf(f, "tandem_calls_total{outcome=\"%s\"} %lu\n", outcome_names[i],
                atomic_load_explicit(&m->calls[i], memory_order_relaxed));

    fputs("# HELP tandem_http_request_duration_seconds Request latency, arrival to answer.\n"
          "# TYPE tandem_http_request_duration_seconds histogram\n",
          f);
    unsigned long cum = 0;
    for (int b = 0; b <= LAT_NBUCKETS; b++) {
        cum += atomic_load_explicit(&m->lat_bucket[b], memory_order_relaxed);
        if (b < LAT_NBUCKETS)
            fprintf(f, "tandem_http_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
                    srv_lat_bounds_ms[b] / 1000.0, cum);
        else
            fprintf(f, "tandem_http_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cum);
    }
    fprintf(f, "tandem_http_request_duration_seconds_sum %.6f\n",
            (double)atomic_load_explicit(&m->lat_sum_us, memory_order_relaxed) / 1e6);
    fprintf(f, "tandem_http_request_duration_seconds_count %lu\n",
            atomic_load_explicit(&m->lat_count, memory_order_relaxed));
    fputs("# HELP tandem_http_slow_clients_closed_total Connections closed for sending their "
          "headers or body slower than server.header_timeout/body_timeout in total.\n"
          "# TYPE tandem_http_slow_clients_closed_total counter\n",
          f);
    static const char *const phases[2] = {"headers", "body"};
    for (int i = 0; i < 2; i++)
        fprintf(f, "tandem_http_slow_clients_closed_total{phase=\"%s\"} %lu\n", phases[i],
                atomic_load_explicit(&m->slow_cut[i], memory_order_relaxed));

    json_t *q = json_object_get(ext, "queues");
    if (json_is_object(q)) {
        const char *name;
        json_t *v;
        fputs("# HELP tandem_queue_length Entries in the queue stream (XLEN).\n# TYPE "
              "tandem_queue_length gauge\n",
              f);
        json_object_foreach(q, name, v)
            fprintf(f, "tandem_queue_length{queue=\"%s\"} %lld\n", name,
                    (long long)json_integer_value(json_object_get(v, "length")));
        fputs("# HELP tandem_queue_pending Entries delivered to a worker and not acked yet.\n"
              "# TYPE tandem_queue_pending gauge\n",
              f);
        json_object_foreach(q, name, v)
            fprintf(f, "tandem_queue_pending{queue=\"%s\"} %lld\n", name,
                    (long long)json_integer_value(json_object_get(v, "pending")));
    }
    const struct {
        const char *key, *name, *help;
    } gauges[] = {
        {"delayed", "tandem_delayed_tasks", "Tasks waiting for their eta."},
        {"workers_live", "tandem_workers_live", "Live worker heartbeats."},
        {"servers_live", "tandem_servers_live", "Live server heartbeats."},
        {"pending_calls", "tandem_server_pending_calls",
         "Sync calls of this server waiting for their outcome."},
        {"cache_gen", "tandem_server_cache_generation", "Generation of this server's call cache."},
        {"epoch", "tandem_server_epoch", "Epoch this server was started with."},
        {"accept_tasks", "tandem_server_accept_tasks",
         "Async tasks the accept thread sent to Redis since start."},
        {"accept_batches", "tandem_server_accept_batches",
         "Pipelines they went in (group commit: tasks / batches = tasks per round trip)."},
        {"accept_retried", "tandem_server_accept_retried",
         "Tasks sent again on a fresh connection after Redis left them unanswered."},
        {"accept_retry_found", "tandem_server_accept_retry_found",
         "Of those, tasks Redis already held (not queued a second time)."},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        json_t *v = json_object_get(ext, gauges[i].key);
        if (json_is_integer(v))
            fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauges[i].name, gauges[i].help,
                    gauges[i].name, gauges[i].name, (long long)json_integer_value(v));
    }
    emit_sizes(f, ext);
    emit_hash(f, "tandem_worker_", json_object_get(ext, "worker"));
    emit_hash(f, "tandem_beat_", json_object_get(ext, "beat"));
    emit_hash(f, "tandem_purge_", json_object_get(ext, "purge"));
    fclose(f);
    return buf;
}
