/* The process manager: keepalived and the stack (worker, server, beat) as
 * children, restarts with backoff, the ordered stop, and the VIP clean-up a
 * SIGKILLed keepalived leaves to us. */
#include "sv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define GOOD_RUN_MS 30000 /* a child that ran this long starts its backoff over */

static const char *const stack_names[SV_NSTACK] = {"worker", "server", "beat"};

int sv_proc_init(struct sv *s)
{
    for (int i = 0; i < SV_NSTACK; i++) {
        s->stack[i].name = stack_names[i];
        s->stack[i].backoff_ms = BACKOFF_MIN_MS;
    }
    s->stack[SV_BEAT].grace_ms = 1000;
    /* By the time the server is stopped the VIP has left this node: the
     * answers of requests still in flight cannot reach their clients, so
     * waiting long for a graceful exit only delays "stack stopped". */
    s->stack[SV_SERVER].grace_ms = 300;
    s->stack[SV_WORKER].grace_ms = s->conf.fo_drain_grace * 1000;
    s->ka.name = "keepalived";
    s->ka.backoff_ms = BACKOFF_MIN_MS;
    s->ka.grace_ms = 2000;
    return 0;
}

/* In the child between fork and exec: only async-signal-safe calls. */
static void child_setup(struct sv *s, bool drop, int pdeath, pid_t parent, int pass_fd)
{
    /* dup2 leaves fd 3 open across exec; when it already is fd 3, dup2 is a
     * no-op and the O_CLOEXEC of pipe2 has to be cleared by hand */
    if (pass_fd >= 0 && (pass_fd == 3 ? fcntl(3, F_SETFD, 0) : dup2(pass_fd, 3)) == -1)
        _exit(125);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, pdeath);
    if (getppid() != parent)
        _exit(127); /* the supervisor is already gone */
    if (drop && s->drop_privs) {
        if (setgroups(1, &s->gid) == -1 || setgid(s->gid) == -1 || setuid(s->uid) == -1)
            _exit(126);
    }
}

static pid_t spawn_fd(struct sv *s, struct sv_child *ch, char *const argv[], bool drop, int pass_fd,
                      char **env)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == -1) {
        log_warn("fork for %s", ch->name);
        return -1;
    }
    if (pid == 0) {
        child_setup(s, drop, SIGTERM, parent, pass_fd);
        execve(argv[0], argv, env ? env : s->child_env);
        dprintf(2, "tandem-supervisor: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    ch->pid = pid;
    ch->started_mono = mono_ms();
    ch->started_wall = now_ms();
    ch->term_sent = 0;
    ch->kill_sent = false;
    return pid;
}

static pid_t spawn(struct sv *s, struct sv_child *ch, char *const argv[], bool drop)
{
    return spawn_fd(s, ch, argv, drop, -1, NULL);
}

/* --- keepalived ---------------------------------------------------------- */

int sv_ka_start(struct sv *s)
{
    char err[256];
    if (sv_kconf_write(&s->conf, &s->kp, err, sizeof(err)) == -1) {
        log_warnx("keepalived config: %s", err);
        return -1;
    }
    unlink(s->kp.pid);
    unlink(s->kp.vrrp_pid);
    char *argv[] = {
        s->conf.fo_keepalived, "-n", "-l", "-D", "-P", "-f", s->kp.conf, "-p", s->kp.pid, "-r",
        s->kp.vrrp_pid,        "-G", NULL};
    if (access(argv[0], X_OK) == -1) {
        log_warn("failover.keepalived %s", argv[0]);
        return -1;
    }
    if (spawn(s, &s->ka, argv, false) == -1)
        return -1;
    s->ka_vrrp_pid = 0;
    log_info("keepalived started (pid %d, %s)", (int)s->ka.pid, s->kp.conf);
    return 0;
}

/* keepalived's VRRP child outlives a SIGKILLed parent for a moment and
 * would keep advertising: find it from its pidfile and kill it. */
static void kill_ka_vrrp(struct sv *s)
{
    FILE *f = fopen(s->kp.vrrp_pid, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid <= 1)
        return;
    char path[64], cmd[512] = "";
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return;
    ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
    close(fd);
    if (n <= 0)
        return;
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    cmd[n] = '\0';
    if (strstr(cmd, s->kp.conf) == NULL)
        return; /* pid reused by someone else */
    if (kill(pid, SIGKILL) == 0)
        log_info("killed keepalived's VRRP child %d", pid);
}

/* --- the stack ----------------------------------------------------------- */

static void start_one(struct sv *s, int i)
{
    struct sv_child *ch = &s->stack[i];
    char bin[CONF_STR + 32], epoch[32];
    snprintf(bin, sizeof(bin), "%s/tandem-%s", s->conf.fo_bin_dir, ch->name);
    snprintf(epoch, sizeof(epoch), "%lld", (long long)s->fsm.epoch);
    char *argv[] = {bin, "-c", (char *)s->conf_path, "--epoch", epoch, NULL};
    if (access(bin, X_OK) == -1) {
        log_warn("cannot start %s: %s", ch->name, bin);
        ch->next_start = mono_ms() + BACKOFF_MAX_MS;
        return;
    }
    int tls_rfd = -1;
    char **env = NULL;
    if (i == SV_SERVER && sv_tls_pipe(s, &tls_rfd) == 0 && tls_rfd >= 0) {
        /* the environment plus TANDEM_TLS_FD=3: the certificate comes on fd 3 */
        size_t n = 0;
        while (s->child_env[n])
            n++;
        env = calloc(n + 2, sizeof *env);
        if (env) {
            memcpy(env, s->child_env, n * sizeof *env);
            env[n] = "TANDEM_TLS_FD=3";
        }
    }
    pid_t pid = spawn_fd(s, ch, argv, true, tls_rfd, env);
    free(env);
    if (tls_rfd >= 0) {
        close(tls_rfd);
        if (pid != -1)
            sv_tls_send(s);
    }
    if (pid != -1)
        log_info("%s started (pid %d, epoch %lld)", ch->name, (int)ch->pid,
                 (long long)s->fsm.epoch);
}

void sv_stack_start(struct sv *s)
{
    s->stack_started_mono = mono_ms();
    s->stack_healthy_once = false;
    /* worker first so the server's first requests find a consumer; beat last */
    for (int i = 0; i < SV_NSTACK; i++) {
        s->stack[i].backoff_ms = BACKOFF_MIN_MS;
        s->stack[i].next_start = 0;
        if (s->stack[i].pid == 0)
            start_one(s, i);
    }
}

void sv_stack_warm(struct sv *s)
{
    /* No beat: it is the one process that must never run on two nodes.
     * Worker and server are safe on both (the queue is shared) and this
     * node's server answers as soon as the VIP arrives. */
    s->stack_started_mono = mono_ms();
    for (int i = 0; i < SV_NSTACK; i++) {
        s->stack[i].backoff_ms = BACKOFF_MIN_MS;
        s->stack[i].next_start = 0;
        if (i != SV_BEAT && s->stack[i].pid == 0)
            start_one(s, i);
    }
}

bool sv_stack_running(const struct sv *s)
{
    for (int i = 0; i < SV_NSTACK; i++)
        if (s->stack[i].pid > 0)
            return true;
    return false;
}

void sv_stack_stop_begin(struct sv *s)
{
    s->stack_stopping = true;
    for (int i = 0; i < SV_NSTACK; i++)
        if (s->stack[i].pid == 0)
            s->stack[i].term_sent = 0;
    /* The beat goes at once: it is the only process that can harm another
     * node (a double fire) and its lease is released on SIGTERM. */
    struct sv_child *b = &s->stack[SV_BEAT];
    if (b->pid > 0 && b->term_sent == 0) {
        kill(b->pid, SIGTERM);
        b->term_sent = mono_ms();
    }
    sv_proc_tick(s);
}

static int peer_children(struct sv *s)
{
    pthread_mutex_lock(&s->hl.lock);
    int n = s->hl.view.peer_children;
    pthread_mutex_unlock(&s->hl.lock);
    return n;
}

/* SIGTERM -> SIGKILL of a stack process. A planned handover keeps the VIP
 * on lo while the stack stops, so the server's answers still reach their
 * clients: it gets the drain's grace (plus its second of accept linger,
 * server_main.c) to answer calls in flight and connections still in their
 * TLS handshake, instead of the 300 ms of a demotion. */
static int stop_grace_ms(const struct sv *s, int which)
{
    if (which == SV_SERVER && s->vip_on_lo)
        return s->conf.fo_drain_grace * 1000 + 1500;
    return s->stack[which].grace_ms;
}

/* Stop order: beat, server, worker; each gets SIGTERM once the previous one
 * is gone, and SIGKILL after its grace. */
static void stop_step(struct sv *s)
{
    static const int order[] = {SV_BEAT, SV_SERVER, SV_WORKER};
    int64_t now = mono_ms();
    for (size_t k = 0; k < 3; k++) {
        struct sv_child *ch = &s->stack[order[k]];
        if (ch->pid == 0)
            continue;
        if (ch->term_sent == 0) {
            /* planned handover: the server answers what still reaches this
             * node (through the VIP kept on lo) until the peer has it all */
            if (order[k] == SV_SERVER && now < s->server_hold_until)
                return;
            /* planned handover: the worker keeps taking calls until another
             * node's worker has a child ready (a warm-started one may still
             * be importing Python on a loaded machine), at most the drain's
             * grace; a call queued meanwhile would otherwise wait for it */
            if (order[k] == SV_WORKER && s->vip_on_lo && peer_children(s) <= 0) {
                if (s->worker_hold_since == 0)
                    s->worker_hold_since = now;
                if (now - s->worker_hold_since < (int64_t)s->conf.fo_drain_grace * 1000)
                    return;
                log_warnx("no other node's worker has a ready child after %d s: stopping ours "
                          "anyway",
                          s->conf.fo_drain_grace);
            }
            kill(ch->pid, SIGTERM);
            ch->term_sent = now;
            log_info("stopping %s (pid %d)", ch->name, (int)ch->pid);
        } else if (!ch->kill_sent && now - ch->term_sent >= stop_grace_ms(s, order[k])) {
            log_warnx("%s (pid %d) still running %d ms after SIGTERM: SIGKILL", ch->name,
                      (int)ch->pid, stop_grace_ms(s, order[k]));
            kill(ch->pid, SIGKILL);
            ch->kill_sent = true;
        }
        return;
    }
    s->stack_stopping = false;
    s->server_hold_until = 0;
    s->worker_hold_since = 0;
    if (s->vip_on_lo) {
        sv_vip_lo(&s->conf, false);
        s->vip_on_lo = false;
    }
    if (s->stack[SV_WORKER].term_sent || s->stack[SV_SERVER].term_sent)
        log_info("stack stopped");
}

void sv_proc_tick(struct sv *s)
{
    int64_t now = mono_ms();
    if (s->stack_stopping) {
        stop_step(s);
        return;
    }
    if (s->fsm.role != SV_ROLE_MASTER || s->promote_pending || s->shutting_down)
        return;
    for (int i = 0; i < SV_NSTACK; i++) {
        struct sv_child *ch = &s->stack[i];
        if (ch->pid == 0 && ch->next_start && now >= ch->next_start) {
            ch->next_start = 0;
            ch->restarts++;
            start_one(s, i);
        }
    }
}

static const char *describe_status(int st, char *buf, size_t n)
{
    if (WIFEXITED(st))
        snprintf(buf, n, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, n, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, n, "status 0x%x", st);
    return buf;
}

static void child_gone(struct sv *s, struct sv_child *ch, int st)
{
    char why[64];
    int64_t now = mono_ms();
    int64_t ran = now - ch->started_mono;
    bool expected = ch->term_sent != 0 || s->shutting_down;
    describe_status(st, why, sizeof(why));
    ch->pid = 0;
    if (expected) {
        log_info("%s stopped (%s)", ch->name, why);
        return;
    }
    if (ran >= GOOD_RUN_MS)
        ch->backoff_ms = BACKOFF_MIN_MS;
    ch->next_start = now + ch->backoff_ms;
    log_warnx("%s died after %lld ms (%s); restarting in %d ms", ch->name, (long long)ran, why,
              ch->backoff_ms);
    ch->backoff_ms = ch->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ch->backoff_ms * 2;
}

/* Declared in sv_main.c: keepalived's death is a role change. */
void sv_on_ka_died(struct sv *s, const char *why);

void sv_proc_reap(struct sv *s)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0)
            return;
        if (pid == s->ka.pid) {
            char why[64];
            describe_status(st, why, sizeof(why));
            bool expected = s->ka.term_sent != 0 || s->shutting_down;
            int64_t ran = mono_ms() - s->ka.started_mono;
            s->ka.pid = 0;
            if (!expected)
                kill_ka_vrrp(s);
            if (ran >= GOOD_RUN_MS)
                s->ka.backoff_ms = BACKOFF_MIN_MS;
            s->ka.next_start = mono_ms() + s->ka.backoff_ms;
            s->ka.backoff_ms =
                s->ka.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->ka.backoff_ms * 2;
            if (!expected) {
                s->ka.restarts++;
                char cause[96];
                snprintf(cause, sizeof(cause), "keepalived died (%s)", why);
                sv_on_ka_died(s, cause);
            } else {
                log_info("keepalived stopped (%s)", why);
            }
            continue;
        }
        for (int i = 0; i < SV_NSTACK; i++)
            if (pid == s->stack[i].pid)
                child_gone(s, &s->stack[i], st);
    }
}

void sv_kill_all(struct sv *s)
{
    for (int i = 0; i < SV_NSTACK; i++)
        if (s->stack[i].pid > 0)
            kill(s->stack[i].pid, SIGKILL);
    if (s->ka.pid > 0)
        kill(s->ka.pid, SIGKILL);
}

/* --- the VIP ------------------------------------------------------------- */

static int parse_vip(const struct tconf *c, struct in_addr *a, int *plen)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", c->fo_vip);
    char *slash = strchr(buf, '/');
    *plen = 32;
    if (slash) {
        *slash = '\0';
        *plen = atoi(slash + 1);
    }
    return inet_pton(AF_INET, buf, a) == 1 ? 0 : -1;
}

/* RTM_NEWADDR/RTM_DELADDR over netlink: no fork/exec of ip(8) on the
 * failover path. 0 done (or nothing to do), -1 with errno. */
static int addr_op(int type, unsigned idx, const struct in_addr *a, int plen)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd == -1)
        return -1;
    struct {
        struct nlmsghdr nh;
        struct ifaddrmsg ifa;
        char attrs[64];
    } req;
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_type = (unsigned short)type;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    if (type == RTM_NEWADDR)
        req.nh.nlmsg_flags |= NLM_F_CREATE | NLM_F_REPLACE;
    req.nh.nlmsg_seq = 1;
    req.ifa.ifa_family = AF_INET;
    req.ifa.ifa_prefixlen = (unsigned char)plen;
    req.ifa.ifa_index = idx;
    req.ifa.ifa_scope = RT_SCOPE_HOST;
    struct rtattr *rta = (struct rtattr *)req.attrs;
    rta->rta_type = IFA_LOCAL;
    rta->rta_len = RTA_LENGTH(4);
    memcpy(RTA_DATA(rta), a, 4);
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)) + RTA_ALIGN(rta->rta_len);
    int rc = -1;
    char buf[1024];
    ssize_t n;
    if (send(fd, &req, req.nh.nlmsg_len, 0) == -1)
        goto out;
    n = recv(fd, buf, sizeof(buf), 0);
    if (n < (ssize_t)sizeof(struct nlmsghdr)) {
        errno = EPROTO;
        goto out;
    }
    struct nlmsghdr *nh = (struct nlmsghdr *)buf;
    if (nh->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(nh);
        if (e->error == 0 || (type == RTM_DELADDR && e->error == -EADDRNOTAVAIL) ||
            (type == RTM_NEWADDR && e->error == -EEXIST))
            rc = 0;
        else
            errno = -e->error;
    }
out:;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int sv_vip_drop(const struct tconf *c)
{
    struct in_addr a;
    int plen;
    unsigned idx = if_nametoindex(c->fo_interface);
    if (parse_vip(c, &a, &plen) == -1 || idx == 0) {
        log_warnx("cannot drop VIP %s on %s: bad address or no such interface", c->fo_vip,
                  c->fo_interface);
        return -1;
    }
    bool was = sv_vip_present(c);
    if (addr_op(RTM_DELADDR, idx, &a, plen) == -1) {
        log_warn("remove VIP %s from %s", c->fo_vip, c->fo_interface);
        return -1;
    }
    if (was)
        log_info("VIP %s removed from %s", c->fo_vip, c->fo_interface);
    return 0;
}

/* The VIP as a host address on lo while a planned handover drains: packets
 * still sent to this node (clients whose ARP entry has not moved yet, the
 * rest of a call in flight) reach the server that is still running instead
 * of vanishing. arp_ignore 1 on the VIP's interface keeps this node from
 * answering ARP for it meanwhile (the peer owns it now); the old value comes
 * back with the address. */
static int saved_arp_ignore = -1;

static int arp_ignore_set(const char *ifname, int v)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/arp_ignore", ifname);
    int old = -1;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%d", &old) != 1)
            old = -1;
        fclose(f);
    }
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%d\n", v);
    if (fclose(f) != 0)
        return -1;
    return old;
}

int sv_vip_lo(const struct tconf *c, bool add)
{
    struct in_addr a;
    int plen;
    unsigned lo = if_nametoindex("lo");
    if (parse_vip(c, &a, &plen) == -1 || lo == 0)
        return -1;
    if (add) {
        int old = arp_ignore_set(c->fo_interface, 1);
        if (old == -1) {
            log_warn("arp_ignore on %s: not keeping the VIP on lo", c->fo_interface);
            return -1;
        }
        if (saved_arp_ignore == -1)
            saved_arp_ignore = old;
    }
    int rc = addr_op(add ? RTM_NEWADDR : RTM_DELADDR, lo, &a, 32);
    if (rc == -1)
        log_warn("%s VIP %s on lo", add ? "add" : "remove", c->fo_vip);
    else if (add)
        log_info("VIP %s kept on lo while calls in flight finish", c->fo_vip);
    if (!add && saved_arp_ignore != -1) {
        arp_ignore_set(c->fo_interface, saved_arp_ignore);
        saved_arp_ignore = -1;
    }
    return rc;
}

bool sv_vip_present(const struct tconf *c)
{
    struct in_addr a;
    int plen;
    unsigned idx = if_nametoindex(c->fo_interface);
    if (parse_vip(c, &a, &plen) == -1 || idx == 0)
        return false;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd == -1)
        return false;
    struct {
        struct nlmsghdr nh;
        struct ifaddrmsg ifa;
    } req;
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
    req.nh.nlmsg_type = RTM_GETADDR;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.ifa.ifa_family = AF_INET;
    bool found = false, done = false;
    if (send(fd, &req, req.nh.nlmsg_len, 0) == -1)
        goto out;
    static char buf[16384];
    while (!done) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (unsigned)n);
             nh = NLMSG_NEXT(nh, n)) {
            if (nh->nlmsg_type == NLMSG_DONE || nh->nlmsg_type == NLMSG_ERROR) {
                done = true;
                break;
            }
            struct ifaddrmsg *ifa = NLMSG_DATA(nh);
            if (ifa->ifa_index != idx)
                continue;
            int len = (int)IFA_PAYLOAD(nh);
            for (struct rtattr *r = IFA_RTA(ifa); RTA_OK(r, len); r = RTA_NEXT(r, len))
                if (r->rta_type == IFA_LOCAL && memcmp(RTA_DATA(r), &a, 4) == 0)
                    found = true;
        }
    }
out:
    close(fd);
    return found;
}
