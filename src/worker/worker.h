/* tandem-worker: a small master (no Python) that forks children, each with
 * its own embedded CPython, plus one "keeper" child (no Python) that flushes
 * task records to MariaDB and re-queues tasks of dead consumers.
 *
 *   worker_main.c     main(): parse, load config, run the pool
 *   worker_pool.c     master: spawn/respawn, hard timeout, memory limit,
 *                     crash records, heartbeat, graceful stop
 *   worker_child.c    child: read the queues, run, record (one pipeline)
 *   worker_py.c       the embedded interpreter and the _tandem C module
 *   worker_keeper.c   record flush to MariaDB, reclaim of dead consumers
 *   worker_record.c   the outcome/status/record JSON and the commit pipeline
 *   worker_proto.c    child -> master pipe messages
 *   worker_util.c     small pure helpers (RSS, backoff, signal names)
 *
 * Docs: docs/INTERNALS.md "Worker consumption". */
#ifndef TANDEM_WORKER_H
#define TANDEM_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis.h>
#include <jansson.h>

#include "config.h"
#include "ids.h"
#include "task.h"

#define W_GROUP "workers"
/* Every stream a task can be on: sync, cron, async by origin, and DFF's
 * numbered queues 0..9 (a func's `queue=N`), stream <prefix>q:<name>.
 * Children serve those worker.queues names (default all); the keeper
 * reclaims on all of them. */
#define W_NQUEUES 13
extern const char *const w_queues[W_NQUEUES]; /* "sync", "cron", "async", "0".."9" */
#define W_QSYNC 0                             /* w_queues[W_QSYNC] is "sync" */
/* Index of a queue name in w_queues, -1 if it is not one. */
int w_queue_index(const char *name);
/* The served set from the config: serve[i] for w_queues[i]. 0, or -1
 * with why filled (an unknown name; config validation catches it first). */
int w_queues_served(const struct tconf *c, bool serve[W_NQUEUES], char *why, size_t n);

/* Weighted round-robin over the served streams: each turn of a fixed,
 * smooth cycle (sync 4, cron 2, async 1, each numbered queue 1) names the
 * stream tried first; the rest follow in cycle order. A busy stream
 * therefore gets at least its weight's share whatever the others hold (sync
 * cannot starve cron or async), an idle one costs nothing, and no stream
 * saves up turns for a burst later. */
#define W_WRR_MAX 64
struct wrr {
    int n;            /* served streams */
    int q[W_NQUEUES]; /* their w_queues indexes, in the fixed order */
    int seq[W_WRR_MAX], nseq;
    int pos; /* the current turn in seq */
};
int w_queue_weight(int q); /* sync 4, cron 2, async 1, 0..9 1 */
void wrr_init(struct wrr *w, const bool serve[W_NQUEUES]);
/* The order to try the served streams in for this turn (w_queues indexes,
 * w->n of them). */
void wrr_order(const struct wrr *w, int order[W_NQUEUES]);
/* A task was taken: next turn. */
void wrr_took(struct wrr *w);

/* ---- worker_proto.c: what a child tells the master ---------------------- */

enum wmsg_type { WMSG_READY = 1, WMSG_START = 2, WMSG_DONE = 3 };

/* Everything needed to record an outcome for a task without its kwargs:
 * the master records timeouts and crashes from this alone. */
struct wtask {
    char id[ID_MAX];
    char func[256];
    int32_t origin;  /* enum task_origin */
    int32_t timeout; /* s */
    char origin_id[ID_MAX];
    char queue[16]; /* the stream it was read from: one of w_queues */
    char reply[128];
    char entry[48]; /* stream entry id, for XACK/XDEL */
    int64_t enq_ms, epoch, nominal, ver;
    int64_t start_ms;     /* wall clock when the child started it */
    int64_t start_mono;   /* CLOCK_MONOTONIC then (one host: the master compares it) */
    int32_t cache_result; /* s; set when known (after the run) */
    /* DFF's record fields (migration 011) */
    int64_t expires_ms;  /* 0 = never */
    int32_t delay;       /* s */
    char cron_expr[128]; /* "" = not a cron run */
};

/* A fixed-size message: the child's latest state. */
struct wmsg {
    uint32_t magic;
    uint32_t type;
    struct wtask t;
};
#define WMSG_MAGIC 0x546e6477u /* "wdnT" */

/* A child's slot in memory shared with the master (one page per child,
 * mapped before the fork): the child publishes its latest message there
 * and the master reads it on its own tick. No syscall and no wakeup per
 * task, where a pipe write at each task's start and end was 2 of the
 * child's ~4.4 syscalls per task. Only the latest message counts (a task
 * that starts and ends between two ticks is never seen, as it needs no
 * policing); the child is the only writer.
 * Message n is m[n & 1]: the child fills the buffer the master is not
 * told to read, then raises pub, so a child killed mid-write leaves its
 * previous message whole. */
struct wslot {
    _Atomic uint64_t pub; /* messages published so far */
    struct wmsg m[2];
};
/* The child: publish a message (t may be NULL). */
void wslot_publish(struct wslot *s, enum wmsg_type type, const struct wtask *t);
/* The master: the latest message if one was published since *seen (then
 * *seen moves to it). 1 copied into out, 0 nothing new, -1 the child kept
 * overwriting it while it was copied (try on the next tick). */
int wslot_read(struct wslot *s, uint64_t *seen, struct wmsg *out);

/* ---- worker_listen.c: one idle child at a time waits in Redis ---------- */

/* A page shared by the master and every child (MAP_SHARED, mapped before
 * the forks, not into forks of user code). */
struct wlisten {
    _Atomic int owner;     /* pid of the child whose turn it is; 0: nobody's */
    _Atomic uint32_t turn; /* futex word: bumped at every release */
    _Atomic int waiters;   /* children asleep in wlisten_wait() */
    _Atomic int valid;     /* ids were left by the last holder */
    char ids[W_NQUEUES][48];
};
/* Stream ids "<ms>-<seq>" compared as Redis does: <0, 0, >0. */
int stream_id_cmp(const char *a, const char *b);
/* The turn for pid (true; also when it already has it) or not; *turn is
 * what to pass to wlisten_wait(). */
bool wlisten_try(struct wlisten *l, int pid, uint32_t *turn);
/* Sleeps until a release after *turn was read, or ms. */
void wlisten_wait(struct wlisten *l, uint32_t turn, int ms);
/* Just after taking the turn: each served stream's id moves to the one
 * the last holder left, when that is later. */
void wlisten_take_ids(struct wlisten *l, char ids[W_NQUEUES][48], const bool serve[W_NQUEUES]);
/* Gives the turn away (if pid has it), leaving ids (NULL: none) for the
 * next holder, and wakes one waiter. */
void wlisten_release(struct wlisten *l, int pid, const char ids[W_NQUEUES][48]);
/* pid is gone: if the turn was its, it is nobody's, and every waiter
 * wakes to take it. */
void wlisten_dead(struct wlisten *l, int pid);

/* Fill a message; strings are truncated to fit and NUL-terminated. */
void wmsg_init(struct wmsg *m, enum wmsg_type type, const struct wtask *t);
/* Validate a received message: magic, type, NUL-terminated strings,
 * timeout 1..3600 for START. 0, or -1 with a reason in why. */
int wmsg_check(const struct wmsg *m, char *why, size_t n);
/* Build the wtask of a decoded task read from stream queue `queue`, entry `entry`. */
void wtask_from_task(struct wtask *w, const struct task *t, const char *queue, const char *entry);

/* ---- worker_record.c: outcome JSON and the commit pipeline -------------- */

/* What happened to one task. Strings may be NULL. */
struct woutcome {
    const char *status; /* success | failure | timeout | crashed | expired */
    const char *reason; /* NULL on success */
    const char *message;
    const char *traceback;
    const char *output;
    json_t *result; /* borrowed; success only (NULL = null) */
    json_t *data;   /* borrowed; extra data (e.g. {"line":3}) or NULL */
    json_t *resp;   /* borrowed; DFF.RESP's response control (success only) or NULL */
    int64_t start_ms, end_ms;
    /* CLOCK_MONOTONIC at the same moments (0 = unknown): the cost is
     * measured on these, so a wall-clock step does not enter it */
    int64_t start_mono, end_mono;
    /* For the task record only (DFF's task-record fields), all borrowed and
     * optional: the call's kwargs, the root task of a DFF.FUNC chain (NULL:
     * none, the task is its own root) and the chain of func ids. */
    json_t *kwargs;
    const char *root_task;
    json_t *chain;
};

/* The task's cost in ms: monotonic when both ends are known, else wall. */
int64_t wrec_cost_ms(const struct woutcome *o);
/* Outcome JSON for the reply list (docs/INTERNALS.md "Outcome JSON"). */
json_t *wrec_outcome(const struct wtask *t, const struct woutcome *o, const char *node);
/* Task status for Ptask:<id>: the task's fields merged with the outcome. */
json_t *wrec_status(const struct wtask *t, const struct woutcome *o, const char *node);
/* Record for Ptaskrec: the columns of task_record; times in ms since the
 * epoch (0 -> null). Long texts are cut to fit their columns; kwargs,
 * return value and call chain are JSON texts of at most WREC_JSON_MAX
 * bytes (a longer one is cut and ends with "...[cut: N bytes in all]"). */
#define WREC_JSON_MAX (64 * 1024)
json_t *wrec_record(const struct wtask *t, const struct woutcome *o, const char *node,
                    int64_t epoch);
/* One "(...)" VALUES row for INSERT INTO task_record (WREC_SQL_COLUMNS)
 * from a record JSON (ours, or another component's with the same keys;
 * times as ms integers, SQL/ISO strings or null). quote(ud, s) returns a
 * malloc'd SQL literal. NULL with *err (malloc'd) for a malformed record. */
#define WREC_SQL_COLUMNS                                                                           \
    "id, func_id, origin, origin_id, queue, status, reason, message, traceback, output, node, "    \
    "epoch, nominal_at, enqueued_at, started_at, ended_at, cost_ms, kwargs_json, "                 \
    "return_value_json, call_chain_json, root_task_id, trigger_at, cron_expr, delay_s, "           \
    "timeout_s, expires_s"
typedef char *(*wrec_quote_fn)(void *ud, const char *s);
char *wrec_sql_row(json_t *rec, wrec_quote_fn quote, void *ud, char **err);
/* Cut s to at most max bytes on a UTF-8 boundary (in place). */
void wrec_cut_utf8(char *s, size_t max);

/* The child's fetch as a Lua function, shared by its own fetch script
 * (worker_child.c) and the commit script, which fetches the next task in
 * the same script. fetch(gen key, first stream's KEYS index, streams,
 * consumer, "1" to read gen, a0) claims at most ONE entry (XREADGROUP
 * COUNT 1 on one stream at a time: a second claimed entry would wait behind
 * a long task). ARGV[a0 + i] is stream i's state: 'h' (hot: try XREADGROUP
 * at once) or 'c' (cold), followed by an id up to which every entry has
 * been delivered to some consumer (for a hot stream: will have been, if
 * its XREADGROUP finds nothing), so a stream with nothing after it has
 * nothing to claim. ARGV[a0] is the mode:
 *   '1' look first: one XREAD COUNT 2 over every stream after its id (one
 *       command, where an XREADGROUP and an XREVRANGE per stream were 26
 *       for the 13 streams); only a stream with something after its id
 *       gets an XREADGROUP, and if that finds nothing (delivered to another
 *       consumer) its id moves to its newest entry (the one the XREAD saw,
 *       or XREVRANGE when it saw two);
 *   '0' try the hot streams, then look when they are dry;
 *   'w' try the hot streams only: the caller's XREAD BLOCK has just looked
 *       (the hot streams are the ones it woke for, with the ids it saw).
 * Returns {gen, position (1..) among the streams or 0, entry id, fields,
 * 1 if the look was made, states ('e' per stream found empty, 'n' not
 * tried), {new id per stream or nil}, 1 if more entries may follow the
 * claimed one}. Position 0 means no stream had anything to claim: the
 * child may wait (XREAD BLOCK) after its ids.
 * A Redis error (NOGROUP) is returned, not raised: inside the commit script
 * a raised error would leave the commit's writes done but answer an error,
 * and the commit would be made twice. */
#define W_FETCH_FN_LUA                                                                             \
    "local function fetch(kg, k0, nk, consumer, wantgen, a0) "                                     \
    "  local g = false "                                                                           \
    "  if wantgen == '1' then g = redis.call('GET', kg) end "                                      \
    "  local mode = ARGV[a0] "                                                                     \
    "  local st, last, seen, look = {}, {}, {}, mode == '1' "                                      \
    "  for i = 1, nk do st[i] = 'n' last[i] = false end "                                          \
    "  while true do "                                                                             \
    "    if look then "                                                                            \
    "      local a = {'COUNT', '2', 'STREAMS'} "                                                   \
    "      for i = 1, nk do "                                                                      \
    "        a[3 + i] = KEYS[k0 + i - 1] "                                                         \
    "        a[3 + nk + i] = string.sub(ARGV[a0 + i], 2) "                                         \
    "      end "                                                                                   \
    "      local r = redis.pcall('XREAD', unpack(a)) "                                             \
    "      if type(r) == 'table' and r.err then return r end "                                     \
    "      if r then for _, s in ipairs(r) do seen[s[1]] = s[2] end end "                          \
    "    end "                                                                                     \
    "    for i = 1, nk do "                                                                        \
    "      local k = KEYS[k0 + i - 1] "                                                            \
    "      local es = seen[k] "                                                                    \
    "      local try = st[i] == 'n' and "                                                          \
    "        ((look and es) or (not look and string.sub(ARGV[a0 + i], 1, 1) == 'h')) "             \
    "      if try then "                                                                           \
    "        local r = redis.pcall('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', '1', "     \
    "                              'STREAMS', k, '>') "                                            \
    "        if type(r) == 'table' and r.err then return r end "                                   \
    "        if r then "                                                                           \
    "          return {g, i, r[1][2][1][1], r[1][2][1][2], look and 1 or 0, "                      \
    "                  table.concat(st), last, (not look or #es > 1) and 1 or 0} "                 \
    "        end "                                                                                 \
    "      end "                                                                                   \
    "      if look then "                                                                          \
    "        st[i] = 'e' "                                                                         \
    "        if es and #es > 1 then "                                                              \
    "          local e = redis.call('XREVRANGE', k, '+', '-', 'COUNT', '1') "                      \
    "          if e[1] then last[i] = e[1][1] end "                                                \
    "        elseif es then last[i] = es[1][1] end "                                               \
    "      elseif try then "                                                                       \
    "        st[i] = 'e' "                                                                         \
    "        last[i] = string.sub(ARGV[a0 + i], 2) "                                               \
    "      end "                                                                                   \
    "    end "                                                                                     \
    "    if look or mode == 'w' then "                                                             \
    "      return {g, 0, false, false, look and 1 or 0, table.concat(st), last, 0} "               \
    "    end "                                                                                     \
    "    look = true "                                                                             \
    "  end "                                                                                       \
    "end "

/* Records a finished task and acks its entry in one Lua script (SET
 * status, LPUSH reply (sync), LPUSH record, HINCRBY stats, cron running
 * release, result cache, XACK + XDEL): all or nothing, so an entry is never
 * acked without its outcome (e.g. Redis refusing writes at maxmemory).
 * result_cache_key: NULL, or "<prefix>cache:result:..." to SET the result.
 * Returns 0 recorded, or -1 not recorded: *err says why, and the context
 * is broken when rc->err is set (else Redis refused, e.g. OOM: retry).
 * extra: the child's fetch of its next task, made by the same script after
 * the commit (W_FETCH_FN_LUA), so a task under load costs one script and
 * one round trip: fetch_keys = gen key + streams (nfetch_keys), consumer,
 * want_gen "1"/"0", fetch_args = the look flag and the streams' states
 * (nfetch_args, see W_FETCH_FN_LUA); reply() sees the fetch's reply
 * (borrowed) if the commit was made; fetch_keys NULL for none. Without extra, or with its stats
 * NULL, this task is counted in Pstats:worker (tasks, its status,
 * cost_ms); else stats holds nstats (field, increment) pairs to add
 * instead, possibly none: the child sums its counters in memory and
 * flushes them about once a second (struct wstats). */
struct wrec_extra {
    const char *const *fetch_keys;
    int nfetch_keys;
    const char *consumer, *want_gen;
    const char *const *fetch_args;
    int nfetch_args;
    void (*reply)(redisReply *r, void *ud);
    void *ud;
    const char *const *stats;
    int nstats;
    /* Instead of the script (not for a cron task, whose running key is
     * released by a compare-and-delete): the commit as MULTI .. EXEC, then
     * XREADGROUP COUNT 1 on hot_stream, the one stream the fetch would try
     * first (its mode '0' with a hot stream), and GET of fetch_keys[0]
     * when want_gen is "1", in one round trip. hot_reply sees the
     * XREADGROUP's reply and the GET's (NULL if none), borrowed, whether
     * or not the commit was made: an entry it claimed is the consumer's. */
    const char *hot_stream;
    void (*hot_reply)(redisReply *xr, redisReply *gen, void *ud);
    /* NULL, or a stream tried before hot_stream: one entry from it, else
     * one from hot_stream (a small script in place of the XREADGROUP;
     * hot_reply sees the reply of the XREADGROUP that found one). */
    const char *peek_stream;
};
int wrec_commit(redisContext *rc, const struct tconf *c, const struct wtask *t,
                const struct woutcome *o, const char *node, int64_t epoch,
                const char *result_cache_key, const struct wrec_extra *extra, char **err);

/* ---- worker_kdb.c -------------------------------------------------------- */

/* A keeper helper's own MariaDB connection (purge, reconcile): READ
 * COMMITTED (no gap locks that would stall the record writer), reconnected
 * with backoff (0.5 s .. 30 s); `who` prefixes its log lines, `idle` says
 * what waits while MariaDB is down. */
struct kdb {
    const struct tconf *c;
    const char *who, *idle;
    struct st_mysql *db;
    int fails;
    int64_t retry_mono;
};
/* The connection, or NULL while MariaDB is down (logged once). */
struct st_mysql *kdb_get(struct kdb *k, int64_t now_mono);
/* A statement failed: log it, drop the connection (it may be half-dead),
 * back off. Frees err. */
void kdb_fail(struct kdb *k, const char *what, char *err, int64_t now_mono);
void kdb_close(struct kdb *k);

/* ---- worker_util.c ------------------------------------------------------ */

/* Resident set size in bytes from the text of /proc/PID/statm; -1 if malformed. */
int64_t statm_rss_bytes(const char *text, long page_size);
/* RSS of pid, bytes; -1 if gone/unreadable. */
int64_t proc_rss_bytes(int pid);
/* Respawn delay after `fails` consecutive failures: 0, base, 2*base, ... cap. */
int64_t backoff_ms(int fails, int64_t base, int64_t cap);
/* "SIGSEGV" etc. for a signal number (buf used for unknown ones). */
const char *signal_name(int sig, char *buf, size_t n);
/* Describe a wait status: "exited with status 3" / "killed by signal SIGSEGV". */
void wait_status_text(int status, char *buf, size_t n);

/* ---- the child (worker_child.c) and its interpreter (worker_py.c) ------- */

struct st_mysql;

/* A claimed queue entry not yet run. */
struct wentry {
    int q; /* index into w_queues */
    char id[48];
    char *msg; /* field t, malloc'd; NULL if missing */
};
#define W_BACKLOG 16

/* Pstats:worker counters of a child not yet written: one HINCRBY per
 * counter and second instead of three per task. */
#define W_STATS_MAX 8
struct wstats {
    long long tasks, cost_ms;
    struct {
        char status[16];
        long long n;
    } by[W_STATS_MAX];
    int nby;
    int64_t flushed_mono; /* 0: never: the first task flushes at once */
    /* as (field, increment) argv pairs for wrec_extra / HINCRBY */
    char num[2 + W_STATS_MAX][24];
    const char *argv[2 * (2 + W_STATS_MAX)];
};
/* Counts one finished task. */
void wstats_add(struct wstats *s, const char *status, long long cost_ms);
/* The pending counters as argv pairs in s->argv; returns how many strings
 * (0: nothing pending). */
int wstats_argv(struct wstats *s);
void wstats_clear(struct wstats *s, int64_t now_mono);

/* The one context of a child process. */
struct wchild {
    const struct tconf *c;
    int64_t epoch;
    struct wslot *slot;               /* what the master reads (shared) */
    char consumer[128];               /* "<node>:<pid>" */
    redisContext *rc;                 /* NULL while Redis is unreachable */
    struct st_mysql *db;              /* lazily connected */
    bool redis_down, db_down;         /* for logging once per state change */
    int64_t gen;                      /* last <prefix>gen seen, -1 before the first */
    int64_t gen_check_mono;           /* when it was last read */
    const char *cur_task;             /* task id running now, for DFF.FUNC */
    struct wentry backlog[W_BACKLOG]; /* claimed, to run next, in order */
    int nbacklog;
    bool recover;          /* reconnected: re-read our own pending entries when idle */
    char fetch_sha[41];    /* SHA of the fetch script once loaded */
    bool serve[W_NQUEUES]; /* worker.queues */
    struct wrr wrr;        /* which served stream goes first */
    /* the keys of the gen and of every stream, made once (not per fetch) */
    char kgen[128], kq[W_NQUEUES][128];
    /* Per stream, for the fetch (W_FETCH_FN_LUA): an id up to which every
     * entry has been delivered ("0-0" when unknown: after a reconnect),
     * whether an entry was taken from it since it was last found empty,
     * and when the last look at every stream was made. */
    char last_ids[W_NQUEUES][48];
    bool hot[W_NQUEUES];
    int64_t look_mono, ids_mono; /* ids_mono: when the ids were last reset */
    bool wait_ready;             /* the last fetch found every stream empty:
                                    XREAD BLOCK after the ids without looking again */
    /* What the last XREAD BLOCK woke for: per stream the entries it saw
     * (0..2) and the last of their ids; the next fetch tries those streams
     * only (mode 'w'). */
    bool woken;
    int wake_n[W_NQUEUES];
    char wake_ids[W_NQUEUES][48];
    int pid;             /* getpid() at start */
    struct wstats stats; /* counters not yet in Pstats:worker */
    /* The idle children's turn to wait in Redis (NULL: always ours), and
     * whether this child has it; listen_from: the ids its XREAD started
     * from. */
    struct wlisten *listen;
    bool listening;
    char listen_from[W_NQUEUES][48];
};

/* What the Python side answered; all strings malloc'd or NULL. */
struct pyres {
    char *status, *result_json, *reason, *message, *traceback, *output, *data_json;
    char *resp_json; /* DFF.RESP's "resp" object, or NULL */
    char *rec_json;  /* {"root","chain"} for the task record (func calls), or NULL */
    int cache_result;
};
void pyres_free(struct pyres *r);

/* Start the interpreter (isolated config, Debian's stdlib, paths.python),
 * register _tandem, import tandem_runtime. 0 or -1 with *err. */
int py_start(struct wchild *ch, char **err);
/* Run func `fname` of script `script_id` for task t (raw: the task JSON as
 * read, for DFF's _DFF_* variables). Always fills r (a Python-side failure
 * becomes a failure outcome). */
void py_call(struct wchild *ch, const struct task *t, const char *raw, const char *script_id,
             const char *fname, struct pyres *r);
/* System tasks: __sys.inspect {code, script_id}, __sys.debug {code,
 * script_id, func_name, kwargs} (a draft run in a throwaway fork). */
void py_system(struct wchild *ch, const struct task *t, struct pyres *r);
/* <prefix>gen changed: scripts and env variables are re-checked on next use. */
void py_invalidate(void);

/* The child's MariaDB connection, connected on demand. NULL and *err. */
struct st_mysql *child_db(struct wchild *ch, char **err);
/* Drop a connection that failed with a connection error. */
void child_db_broken(struct wchild *ch);
void child_redis_broken(struct wchild *ch);

/* ---- the processes ------------------------------------------------------ */

struct wopts {
    const struct tconf *conf;
    int64_t epoch;   /* -1: read Pepoch */
    bool supervised; /* started with --epoch: ask for PDEATHSIG */
};

/* The master: never returns until stopped; exit status for main(). */
int pool_run(const struct wopts *o);

/* A child (fork()ed by the master): runs tasks until SIGTERM. slot = its
 * shared slot (struct wslot). Exit status. */
int child_main(const struct tconf *c, int64_t epoch, struct wslot *slot, struct wlisten *listen);

/* The keeper (fork()ed by the master). Exit status. */
int keeper_main(const struct tconf *c, int64_t epoch);

/* Reclaim pass (worker_keeper.c): requeue pending entries of dead consumers.
 * Returns how many were requeued, -1 on Redis failure. */
int keeper_reclaim(redisContext *rc, const struct tconf *c, const char *me, int64_t idle_dead_ms);

#endif
