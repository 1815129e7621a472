/* tandem.conf (libconfig syntax). One table of options in config.c, one row
 * per option: path, type, default, bounds, help (redis's standardConfig). */
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define CONF_STR 256
#define CONF_MAX_PEERS 8
#define CONF_MAX_QUEUES 13 /* sync, cron, async, 0..9 */

struct tconf {
    char path[CONF_STR]; /* the file it was loaded from */

    /* node */
    char node_name[64]; /* node.name, default: gethostname() */

    /* log */
    char log_level[16]; /* log.level: debug|info|warn|error, default info */
    bool log_syslog;    /* log.syslog, default false */

    /* redis */
    char redis_host[CONF_STR]; /* redis.host, default 127.0.0.1 */
    int redis_port;            /* redis.port, default 6379 (0 = use redis.socket) */
    char redis_socket[CONF_STR];
    char redis_password[CONF_STR];
    int redis_db;          /* redis.db 0..15 */
    char redis_prefix[64]; /* redis.prefix, default "tandem:" */
    /* Sentinel: when set, the master is asked of these instead of redis.host */
    char redis_sentinels[CONF_MAX_PEERS][128]; /* redis.sentinels = ["host:port", ...] */
    int redis_nsentinels;
    char redis_master_name[64];             /* redis.master_name, default "tandem" */
    char redis_sentinel_password[CONF_STR]; /* redis.sentinel_password, "" = no AUTH */
    int redis_wait_replicas; /* redis.wait_replicas: an enqueue is accepted once N replicas have it
                              */
    int redis_wait_timeout_ms; /* redis.wait_timeout_ms, default 200 */
    bool redis_wait_refuse; /* redis.wait_refuse: fewer acks = not accepted (503), default true */
    int redis_wait_max_lag; /* redis.wait_max_lag s: a replica whose last ack is older does not
                               count as acknowledging (no WAIT is sent for it), default 2 */
    int redis_replica_lag_warn; /* redis.replica_lag_warn s: tandemctl doctor warns about a
                                   replica whose last ack is older, default 10 */

    /* mysql (MariaDB) */
    char db_host[CONF_STR]; /* mysql.host, default 127.0.0.1 */
    int db_port;            /* mysql.port, default 3306 */
    char db_socket[CONF_STR];
    char db_user[64]; /* default "tandem" */
    char db_password[CONF_STR];
    char db_name[64]; /* mysql.database, default "tandem" */
    /* mysql.hosts = ["host:port", ...]: tried in order, the first one that is
     * not read_only is used (a primary/replica pair); overrides mysql.host */
    char db_hosts[CONF_MAX_PEERS][128];
    int db_nhosts;

    /* paths */
    char migrations_dir[CONF_STR]; /* paths.migrations, default TANDEM_DATADIR/migrations */
    char python_dir[CONF_STR];     /* paths.python, default TANDEM_DATADIR/python */
    char run_dir[CONF_STR];        /* paths.run, default /run/tandem */

    /* server */
    char server_listen[64]; /* server.listen, default 0.0.0.0 */
    int server_port;        /* server.port, default 8088 */
    int server_threads;     /* server.threads 1..64, default 4 */
    int64_t body_limit;     /* server.body_limit bytes, default 1 MiB, 1 KiB..64 MiB */
    int conn_timeout;       /* server.connection_timeout s, default 10, 1..3600 */
    int sync_timeout;       /* server.sync_timeout s, default 35 (DFF), 1..3600 */
    int async_timeout;      /* server.async_timeout s, default 3600 (DFF), 1..3600 */
    int api_queue_limit;    /* server.api_queue_limit: Sync/Async API calls get 429 while
                               their queue holds more entries; default 10000, 0 = off */
    int max_connections;    /* server.max_connections, default 1024 */
    int max_conn_per_ip;    /* server.max_connections_per_ip, default 64 (0 = no cap) */
    int header_timeout;     /* server.header_timeout s: total time for a request's headers */
    int body_timeout;       /* server.body_timeout s: total time for a request's body */
    int health_port;        /* server.health_port: 0 = server.port + 1, -1 = none */
    bool accept_journal;    /* server.accept_journal: async accepts recorded in task_accept */
    /* HTTPS (server_tls.c): with tls_cert set, server.port speaks TLS */
    char console_dir[CONF_STR];    /* server.console_dir: the web console's files */
    char tls_cert[CONF_STR];       /* server.tls_cert: PEM, leaf first, chain allowed */
    char tls_key[CONF_STR];        /* server.tls_key: PEM private key (root-only file) */
    char tls_client_ca[CONF_STR];  /* server.tls_client_ca: mutual TLS, "" = off */
    char tls_priorities[CONF_STR]; /* server.tls_priorities: GnuTLS priority string */
    int plain_port;                /* server.plain_port: extra plain-HTTP port, 0 = none */
    bool plain_redirect;           /* server.plain_redirect: it only redirects to https */

    /* worker */
    int worker_children; /* worker.children 1..64, default 2 */
    int func_timeout;    /* worker.default_timeout s, default 30, 1..3600 */
    int child_memory_mb; /* worker.memory_limit_mb, default 512, 32..65536 */
    int64_t output_cap;  /* worker.output_cap bytes of print/log kept, default 64 KiB */
    int reclaim_margin;  /* worker.reclaim_margin s, default 10 */
    int task_ttl;        /* worker.task_ttl s a task's status stays in Redis, default 86400 */
    int sync_task_ttl;   /* worker.sync_task_ttl s, the same for sync calls, default 10 */
    int record_flush_ms; /* worker.record_flush_ms, default 1000 */
    /* worker.queues = ["sync", "cron", "async", "0", ..., "9"]: the streams
     * this worker's children serve; none listed (the default) = all. */
    char worker_queues[CONF_MAX_QUEUES][8];
    int worker_nqueues;

    /* beat */
    int lease_ms;      /* beat.lease_ms, default 3000, 500..60000 */
    int misfire_grace; /* beat.misfire_grace s, default 60 */
    char timezone[64]; /* beat.timezone, default "UTC" (IANA name) */
    int beat_tick_ms;  /* beat.tick_ms, default 100 */
    bool cron_enabled; /* beat.enabled, default true: global switch */

    /* failover (the supervisor) */
    char fo_interface[32];   /* failover.interface, default "eth0" */
    char fo_vip[64];         /* failover.vip "198.18.0.100/24" */
    int fo_vrid;             /* failover.virtual_router_id 1..255, default 51 */
    int fo_priority;         /* failover.priority 1..254, default 250 */
    double fo_advert_int;    /* failover.advert_int s, default 0.2, 0.01..255 (sub-second ok) */
    bool fo_nopreempt;       /* failover.nopreempt, default true */
    char fo_unicast_src[64]; /* failover.unicast_src, "" = multicast */
    char fo_unicast_peers[CONF_MAX_PEERS][64]; /* failover.unicast_peers = ["ip", ...] */
    int fo_unicast_npeers;
    char fo_keepalived[CONF_STR]; /* failover.keepalived, default /usr/sbin/keepalived */
    char fo_user[32];             /* failover.user the stack runs as, default "tandem" */
    bool fo_allow_root; /* failover.allow_root: run the stack as root when fo_user is missing */
    char
        fo_bin_dir[CONF_STR]; /* failover.bin_dir where tandem-server etc. live, default /usr/bin */
    char fo_socket[CONF_STR]; /* failover.control_socket, default <run>/supervisor.sock */
    int fo_drain_grace;       /* failover.drain_grace s, default 10 */
    int fo_health_weight; /* failover.health_weight, default 50 (track_file weight on bad health) */
    char fo_peer[64];     /* failover.peer address of the other node, for status/doctor */

    /* retention: task_record kept per origin and by age (worker_purge.c) */
    int ret_max_age_days; /* retention.max_age_days, default 90 (DFF), 0 = no age limit */
    int ret_sync_api;     /* retention.sync_api: newest N per Sync API, default 100 (DFF) */
    int ret_async_api;    /* retention.async_api, default 100 (DFF) */
    int ret_cron;         /* retention.cron: per cron job, default 500 (DFF) */
    int ret_func;         /* retention.func: per directly called func, default 1000 (DFF) */
    int ret_other;        /* retention.other: subtasks, system tasks, default 1000 */
    int ret_batch;        /* retention.batch rows per DELETE, default 1000 */

    /* secret */
    char secret_key[CONF_STR]; /* secret.key: seals passwords at rest; the same on both nodes */

    /* tandemctl */
    char ctl_url[CONF_STR];      /* ctl.url, default http://127.0.0.1:<server.port> */
    char ctl_key_file[CONF_STR]; /* ctl.key_file: file holding an admin access key */
};

/* Fill every field with its default. */
void tconf_defaults(struct tconf *c);

/* Load and validate a file over the defaults. On error returns -1 and sets
 * *err to a malloc'd, newline-separated list of problems, each
 * "FILE:LINE: KEY: reason" (unknown keys, wrong types, out of bounds, bad
 * values); the caller frees it. Returns 0 on success. */
int tconf_load(struct tconf *c, const char *path, char **err);

/* Write the effective configuration (every option, commented) to f. */
struct _IO_FILE;
void tconf_dump(const struct tconf *c, struct _IO_FILE *f);

/* The port of the server's health listener (server.health_port, 0 meaning
 * server.port + 1), or -1 when there is none. */
int tconf_health_port(const struct tconf *c);

#endif
