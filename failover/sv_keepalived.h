/* keepalived as the supervisor's child: its configuration is generated from
 * tandem.conf's failover.* options, never written by hand. Health and
 * administrative holds reach keepalived through one track_file. */
#ifndef TANDEM_SV_KEEPALIVED_H
#define TANDEM_SV_KEEPALIVED_H

#include <stddef.h>
#include "config.h"

#define SV_INSTANCE "VI_TANDEM"
#define SV_TRACK_NAME "tandem_health"

/* Values written to the track file. keepalived multiplies them by the
 * track_file weight (-1): 0 leaves the priority alone, a value of 254 or
 * more drives the instance to FAULT (below -253), which gives the VIP away
 * at once even under nopreempt, where a mere priority drop would not. */
#define SV_TRACK_OK 0
#define SV_TRACK_FAULT 254

struct sv_kpaths {
    char conf[256];     /* <run>/keepalived.conf */
    char fifo[256];     /* <run>/vrrp.fifo */
    char track[256];    /* <run>/health.track */
    char pid[256];      /* <run>/keepalived.pid */
    char vrrp_pid[256]; /* <run>/keepalived-vrrp.pid */
};

/* Fill the paths under run_dir. -1 if they do not fit. */
int sv_kpaths_init(struct sv_kpaths *p, const char *run_dir);

/* Render keepalived.conf into buf. Returns the length, or -1 with a reason
 * in err (bad VIP, advert_int out of VRRPv3's range, unicast without a
 * source, output too long). */
int sv_kconf_render(const struct tconf *c, const struct sv_kpaths *p, char *buf, size_t n,
                    char *err, size_t errn);

/* Render and write atomically (tmp + rename). 0 or -1 with err. */
int sv_kconf_write(const struct tconf *c, const struct sv_kpaths *p, char *err, size_t errn);

/* Write value to the track file in place (keepalived watches it with inotify
 * for a close-after-write). 0 or -1 (errno set). */
int sv_track_write(const char *path, int value);

/* advert_int as keepalived wants it: "1", "0.2", "0.05". */
void sv_fmt_advert(double advert, char *buf, size_t n);

#endif
