/* tandemctl status | switchover | maintenance on|off: talk to this node's
 * tandem-supervisor over its control socket (failover.control_socket), one
 * JSON line each way. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "ctl_topology.h"

#define SV_TIMEOUT_MS 5000
/* status asks each backend server itself: short, a dead one must not stall it */
#define STATUS_TOPO_MS 500

/* One request/answer. NULL and a message on stderr if the supervisor cannot
 * be reached or answers garbage. */
static json_t *sv_call(struct ctl *c, json_t *req, bool quiet)
{
    const char *path = c->conf.fo_socket;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "tandemctl: failover.control_socket \"%s\" is not usable\n", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        perror("tandemctl: socket");
        return NULL;
    }
    json_t *resp = NULL;
    char *line = json_dumps(req, JSON_COMPACT);
    char buf[65536];
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        if (!quiet)
            fprintf(stderr,
                    "tandemctl: cannot reach tandem-supervisor at %s: %s (is it running on this "
                    "node? -c FILE picks the config naming failover.control_socket)\n",
                    path, strerror(errno));
        goto out;
    }
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps gave us len+1 bytes: the NUL becomes the newline */
    if (write(fd, line, len + 1) != (ssize_t)(len + 1)) {
        fprintf(stderr, "tandemctl: %s: send: %s\n", path, strerror(errno));
        goto out;
    }
    int64_t deadline = mono_ms() + SV_TIMEOUT_MS;
    while (got < sizeof(buf) - 1 && memchr(buf, '\n', got) == NULL) {
        int left = (int)(deadline - mono_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            fprintf(stderr, "tandemctl: %s: no answer within %d ms\n", path, SV_TIMEOUT_MS);
            goto out;
        }
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    json_error_t je;
    resp = json_loads(buf, JSON_DISABLE_EOF_CHECK, &je);
    if (resp == NULL)
        fprintf(stderr, "tandemctl: %s: answer is not JSON (%s)\n", path, je.text);
out:
    free(line);
    close(fd);
    return resp;
}

static int refused(struct ctl *c, json_t *resp)
{
    if (c->json) {
        char *s = json_dumps(resp, JSON_COMPACT);
        puts(s ? s : "{}");
        free(s);
    } else {
        const char *e = json_string_value(json_object_get(resp, "error"));
        fprintf(stderr, "tandemctl: supervisor refused: %s\n", e ? e : "(no reason given)");
    }
    return CTL_REFUSED;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void fmt_dur(int64_t ms, char *buf, size_t n)
{
    if (ms < 60000)
        snprintf(buf, n, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, n, "%lldm%02llds", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
    else
        snprintf(buf, n, "%lldh%02lldm", (long long)(ms / 3600000), (long long)(ms / 60000 % 60));
}

static void print_status(json_t *st)
{
    json_t *ka = json_object_get(st, "keepalived"), *be = json_object_get(st, "backend");
    char d[32];
    printf("node:        %s\n", jstr(st, "node"));
    printf("role:        %s%s (%s)\n", jstr(st, "role"),
           json_is_true(json_object_get(st, "maintenance")) ? ", maintenance" : "",
           jstr(st, "cause"));
    printf("epoch:       %lld (redis: %lld)\n",
           (long long)json_integer_value(json_object_get(st, "epoch")),
           (long long)json_integer_value(json_object_get(be, "redis_epoch")));
    printf("vip:         %s (%s)\n", jstr(st, "vip"),
           json_is_true(json_object_get(st, "vip_here")) ? "on this node" : "not here");
    printf("backend:     redis %s; server health %lld %s\n",
           json_is_true(json_object_get(be, "redis")) ? "ok" : "UNREACHABLE",
           (long long)json_integer_value(json_object_get(be, "server_health")),
           jstr(be, "server_detail"));
    fmt_dur(json_integer_value(json_object_get(ka, "uptime_ms")), d, sizeof(d));
    printf("keepalived:  pid %lld, up %s, %lld restarts\n",
           (long long)json_integer_value(json_object_get(ka, "pid")), d,
           (long long)json_integer_value(json_object_get(ka, "restarts")));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(st, "children"), i, v)
    {
        long long pid = json_integer_value(json_object_get(v, "pid"));
        fmt_dur(json_integer_value(json_object_get(v, "uptime_ms")), d, sizeof(d));
        if (pid > 0)
            printf("  %-10s pid %lld, up %s, %lld restarts\n", jstr(v, "name"), pid, d,
                   (long long)json_integer_value(json_object_get(v, "restarts")));
        else
            printf("  %-10s not running\n", jstr(v, "name"));
    }
    json_t *peers = json_object_get(st, "peers");
    if (json_array_size(peers) == 0) {
        const char *addr = jstr(st, "peer_addr");
        if (addr[0])
            printf("peer:        none seen in Redis (failover.peer %s)\n", addr);
        else
            printf("peer:        none seen in Redis\n");
    }
    json_array_foreach(peers, i, v)
    {
        printf("peer:        %s %s%s, epoch %lld, seen %lld ms ago\n", jstr(v, "node"),
               jstr(v, "role"), json_is_true(json_object_get(v, "maint")) ? " (maintenance)" : "",
               (long long)json_integer_value(json_object_get(v, "epoch")),
               (long long)json_integer_value(json_object_get(v, "age_ms")));
    }
    json_t *tr = json_object_get(st, "transitions");
    if (json_array_size(tr))
        printf("last transitions:\n");
    json_array_foreach(tr, i, v)
    {
        printf("  %s  %-9s -> %-9s epoch %-4lld %s\n", jstr(v, "at"), jstr(v, "from"),
               jstr(v, "to"), (long long)json_integer_value(json_object_get(v, "epoch")),
               jstr(v, "cause"));
    }
}

/* One request to the supervisor that must be accepted: its answer, or NULL
 * with *rc set (unreachable, or refused and reported). The request is freed. */
static json_t *sv_request(struct ctl *c, json_t *req, int *rc)
{
    json_t *resp = sv_call(c, req, false);
    json_decref(req);
    if (resp == NULL) {
        *rc = CTL_UNREACHABLE;
        return NULL;
    }
    if (!json_is_true(json_object_get(resp, "ok"))) {
        *rc = refused(c, resp);
        json_decref(resp);
        return NULL;
    }
    return resp;
}

static int do_status(struct ctl *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 0) {
        fprintf(stderr, "tandemctl: usage: tandemctl status [--json]\n");
        return CTL_USAGE;
    }
    int rc;
    json_t *st = sv_request(c, json_pack("{s:s}", "cmd", "status"), &rc);
    if (st == NULL)
        return rc;
    /* the backend's topology, as this node sees it (ctl_topology.c) */
    if (c->have_conf)
        json_object_set_new(st, "topology", ctl_topology_probe(&c->conf, STATUS_TOPO_MS));
    if (c->json) {
        char *s = json_dumps(st, JSON_COMPACT);
        puts(s);
        free(s);
    } else {
        print_status(st);
        if (json_object_get(st, "topology"))
            ctl_topology_print(json_object_get(st, "topology"));
    }
    json_decref(st);
    return CTL_OK;
}

/* The peer, as this supervisor sees it in Redis, is primary with a newer epoch. */
static bool peer_took_over(struct ctl *c, int64_t old_epoch, char *who, size_t n, int64_t *epoch)
{
    json_t *req = json_pack("{s:s}", "cmd", "status");
    json_t *st = sv_call(c, req, true);
    json_decref(req);
    bool ok = false;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(st, "peers"), i, v)
    {
        if (strcmp(jstr(v, "role"), "master") == 0 &&
            json_integer_value(json_object_get(v, "epoch")) > old_epoch) {
            snprintf(who, n, "%s", jstr(v, "node"));
            *epoch = json_integer_value(json_object_get(v, "epoch"));
            ok = true;
        }
    }
    json_decref(st);
    return ok;
}

static int do_switchover(struct ctl *c, int argc, char **argv)
{
    bool force = false;
    int wait_s = 15;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
            char *end;
            long w = strtol(argv[++i], &end, 10);
            if (*end || w < 0 || w > 3600) {
                fprintf(stderr, "tandemctl: switchover --wait: \"%s\" is not 0..3600 seconds\n",
                        argv[i]);
                return CTL_USAGE;
            }
            wait_s = (int)w;
        } else {
            fprintf(stderr, "tandemctl: usage: tandemctl switchover [--force] [--wait S]\n");
            return CTL_USAGE;
        }
    }
    int64_t t0 = mono_ms();
    int rc;
    json_t *resp = sv_request(c, json_pack("{s:s,s:b}", "cmd", "switchover", "force", force), &rc);
    if (resp == NULL)
        return rc;
    int64_t old = json_integer_value(json_object_get(resp, "epoch"));
    json_decref(resp);
    char who[64] = "";
    int64_t epoch = 0;
    bool done = false;
    while (mono_ms() - t0 < (int64_t)wait_s * 1000) {
        if ((done = peer_took_over(c, old, who, sizeof(who), &epoch)))
            break;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int64_t took = mono_ms() - t0;
    if (c->json)
        printf("{\"ok\":%s,\"primary\":\"%s\",\"epoch\":%lld,\"old_epoch\":%lld,\"ms\":%lld}\n",
               done ? "true" : "false", who, (long long)epoch, (long long)old, (long long)took);
    else if (done)
        printf("switchover done: %s is primary (epoch %lld), %lld ms\n", who, (long long)epoch,
               (long long)took);
    else if (wait_s > 0)
        fprintf(stderr, "tandemctl: handed over, but no peer reported itself primary within %d s\n",
                wait_s);
    else
        printf("handing over (not waiting)\n");
    return done || wait_s == 0 ? CTL_OK : CTL_REFUSED;
}

static int do_maintenance(struct ctl *c, int argc, char **argv)
{
    bool force = argc == 2 && strcmp(argv[1], "--force") == 0;
    if ((argc != 1 && !force) || (strcmp(argv[0], "on") && strcmp(argv[0], "off"))) {
        fprintf(stderr, "tandemctl: usage: tandemctl maintenance on [--force] | off\n");
        return CTL_USAGE;
    }
    int rc;
    json_t *resp = sv_request(c,
                              json_pack("{s:s,s:b,s:b}", "cmd", "maintenance", "on",
                                        strcmp(argv[0], "on") == 0, "force", force),
                              &rc);
    if (resp == NULL)
        return rc;
    if (c->json) {
        char *s = json_dumps(resp, JSON_COMPACT);
        puts(s);
        free(s);
    } else {
        printf("maintenance %s (role %s)%s\n", argv[0], jstr(resp, "role"),
               strcmp(argv[0], "on") == 0 ? ": this node will not become primary" : "");
    }
    json_decref(resp);
    return CTL_OK;
}

int ctl_failover_main(struct ctl *c, const char *cmd, int argc, char **argv)
{
    if (strcmp(cmd, "status") == 0)
        return do_status(c, argc, argv);
    if (strcmp(cmd, "switchover") == 0)
        return do_switchover(c, argc, argv);
    if (strcmp(cmd, "maintenance") == 0)
        return do_maintenance(c, argc, argv);
    fprintf(stderr, "tandemctl: unknown failover command '%s'\n", cmd);
    return CTL_USAGE;
}
