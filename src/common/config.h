/* tandem.conf (libconfig syntax). One table of options in config.c, one row
 * per option: path, type, default, bounds, help (redis's standardConfig). */
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define CONF_STR 256
#define CONF_MAX_PEERS 8
#define CONF_MAX_QUEUES 8

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

    /* mysql (MariaDB) */
    char db_host[CONF_STR]; /* mysql.host, default 127.0.0.1 */
    int db_port;            /* mysql.port, default 3306 */
    char db_socket[CONF_STR];
    char db_user[64]; /* default "tandem" */
    char db_password[CONF_STR];
    char db_name[64]; /* mysql.database, default "tandem" */

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
    int max_connections;    /* server.max_connections, default 1024 */

    /* worker */
    int worker_children; /* worker.children 1..64, default 2 */
    int func_timeout;    /* worker.default_timeout s, default 30, 1..3600 */
    int child_memory_mb; /* worker.memory_limit_mb, default 512, 32..65536 */
    int64_t output_cap;  /* worker.output_cap bytes of print/log kept, default 64 KiB */
    int reclaim_margin;  /* worker.reclaim_margin s, default 10 */
    int task_ttl;        /* worker.task_ttl s a task's status stays in Redis, default 86400 */
    int sync_task_ttl;   /* worker.sync_task_ttl s, the same for sync calls, default 300 */
    int record_flush_ms; /* worker.record_flush_ms, default 1000 */

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

#endif
