/* tandem-server internals shared between its own files (handlers use server.h). */
#ifndef TANDEM_SERVER_INT_H
#define TANDEM_SERVER_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include "server.h"

enum req_state { RS_NEW = 0, RS_BODY, RS_SUSPENDED, RS_ANSWERED };

/* ---- metrics (server_metrics.c) ---- */
enum rclass {
    RC_PING,
    RC_HEALTH,
    RC_CALL,
    RC_API,
    RC_TASK,
    RC_ADMIN,
    RC_CRON,
    RC_METRICS,
    RC_OTHER,
    RC_N
};
enum call_outcome {
    CO_SUCCESS,
    CO_FAILURE,
    CO_TIMEOUT,
    CO_CRASHED,
    CO_PARSING,
    CO_NO_RESPONSE,
    CO_OTHER,
    CO_ASYNC,
    CO_DELAYED,
    CO_ENQUEUE_ERROR,
    CO_N
};
#define LAT_NBUCKETS 14
extern const double srv_lat_bounds_ms[LAT_NBUCKETS];

struct srv_metrics {
    atomic_ulong req[RC_N][6]; /* status class 1xx..5xx, [0] = other (599 counts as 5xx) */
    atomic_ulong calls[CO_N];
    atomic_ulong lat_bucket[LAT_NBUCKETS + 1]; /* last = +Inf */
    atomic_ulong lat_count;
    atomic_ulong lat_sum_us;
    atomic_ulong slow_cut[2]; /* connections cut past header_timeout / body_timeout */
};

int rclass_index(const char *name);
const char *rclass_name(int i);
const char *call_outcome_name(int i);
void metrics_request(struct srv_metrics *m, int rclass, int status, int64_t cost_us);
void metrics_call(struct srv_metrics *m, int outcome);
int metrics_outcome_of(const char *status, const char *reason);
/* Prometheus text of the counters plus `ext` (what /metrics read from Redis):
 * {"queues":{"sync":{"length":n,"pending":n},...},"workers_live":n,"servers_live":n,
 *  "worker":{"field":"value",...},"beat":{...},"pending_calls":n,"cache_gen":n}.
 * Returns a malloc'd string. */
char *metrics_format(const struct srv_metrics *m, json_t *ext);

/* ---- routing (server_route.c) ---- */
/* Finds the row for method+path. Returns it, fills params (malloc'd copies,
 * caller frees) and *nparams; NULL if none. *path_matched tells whether the
 * path matched some row with another method (405); allow gets the list
 * ("GET, POST") then. */
const struct srv_route *route_match(const struct srv_route *table, size_t n, const char *method,
                                    const char *path, char **params, int *nparams,
                                    bool *path_matched, char *allow, size_t allown);
extern const struct srv_route srv_routes[];
extern const size_t srv_nroutes;

/* ---- envelope (server_http.c) ---- */
/* Envelope JSON text; error == NULL for success. Pure, for tests. */
char *envelope_build(int http, const char *reason, const char *message, json_t *detail,
                     json_t *data, const char *trace_id, int64_t t0_ms, int64_t t1_ms,
                     int64_t cost_ms);

/* Same with extra top-level members (stolen, may be NULL). */
char *envelope_build_ex(int http, const char *reason, const char *message, json_t *detail,
                        json_t *data, json_t *extra, const char *trace_id, int64_t t0_ms,
                        int64_t t1_ms, int64_t cost_ms);
/* DFF's wire reason and decimal code ("404.41") for a reason and status. */
void envelope_code(int http, const char *reason, const char **wire, char *code, size_t n);

/* ---- resources (server_resource.c) and auth (server_auth.c) ---- */
void h_res_list(struct srv_req *r);
void h_res_get(struct srv_req *r);
void h_res_add(struct srv_req *r);
void h_res_modify(struct srv_req *r);
void h_res_delete(struct srv_req *r);
void h_res_import(struct srv_req *r);
void h_res_export(struct srv_req *r);
void h_sign_in(struct srv_req *r);
void h_sign_out(struct srv_req *r);
/* the web console (server_auth.c: its session cookie; server_console.c) */
void h_console_sign_in(struct srv_req *r);
void h_console_session(struct srv_req *r);
void h_console_sign_out(struct srv_req *r);
void h_console_root(struct srv_req *r);
void h_console_file(struct srv_req *r);
void h_console_cluster(struct srv_req *r);
void h_console_switchover(struct srv_req *r);
void h_console_maintenance(struct srv_req *r);
void h_console_callables(struct srv_req *r);
void h_console_cron_next(struct srv_req *r);
/* MIME type the console serves a file name as, NULL = not served; whether a
 * path below /console/ is a plain name (0) or not (-1, *why says). */
const char *console_mime(const char *name);
int console_path_ok(const char *rel, const char **why);
/* The console's version tag (16 hex, from its files' names, sizes and
 * mtimes; -1 when the directory cannot be read), and buf with every
 * "@version@" replaced by tag (malloc'd). */
int console_version(const char *dir, char out[17]);
char *console_stamp(const char *buf, size_t len, const char *tag, size_t *outlen);
/* The overview's data (GET /api/v1/console/cluster); NULL after answering
 * an error. */
json_t *console_cluster_json(struct srv_req *r);
/* Ends every sign-in session of a user (disabled, deleted, new password). */
void auth_drop_user_tokens(redisContext *rc, const char *user_id);

/* ---- process context ---- */
#define PENDING_BUCKETS 4096

struct srv_ctx {
    struct tconf conf;
    char id[120];
    int64_t epoch;
    volatile bool epoch_known; /* from --epoch, or read from <prefix>epoch */
    struct MHD_Daemon *mhd;
    volatile sig_atomic_t stop;
    atomic_int inflight; /* requests between arrival and completion */

    /* cache */
    pthread_mutex_t cache_mu;
    pthread_cond_t cache_cv;
    struct srv_cache *cache;
    pthread_mutex_t kick_mu;
    pthread_cond_t kick_cv;
    bool kick;

    /* pending sync calls, keyed by task id */
    pthread_mutex_t pend_mu;
    struct srv_req *pend[PENDING_BUCKETS];
    int npend;

    struct srv_metrics metrics;
    pthread_t dispatcher, housekeeper;
};
extern struct srv_ctx S;

/* server_backend.c */
void backend_init(void);

/* server_cache.c */
int cache_load(MYSQL *m, redisContext *rc, struct srv_cache **out, char **err);
struct srv_cache *cache_new_empty(void);
void cache_swap(struct srv_cache *c);
void *housekeeper_main(void *arg); /* gen poller + heartbeat */
void epoch_read(redisContext *rc);
/* Live heartbeats of kind "worker"/"server": the housekeeper's count of the
 * last second, or counted now with rc when that is stale. */
long long hb_live(redisContext *rc, const char *kind);

/* server_health.c: a background check once a second; h_health reads it */
struct srv_health {
    bool redis_ok, db_ok;
    long long workers;         /* live worker masters (heartbeats) */
    long long worker_children; /* their ready children, summed */
    int64_t at_mono;           /* when the check finished, 0 = never */
    bool cache_loaded;         /* funcs, APIs, keys loaded from MariaDB once */
    char redis_err[200], db_err[200];
};
int health_start(void);
void health_stop(void); /* after S.stop is set */
/* The answer for a check result: data object (new reference), *http 200 or
 * 503, why = " redis down ..." reasons (empty when 200). Pure, for tests. */
json_t *health_judge(const struct srv_health *h, int64_t now_mono, int64_t epoch, int *http,
                     char *why, size_t whyn);

/* server_journal.c: the accept thread (srv_accept, server.h). */
int journal_start(void);
void journal_stop(void);
bool journal_on(void);
void journal_counts(unsigned long *rows, unsigned long *batches, unsigned long *unjournaled);
/* Sync: r is in the pending table; suspends it and hands t to the accept
 * thread, which enqueues it with the others of its batch (no journal row:
 * sync calls have none) and, when Redis refuses it, delivers a failure
 * outcome (reason EBackend) through the pending table. 0 when handed over,
 * -1 when the thread is not running (the caller enqueues it itself). */
int accept_sync(struct srv_req *r, const struct task *t);
/* Tasks the accept thread sent to Redis, and in how many pipelines; how
 * many it sent again after a broken connection, and how many of those
 * Redis already held. */
void accept_counts(unsigned long *tasks, unsigned long *batches, unsigned long *retried,
                   unsigned long *retry_found);

/* server_dispatch.c */
void *dispatcher_main(void *arg);
void pending_insert(struct srv_req *r);
bool pending_remove(struct srv_req *r);
/* Takes the request of task_id out of the table and delivers outcome
 * (stolen) to it; nothing (outcome freed) when someone claimed it first. */
void pending_fail(const char *task_id, json_t *outcome);
/* Called under pend_mu by srv_call when the outcome may already be there. */
void dispatcher_expire_all(const char *reason, const char *message);
/* The two halves of the dispatcher's expiry, for tests: take the requests
 * past their deadline (all of them when `all`) out of the pending table, a
 * list chained by pnext; then deliver each a made-up timeout outcome
 * (reason NULL: asks Redis whether the task was running) and resume it.
 * A claimed request is the dispatcher's to deliver to, even when srv_call
 * has answered it meanwhile (srv_call then waits suspended). */
struct srv_req *pending_claim(bool all);
void pending_deliver_timeouts(struct srv_req *list, redisContext *rc, const char *reason,
                              const char *message);
/* Outcome → response, used by the dispatcher's tests: reason for an expired task. */

/* server_http.c */
int http_start(void);
void http_quiesce(void);
/* connections accepted that have not sent a request yet; when the newest
 * connection came (mono ms) */
int http_fresh_connections(void);
int64_t http_last_accept(void);
void http_stop(void);
void req_finish_resumed(struct srv_req *r);

/* handlers */
void h_ping(struct srv_req *r);
void h_health(struct srv_req *r);
void h_metrics(struct srv_req *r);
void h_func_call(struct srv_req *r);
void h_sync_api(struct srv_req *r);
void h_async_api(struct srv_req *r);
void h_task_get(struct srv_req *r);
void h_cron(struct srv_req *r);
void h_script_publish(struct srv_req *r);
void h_failover_events(struct srv_req *r);
void h_connectors(struct srv_req *r);   /* server_connector.c */
void h_script_debug(struct srv_req *r); /* server_connector.c: draft runs */
/* Import of a connector's configJSON (in place): DFF's emptied
 * "<field>Cipher" keys dropped with a warning, Tandem-sealed secrets checked
 * against secret.key, plain ones sealed. -1 after answering. */
int connector_import_config(struct srv_req *r, const char *id, json_t *cfg, json_t *warnings);
/* A stored (sealed) configJSON as exported: secrets emptied DFF's way
 * ("<field>Cipher": "") unless with_secrets, which keeps them sealed. */
void connector_export_config(json_t *cfg, bool with_secrets);
bool connector_type_ok(struct srv_req *r, const char *type); /* answers 400 when not */

/* ---- calls (server_call.c) ---- */
struct call_opts {
    bool async;
    int64_t timeout;         /* s; 0 = the func's / defaults */
    bool timeout_set_by_api; /* timeout is the API's own (admin-set): may pass the sync cap */
    int64_t due_ms;          /* 0 = now */
    json_t *eta, *delay;     /* borrowed: options.eta / options.delay as given (DFF's _DFF_ETA /
                                _DFF_DELAY) */
    int queue;               /* 1..9 picked by the caller; 0 = the func's or by origin */
    int64_t expires;         /* s; 0 = the func's or defaults */
    bool json_dumps;         /* options.returnType "jsonDumps": the result as JSON text */
    bool unbox;              /* options.unbox: answer the bare result (as a Sync API does) */
};
/* The task of a call of func_id (kwargs stolen): timeout, queue and expires
 * from the options, the func's @DFF.API extras and the defaults. 0, or -1
 * after answering 404 (no such func). *func (may be NULL) gets the cache
 * entry of the func. t is to be task_free()d after 0. */
int call_task_build(struct srv_req *r, struct srv_cache *c, const char *func_id, json_t *kwargs,
                    const struct call_opts *o, enum task_origin origin, const char *origin_id,
                    struct task *t, json_t **func);
/* DFF's httpRequest of the request being served: method, originalUrl,
 * url, host, headers (lower-cased names), query, body (data, {} for
 * GET/HEAD), ip. mask: credential headers read "*****" and a body over
 * 64 KiB of JSON is null (what a called func sees as _DFF_HTTP_REQUEST);
 * an auth func gets everything. */
json_t *srv_http_request_json(struct srv_req *r, json_t *data, bool mask);
/* The outcome a worker cached for this func and kwargs (cache_result), or
 * NULL; *answered when Redis was down and r got its 503. */
json_t *call_cached_outcome(struct srv_req *r, json_t *f, const struct task *t, bool *answered);

/* ---- Sync/Async API calls (server_api.c, server_apiauth.c, server_throttle.c) ---- */
/* DFF's rule for the API's fixed kwargs (`base`, modified in place) and the
 * caller's (`input`): a caller's extra name is added; a placeholder
 * (INPUT_BY_CALLER / FROM_PARAMETER) takes the caller's value or, when the
 * caller gives none, is dropped; a fixed value the caller also sends is an
 * error. 0, or -1 with *bad_field set to the offending name. */
int api_kwargs_merge(json_t *base, json_t *input, const char **bad_field);
/* A DFF.RESP content type ("json", "html", "text", "jpg", ... or a full MIME
 * type) → MIME type; NULL for a short name it does not know. */
const char *api_mime_of(const char *ct);
/* Content type to serve a file as, from its name's extension. */
const char *api_mime_of_filename(const char *name);

/* base64 (RFC 4648, with padding): encode → malloc'd string; decode → malloc'd
 * bytes and *n, NULL when malformed. MD5 of data as 32 lowercase hex. */
char *b64_encode(const void *data, size_t n);
unsigned char *b64_decode(const char *s, size_t len, size_t *n);
void md5_hex(const void *data, size_t n, char out[33]);

/* API Auth (DFF's fixedField, httpBasic, httpDigest, func). */
enum apiauth_result { APIAUTH_OK, APIAUTH_ANSWERED, APIAUTH_FUNC };
/* Checks the request against the auth config `auth` ({"type","config"}) of
 * an API whose realm is e.g. "SyncAPI:<id>". OK: admitted; ANSWERED: r was
 * answered (401, or 503 when Redis is down); FUNC: the caller must run
 * config.funcId as a task and admit on a truthy result. `body` is the
 * request's parsed data (query args, JSON or form body); fixedField fields
 * of location query/body are removed from `strip` (the caller's kwargs) so
 * a token never reaches the function. */
enum apiauth_result apiauth_check(struct srv_req *r, json_t *auth, const char *realm, json_t *body,
                                  json_t *strip);
/* The Digest response python-requests' HTTPDigestAuth computes (RFC 7616,
 * MD5; qop "auth" or none). Pure, for tests. */
void apiauth_digest_response(const char *user, const char *realm, const char *password,
                             const char *method, const char *uri, const char *nonce, const char *nc,
                             const char *cnonce, const char *qop, char out[33]);
/* Parses `Digest k=v, k="v"` into an object; NULL if malformed. */
json_t *apiauth_parse_kv(const char *s);

/* Throttling and the queue-depth cap in one Redis round trip. `rules` is
 * DFF's throttlingJSON ({"bySecond":n,"byMinute":n,...}; NULL = none),
 * `qkey` the full stream key the call goes to, `qlimit` its cap (0 = none).
 * 0 = go on; -1 = answered (429 with Retry-After, or 503). */
int api_throttle(struct srv_req *r, const char *kind, const char *id, json_t *rules,
                 const char *qkey, long long qlimit);
/* The data of a non-multipart request body by its Content-Type ct (JSON
 * object, form fields, {"text"} or {"base64"}; *raw for the last two), as
 * DFF reads it: a new object, or NULL after answering 400/500. Pure apart
 * from the answer: fuzzed by tests/fuzz/fuzz-kwargs.c. */
json_t *api_body_data(struct srv_req *r, const char *ct, bool *raw);
/* A multipart/form-data body (r->body) of connection r->conn, through
 * libmicrohttpd's post processor: its fields as a new object, its files
 * stored under a new directory (its path in dir, "" if none was made;
 * the caller removes it) and described in *files, the array that becomes
 * kwargs.files ({filePath, originalname, encoding, mimetype, size} each;
 * may be set on failure too). NULL after answering 400/500. Fuzzed by
 * tests/fuzz/fuzz-multipart.c. */
json_t *api_multipart_data(struct srv_req *r, json_t **files, char *dir, size_t n);

/* server_resource.c: a DFF script-set export (its META as JSON) flattened
 * into the items to write, in write order (a set before its scripts), each
 * normalised (JSON text columns parsed, 0/1 booleans made booleans). *out
 * (free it) borrows the items from data. -1 after answering a malformed
 * export. Fuzzed by tests/fuzz/fuzz-import.c. */
struct resource;
struct import_item {
    const struct resource *rs;
    const char *section;
    json_t *item; /* borrowed from the body */
    bool exists;
};
int import_collect(struct srv_req *r, json_t *data, struct import_item **out, size_t *n);

/* A Sync API's answer of an outcome: the bare result (a str raw, None
 * empty, else JSON) shaped by the outcome's "resp" (DFF.RESP) and
 * options.returnType; a failure gives reason and message, no traceback. */
void api_answer_outcome(struct srv_req *r, json_t *outcome, json_t *options);
/* Seconds of a DFF throttling rule name (bySecond 1 ... byYear); 0 if unknown. */
int throttle_rule_seconds(const char *rule);
/* ISO-8601 ("2026-11-27T23:59:01Z", fractional and offset allowed) or unix
 * seconds (number or digits) → ms. -1 if malformed. */
int64_t parse_time_ms(json_t *v);
int64_t parse_time_str_ms(const char *s);

/* server_admin.c: a result row as a JSON object named by the columns:
 * numbers as numbers, TINYINT(1) as booleans, DATETIME as ISO-8601,
 * "<name>_json" columns parsed and renamed to <name>. */
json_t *db_row_json(MYSQL_RES *res, MYSQL_ROW row);
json_t *db_rows_json(MYSQL_RES *res);

#endif
