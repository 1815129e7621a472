/* tandem-server: the API request handlers are written against.
 *
 * A handler is `void h(struct srv_req *r)`. It answers exactly once, with
 * req_ok()/req_err()/req_raw(), or hands the request to the worker with
 * srv_call() (the connection is suspended and the handler's `done` callback
 * answers later, in an HTTP thread). Helpers named req_need_*()/req_body_*()
 * answer the error themselves and return NULL/-1; the handler then just
 * returns. A handler that returns without answering gets a 500.
 *
 * Threads: handlers run in libmicrohttpd's pool threads. Each thread has its
 * own Redis connection (srv_redis()) and, lazily, its own MariaDB connection
 * (srv_db()); neither may be shared with another thread or kept past the
 * handler. Hot paths (calls) use no SQL: only the in-memory cache. */
#ifndef TANDEM_SERVER_H
#define TANDEM_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis.h>
#include <jansson.h>
#include <mysql.h>
#include "config.h"
#include "task.h"

#define SRV_MAX_PARAMS 4

struct srv_req;
struct MHD_Connection;

/* Who may call a route (server_auth.c). The numbers matter: rows written
 * with `true`/`false` mean call/none. */
enum srv_scope {
    SRV_SCOPE_NONE = 0,  /* anyone */
    SRV_SCOPE_CALL = 1,  /* any credential: call funcs and APIs */
    SRV_SCOPE_ADMIN = 2, /* a signed-in user, or an access key of scope admin */
};
typedef void (*srv_handler)(struct srv_req *r);

/* One row of the routing table (server_route.c). Pattern segments: literal,
 * ":" = one path segment captured into r->params[], a final "**" = the rest
 * of the path (possibly empty) captured as one param. method "*" = any
 * method (the handler checks it itself). */
struct srv_route {
    const char *method;
    const char *pattern;
    srv_handler fn;
    enum srv_scope need; /* the HTTP layer checks credentials first (srv_auth_check) */
    const char *rclass;  /* metrics label: "ping","call","admin",... */
};

/* Outcome of a task handed to the worker with srv_call(). `outcome` is the
 * worker's outcome JSON (docs/INTERNALS.md), or one made up by the server:
 * {"status":"timeout","reason":"EWorkerNoResponse"|"EFuncTimeout",...} when
 * the deadline passed. Borrowed: valid during the callback only. Runs in an
 * HTTP thread; must answer r. */
typedef void (*srv_call_done)(struct srv_req *r, json_t *outcome, void *ud);

struct srv_req {
    /* request, read-only for handlers */
    struct MHD_Connection *conn;
    const char *method;            /* "GET", "POST", ... */
    const char *path;              /* decoded path, no query string */
    const struct srv_route *route; /* matched row */
    char *params[SRV_MAX_PARAMS];  /* path captures (":" and "**"), in order */
    int nparams;
    char *body; /* request body, NUL-terminated; NULL if none */
    size_t body_len;
    char trace_id[40]; /* echoed in the envelope */
    int64_t t0_ms;     /* wall clock at arrival (reqTime) */
    int64_t t0_mono;   /* monotonic, for reqCost and latency */
    char key_id[64];   /* access key id when a valid key came with it */
    char user_id[64];  /* user id when a sign-in token came with it */
    char *uri;         /* raw request URI with query string (signatures cover it) */

    /* HTTP layer state (server_http.c) */
    int state;
    bool answered;
    bool body_too_large;
    size_t body_cap;
    int status;                /* HTTP status answered, for metrics */
    struct MHD_Response *resp; /* built before suspending / after resuming */
    srv_call_done done;
    void *done_ud;
    json_t *outcome; /* stored by the dispatcher for `done` */
    char task_id[ID_MAX];
    struct srv_req *pnext; /* pending table chain */
    int64_t deadline_mono;
    bool suspended;
    void (*accept_failed)(struct srv_req *r, void *ud); /* srv_accept's `failed` */

    /* A handler's own state that outlives one callback (Sync/Async API
     * calls: auth, uploads): `cleanup` runs once when the request ends,
     * answered or not. */
    void *call_ctx;
    void (*cleanup)(struct srv_req *r);
};

/* ---- answering ---------------------------------------------------------- */

/* 200 envelope {"ok":true,"error":200,"data":data,...}; steals data (NULL = null). */
void req_ok(struct srv_req *r, json_t *data);
/* Error envelope: http = 400/401/404/405/413/500/503/599, reason = "ENotFound"
 * etc., detail stolen (may be NULL), message printf-style. */
/* An integer query argument in [lo, hi], dflt when absent: 0, or -1 after
 * answering 400 naming the argument. */
int req_query_int(struct srv_req *r, const char *name, long long lo, long long hi, long long dflt,
                  long long *out);

/* Integral reals become integers, as DFF's Node.js server writes them. */
void srv_json_node_numbers(json_t *v);

void req_err(struct srv_req *r, int http, const char *reason, json_t *detail, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Raw answer (Sync API results, /metrics). Takes ownership of body (malloc'd). */
void req_raw(struct srv_req *r, int http, const char *content_type, char *body, size_t len);

/* ---- reading the request ------------------------------------------------ */

const char *req_query(struct srv_req *r, const char *name); /* decoded ?name=, or NULL */
const char *req_header(struct srv_req *r, const char *name);
/* Parse the body as JSON. Empty body: returns an empty object if !required,
 * else answers 400. Malformed: answers 400 EClientBadRequest naming the
 * parse error, line, column and position. Returns a new reference or NULL. */
json_t *req_body_json(struct srv_req *r, bool required);
/* Same, but the body must be a JSON object. */
json_t *req_body_object(struct srv_req *r, bool required);

/* Typed field access on a request object that answers 400 naming the field
 * (e.g. "field 'kwargs' must be an object, got string") and returns -1.
 * A missing field (or JSON null) leaves *out untouched and returns 0 unless
 * required, then 400. */
int req_field_str(struct srv_req *r, json_t *obj, const char *name, bool required,
                  const char **out);
int req_field_int(struct srv_req *r, json_t *obj, const char *name, bool required, int64_t lo,
                  int64_t hi, int64_t *out);
int req_field_bool(struct srv_req *r, json_t *obj, const char *name, bool required, bool *out);
int req_field_obj(struct srv_req *r, json_t *obj, const char *name, bool required, json_t **out);

/* Credentials (Bearer key, X-Dff-Auth-Token, X-Dff-Ak-* signature) that
 * grant `need`; else answers 401 (none or bad) / 403 (scope too small) and
 * returns -1. server_auth.c. */
int srv_auth_check(struct srv_req *r, enum srv_scope need);
/* srv_auth_check(r, SRV_SCOPE_CALL): any live credential. */
int req_need_key(struct srv_req *r);

/* 200 envelope with more top-level members (e.g. "pageInfo"), stolen. */
void req_ok_extra(struct srv_req *r, json_t *data, json_t *extra);

/* ---- backends ----------------------------------------------------------- */

/* This thread's Redis / MariaDB connection, (re)connected on demand. NULL
 * after answering 503 EBackend. After an I/O error call srv_*_broken() so
 * the next request reconnects. */
redisContext *srv_redis(struct srv_req *r);
/* The same for a thread without a request (the accept thread): NULL and
 * *err (malloc'd) when Redis is unreachable. */
redisContext *srv_redis_thread(char **err);
void srv_redis_broken(void);
MYSQL *srv_db(struct srv_req *r);
void srv_db_broken(void);
/* Answer an SQL failure: 503 EBackend (and drop the connection) when the
 * server is gone, else 500 EServerInternal with the MariaDB message. Frees err. */
void req_db_err(struct srv_req *r, MYSQL *m, char *err);
/* SQL that answers its own errors (req_db_err): a result set, or NULL after
 * answering; a statement's affected rows, or -1 after answering. */
MYSQL_RES *req_sql_query(struct srv_req *r, MYSQL *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
long long req_sql_exec(struct srv_req *r, MYSQL *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A lookup of one row (by id, a COUNT(*)), the query/fetch/free/error
 * steps in one: 1 with o->row the first row (valid until sql_row1_done),
 * 0 when there is none (nothing answered: the caller words its own 404),
 * -1 after answering the SQL error. o may be NULL to ask only whether a
 * row exists. After 0 and -1 o holds nothing, and sql_row1_done is a
 * no-op, so one done at the end serves every path. */
struct sql_row1 {
    MYSQL_RES *res;
    MYSQL_ROW row;
};
int req_sql_row1(struct srv_req *r, MYSQL *m, struct sql_row1 *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sql_row1_done(struct sql_row1 *o);
/* Answer a Redis failure (NULL or error reply): 503 EBackend. */
void req_redis_err(struct srv_req *r, redisContext *rc, redisReply *rep, const char *what);

/* After an admin write committed: INCR <prefix>gen and wait (<= 2 s) until
 * this server's cache has reloaded, so the next request of the same client
 * sees the change. 0, or -1 (Redis down; logged, not answered). */
int srv_gen_bump(void);
/* Servers, workers and beat also reload on their own at least every
 * SRV_RELOAD_MS, so a change whose announcement failed still applies by then. */
#define SRV_RELOAD_MS 5000
/* srv_gen_bump() after a committed write; if Redis refuses, answers 503
 * EBackend naming what was saved but not announced ("<label> <id> was
 * <done> but …") and returns -1. */
int req_gen_bump(struct srv_req *r, const char *label, const char *id, const char *done);

/* ---- process ------------------------------------------------------------ */

const struct tconf *srv_conf(void);
const char *srv_id(void); /* "<node>:<pid>:<rand>": reply list name */
int64_t srv_epoch(void);

/* ---- cache (server_cache.c): a refcounted snapshot of the call tables ---- */

/* Snapshot. Objects are read-only; copy what you keep past srv_cache_put().
 *   funcs: {"<func_id>": {"script_id","name","title","timeout","ver","cache_result",
 *           "extra":{..@DFF.API extras: queue, api_timeout, expires, ..}}}
 *   sapis / aapis: {"<id>": {"func_id","kwargs":{},"need_key":bool,"enabled":bool,
 *           "timeout":n|null,"api_auth_id":s|null,"expire_ms":n|null,"throttling":{}|null}}
 *   keys:  {"<sha256_hex>": "<key id>"}  (live keys only)
 *   auths: {"<api_auth id>": {"type","config":{}}} */
struct srv_cache {
    int refs;
    int64_t gen;
    bool loaded;
    json_t *funcs, *sapis, *aapis, *keys, *auths;
};
struct srv_cache *srv_cache_get(void);
void srv_cache_put(struct srv_cache *c);

/* ---- calls (server_call.c / server_dispatch.c) -------------------------- */

/* Fill the fields every task shares: new id, enq, epoch, reply/queue per
 * `sync`, timeout (clamped to server.sync_timeout/async_timeout). func and
 * kwargs (stolen) as given; origin/origin_id set by the caller after. */
void srv_task_init(struct task *t, const char *func, json_t *kwargs, bool sync, int timeout);

/* Sync: register, enqueue t on Pq:<t->queue>, suspend r; `done` answers once
 * the outcome arrives or t->timeout (+ margin) passes. Async (t->reply ""):
 * srv_accept (server_int.h) with the answer {"id"}: srv_call answers, the
 * caller must not. Returns 0, or -1 after answering the error (503 when
 * Redis is down). t is freed by the caller. */
int srv_call(struct srv_req *r, struct task *t, srv_call_done done, void *ud);

/* Async (server_journal.c): the accept thread group-commits concurrent
 * calls: one Redis pipeline, then one INSERT of their accept records
 * (MariaDB task_accept) per batch. srv_accept suspends r and answers it
 * `answer` (stolen) once accepted, or 503 EBackend when Redis did not take
 * the task (`failed`, if any, runs first, in r's HTTP thread, with ud). 0,
 * or -1 after answering. The caller answers nothing itself. */
int srv_accept(struct srv_req *r, struct task *t, json_t *answer,
               void (*failed)(struct srv_req *r, void *ud), void *ud);

/* options.eta (ISO-8601 or unix seconds) / options.delay (s): ZADD the task
 * to <prefix>delayed with score = due ms. 0, or -1 after answering. */
int srv_call_delayed(struct srv_req *r, struct task *t, int64_t due_ms);

/* Standard answer of a func call's outcome: success → data {"id","result"}
 * (or the raw result when raw=true, for Sync APIs); failure → 599 with the
 * worker's reason, message, and {"traceback","output","id"} in detail. */
void srv_answer_outcome(struct srv_req *r, json_t *outcome, bool raw);

/* ---- cron (src/server/server_cron.c, the beat engineer's) ---------------
 * Each has a weak default in server_route.c, server_admin.c or
 * server_resource.c (unit tests link without this file). */

/* GET/PATCH /api/v1/cron-jobs/_settings (the global pause) and POST
 * /api/v1/cron/<id> (DFF's run-now, r->params[0] the id); the admin key is
 * already checked; tell them apart by r->path. Return value is ignored
 * (answer r). The default answers 404 ENotFound "cron jobs are not part of
 * this build". */
int server_cron_route(struct srv_req *req);
/* Called after a publish committed (same MYSQL*, autocommit on) with the
 * worker's funcs array, to create/update fixed_cron_expr jobs. Non-zero →
 * logged and reported in the publish answer as "cron_error". */
int server_cron_on_publish(MYSQL *m, const char *script_id, json_t *funcs, char **err);
/* DFF-shaped cron job rows (cron-jobs/do/list, do/get: objects with id,
 * cronExpr, timezone, expireTime): each gets "state", the beat's Redis state
 * of the job and its next fire from now. 0, or -1 after answering (Redis
 * down: 503). Weak default in server_resource.c: no state. */
int server_cron_rows_state(struct srv_req *req, json_t *rows);
/* A deleted job's Redis state goes with it. 0, or -1 after answering 503
 * (Redis down: the row is gone, the beat ignores state of unknown jobs). */
int server_cron_forget(struct srv_req *req, const char *id);

#endif
