/* tandemctl doctor: checks one node's installation and says what to fix.
 * Each check prints one line, "ok", "warn" or "FAIL", its finding and the
 * fix; --json prints them as one document. Exit 0 with no FAIL, 1 with any.
 * It only reads: it never changes the node, so it is safe on a live primary. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build_config.h"
#include "clock.h"
#include "ctl.h"
#include "ctl_backend_stats.h"
#include "db.h"
#include "ctl_doctor_tls.h"
#include "ctl_topology.h"
#include "rds.h"

extern char **environ;

#define DOCTOR_NET_TIMEOUT_MS 2000
/* Liveness (leases, heartbeats, the supervisors' entries) is judged on
 * Redis's clock and each host's monotonic one, not on this offset; cron
 * slots, eta/expires and the records' times are wall-clock times. */
#define CLOCK_WARN_MS 250  /* early warning */
#define CLOCK_FAIL_MS 2000 /* past this, slots fire and records read seconds off */

enum verdict { V_OK, V_WARN, V_FAIL };

struct doctor {
    struct ctl *c;
    json_t *checks; /* --json: array of {check,status,message,fix} */
    int nfail, nwarn;
};

static void report(struct doctor *d, enum verdict v, const char *check, const char *fix,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void report(struct doctor *d, enum verdict v, const char *check, const char *fix,
                   const char *fmt, ...)
{
    static const char *names[] = {"ok", "warn", "FAIL"};
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (v == V_FAIL)
        d->nfail++;
    else if (v == V_WARN)
        d->nwarn++;
    if (d->c->json) {
        json_array_append_new(d->checks, json_pack("{s:s, s:s, s:s, s:s?}", "check", check,
                                                   "status", v == V_OK ? "ok" : names[v], "message",
                                                   msg, "fix", v == V_OK ? NULL : fix));
        return;
    }
    if (v == V_OK || !fix || !*fix)
        printf("%-4s %-11s %s\n", names[v], check, msg);
    else
        printf("%-4s %-11s %s; fix: %s\n", names[v], check, msg, fix);
    fflush(stdout);
}

/* ctl_doctor_tls.c reports through this (verdict 0 ok, 1 warn, 2 FAIL). */
static void report_cb(void *dp, int verdict, const char *check, const char *fix, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));
static void report_cb(void *dp, int verdict, const char *check, const char *fix, const char *fmt,
                      ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report(dp, verdict == 2 ? V_FAIL : verdict == 1 ? V_WARN : V_OK, check, fix, "%s", msg);
}

/* Runs argv with stdin/stdout/stderr on /dev/null; its exit status, or -1
 * if it could not run. No shell: nothing from the config reaches one. */
static int run_quiet(char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st, rc;

    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    while (waitpid(pid, &st, 0) == -1)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* /proc/<pid>/comm and the parent pid; -1 if the process is gone. */
static int proc_info(pid_t pid, char *comm, size_t n, pid_t *ppid)
{
    char path[64], buf[512], *p;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    if (!fgets(buf, sizeof(buf), f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses */
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close || close < open)
        return -1;
    snprintf(comm, n, "%.*s", (int)(close - open - 1), open + 1);
    p = close + 2;
    if (*p)
        p++; /* state */
    *ppid = (pid_t)strtol(p, NULL, 10);
    return 0;
}

/* Walks the ancestors of pid looking for a tandem-supervisor ("tandem-supervis"
 * once the kernel cuts comm to 15 characters). */
static bool under_supervisor(pid_t pid)
{
    char comm[64];
    pid_t ppid;

    for (int depth = 0; depth < 16 && pid > 1; depth++) {
        if (proc_info(pid, comm, sizeof(comm), &ppid) == -1)
            return false;
        if (!strncmp(comm, "tandem-supervis", 15))
            return true;
        pid = ppid;
    }
    return false;
}

/* A process in another network namespace (a lab node, a container) has
 * its own addresses and its own VRRP: it is not this node's business. */
static bool same_netns(pid_t pid, const struct stat *mine)
{
    char path[64];
    struct stat st;

    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    if (stat(path, &st) == -1)
        return true; /* cannot tell (hidepid, old kernel): count it */
    return st.st_dev == mine->st_dev && st.st_ino == mine->st_ino;
}

/* Counts keepalived processes of this network namespace not started by a
 * tandem-supervisor (*foreign, first pid in *first) and whether a
 * supervisor runs here at all. */
static void scan_procs(int *foreign, pid_t *first, bool *supervisor)
{
    DIR *dir = opendir("/proc");
    struct dirent *e;
    char comm[64];
    pid_t ppid;
    struct stat mine;
    bool have_ns = stat("/proc/self/ns/net", &mine) == 0;

    *foreign = 0;
    *first = 0;
    *supervisor = false;
    if (!dir)
        return;
    while ((e = readdir(dir)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        if (proc_info((pid_t)pid, comm, sizeof(comm), &ppid) == -1)
            continue;
        if (strncmp(comm, "tandem-supervis", 15) && strcmp(comm, "keepalived"))
            continue;
        if (have_ns && !same_netns((pid_t)pid, &mine))
            continue;
        if (!strncmp(comm, "tandem-supervis", 15))
            *supervisor = true;
        else if (!strcmp(comm, "keepalived") && !under_supervisor((pid_t)pid)) {
            if ((*foreign)++ == 0)
                *first = (pid_t)pid;
        }
    }
    closedir(dir);
}

static void check_config(struct doctor *d, const char *explicit_path)
{
    struct ctl *c = d->c;
    char *err = NULL;
    struct stat st;

    if (explicit_path) {
        /* main() refuses an invalid -c file before doctor runs; a file given
         * to doctor itself is loaded here so its problems become findings */
        tconf_defaults(&c->conf);
        if (tconf_load(&c->conf, explicit_path, &err) == -1) {
            char *line = err, *nl;
            while (line && *line) {
                nl = strchr(line, '\n');
                if (nl)
                    *nl = '\0';
                if (*line)
                    report(
                        d, V_FAIL, "config",
                        "correct the file; check it with tandem-supervisor -c FILE --check-config",
                        "%s", line);
                line = nl ? nl + 1 : NULL;
            }
            if (!err)
                report(d, V_FAIL, "config", "make the file readable", "%s: cannot be loaded",
                       explicit_path);
            free(err);
            c->have_conf = false;
            return;
        }
        c->have_conf = true;
    }
    if (!c->have_conf) {
        report(d, V_FAIL, "config", "install the package's /etc/tandem/tandem.conf or pass -c FILE",
               "no configuration: neither -c FILE, $TANDEM_CONFIG nor %s", TANDEM_DEFAULT_CONFIG);
        return;
    }
    report(d, V_OK, "config", NULL, "%s is valid", c->conf.path);
    if (stat(c->conf.path, &st) == 0 && (st.st_mode & S_IROTH) &&
        (c->conf.redis_password[0] || c->conf.db_password[0]))
        report(d, V_WARN, "config", "chgrp tandem FILE && chmod 0640 FILE",
               "%s holds backend passwords and is readable by everyone (mode %04o)", c->conf.path,
               (unsigned)(st.st_mode & 07777));
}

static void check_install(struct doctor *d)
{
    static const char *bins[] = {"tandem-server", "tandem-worker", "tandem-beat"};
    const struct tconf *t = &d->c->conf;
    char path[CONF_STR + 32];
    int missing = 0;

    for (size_t i = 0; i < sizeof(bins) / sizeof(bins[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", t->fo_bin_dir, bins[i]);
        if (access(path, X_OK) == -1) {
            report(d, V_FAIL, "binaries", "reinstall the tandem package or set failover.bin_dir",
                   "%s: %s", path, strerror(errno));
            missing++;
        }
    }
    if (!missing)
        report(d, V_OK, "binaries", NULL, "tandem-server, tandem-worker, tandem-beat in %s",
               t->fo_bin_dir);

    if (getpwnam(t->fo_user) == NULL && t->fo_allow_root)
        report(d, V_WARN, "user", "create the user, or accept that user code runs as root",
               "the stack's user '%s' does not exist: with failover.allow_root the stack, user "
               "Python included, runs as root",
               t->fo_user);
    else if (getpwnam(t->fo_user) == NULL)
        report(d, V_FAIL, "user",
               "systemd-sysusers (the package's sysusers.d file creates it), set failover.user, "
               "or failover.allow_root = true",
               "the stack's user '%s' does not exist: the supervisor refuses to start the stack",
               t->fo_user);
    else
        report(d, V_OK, "user", NULL, "the stack runs as '%s'", t->fo_user);
}

static void check_keepalived(struct doctor *d, bool *supervisor_running)
{
    const struct tconf *t = &d->c->conf;
    int foreign;
    pid_t first;

    if (access(t->fo_keepalived, X_OK) == -1)
        report(d, V_FAIL, "keepalived",
               "apt-get install keepalived (Debian) or dnf install keepalived (EL9)", "%s: %s",
               t->fo_keepalived, strerror(errno));
    else
        report(d, V_OK, "keepalived", NULL, "%s is installed", t->fo_keepalived);

    /* The distribution's unit would run a second keepalived, from its own
     * config, fighting Tandem's over the VIP. */
    if (access("/run/systemd/system", F_OK) == 0) {
        char *active[] = {"systemctl", "is-active", "--quiet", "keepalived.service", NULL};
        char *enabled[] = {"systemctl", "is-enabled", "--quiet", "keepalived.service", NULL};
        if (run_quiet(active) == 0)
            report(d, V_FAIL, "keepalived", "systemctl disable --now keepalived",
                   "keepalived.service is running beside Tandem's own keepalived");
        else if (run_quiet(enabled) == 0)
            report(
                d, V_WARN, "keepalived", "systemctl disable --now keepalived",
                "keepalived.service is enabled: at boot it would stop tandem.service (Conflicts=)");
        else
            report(d, V_OK, "keepalived", NULL,
                   "keepalived.service is neither running nor enabled");
    }
    scan_procs(&foreign, &first, supervisor_running);
    if (foreign)
        report(d, V_FAIL, "keepalived",
               "stop it (systemctl disable --now keepalived, or kill it) and let tandem-supervisor "
               "run keepalived",
               "%d keepalived process(es) not started by tandem-supervisor (first pid %d)", foreign,
               (int)first);
}

static bool same_subnet(int af, const void *a, const void *b, int prefix)
{
    const unsigned char *x = a, *y = b;
    int bytes = prefix / 8, bits = prefix % 8;

    (void)af;
    if (memcmp(x, y, (size_t)bytes) != 0)
        return false;
    if (bits == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - bits));
    return (x[bytes] & mask) == (y[bytes] & mask);
}

static int mask_prefix(const struct sockaddr *sa)
{
    const unsigned char *m;
    int len, n = 0;

    if (sa->sa_family == AF_INET) {
        m = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        len = 4;
    } else {
        m = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        len = 16;
    }
    for (int i = 0; i < len; i++)
        for (int b = 7; b >= 0; b--) {
            if (!(m[i] & (1 << b)))
                return n;
            n++;
        }
    return n;
}

static void check_network(struct doctor *d, bool supervisor_running)
{
    const struct tconf *t = &d->c->conf;
    char vip[64], *slash, addrs[512] = "", buf[INET6_ADDRSTRLEN];
    unsigned char vbin[16];
    int vprefix = -1, af;
    struct ifaddrs *ifa = NULL;
    bool in_subnet = false, held = false, has_addr = false;
    int if_prefix = -1;

    if (if_nametoindex(t->fo_interface) == 0) {
        report(d, V_FAIL, "interface", "set failover.interface to one listed by `ip -br link`",
               "interface '%s' does not exist on this host", t->fo_interface);
        return;
    }
    report(d, V_OK, "interface", NULL, "%s exists", t->fo_interface);
    if (!t->fo_vip[0]) {
        report(d, V_WARN, "vip", "set failover.vip (e.g. \"192.0.2.100/24\") on both nodes",
               "failover.vip is empty: this node runs alone, without failover");
        return;
    }
    snprintf(vip, sizeof(vip), "%s", t->fo_vip);
    if ((slash = strchr(vip, '/')) != NULL) {
        *slash = '\0';
        vprefix = atoi(slash + 1);
    }
    af = strchr(vip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(af, vip, vbin) != 1) {
        report(d, V_FAIL, "vip", "write failover.vip as ADDRESS/PREFIX",
               "failover.vip '%s' is not an address", t->fo_vip);
        return;
    }
    if (getifaddrs(&ifa) == -1) {
        report(d, V_WARN, "vip", "", "cannot list addresses: %s", strerror(errno));
        return;
    }
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != af ||
            strcmp(i->ifa_name, t->fo_interface) != 0)
            continue;
        const void *a = af == AF_INET
                            ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
        int p = i->ifa_netmask ? mask_prefix(i->ifa_netmask) : (af == AF_INET ? 32 : 128);
        inet_ntop(af, a, buf, sizeof(buf));
        if (!memcmp(a, vbin, af == AF_INET ? 4 : 16)) {
            held = true;
            continue;
        }
        has_addr = true;
        size_t used = strlen(addrs);
        snprintf(addrs + used, sizeof(addrs) - used, "%s%s/%d", used ? ", " : "", buf, p);
        if (same_subnet(af, a, vbin, p)) {
            in_subnet = true;
            if_prefix = p;
        }
    }
    freeifaddrs(ifa);

    if (!has_addr)
        report(d, V_FAIL, "vip", "give the interface its own address in the VIP's subnet",
               "%s has no address of its own (family of %s)", t->fo_interface, vip);
    else if (!in_subnet)
        report(d, V_FAIL, "vip",
               "choose a free address in the interface's subnet for failover.vip, or change "
               "failover.interface",
               "VIP %s is outside every subnet of %s (%s)", vip, t->fo_interface, addrs);
    else if (held && !supervisor_running)
        report(d, V_FAIL, "vip", "failover.vip must be a spare address, not one a node owns",
               "VIP %s is configured on %s but no tandem-supervisor runs: it is this node's own "
               "address",
               vip, t->fo_interface);
    else if (!strcmp(vip, t->fo_peer))
        report(d, V_FAIL, "vip", "failover.vip must be a spare address, not the peer's",
               "VIP %s is failover.peer's address", vip);
    else if (vprefix >= 0 && vprefix != if_prefix)
        report(d, V_WARN, "vip", "write the VIP with the interface's prefix length",
               "VIP prefix /%d differs from %s's /%d", vprefix, t->fo_interface, if_prefix);
    else
        report(d, V_OK, "vip", NULL, "%s is in %s's subnet (%s)%s", t->fo_vip, t->fo_interface,
               addrs, held ? "; held here: this node is the primary" : "");
}

/* TCP connect with a deadline. 0: connected or refused (the host answered),
 * -1 with msg otherwise. */
static int tcp_probe(const char *host, int port, int timeout_ms, char *msg, size_t n)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ports[16];
    int fd = -1, rc = -1, gai;

    snprintf(ports, sizeof(ports), "%d", port);
    if ((gai = getaddrinfo(host, ports, &hints, &res)) != 0) {
        snprintf(msg, n, "cannot resolve '%s': %s", host, gai_strerror(gai));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(msg, n, "socket: %s", strerror(errno));
        goto out;
    }
    if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
        snprintf(msg, n, "port %d open", port);
        rc = 0;
        goto out;
    }
    if (errno == ECONNREFUSED) {
        snprintf(msg, n, "port %d refused: the host answered", port);
        rc = 0;
        goto out;
    }
    if (errno != EINPROGRESS) {
        snprintf(msg, n, "connect to %s:%d: %s", host, port, strerror(errno));
        goto out;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int pr = poll(&p, 1, timeout_ms);
    if (pr == 0) {
        snprintf(msg, n, "no answer from %s:%d within %d ms", host, port, timeout_ms);
        goto out;
    }
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (pr == -1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
        soerr = errno;
    if (soerr == 0 || soerr == ECONNREFUSED) {
        snprintf(msg, n, soerr ? "port %d refused: the host answered" : "port %d open", port);
        rc = 0;
    } else {
        snprintf(msg, n, "connect to %s:%d: %s", host, port, strerror(soerr));
    }
out:
    if (fd != -1)
        close(fd);
    freeaddrinfo(res);
    return rc;
}

/* Has a supervisor other than this node's ever written its state to the
 * backend (the Psv hash keeps one field per node name)? Unknown (no Redis)
 * counts as seen: the stricter answer. */
static bool peer_ever_seen(const struct tconf *t)
{
    char *err = NULL;
    redisContext *rc = rds_connect(t, DOCTOR_NET_TIMEOUT_MS, &err);
    free(err);
    if (rc == NULL)
        return true;
    char k[128];
    bool seen = true;
    redisReply *r = redisCommand(rc, "HKEYS %s", rds_key(k, sizeof k, t, "sv"));
    if (r && r->type == REDIS_REPLY_ARRAY) {
        seen = false;
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[i]->str, t->node_name))
                seen = true;
    }
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return seen;
}

static void check_peer(struct doctor *d)
{
    const struct tconf *t = &d->c->conf;
    char msg[256];

    if (!t->fo_peer[0]) {
        report(d, V_WARN, "peer", "set failover.peer to the other node's address",
               "failover.peer is empty: the peer cannot be checked");
        return;
    }
    /* The backup runs no server: a refused port 8088 still proves the host
     * is up and routable; only silence or an unreachable route fails. */
    if (tcp_probe(t->fo_peer, t->server_port, DOCTOR_NET_TIMEOUT_MS, msg, sizeof(msg)) == 0)
        report(d, V_OK, "peer", NULL, "%s reachable (%s)", t->fo_peer, msg);
    else if (!peer_ever_seen(t))
        /* The first node of a new pair is checked and started before the
         * second exists (docs/two-servers.md: node-a first): failing it
         * then would stop the documented order. Once any other node has
         * run a supervisor against this backend, silence is a fault. */
        report(d, V_WARN, "peer",
               "fine while the other node is not installed yet; otherwise check the link and "
               "firewalls between the nodes (VRRP is IP protocol 112)",
               "%s: %s (no other node has run against this backend yet)", t->fo_peer, msg);
    else
        report(d, V_FAIL, "peer",
               "check the link and firewalls between the nodes (VRRP is IP protocol 112)", "%s: %s",
               t->fo_peer, msg);
    if (t->fo_unicast_npeers > 0) {
        bool listed = false;
        for (int i = 0; i < t->fo_unicast_npeers; i++)
            listed = listed || !strcmp(t->fo_unicast_peers[i], t->fo_peer);
        if (!listed)
            report(d, V_WARN, "peer", "add failover.peer to failover.unicast_peers",
                   "unicast VRRP is on but %s is not in failover.unicast_peers", t->fo_peer);
    }
}

/* Accepted tasks, leases and the fencing epoch live in Redis: without an
 * append-only file a Redis restart takes back everything since its last
 * snapshot, silently. That FAILs; appendfsync only sets how much a crash of
 * the backend machine (not of Redis) can lose (docs/two-servers.md). */
static void check_redis_durable(struct doctor *d, redisContext *rc)
{
    static const char *fix = "in redis.conf: appendonly yes, appendfsync everysec (or always); "
                             "then CONFIG SET appendonly yes or restart Redis";
    char got[2][32] = {"", ""};
    static const char *const names[] = {"appendonly", "appendfsync"};
    for (int i = 0; i < 2; i++) {
        redisReply *r = redisCommand(rc, "CONFIG GET %s", names[i]);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
            snprintf(got[i], sizeof(got[i]), "%s", r->element[1]->str);
        else
            report(d, V_WARN, "redis-aof", "allow CONFIG GET for this node's Redis user",
                   "cannot tell whether Redis is durable: CONFIG GET %s: %s", names[i],
                   r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
        if (r)
            freeReplyObject(r);
        if (!got[i][0])
            return;
    }
    if (strcmp(got[0], "yes") != 0)
        report(d, V_FAIL, "redis-aof", fix,
               "Redis keeps no append-only file (appendonly %s): a Redis restart or crash "
               "loses the accepted tasks and the epoch since its last snapshot",
               got[0]);
    else if (strcmp(got[1], "no") == 0)
        report(d, V_WARN, "redis-aof", "appendfsync everysec",
               "append-only file on, appendfsync no: a crash of the backend machine loses what "
               "the kernel had not written yet (up to ~30 s)");
    else
        report(d, V_OK, "redis-aof", NULL,
               "append-only file on, appendfsync %s (a backend machine crash loses %s)", got[1],
               strcmp(got[1], "always") == 0 ? "nothing acknowledged" : "up to ~1 s of writes");
}

static void check_redis(struct doctor *d)
{
    const struct tconf *t = &d->c->conf;
    char *err = NULL;
    redisContext *rc = rds_connect(t, DOCTOR_NET_TIMEOUT_MS, &err);
    redisReply *r;

    if (rc == NULL) {
        report(d, V_FAIL, "redis",
               "check redis.host/port/socket/password, and that the backend accepts this node",
               "%s", err ? err : "cannot connect");
        report(d, V_WARN, "clock", "fix the Redis check first",
               "not checked: Redis is unreachable");
        free(err);
        return;
    }
    report(d, V_OK, "redis", NULL, "connected to %s",
           t->redis_socket[0] ? t->redis_socket : t->redis_host);
    check_redis_durable(d, rc);

    /* the offset is of the wall clock (cron slots and records use it); the
     * round trip is elapsed time */
    int64_t t0 = now_ms(), m0 = mono_ms();
    r = redisCommand(rc, "TIME");
    int64_t m1 = mono_ms(), t1 = t0 + (m1 - m0);
    int64_t server = rds_time_reply_ms(r);
    if (server >= 0) {
        int64_t off = server - (t0 + t1) / 2, mag = off < 0 ? -off : off;
        const char *fix =
            "synchronise both nodes and the backend with NTP (chrony or systemd-timesyncd)";
        if (mag >= CLOCK_FAIL_MS)
            report(d, V_FAIL, "clock", fix, "offset to the backend %+lld ms (round trip %lld ms)",
                   (long long)off, (long long)(t1 - t0));
        else if (mag >= CLOCK_WARN_MS)
            report(d, V_WARN, "clock", fix, "offset to the backend %+lld ms (round trip %lld ms)",
                   (long long)off, (long long)(t1 - t0));
        else
            report(d, V_OK, "clock", NULL, "offset to the backend %+lld ms (round trip %lld ms)",
                   (long long)off, (long long)(t1 - t0));
    } else {
        report(d, V_WARN, "clock", "allow the TIME command for this Redis user",
               "Redis TIME failed: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr);
    }
    if (r)
        freeReplyObject(r);
    redisFree(rc);
}

/* The third-party modules DataFlux Func scripts import (DFF's requirements
 * that Debian packages), with the packages that provide them: the .deb
 * Recommends the Debian ones, the .rpm the few EL9 has for Python 3.11. */
static const struct {
    const char *module, *deb, *el;
} PY_MODULES[] = {
    {"requests", "python3-requests", "python3.11-requests"},
    {"arrow", "python3-arrow", NULL},
    {"pymysql", "python3-pymysql", "python3.11-PyMySQL"},
    {"redis", "python3-redis", NULL},
    {"psycopg2", "python3-psycopg2", "python3.11-psycopg2"},
    {"pymemcache", "python3-pymemcache", NULL},
    {"memcache", "python3-memcache", NULL},
    {"paho.mqtt.client", "python3-paho-mqtt", NULL},
    {"croniter", "python3-croniter", NULL},
    {"yaml", "python3-yaml", "python3.11-pyyaml"},
    {"simplejson", "python3-simplejson", NULL},
    {"xmltodict", "python3-xmltodict", NULL},
    {"dateutil", "python3-dateutil", NULL},
    {"six", "python3-six", "python3.11-six"},
    {"ujson", "python3-ujson", NULL},
    {"toml", "python3-toml", NULL},
    {"tomli", "python3-tomli", NULL},
    {"tomli_w", "python3-tomli-w", NULL},
    {"jinja2", "python3-jinja2", NULL},
    {"markupsafe", "python3-markupsafe", NULL},
    {"psutil", "python3-psutil", NULL},
    {"Cryptodome", "python3-pycryptodome", NULL},
    {"pymongo", "python3-pymongo", NULL},
    {"pymssql", "python3-pymssql", NULL},
    {"clickhouse_driver", "python3-clickhouse-driver", NULL},
    {"influxdb", "python3-influxdb", NULL},
    {"kafka", "python3-kafka", NULL},
    {"funcsigs", "python3-funcsigs", NULL},
    {"retry", "python3-retry", NULL},
    {"timeout_decorator", "python3-timeout-decorator", NULL},
};

/* Imports each module in the CPython the worker embeds, with the worker's
 * module path (build_config.h), isolated like the worker; warns naming the
 * modules that fail and the packages to install. Scripts that do not
 * import them run fine, hence warn, never FAIL. */
static void check_python_modules(struct doctor *d)
{
    static const char script[] = "import sys\n"
                                 "sys.path[:] = [p for p in sys.argv[1].split(':') if p]\n"
                                 "bad = []\n"
                                 "for m in sys.argv[2:]:\n"
                                 "    try:\n"
                                 "        __import__(m)\n"
                                 "    except BaseException:\n"
                                 "        bad.append(m)\n"
                                 "print(' '.join(bad))\n";
    enum { NMOD = sizeof(PY_MODULES) / sizeof(PY_MODULES[0]) };
    /* The embedded CPython's stdlib dir (the first path entry, e.g.
     * /usr/lib/python3.11) names its interpreter, /usr/bin/python3.11. */
    char paths[] = TANDEM_PYTHON_PATH, exe[128], py[64];
    size_t n = strcspn(paths, ":"), b = n;
    while (b > 0 && paths[b - 1] != '/')
        b--;
    snprintf(py, sizeof(py), "%.*s", (int)(n - b), paths + b);
    snprintf(exe, sizeof(exe), "/usr/bin/%s", py);

    char *argv[NMOD + 7];
    int k = 0;
    argv[k++] = exe;
    argv[k++] = "-I";
    argv[k++] = "-S";
    argv[k++] = "-c";
    argv[k++] = (char *)script;
    argv[k++] = paths;
    for (int i = 0; i < NMOD; i++)
        argv[k++] = (char *)PY_MODULES[i].module;
    argv[k] = NULL;

    int fds[2];
    posix_spawn_file_actions_t fa;
    pid_t pid;
    if (pipe2(fds, O_CLOEXEC) == -1 || posix_spawn_file_actions_init(&fa) != 0) {
        report(d, V_WARN, "python", "", "cannot check the worker's Python modules: %s",
               strerror(errno));
        return;
    }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        report(d, V_WARN, "python", "install the package of the Python the worker embeds",
               "cannot run %s to check the modules DFF scripts import: %s", exe, strerror(rc));
        return;
    }
    /* Read its one line, giving up after 30 s (an import that hangs). */
    char out[2048];
    size_t got = 0;
    int64_t deadline = mono_ms() + 30000;
    bool timed_out = false;
    for (;;) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int64_t left = deadline - mono_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
            timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        ssize_t r = read(fds[0], out + got, sizeof(out) - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (got += (size_t)r) == sizeof(out) - 1)
            break;
    }
    out[got] = '\0';
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
        ;
    if (timed_out || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        report(d, V_WARN, "python", "run the import in python3 by hand to see why",
               "%s could not check the modules DFF scripts import (%s)", exe,
               timed_out ? "no answer in 30 s" : "it failed");
        return;
    }
    out[strcspn(out, "\n")] = '\0';
    if (!out[0]) {
        report(d, V_OK, "python", NULL, "the worker's %s imports all %d modules DFF scripts use",
               py, NMOD);
        return;
    }
    /* Name each missing module with its package, and one install line. */
    char list[1024] = "", pkgs[1024] = "", fix[1100];
    int missing = 0;
    bool el = access("/etc/redhat-release", F_OK) == 0;
    for (char *save = NULL, *m = strtok_r(out, " ", &save); m; m = strtok_r(NULL, " ", &save)) {
        for (int i = 0; i < NMOD; i++) {
            if (strcmp(m, PY_MODULES[i].module) != 0)
                continue;
            const char *pkg = el ? PY_MODULES[i].el : PY_MODULES[i].deb;
            size_t l = strlen(list);
            snprintf(list + l, sizeof(list) - l, "%s%s (%s)", missing ? ", " : "", m,
                     pkg ? pkg : "pip3.11");
            if (pkg) {
                l = strlen(pkgs);
                snprintf(pkgs + l, sizeof(pkgs) - l, " %s", pkg);
            }
            missing++;
        }
    }
    if (pkgs[0])
        snprintf(fix, sizeof(fix), "%s%s", el ? "dnf install" : "apt-get install", pkgs);
    else
        snprintf(fix, sizeof(fix), "pip3.11 install the modules named");
    report(d, V_WARN, "python", fix,
           "%d of %d modules DFF scripts import are missing for the worker's %s: %s", missing, NMOD,
           py, list);
}

static void check_mariadb(struct doctor *d)
{
    const struct tconf *t = &d->c->conf;
    char *err = NULL;
    int pending = 0;
    MYSQL *m = db_connect(t, DOCTOR_NET_TIMEOUT_MS / 1000, &err);

    if (m == NULL) {
        report(d, V_FAIL, "mariadb",
               "check mysql.host/port/user/password/database and the user's GRANTs for this node",
               "%s", err ? err : "cannot connect");
        report(d, V_WARN, "migrations", "fix the MariaDB check first",
               "not checked: MariaDB is unreachable");
        free(err);
        return;
    }
    report(d, V_OK, "mariadb", NULL, "connected to %s as %s, database %s",
           t->db_socket[0] ? t->db_socket : t->db_host, t->db_user, t->db_name);
    if (db_migrations_pending(m, t->migrations_dir, &pending, &err) == -1)
        report(d, V_FAIL, "migrations", "check paths.migrations and the database user's rights",
               "%s", err ? err : "cannot compare migrations");
    else if (pending > 0)
        report(d, V_FAIL, "migrations", "tandemctl db migrate",
               "%d migration(s) from %s not applied", pending, t->migrations_dir);
    else
        report(d, V_OK, "migrations", NULL, "schema is current (%s)", t->migrations_dir);
    free(err);
    mysql_close(m);
}

int ctl_doctor_main(struct ctl *c, int argc, char **argv)
{
    struct doctor d = {.c = c};
    const char *file = NULL;
    bool supervisor_running = false;

    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("usage: tandemctl [-c FILE] [--json] doctor [FILE]\n"
                 "Checks this node: config, keepalived, interface and VIP, peer, Redis, MariaDB,\n"
                 "clock offset, migrations, the backend's topology (Redis master, replicas,\n"
                 "Sentinels; MariaDB primary), retention, backend disks, Python modules DFF\n"
                 "scripts import. Exit 0 if\n"
                 "nothing FAILed, 1 otherwise.");
            return CTL_OK;
        }
        if (argv[i][0] == '-' || file) {
            fprintf(stderr,
                    "tandemctl: doctor: unexpected argument '%s'\nusage: tandemctl [-c FILE] "
                    "[--json] doctor [FILE]\n",
                    argv[i]);
            return CTL_USAGE;
        }
        file = argv[i];
    }
    if (c->json)
        d.checks = json_array();

    check_config(&d, file);
    if (c->have_conf) {
        check_install(&d);
        check_keepalived(&d, &supervisor_running);
        check_network(&d, supervisor_running);
        check_peer(&d);
        check_redis(&d);
        check_mariadb(&d);
        ctl_topology_doctor(&c->conf, report_cb, &d);
        ctl_backend_doctor(&c->conf, report_cb, &d); /* retention, backend disks */
        check_python_modules(&d);
        ctl_doctor_tls(&c->conf, report_cb, &d);
    }

    if (c->json) {
        json_t *doc = json_pack("{s:b, s:i, s:i, s:o}", "ok", d.nfail == 0, "failed", d.nfail,
                                "warnings", d.nwarn, "checks", d.checks);
        char *s = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
        if (s)
            puts(s);
        free(s);
        json_decref(doc);
    } else {
        printf("%d failed, %d warning(s)\n", d.nfail, d.nwarn);
    }
    return d.nfail ? CTL_REFUSED : CTL_OK;
}
