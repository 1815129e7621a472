/* Thin helpers over hiredis. Callers use redisCommand()/pipelines directly;
 * these cover connecting and the key prefix. Not thread-safe per context:
 * one redisContext per thread. */
#ifndef TANDEM_RDS_H
#define TANDEM_RDS_H

#include <hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"

/* Connect (TCP or unix socket), AUTH, SELECT, with a connect timeout of
 * timeout_ms and the same as the command timeout (0 = no command timeout,
 * needed for blocking reads). NULL and *err (malloc'd) on failure.
 * With redis.sentinels set, the Sentinels are asked in order for the master
 * redis.master_name and only a server that answers ROLE master is used; a
 * caller that loses its connection (Sentinel kills the clients of a demoted
 * master) or gets -READONLY reconnects, and so follows a failover. */
redisContext *rds_connect(const struct tconf *c, int timeout_ms, char **err);

/* The master one Sentinel ("host:port") names for redis.master_name: 0 with
 * host/port, or -1 with *err. rds_connect asks each in turn; tandemctl's
 * topology report asks all of them to see whether they agree. */
int rds_sentinel_ask(const struct tconf *c, const char *addr, int timeout_ms, char *host,
                     size_t hostn, int *port, char **err);

/* Prefixed key: rds_key(buf, n, c, "q:%s", "sync") -> "tandem:q:sync". Returns buf. */
char *rds_key(char *buf, size_t n, const struct tconf *c, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A reply is usable: non-NULL and not REDIS_REPLY_ERROR. Logs the error
 * (with what) otherwise. Does not free. */
int rds_ok(redisContext *rc, redisReply *r, const char *what);

/* r is a -READONLY error: rc is then marked broken (rc->err set) so the
 * caller reconnects through the Sentinels. rds_ok and rds_eval call it. */
bool rds_readonly(redisContext *rc, const redisReply *r);

/* SCRIPT LOAD script and store its SHA1 (40 hex + NUL) in sha. 0 or -1
 * (logged). rds_eval() calls it itself when sha[0] == '\0'. */
int rds_script_load(redisContext *rc, const char *script, char sha[41]);

/* EVALSHA with fallback to EVAL on NOSCRIPT. sha is computed by the caller
 * once (rds_script_load) or NULL to always EVAL. Returns the reply (caller frees). */
redisReply *rds_eval(redisContext *rc, const char *script, char sha[41], int nkeys,
                     const char **argv, int argc);

/* How many of rc's master's replicas could acknowledge a WAIT now: those
 * in state "online" whose last acknowledgement is at most max_lag_s old
 * (INFO replication's lag; redis.wait_max_lag). A replica that is gone,
 * still syncing or hung (SIGSTOPped, swapping) would make every WAIT run
 * to its timeout on an HTTP thread; with this count below
 * redis.wait_replicas the enqueue is answered at once instead. Read at most
 * every RDS_REPLICA_CHECK_MS per process and master (one INFO on rc); -1
 * when rc is not a master or INFO fails: the caller then WAITs as before. */
#define RDS_REPLICA_CHECK_MS 250
int rds_replicas_acking(redisContext *rc, int max_lag_s);
/* The same count from an INFO replication text; -1 unless role:master. */
int rds_replicas_acking_in(const char *info, int max_lag_s);

/* Heartbeats: the key Phb:<kind>:<node>:<pid> (JSON, PX ttl_ms) plus its
 * name in the set Phb:<kind>, so readers find the live processes of a kind
 * without SCANning a keyspace that may hold millions of task keys.
 * rds_hb_set/rds_hb_del: 0, or -1 on a Redis error (rc is then unusable). */
int rds_hb_set(redisContext *rc, const struct tconf *c, const char *kind, const char *node, int pid,
               const char *json, int ttl_ms);
int rds_hb_del(redisContext *rc, const struct tconf *c, const char *kind, const char *node,
               int pid);
/* Live heartbeats of a kind: their count, and when out is non-NULL a new
 * JSON array of the parsed heartbeat objects. Names whose key has expired
 * are removed from the set. -1 on a Redis error. */
long long rds_hb_list(redisContext *rc, const struct tconf *c, const char *kind, json_t **out);

/* Redis's own size, for /metrics, tandemctl status and bench/: a new
 * object {used_memory (bytes), keys (DBSIZE of the selected db),
 * aof_enabled, aof_size (aof_current_size, only when on)}. INFO and DBSIZE
 * only: no SCAN, cheap on any keyspace. NULL and *err when Redis refuses
 * (an ACL without INFO) or the connection broke. */
json_t *rds_size_stats(redisContext *rc, char **err);

/* Redis's clock in ms from a TIME reply; -1 if r is not one. */
int64_t rds_time_reply_ms(const redisReply *r);
/* One command and TIME in one round trip: the command's reply (NULL if the
 * connection failed), Redis's clock just after it in *redis_now_ms (-1 if
 * unknown). */
redisReply *rds_command_timed(redisContext *rc, int64_t *redis_now_ms, const char *fmt, ...);

/* How long ago a supervisor wrote its Psv entry o (parsed JSON), in ms.
 * From "rts", Redis's clock when the entry was written (sv_health.c stamps
 * it in the writing script), against redis_now_ms, a TIME read right after
 * the entry: neither node's clock takes part, so a step of one node's wall
 * clock does not make its peer look dead or immortal. An entry without
 * "rts" (a supervisor from before it) or redis_now_ms < 0 falls back to
 * "ts" (the writer's wall clock) against this host's. */
int64_t rds_sv_age_ms(const json_t *o, int64_t redis_now_ms);

#endif
