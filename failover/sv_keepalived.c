/* keepalived.conf generation from tandem.conf. */
#include "sv_keepalived.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sv_kpaths_init(struct sv_kpaths *p, const char *run_dir)
{
    struct {
        char *dst;
        const char *name;
    } rows[] = {{p->conf, "keepalived.conf"},
                {p->fifo, "vrrp.fifo"},
                {p->track, "health.track"},
                {p->pid, "keepalived.pid"},
                {p->vrrp_pid, "keepalived-vrrp.pid"}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int k = snprintf(rows[i].dst, sizeof(p->conf), "%s/%s", run_dir, rows[i].name);
        if (k < 0 || (size_t)k >= sizeof(p->conf))
            return -1;
    }
    return 0;
}

void sv_fmt_advert(double advert, char *buf, size_t n)
{
    /* VRRPv3 counts in centiseconds; print the shortest exact form. */
    long cs = lround(advert * 100.0);
    if (cs % 100 == 0)
        snprintf(buf, n, "%ld", cs / 100);
    else if (cs % 10 == 0)
        snprintf(buf, n, "%ld.%ld", cs / 100, (cs % 100) / 10);
    else
        snprintf(buf, n, "%ld.%02ld", cs / 100, cs % 100);
}

/* An IPv4 address with an optional /prefix. */
static int valid_ip(const char *s, int allow_prefix)
{
    char a[64];
    snprintf(a, sizeof(a), "%s", s);
    char *slash = strchr(a, '/');
    if (slash) {
        if (!allow_prefix)
            return 0;
        *slash = '\0';
        char *end;
        long pl = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || pl < 0 || pl > 32)
            return 0;
    }
    struct in_addr in;
    return inet_pton(AF_INET, a, &in) == 1;
}

/* Keeps appending; remembers overflow so the caller checks once. */
struct out {
    char *buf;
    size_t n, len;
    int overflow;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct out *o, const char *fmt, ...)
{
    if (o->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->buf + o->len, o->n - o->len, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= o->n - o->len)
        o->overflow = 1;
    else
        o->len += (size_t)k;
}

/* keepalived's parser splits on blanks and treats '#', '!' and braces
 * specially: refuse such bytes in anything we copy into the file. */
static int safe_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s == '#' || *s == '!' || *s == '{' || *s == '}' || *s == '"' ||
            *s == 0x7f)
            return 0;
    return 1;
}

/* A path keepalived reads between double quotes: no quote, backslash or
 * control byte (a newline would start a directive of the caller's choice). */
static int safe_path(const char *s)
{
    if (*s != '/')
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || *s == '"' || *s == '\\' || *s == 0x7f)
            return 0;
    return 1;
}

int sv_kconf_render(const struct tconf *c, const struct sv_kpaths *p, char *buf, size_t n,
                    char *err, size_t errn)
{
    /* Every string that reaches keepalived.conf is checked here, in one
     * place: tandem.conf is operator input, keepalived.conf runs as root. */
    if (!safe_token(c->fo_interface) || strlen(c->fo_interface) > 15) {
        snprintf(err, errn,
                 "failover.interface \"%s\" is not an interface name (1-15 bytes, no blanks, "
                 "quotes, braces, '#' or '!')",
                 c->fo_interface);
        return -1;
    }
    if (!valid_ip(c->fo_vip, 1)) {
        snprintf(err, errn, "failover.vip \"%s\" is not an IPv4 address[/prefix]", c->fo_vip);
        return -1;
    }
    if (c->fo_vrid < 1 || c->fo_vrid > 255) {
        snprintf(err, errn, "failover.virtual_router_id %d is not in 1..255", c->fo_vrid);
        return -1;
    }
    if (c->fo_priority < 1 || c->fo_priority > 254) {
        snprintf(err, errn, "failover.priority %d is not in 1..254", c->fo_priority);
        return -1;
    }
    /* VRRPv3's advert field is 12 bits of centiseconds. */
    if (!(c->fo_advert_int >= 0.01 && c->fo_advert_int <= 40.95)) {
        snprintf(err, errn, "failover.advert_int %g is not in 0.01..40.95 s (VRRPv3)",
                 c->fo_advert_int);
        return -1;
    }
    if (c->fo_unicast_npeers > 0 && !valid_ip(c->fo_unicast_src, 0)) {
        snprintf(err, errn,
                 "failover.unicast_peers is set but failover.unicast_src \"%s\" is not an IPv4 "
                 "address",
                 c->fo_unicast_src);
        return -1;
    }
    for (int i = 0; i < c->fo_unicast_npeers; i++)
        if (!valid_ip(c->fo_unicast_peers[i], 0)) {
            snprintf(err, errn, "failover.unicast_peers[%d] \"%s\" is not an IPv4 address", i,
                     c->fo_unicast_peers[i]);
            return -1;
        }
    if (!safe_token(c->node_name)) {
        snprintf(err, errn, "node.name \"%s\" cannot be a keepalived router_id", c->node_name);
        return -1;
    }
    const char *paths[] = {p->fifo, p->track};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (!safe_path(paths[i])) {
            snprintf(err, errn,
                     "paths.run gives \"%s\": keepalived.conf needs an absolute path without "
                     "quotes, backslashes or control characters",
                     paths[i]);
            return -1;
        }
    /* the config's own path only lands in a comment: shown, not refused */
    char shown[256];
    snprintf(shown, sizeof(shown), "%s", c->path[0] ? c->path : "(defaults)");
    for (char *q = shown; *q; q++)
        if ((unsigned char)*q < ' ' || *q == 0x7f)
            *q = '?';

    char adv[48]; /* room for any long the format could print */
    sv_fmt_advert(c->fo_advert_int, adv, sizeof(adv));
    struct out o = {buf, n, 0, 0};
    emit(&o, "# Generated by tandem-supervisor from %s; edits are overwritten.\n", shown);
    emit(&o, "global_defs {\n");
    emit(&o, "    router_id %s\n", c->node_name);
    emit(&o, "    vrrp_version 3\n");
    /* Sub-second adverts must go out on time with every CPU busy (a
     * loaded primary that misses three adverts is deposed): the VRRP
     * process runs SCHED_RR, bounded by keepalived's default RLIMIT_RTTIME. */
    emit(&o, "    vrrp_rt_priority 50\n");
    /* no scripts are used (states come through the fifo); this only keeps
     * keepalived from looking for a keepalived_script user at every start */
    emit(&o, "    script_user root\n");
    emit(&o, "    enable_script_security\n");
    emit(&o, "    vrrp_notify_fifo \"%s\"\n", p->fifo);
    /* Sub-second adverts: don't let a slow GARP burst delay the next advert. */
    emit(&o, "    vrrp_garp_master_delay 1\n");
    emit(&o, "    vrrp_garp_master_repeat 3\n");
    /* Re-announce the VIP every second: after a VRRP partition the client's
     * ARP entry may point at the node that stood down. */
    emit(&o, "    vrrp_garp_master_refresh 1\n");
    emit(&o, "}\n\n");
    emit(&o, "track_file %s {\n", SV_TRACK_NAME);
    emit(&o, "    file \"%s\"\n", p->track);
    emit(&o, "    weight -1\n");
    emit(&o, "}\n\n");
    emit(&o, "vrrp_instance %s {\n", SV_INSTANCE);
    /* Both nodes start as BACKUP: nopreempt requires it, and the VIP is
     * only ever taken through an election. */
    emit(&o, "    state BACKUP\n");
    emit(&o, "    version 3\n");
    emit(&o, "    interface %s\n", c->fo_interface);
    emit(&o, "    virtual_router_id %d\n", c->fo_vrid);
    emit(&o, "    priority %d\n", c->fo_priority);
    emit(&o, "    advert_int %s\n", adv);
    if (c->fo_nopreempt)
        emit(&o, "    nopreempt\n");
    if (c->fo_unicast_npeers > 0) {
        emit(&o, "    unicast_src_ip %s\n", c->fo_unicast_src);
        emit(&o, "    check_unicast_src\n");
        emit(&o, "    unicast_peer {\n");
        for (int i = 0; i < c->fo_unicast_npeers; i++)
            emit(&o, "        %s\n", c->fo_unicast_peers[i]);
        emit(&o, "    }\n");
    }
    emit(&o, "    virtual_ipaddress {\n");
    emit(&o, "        %s%s dev %s\n", c->fo_vip, strchr(c->fo_vip, '/') ? "" : "/32",
         c->fo_interface);
    emit(&o, "    }\n");
    emit(&o, "    track_file {\n");
    emit(&o, "        %s\n", SV_TRACK_NAME);
    emit(&o, "    }\n");
    emit(&o, "}\n");
    if (o.overflow) {
        snprintf(err, errn, "keepalived.conf does not fit in %zu bytes", n);
        return -1;
    }
    return (int)o.len;
}

int sv_kconf_write(const struct tconf *c, const struct sv_kpaths *p, char *err, size_t errn)
{
    char buf[8192];
    int len = sv_kconf_render(c, p, buf, sizeof(buf), err, errn);
    if (len < 0)
        return -1;
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->conf);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(err, errn, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t w = fwrite(buf, 1, (size_t)len, f);
    if (fclose(f) != 0 || w != (size_t)len) {
        snprintf(err, errn, "%s: write failed: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, p->conf) == -1) {
        snprintf(err, errn, "rename %s to %s: %s", tmp, p->conf, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int sv_track_write(const char *path, int value)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1)
        return -1;
    char b[16];
    int k = snprintf(b, sizeof(b), "%d\n", value);
    ssize_t w = write(fd, b, (size_t)k);
    int e = errno;
    close(fd);
    if (w != k) {
        errno = w == -1 ? e : EIO;
        return -1;
    }
    return 0;
}
