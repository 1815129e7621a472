/* tandem.conf: one declarative table of options (redis's standardConfig
 * style). Loading walks the file, not the table, so that every unknown
 * section or key is reported with its line. */
#include "config.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#include "log.h"

enum copt_type { CT_INT, CT_INT64, CT_BOOL, CT_STR, CT_DOUBLE, CT_STRLIST };

struct copt {
    const char *path; /* "section.key" */
    enum copt_type type;
    size_t off;  /* offset in struct tconf */
    size_t size; /* CT_STR: buffer size; CT_STRLIST: size of one element */
    const char *def_s;
    int64_t def_i; /* CT_INT, CT_INT64, CT_BOOL */
    double def_d;
    double min, max; /* numbers only */
    const char *help;
    size_t cnt_off;      /* CT_STRLIST: offset of the int count */
    int max_items;       /* CT_STRLIST */
    const char *why_min; /* numbers: why below min is refused (NULL: the range says it) */
    const char *why_max; /* numbers: why above max is refused */
    /* CT_STR, CT_STRLIST (each item): the value's own rule, checked on the
     * effective value (defaults and derived ones too), and what a value
     * that breaks it is told */
    bool (*valid)(const char *v);
    const char *invalid;
};

/* ---- the values' own rules (struct copt.valid) ---- */

static bool nonempty(const char *s)
{
    return s[0] != '\0';
}

static bool log_level_valid(const char *s)
{
    return log_level_parse(s) >= 0;
}

static bool hostport_valid(const char *s)
{
    char h[128];
    int port;
    return hostport_split(s, h, sizeof h, &port) == 0;
}

static bool ipv4_valid(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

static bool ipv4_or_empty(const char *s)
{
    return s[0] == '\0' || ipv4_valid(s);
}

/* "a.b.c.d/N", N 0..32, or empty (no VIP). */
static bool vip_or_empty(const char *s)
{
    if (s[0] == '\0')
        return true;
    const char *slash = strchr(s, '/');
    char ip[INET_ADDRSTRLEN];
    if (slash == NULL || (size_t)(slash - s) >= sizeof(ip) || slash[1] == '\0')
        return false;
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = '\0';
    char *end;
    errno = 0;
    long n = strtol(slash + 1, &end, 10);
    if (errno || *end != '\0' || n < 0 || n > 32 || slash[1] == '-' || slash[1] == '+')
        return false;
    return ipv4_valid(ip);
}

/* Non-empty, [A-Za-z0-9_.-] only: it goes into Redis keys. */
static bool node_name_valid(const char *s)
{
    if (s[0] == '\0')
        return false;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

static bool queue_valid(const char *q)
{
    return strcmp(q, "sync") == 0 || strcmp(q, "cron") == 0 || strcmp(q, "async") == 0 ||
           (q[0] >= '0' && q[0] <= '9' && q[1] == '\0');
}

static bool url_valid(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* Designated initializers: a row names only what it has. */
#define FLD(f) .off = offsetof(struct tconf, f), .size = sizeof(((struct tconf *)0)->f)
#define ELT(f) .off = offsetof(struct tconf, f), .size = sizeof(((struct tconf *)0)->f[0])
#define KiB 1024LL
#define MiB (1024LL * 1024)

#define O_STR(p, f, d, h)                                                                          \
    {                                                                                              \
        .path = p, .type = CT_STR, FLD(f), .def_s = d, .help = h                                   \
    }
/* A string with a rule of its own (struct copt.valid). */
#define O_STRV(p, f, d, h, ok, bad)                                                                \
    {                                                                                              \
        .path = p, .type = CT_STR, FLD(f), .def_s = d, .help = h, .valid = ok, .invalid = bad      \
    }
#define O_INT(p, f, d, lo, hi, h)                                                                  \
    {                                                                                              \
        .path = p, .type = CT_INT, FLD(f), .def_i = d, .min = lo, .max = hi, .help = h             \
    }
/* An integer whose bounds need their reason told (the value's effect is
 * not obvious from its range). */
#define O_INTW(p, f, d, lo, hi, h, why_lo, why_hi)                                                 \
    {                                                                                              \
        .path = p, .type = CT_INT, FLD(f), .def_i = d, .min = lo, .max = hi, .help = h,            \
        .why_min = why_lo, .why_max = why_hi                                                       \
    }
#define O_I64(p, f, d, lo, hi, h)                                                                  \
    {                                                                                              \
        .path = p, .type = CT_INT64, FLD(f), .def_i = d, .min = lo, .max = hi, .help = h           \
    }
#define O_BOOL(p, f, d, h)                                                                         \
    {                                                                                              \
        .path = p, .type = CT_BOOL, FLD(f), .def_i = d, .min = 0, .max = 1, .help = h              \
    }
#define O_DBL(p, f, d, lo, hi, h)                                                                  \
    {                                                                                              \
        .path = p, .type = CT_DOUBLE, FLD(f), .def_d = d, .min = lo, .max = hi, .help = h          \
    }
/* A list of strings, each checked by ok (NULL: any). */
#define O_LIST(p, f, n, most, h, ok, bad)                                                          \
    {                                                                                              \
        .path = p, .type = CT_STRLIST, ELT(f), .help = h, .cnt_off = offsetof(struct tconf, n),    \
        .max_items = most, .valid = ok, .invalid = bad                                             \
    }

static const struct copt options[] = {
    O_STRV("node.name", node_name, "",
           "this node's name in heartbeats and task records (default: hostname)", node_name_valid,
           "must be non-empty and only [A-Za-z0-9_.-] (it goes into Redis keys)"),

    O_STRV("log.level", log_level, "info", "debug | info | warn | error", log_level_valid,
           "is not one of debug, info, warn, error"),
    O_BOOL("log.syslog", log_syslog, 0, "also log to syslog(3)"),

    O_STR("redis.host", redis_host, "127.0.0.1", "Redis host (TCP)"),
    O_INT("redis.port", redis_port, 6379, 0, 65535, "Redis TCP port (0 = use redis.socket)"),
    O_STR("redis.socket", redis_socket, "", "Redis unix socket; used instead of TCP when set"),
    O_STR("redis.password", redis_password, "", "Redis AUTH password (empty = no AUTH)"),
    O_INT("redis.db", redis_db, 0, 0, 15, "Redis database number"),
    O_STRV("redis.prefix", redis_prefix, "tandem:", "prefix of every Redis key", nonempty,
           "must not be empty (e.g. \"tandem:\")"),
    O_LIST("redis.sentinels", redis_sentinels, redis_nsentinels, CONF_MAX_PEERS,
           "Sentinels as [\"host:port\", ...]: the master is asked of them (redis.host is then "
           "unused)",
           hostport_valid, "is not host:port"),
    O_STR("redis.master_name", redis_master_name, "tandem", "the master's name in Sentinel"),
    O_STR("redis.sentinel_password", redis_sentinel_password, "",
          "AUTH password of the Sentinels (empty = no AUTH)"),
    O_INT("redis.wait_replicas", redis_wait_replicas, 0, 0, 16,
          "an enqueue counts as accepted only once this many replicas have it (WAIT; 0 = off)"),
    O_INT("redis.wait_timeout_ms", redis_wait_timeout_ms, 200, 1, 60000,
          "how long an enqueue waits for the replicas, ms"),
    O_BOOL("redis.wait_refuse", redis_wait_refuse, 1,
           "fewer replicas than asked in time: refuse the call (503) instead of accepting it"),
    O_INT("redis.replica_lag_warn", redis_replica_lag_warn, 10, 1, 3600,
          "tandemctl doctor warns about a replica whose last acknowledgement is older than this, "
          "s (a promotion of it would lose what it has not acknowledged)"),
    O_INTW("redis.wait_max_lag", redis_wait_max_lag, 2, 1, 60,
           "a replica whose last acknowledgement is older than this, s, is not counted as "
           "acknowledging: with too few left, an enqueue is answered at once (as wait_refuse "
           "says) instead of waiting wait_timeout_ms for a WAIT that cannot succeed",
           "a replica acknowledges once a second, so under 1 s a healthy one would often count "
           "as lagging and enqueues would be refused or left unreplicated",
           "a hung replica would be trusted that long, every enqueue meanwhile holding an HTTP "
           "thread for the whole redis.wait_timeout_ms"),

    O_STR("mysql.host", db_host, "127.0.0.1", "MariaDB host (TCP)"),
    O_INT("mysql.port", db_port, 3306, 0, 65535, "MariaDB TCP port"),
    O_STR("mysql.socket", db_socket, "", "MariaDB unix socket; used instead of TCP when set"),
    O_STR("mysql.user", db_user, "tandem", "MariaDB user"),
    O_STR("mysql.password", db_password, "", "MariaDB password"),
    O_STRV("mysql.database", db_name, "tandem", "MariaDB database", nonempty, "must not be empty"),
    O_LIST("mysql.hosts", db_hosts, db_nhosts, CONF_MAX_PEERS,
           "MariaDB servers as [\"host:port\", ...], tried in order; the first that is not "
           "read_only is used (overrides mysql.host)",
           hostport_valid, "is not host:port"),

    O_STR("paths.migrations", migrations_dir, TANDEM_DATADIR "/migrations",
          "directory of NNN_name.sql migrations"),
    O_STR("paths.python", python_dir, TANDEM_DATADIR "/python",
          "directory of the DFF python module"),
    O_STR("paths.run", run_dir, "/run/tandem", "runtime directory (sockets, health files)"),

    O_STR("server.listen", server_listen, "0.0.0.0", "HTTP listen address"),
    O_INT("server.port", server_port, 8088, 1, 65535, "HTTP port"),
    O_INT("server.threads", server_threads, 4, 1, 64, "HTTP worker threads"),
    O_I64("server.body_limit", body_limit, 1 * MiB, 1 * KiB, 64 * MiB,
          "largest request body, bytes"),
    O_INT("server.connection_timeout", conn_timeout, 10, 1, 3600, "idle/slow client timeout, s"),
    O_INT("server.sync_timeout", sync_timeout, 35, 1, 3600, "longest wait for a sync call, s"),
    O_INT("server.async_timeout", async_timeout, 3600, 1, 3600, "longest run of an async task, s"),
    O_INT("server.api_queue_limit", api_queue_limit, 10000, 0, 100000000,
          "Sync/Async API calls are refused (429) while their queue is longer (0 = no cap)"),
    O_INT("server.max_connections", max_connections, 1024, 1, 65536, "concurrent HTTP connections"),
    O_INT("server.max_connections_per_ip", max_conn_per_ip, 64, 0, 65536,
          "concurrent HTTP connections from one client address (0 = no cap)"),
    O_INT("server.header_timeout", header_timeout, 10, 1, 3600,
          "total time a client has to send a request's headers, s"),
    O_INT("server.body_timeout", body_timeout, 30, 1, 3600,
          "total time a client has to send a request's body, s"),
    O_INT("server.health_port", health_port, 0, -1, 65535,
          "port answering only health and ping, that a flood of the main port cannot block "
          "(0 = server.port + 1, -1 = none)"),
    O_STR("server.tls_cert", tls_cert, "",
          "HTTPS certificate (PEM, leaf first, chain allowed); set = server.port speaks TLS"),
    O_STR("server.tls_key", tls_key, "", "HTTPS private key (PEM); keep it readable by root only"),
    O_STR("server.tls_client_ca", tls_client_ca, "",
          "CA (PEM) client certificates must verify against: mutual TLS (empty = off)"),
    O_STR("server.tls_priorities", tls_priorities,
          "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"
          "+CHACHA20-POLY1305:-RSA:-DHE-RSA:%SERVER_PRECEDENCE",
          "GnuTLS priority string (default: TLS 1.2+, AEAD ciphers, forward secrecy only)"),
    O_INT("server.plain_port", plain_port, 0, 0, 65535,
          "with TLS on: also serve plain HTTP on this port (0 = no plain HTTP)"),
    O_BOOL("server.accept_journal", accept_journal, 1,
           "record every accepted async task in MariaDB (task_accept) before answering, so a "
           "Redis restored from an older snapshot loses none"),
    O_BOOL("server.plain_redirect", plain_redirect, 1,
           "the plain port only redirects to https:// (308) instead of serving the API"),
    O_STR("server.console_dir", console_dir, TANDEM_DATADIR "/console",
          "directory of the web console's files, served under /console/ (empty = no console)"),

    O_INT("worker.children", worker_children, 2, 1, 64, "child processes running functions"),
    O_INT("worker.default_timeout", func_timeout, 30, 1, 3600,
          "function timeout when the func sets none, s"),
    O_INT("worker.memory_limit_mb", child_memory_mb, 512, 32, 65536,
          "RSS limit of a child, MiB (polled; the child is killed past it)"),
    O_I64("worker.output_cap", output_cap, 64 * KiB, 0, 64 * MiB,
          "bytes of print()/log output kept per task"),
    O_INT("worker.reclaim_margin", reclaim_margin, 10, 0, 3600,
          "grace after a task's timeout before its entry is reclaimed, s"),
    O_INT("worker.task_ttl", task_ttl, 86400, 60, 30 * 86400,
          "how long a task's status stays in Redis, s"),
    O_INT("worker.sync_task_ttl", sync_task_ttl, 10, 2, 30 * 86400,
          "how long a sync call's task status stays in Redis, s (its record stays in MariaDB)"),
    O_INT("worker.record_flush_ms", record_flush_ms, 1000, 10, 60000,
          "task record batch flush interval, ms"),
    O_LIST("worker.queues", worker_queues, worker_nqueues, CONF_MAX_QUEUES,
           "queues this worker's children serve, e.g. [\"sync\", \"5\"] (default: all of sync, "
           "cron, async, 0..9)",
           queue_valid, "is not a queue (sync, cron, async or 0..9)"),

    O_INT("beat.lease_ms", lease_ms, 3000, 500, 60000, "beat leadership lease, ms"),
    O_INT("beat.misfire_grace", misfire_grace, 60, 0, 86400,
          "fire a late slot if at most this late, s"),
    O_STRV("beat.timezone", timezone, "UTC", "IANA time zone cron expressions are read in",
           nonempty, "must not be empty (e.g. \"UTC\")"),
    O_INT("beat.tick_ms", beat_tick_ms, 100, 10, 10000, "beat loop interval, ms"),
    O_BOOL("beat.enabled", cron_enabled, 1, "global switch for cron jobs"),

    O_STR("failover.interface", fo_interface, "eth0", "interface carrying the VIP"),
    O_STRV("failover.vip", fo_vip, "", "virtual IP with prefix, e.g. \"198.18.0.100/24\"",
           vip_or_empty, "is not an IPv4 address with prefix, e.g. \"198.18.0.100/24\""),
    O_INT("failover.virtual_router_id", fo_vrid, 51, 1, 255, "VRRP virtual router id"),
    O_INT("failover.priority", fo_priority, 250, 1, 254, "VRRP priority"),
    O_DBL("failover.advert_int", fo_advert_int, 0.2, 0.01, 255, "VRRP advertisement interval, s"),
    O_BOOL("failover.nopreempt", fo_nopreempt, 1, "a recovered node does not take the VIP back"),
    O_STRV("failover.unicast_src", fo_unicast_src, "", "unicast source address (empty = multicast)",
           ipv4_or_empty, "is not an IPv4 address"),
    O_LIST("failover.unicast_peers", fo_unicast_peers, fo_unicast_npeers, CONF_MAX_PEERS,
           "unicast peer addresses, e.g. [\"198.18.0.2\"]", ipv4_valid, "is not an IPv4 address"),
    O_STR("failover.keepalived", fo_keepalived, "/usr/sbin/keepalived", "keepalived binary"),
    O_STR("failover.user", fo_user, "tandem", "user the stack processes run as"),
    O_BOOL("failover.allow_root", fo_allow_root, 0,
           "run the stack (user Python included) as root when failover.user is missing or root"),
    O_STR("failover.bin_dir", fo_bin_dir, "/usr/bin", "where tandem-server etc. live"),
    O_STR("failover.control_socket", fo_socket, "",
          "supervisor control socket (default: <paths.run>/supervisor.sock)"),
    O_INT("failover.drain_grace", fo_drain_grace, 10, 0, 3600,
          "time given to running tasks on demotion, s"),
    O_INT("failover.health_weight", fo_health_weight, 50, 0, 254,
          "priority lost while health is bad"),
    O_STR("failover.peer", fo_peer, "", "address of the other node, for status/doctor"),

    O_INT("retention.max_age_days", ret_max_age_days, 90, 0, 36500,
          "task records older than this are deleted, days (0 = keep regardless of age)"),
    O_INT("retention.sync_api", ret_sync_api, 100, 0, 10000000,
          "task records kept per Sync API, newest first (0 = no count limit)"),
    O_INT("retention.async_api", ret_async_api, 100, 0, 10000000,
          "task records kept per Async API (0 = no count limit)"),
    O_INT("retention.cron", ret_cron, 500, 0, 10000000,
          "task records kept per cron job (0 = no count limit)"),
    O_INT("retention.func", ret_func, 1000, 0, 10000000,
          "task records kept per directly called func (0 = no count limit)"),
    O_INT("retention.other", ret_other, 1000, 0, 10000000,
          "task records kept per func for subtasks and system tasks (0 = no count limit)"),
    O_INT("retention.batch", ret_batch, 1000, 10, 100000,
          "rows deleted per statement by the retention purge"),

    O_STR("secret.key", secret_key, "",
          "seals env-variable passwords and connector secrets at rest (AES-256-GCM); at least "
          "16 characters, the same on both nodes; empty = such values cannot be stored"),

    O_STRV("ctl.url", ctl_url, "",
           "server URL for tandemctl (default: http://127.0.0.1:<server.port>)", url_valid,
           "must start with http:// or https://"),
    O_STR("ctl.key_file", ctl_key_file, "", "file holding an admin access key for tandemctl"),
};

#define NOPTS (sizeof(options) / sizeof(options[0]))

static void *fld(struct tconf *c, const struct copt *o)
{
    return (char *)c + o->off;
}

static const void *cfld(const struct tconf *c, const struct copt *o)
{
    return (const char *)c + o->off;
}

static const struct copt *find_opt(const char *path)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(options[i].path, path) == 0)
            return &options[i];
    return NULL;
}

static bool section_known(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < NOPTS; i++)
        if (strncmp(options[i].path, name, n) == 0 && options[i].path[n] == '.')
            return true;
    return false;
}

/* Defaults that depend on other options; applied after loading unless the
 * file set them. */
static void derive_node_name(struct tconf *c)
{
    char h[256];
    if (gethostname(h, sizeof(h)) == -1 || h[0] == '\0')
        snprintf(h, sizeof(h), "localhost");
    h[sizeof(h) - 1] = '\0';
    char *dot = strchr(h, '.'); /* short name: it goes into Redis keys */
    if (dot)
        *dot = '\0';
    snprintf(c->node_name, sizeof(c->node_name), "%.63s", h);
}

static void derive_ctl_url(struct tconf *c)
{
    snprintf(c->ctl_url, sizeof(c->ctl_url), "http://127.0.0.1:%d", c->server_port);
}

int tconf_health_port(const struct tconf *c)
{
    if (c->health_port > 0)
        return c->health_port;
    if (c->health_port < 0 || c->server_port >= 65535)
        return -1;
    return c->server_port + 1;
}

static void derive_fo_socket(struct tconf *c)
{
    int n = snprintf(c->fo_socket, sizeof(c->fo_socket), "%s/supervisor.sock", c->run_dir);
    if (n >= (int)sizeof(c->fo_socket))
        snprintf(c->fo_socket, sizeof(c->fo_socket), "/run/tandem/supervisor.sock");
}

void tconf_defaults(struct tconf *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NOPTS; i++) {
        const struct copt *o = &options[i];
        void *p = fld(c, o);
        switch (o->type) {
        case CT_INT:
            *(int *)p = (int)o->def_i;
            break;
        case CT_INT64:
            *(int64_t *)p = o->def_i;
            break;
        case CT_BOOL:
            *(bool *)p = o->def_i != 0;
            break;
        case CT_DOUBLE:
            *(double *)p = o->def_d;
            break;
        case CT_STR:
            snprintf(p, o->size, "%s", o->def_s);
            break;
        case CT_STRLIST:
            *(int *)((char *)c + o->cnt_off) = 0;
            break;
        }
    }
    derive_node_name(c);
    derive_ctl_url(c);
    derive_fo_socket(c);
}

/* Problems are collected into one memstream so the user sees all at once. */
struct errs {
    FILE *f;
    char *buf;
    size_t len;
    int n;
    const char *path;
    const char *inc_dir; /* where @include names are relative to */
    char where[CONF_STR * 2];
};

/* Points e->path at the file a setting came from: libconfig reports an
 * included file by the name written in @include, relative to inc_dir. */
static void errs_at(struct errs *e, const char *sfile, const char *main_path)
{
    if (sfile == NULL || strcmp(sfile, main_path) == 0) {
        e->path = main_path;
        return;
    }
    if (sfile[0] != '/' && e->inc_dir)
        snprintf(e->where, sizeof(e->where), "%s/%s", e->inc_dir, sfile);
    else
        snprintf(e->where, sizeof(e->where), "%s", sfile);
    e->path = e->where;
}

static void errs_add(struct errs *e, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void errs_add(struct errs *e, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    if (e->n)
        fputc('\n', e->f);
    if (line > 0)
        fprintf(e->f, "%s:%d: ", e->path, line);
    else
        fprintf(e->f, "%s: ", e->path);
    if (key)
        fprintf(e->f, "%s: ", key);
    va_start(ap, fmt);
    vfprintf(e->f, fmt, ap);
    va_end(ap);
    e->n++;
}

static const char *type_name(int t)
{
    switch (t) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
        return "an integer";
    case CONFIG_TYPE_INT64:
        return "a 64-bit integer";
    case CONFIG_TYPE_FLOAT:
        return "a number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "an unknown type";
    }
}

static const char *want_name(enum copt_type t)
{
    switch (t) {
    case CT_INT:
    case CT_INT64:
        return "an integer";
    case CT_BOOL:
        return "a boolean (true/false)";
    case CT_STR:
        return "a string";
    case CT_DOUBLE:
        return "a number";
    case CT_STRLIST:
        return "a list of strings";
    }
    return "?";
}

static bool in_range(const struct copt *o, double v)
{
    return v >= o->min && v <= o->max;
}

/* Stores one setting into c; reports type, range and length problems. */
static void apply(struct tconf *c, const struct copt *o, config_setting_t *s, struct errs *e)
{
    int line = config_setting_source_line(s);
    int t = config_setting_type(s);
    void *p = fld(c, o);

    switch (o->type) {
    case CT_INT:
    case CT_INT64: {
        long long v;
        if (t == CONFIG_TYPE_INT)
            v = config_setting_get_int(s);
        else if (t == CONFIG_TYPE_INT64)
            v = config_setting_get_int64(s);
        else
            goto wrong_type;
        if (!in_range(o, (double)v)) {
            const char *why = (double)v < o->min ? o->why_min : o->why_max;
            errs_add(e, line, o->path, "%lld is out of range %lld..%lld%s%s", v, (long long)o->min,
                     (long long)o->max, why ? ": " : "", why ? why : "");
            return;
        }
        if (o->type == CT_INT)
            *(int *)p = (int)v;
        else
            *(int64_t *)p = v;
        return;
    }
    case CT_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            goto wrong_type;
        *(bool *)p = config_setting_get_bool(s) != 0;
        return;
    case CT_DOUBLE: {
        double v;
        if (t == CONFIG_TYPE_FLOAT)
            v = config_setting_get_float(s);
        else if (t == CONFIG_TYPE_INT)
            v = config_setting_get_int(s);
        else if (t == CONFIG_TYPE_INT64)
            v = (double)config_setting_get_int64(s);
        else
            goto wrong_type;
        if (!isfinite(v) || !in_range(o, v)) {
            const char *why = v < o->min ? o->why_min : v > o->max ? o->why_max : NULL;
            errs_add(e, line, o->path, "%g is out of range %g..%g%s%s", v, o->min, o->max,
                     why ? ": " : "", why ? why : "");
            return;
        }
        *(double *)p = v;
        return;
    }
    case CT_STR: {
        if (t != CONFIG_TYPE_STRING)
            goto wrong_type;
        const char *v = config_setting_get_string(s);
        if (strlen(v) >= o->size) {
            errs_add(e, line, o->path, "value is too long (%zu bytes, at most %zu)", strlen(v),
                     o->size - 1);
            return;
        }
        snprintf(p, o->size, "%s", v);
        return;
    }
    case CT_STRLIST: {
        if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
            goto wrong_type;
        int n = config_setting_length(s);
        if (n > o->max_items) {
            errs_add(e, line, o->path, "%d items, at most %d", n, o->max_items);
            return;
        }
        int *cnt = (int *)((char *)c + o->cnt_off);
        *cnt = 0;
        for (int i = 0; i < n; i++) {
            config_setting_t *it = config_setting_get_elem(s, (unsigned)i);
            if (config_setting_type(it) != CONFIG_TYPE_STRING) {
                errs_add(e, line, o->path, "item %d is %s, expected a string", i + 1,
                         type_name(config_setting_type(it)));
                continue;
            }
            const char *v = config_setting_get_string(it);
            if (strlen(v) >= o->size) {
                errs_add(e, line, o->path, "item %d is too long (at most %zu bytes)", i + 1,
                         o->size - 1);
                continue;
            }
            snprintf((char *)p + (size_t)*cnt * o->size, o->size, "%s", v);
            (*cnt)++;
        }
        return;
    }
    }
    return;
wrong_type:
    errs_add(e, line, o->path, "expected %s, got %s", want_name(o->type), type_name(t));
}

static int line_of(struct errs *e, const char *opt, const int *lines, const char *const *files,
                   const char *main_path)
{
    size_t i = (size_t)(find_opt(opt) - options);
    errs_at(e, files[i], main_path);
    return lines[i];
}

/* Each string's own rule (struct copt.valid), on the effective value. */
static void validate_values(struct tconf *c, const int *lines, const char *const *files,
                            struct errs *e)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct copt *o = &options[i];
        if (o->valid == NULL)
            continue;
        const char *v = fld(c, o);
        int n = o->type == CT_STRLIST ? *(const int *)((const char *)c + o->cnt_off) : 1;
        for (int k = 0; k < n; k++, v += o->size) {
            if (o->valid(v))
                continue;
            int line = line_of(e, o->path, lines, files, c->path);
            if (o->type == CT_STRLIST)
                errs_add(e, line, o->path, "item %d \"%s\" %s", k + 1, v, o->invalid);
            else if (v[0] == '\0')
                errs_add(e, line, o->path, "%s", o->invalid);
            else
                errs_add(e, line, o->path, "\"%s\" %s", v, o->invalid);
        }
    }
}

/* Checks that span options. */
static void validate(struct tconf *c, const int *lines, const char *const *files, struct errs *e)
{
    const char *main_path = c->path;
    validate_values(c, lines, files, e);
#define LINE_OF(opt) line_of(e, opt, lines, files, main_path)
    if (c->redis_socket[0] == '\0' && c->redis_port == 0)
        errs_add(e, LINE_OF("redis.port"), "redis.port", "is 0 but redis.socket is not set");
    if (c->redis_socket[0] == '\0' && c->redis_host[0] == '\0')
        errs_add(e, LINE_OF("redis.host"), "redis.host",
                 "must not be empty when redis.socket is not set");
    if (c->db_socket[0] == '\0' && c->db_host[0] == '\0')
        errs_add(e, LINE_OF("mysql.host"), "mysql.host",
                 "must not be empty when mysql.socket is not set");
    if (c->redis_nsentinels > 0 && c->redis_master_name[0] == '\0')
        errs_add(e, LINE_OF("redis.master_name"), "redis.master_name",
                 "must name the master when redis.sentinels is set");
    if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0'))
        errs_add(e, LINE_OF(c->tls_cert[0] ? "server.tls_key" : "server.tls_cert"),
                 c->tls_cert[0] ? "server.tls_key" : "server.tls_cert",
                 "server.tls_cert and server.tls_key go together: set both or neither");
    if (c->plain_port && c->tls_cert[0] == '\0')
        errs_add(e, LINE_OF("server.plain_port"), "server.plain_port",
                 "is only for TLS setups (server.port already speaks plain HTTP)");
    if (c->plain_port && c->plain_port == c->server_port)
        errs_add(e, LINE_OF("server.plain_port"), "server.plain_port",
                 "must differ from server.port");
    if (c->health_port > 0 && c->health_port == c->server_port)
        errs_add(e, LINE_OF("server.health_port"), "server.health_port",
                 "%d is server.port too; pick another port (or -1 for none)", c->health_port);
    if (c->health_port > 0 && c->health_port == c->plain_port)
        errs_add(e, LINE_OF("server.health_port"), "server.health_port",
                 "%d is server.plain_port too; pick another port (or -1 for none)", c->health_port);
    for (int i = 0; i < c->worker_nqueues; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(c->worker_queues[j], c->worker_queues[i]) == 0)
                errs_add(e, LINE_OF("worker.queues"), "worker.queues",
                         "item %d \"%s\" is listed twice", i + 1, c->worker_queues[i]);
#undef LINE_OF
}

int tconf_load(struct tconf *c, const char *path, char **err)
{
    config_t cf;
    struct errs e = {0};
    int lines[NOPTS] = {0};
    bool set[NOPTS] = {0};
    const char *files[NOPTS] = {0};
    int rc = -1;

    *err = NULL;
    tconf_defaults(c);
    snprintf(c->path, sizeof(c->path), "%s", path);
    e.path = path;
    e.f = open_memstream(&e.buf, &e.len);
    if (e.f == NULL) {
        *err = strdup("out of memory");
        return -1;
    }

    config_init(&cf);
    /* @include "x" resolves next to the including file. */
    char dir[CONF_STR];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        config_set_include_dir(&cf, dir[0] ? dir : "/");
        e.inc_dir = dir[0] ? dir : "";
    }

    if (config_read_file(&cf, path) != CONFIG_TRUE) {
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
            errs_add(&e, 0, NULL, "cannot read: %s", strerror(errno ? errno : EIO));
        else {
            errs_at(&e, config_error_file(&cf), path);
            errs_add(&e, config_error_line(&cf), NULL, "syntax error: %s", config_error_text(&cf));
        }
        goto out;
    }

    config_setting_t *root = config_root_setting(&cf);
    int nsec = config_setting_length(root);
    for (int i = 0; i < nsec; i++) {
        config_setting_t *sec = config_setting_get_elem(root, (unsigned)i);
        const char *sname = config_setting_name(sec);
        errs_at(&e, config_setting_source_file(sec), path);
        int sline = config_setting_source_line(sec);
        /* custom { ... } holds the user's own settings (DFF's CUSTOM_*
         * config), read by the worker for DFF.CONFIG: any keys, any types. */
        if (strcmp(sname, "custom") == 0 && config_setting_type(sec) == CONFIG_TYPE_GROUP)
            continue;
        if (config_setting_type(sec) != CONFIG_TYPE_GROUP) {
            if (section_known(sname))
                errs_add(&e, sline, sname, "is a section; expected a group { ... }");
            else
                errs_add(&e, sline, sname,
                         "unknown option (options live in sections, e.g. server.port)");
            continue;
        }
        if (!section_known(sname)) {
            errs_add(&e, sline, sname, "unknown section");
            continue;
        }
        int nkeys = config_setting_length(sec);
        for (int k = 0; k < nkeys; k++) {
            config_setting_t *s = config_setting_get_elem(sec, (unsigned)k);
            char full[128];
            snprintf(full, sizeof(full), "%s.%s", sname, config_setting_name(s));
            errs_at(&e, config_setting_source_file(s), path);
            const struct copt *o = find_opt(full);
            if (o == NULL) {
                errs_add(&e, config_setting_source_line(s), full, "unknown option");
                continue;
            }
            int before = e.n;
            apply(c, o, s, &e);
            lines[o - options] = config_setting_source_line(s);
            files[o - options] = config_setting_source_file(s);
            set[o - options] = e.n == before;
        }
    }
    e.path = path;

    if (!set[find_opt("node.name") - options])
        derive_node_name(c);
    if (!set[find_opt("ctl.url") - options])
        derive_ctl_url(c);
    if (!set[find_opt("failover.control_socket") - options])
        derive_fo_socket(c);

    validate(c, lines, files, &e);
    if (e.n == 0)
        rc = 0;
out:
    config_destroy(&cf);
    fclose(e.f);
    if (rc == 0)
        free(e.buf);
    else
        *err = e.buf;
    return rc;
}

static void dump_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch < 0x20)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void tconf_dump(const struct tconf *c, FILE *f)
{
    char cur[32] = "";
    fprintf(f, "# effective configuration%s%s\n", c->path[0] ? " of " : "", c->path);
    for (size_t i = 0; i < NOPTS; i++) {
        const struct copt *o = &options[i];
        const char *dot = strchr(o->path, '.');
        size_t slen = (size_t)(dot - o->path);
        if (strlen(cur) != slen || strncmp(cur, o->path, slen) != 0) {
            if (cur[0])
                fputs("};\n", f);
            snprintf(cur, sizeof(cur), "%.*s", (int)slen, o->path);
            fprintf(f, "%s = {\n", cur);
        }
        fprintf(f, "  # %s\n  %s = ", o->help, dot + 1);
        const void *p = cfld(c, o);
        switch (o->type) {
        case CT_INT:
            fprintf(f, "%d", *(const int *)p);
            break;
        case CT_INT64: {
            int64_t v = *(const int64_t *)p;
            /* libconfig needs the L suffix beyond 32 bits. */
            fprintf(f, "%lld%s", (long long)v, (v > INT32_MAX || v < INT32_MIN) ? "L" : "");
            break;
        }
        case CT_BOOL:
            fputs(*(const bool *)p ? "true" : "false", f);
            break;
        case CT_DOUBLE: {
            /* Always with a decimal point so libconfig reads it as a float. */
            char buf[64];
            double v = *(const double *)p;
            snprintf(buf, sizeof(buf), "%.15g", v);
            if (strtod(buf, NULL) != v)
                snprintf(buf, sizeof(buf), "%.17g", v);
            if (!strpbrk(buf, ".eEn"))
                strcat(buf, ".0");
            fputs(buf, f);
            break;
        }
        case CT_STR:
            dump_str(f, p);
            break;
        case CT_STRLIST: {
            int n = *(const int *)((const char *)c + o->cnt_off);
            fputc('[', f);
            for (int k = 0; k < n; k++) {
                if (k)
                    fputs(", ", f);
                dump_str(f, (const char *)p + (size_t)k * o->size);
            }
            fputc(']', f);
            break;
        }
        }
        fputs(";\n", f);
    }
    if (cur[0])
        fputs("};\n", f);
}
