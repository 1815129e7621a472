/* The planned handover's relay (a "second chance", the idea GitHub's GLB
 * director uses for its backends).
 *
 * When the VIP moves, a client's kernel switches to the new primary's MAC
 * address at the gratuitous ARP, mid-connection if a connection is under
 * way. Its next packets then reach the new primary, which has no socket for
 * them and answers with a reset: the call fails although the old primary
 * still serves it (the VIP stays on its lo during the drain). Over plain
 * HTTP the window is one round trip; over TLS the handshake adds another
 * round trip and both sides' cryptography, and the client keeps sending
 * (its Finished, the request, ACKs of the session tickets), so a few calls
 * of a switchover under load fell into it.
 *
 * While the relay is on, the new primary's netfilter sends each packet for
 * the VIP's ports that opens no connection and belongs to none it tracks
 * (conntrack's "new" on a packet without SYN) on to the old primary's MAC
 * address, unchanged (nft `dup to`, then drop the original): the old
 * primary accepts it (the VIP is on its lo) and answers the client
 * directly. SYNs are never relayed: new connections belong to the new
 * primary. The relay is installed when this node is asked to warm up,
 * before the VIP arrives, so every connection of its own is tracked from
 * its SYN, and removed once the old primary's drain is over. */
#include "sv_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(char *err, size_t errn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
    return -1;
}

int sv_relay_peer(const struct tconf *c, char *ip, size_t n, char *err, size_t errn)
{
    const char *p = c->fo_peer[0] ? c->fo_peer : c->fo_unicast_peers[0];
    if (!p[0])
        return fail(err, errn, "neither failover.peer nor failover.unicast_peers is set");
    struct in_addr a;
    if (inet_pton(AF_INET, p, &a) == 1) {
        snprintf(ip, n, "%s", p);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(p, NULL, &hints, &res);
    if (rc != 0 || !res)
        return fail(err, errn, "failover.peer \"%s\": %s", p,
                    rc ? gai_strerror(rc) : "no IPv4 address");
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, (socklen_t)n);
    freeaddrinfo(res);
    return 0;
}

int sv_relay_render(const struct tconf *c, const char *peer_ip, bool on, char *buf, size_t n,
                    char *err, size_t errn)
{
    /* "add" then "delete": one transaction that works whether or not a
     * table is left from an earlier run */
    int len =
        snprintf(buf, n, "add table ip %s\ndelete table ip %s\n", SV_RELAY_TABLE, SV_RELAY_TABLE);
    if (len < 0 || (size_t)len >= n)
        return fail(err, errn, "relay script too long");
    if (!on)
        return len;
    char vip[64];
    snprintf(vip, sizeof(vip), "%s", c->fo_vip);
    vip[strcspn(vip, "/")] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, vip, &a) != 1)
        return fail(err, errn, "failover.vip \"%s\" is not an IPv4 address", c->fo_vip);
    if (!peer_ip || inet_pton(AF_INET, peer_ip, &a) != 1)
        return fail(err, errn, "the peer \"%s\" is not an IPv4 address", peer_ip ? peer_ip : "");
    if (!c->fo_interface[0] || strpbrk(c->fo_interface, "\"\\ \n"))
        return fail(err, errn, "failover.interface \"%s\" is not an interface name",
                    c->fo_interface);
    char ports[64];
    int pl = snprintf(ports, sizeof(ports), "%d", c->server_port);
    int hp = tconf_health_port(c);
    if (c->plain_port > 0)
        pl += snprintf(ports + pl, sizeof(ports) - (size_t)pl, ", %d", c->plain_port);
    if (hp > 0)
        snprintf(ports + pl, sizeof(ports) - (size_t)pl, ", %d", hp);
    /* prerouting after conntrack (-200): "new" without SYN is a packet of
     * a connection this node never saw (conntrack's loose pickup) */
    static const char match[] = "ip daddr %s tcp dport { %s } ct state new tcp flags & syn == 0";
    char m[256];
    snprintf(m, sizeof(m), match, vip, ports);
    int r = snprintf(buf + len, n - (size_t)len,
                     "table ip %s {\n"
                     "  chain pre {\n"
                     "    type filter hook prerouting priority -150; policy accept;\n"
                     "    %s counter dup to %s device \"%s\"\n"
                     "    %s drop\n"
                     "  }\n"
                     "}\n",
                     SV_RELAY_TABLE, m, peer_ip, c->fo_interface, m);
    if (r < 0 || (size_t)(len + r) >= n)
        return fail(err, errn, "relay script too long");
    return len + r;
}

/* Runs `nft ARG...` with script on its stdin (NULL: none); its output (the
 * first outn - 1 bytes) in out. 0, or -1 with err. */
static int run_nft(char *const argv[], const char *script, char *out, size_t outn, char *err,
                   size_t errn)
{
    int in[2], o[2];
    if (pipe2(in, O_CLOEXEC) == -1)
        return fail(err, errn, "pipe: %s", strerror(errno));
    if (pipe2(o, O_CLOEXEC) == -1) {
        close(in[0]);
        close(in[1]);
        return fail(err, errn, "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid == -1) {
        close(in[0]);
        close(in[1]);
        close(o[0]);
        close(o[1]);
        return fail(err, errn, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(o[1], 1);
        dup2(o[1], 2);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    /* a script of a few hundred bytes fits in the pipe: no deadlock */
    size_t len = script ? strlen(script) : 0;
    ssize_t w = len ? write(in[1], script, len) : 0;
    close(in[1]);
    size_t got = 0;
    for (;;) { /* all of it, until nft exits */
        char tmp[256];
        ssize_t r = read(o[0], tmp, sizeof(tmp));
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t k = (size_t)r < outn - 1 - got ? (size_t)r : outn - 1 - got;
        memcpy(out + got, tmp, k);
        got += k;
    }
    close(o[0]);
    out[got] = '\0';
    int st = 0;
    while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
        ;
    if (w != (ssize_t)len)
        return fail(err, errn, "nft: short write of its script");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        out[strcspn(out, "\n")] = '\0';
        return fail(err, errn, "nft %s: %s", WIFEXITED(st) ? "refused the script" : "crashed",
                    out[0] ? out : "(no message)");
    }
    return 0;
}

int sv_relay_apply(const struct tconf *c, bool on, char *err, size_t errn)
{
    char peer[64] = "", script[1024], out[512];
    if (on && sv_relay_peer(c, peer, sizeof(peer), err, errn) == -1)
        return -1;
    if (sv_relay_render(c, peer, on, script, sizeof(script), err, errn) < 0)
        return -1;
    char *argv[] = {"nft", "-f", "-", NULL};
    return run_nft(argv, script, out, sizeof(out), err, errn);
}

long sv_relay_packets(void)
{
    char out[4096], err[256];
    char *argv[] = {"nft", "list", "table", "ip", SV_RELAY_TABLE, NULL};
    if (run_nft(argv, NULL, out, sizeof(out), err, sizeof(err)) == -1)
        return -1;
    const char *p = strstr(out, "counter packets ");
    return p ? strtol(p + strlen("counter packets "), NULL, 10) : -1;
}
