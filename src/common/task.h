/* The task message: what server, beat and worker put on the queue, and the
 * outcome a worker records. Format and keys are in docs/INTERNALS.md. */
#ifndef TANDEM_TASK_H
#define TANDEM_TASK_H

#include <stdbool.h>
#include <stdint.h>
#include <hiredis.h>
#include <jansson.h>
#include "config.h"
#include "ids.h"

enum task_origin {
    ORIGIN_FUNC = 0,
    ORIGIN_SYNC_API,
    ORIGIN_ASYNC_API,
    ORIGIN_CRON,
    ORIGIN_SUBTASK,
    ORIGIN_SYSTEM
};

struct task {
    char id[ID_MAX]; /* "task-..." */
    char func[256];  /* func id, or "__sys.inspect" for system tasks */
    json_t *kwargs;  /* object, owned */
    enum task_origin origin;
    char origin_id[ID_MAX]; /* sapi-/aapi-/cron- id, or "" */
    int timeout;            /* seconds, 1..3600 */
    char reply[128];        /* server id to LPUSH the outcome to, "" for async */
    char queue[16];         /* "sync" | "async" | "cron" */
    int64_t enq_ms;         /* when accepted */
    int64_t expires_ms;     /* drop as "expired" if not started by then; 0 = never */
    int64_t epoch;          /* epoch of the process that enqueued it */
    int64_t ver;            /* script publish_version the server saw, 0 = unknown */
    int64_t nominal;        /* cron slot unix seconds, 0 otherwise */
    /* DFF's record fields, read by task_decode from the optional "delay"
     * (s, a delayed call or delayed cron run) and "cron_expr" (the beat's
     * effective expression) keys; task_encode writes them when set. */
    int delay;
    char cron_expr[128];
    /* A delayed task (eta/delay, or a delayed cron run): unix ms it becomes
     * due, 0 = now. task_enqueue ZADDs one still in the future to
     * <prefix>delayed (the beat moves it to its stream when due) instead
     * of XADDing it; "due" in the JSON, so a journaled copy can be queued
     * again the same way (worker_reconcile.c). */
    int64_t due_ms;
    /* Optional fields for DFF's _DFF_* variables (eta, delay,
     * http_request, cron_job_delay), merged into the JSON by task_encode;
     * owned, NULL = none. task_decode leaves it NULL: the worker hands the
     * raw JSON to the runtime. */
    json_t *extra;
};

const char *
task_origin_name(enum task_origin o); /* "func","sync-api","async-api","cron","subtask","system" */
int task_origin_parse(const char *s); /* -1 if unknown */

/* Serialize to a compact JSON string (malloc'd) / parse one (kwargs taken
 * over by t; fill defaults for missing optional fields). Parse returns -1 on a
 * malformed message and sets *err. */
char *task_encode(const struct task *t);
int task_decode(struct task *t, const char *json, char **err);
void task_free(struct task *t); /* releases kwargs */

/* XADD the encoded task to queue stream <prefix>q:<queue> (ZADD it to
 * <prefix>delayed, score due_ms, while due_ms is in the future). Accepted =
 * this returned 0. For async and cron tasks (no reply) also SETs
 * <prefix>task:<id> to {"status":"queued",...} with TTL task_ttl, pipelined
 * in the same round trip; a sync call's status is the worker's to write.
 * With redis.wait_replicas, a WAIT ends the pipeline. -1 and *err on failure. */
int task_enqueue(redisContext *rc, const struct tconf *c, const struct task *t, char **err);

/* The same for n tasks in one pipeline: one round trip and at most one
 * WAIT for all of them (the server's accept thread group-commits
 * concurrent async calls this way). msg: task_encode(t) when the caller
 * has it, else NULL. err out: NULL = accepted, else why (malloc'd). */
struct task_enq {
    const struct task *t;
    const char *msg;
    char *err;
    /* out: sent, but the connection broke before its answer, so Redis may
     * or may not hold it (err says the connection broke) */
    bool unsure;
};
size_t task_enqueue_many(redisContext *rc, const struct tconf *c, struct task_enq *q, size_t n);

/* The retry of the `unsure` tasks of a task_enqueue_many() whose
 * connection broke, on a fresh connection rc: one script that adds only
 * those Redis does not hold yet (their status key or an entry of their
 * stream names them), so none is queued twice, then the WAIT as above.
 * since_ms: how long ago the first try was sent (bounds the stream scan).
 * Others are left alone. Returns how many of the unsure are accepted now
 * (their unsure and err cleared), *already how many of them the first try
 * had got in. Costs nothing on the first try's path. */
/* Tests only: every task_enqueue_many() of this process sends half of its
 * batch, lets Redis run it and drops the connection unanswered. */
void task_test_cut_arm(bool on);

size_t task_enqueue_again(redisContext *rc, const struct tconf *c, struct task_enq *q, size_t n,
                          int64_t since_ms, size_t *already);

/* cache_result: the key a func's result is cached under for these kwargs,
 * <prefix>cache:result:<func>:<sha256 of kwargs as compact JSON with sorted
 * keys>. The worker writes it, the server reads it; both must hash alike. */
void task_kwargs_digest(json_t *kwargs, char out[65]);
char *task_result_cache_key(char *buf, size_t n, const struct tconf *c, const char *func,
                            json_t *kwargs);

/* DFF's delayed_cron_job of a func (its extra JSON "delayed_cron_job"): the
 * delays, in seconds, of the runs each fired cron slot makes instead of one
 * run at the slot (0 = a run at the slot itself). Sorted, without
 * duplicates, each 0..TASK_CRON_DELAY_MAX_S, at most TASK_CRON_DELAYS_MAX.
 * Returns how many (0: the option is absent, i.e. one run at the slot), or
 * -1 with why (a malformed list: the publish check refuses these). */
#define TASK_CRON_DELAYS_MAX 60
#define TASK_CRON_DELAY_MAX_S 86400
int task_cron_delays(json_t *extra, int out[TASK_CRON_DELAYS_MAX], char *why, size_t whylen);

#endif
