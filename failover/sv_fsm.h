/* The supervisor's role, driven by ordered inputs (fifo lines, keepalived's
 * death, the epoch in Redis, operator commands). Pure: it returns what to
 * do as a set of actions and the supervisor does them, so every transition
 * is unit-tested without keepalived. */
#ifndef TANDEM_SV_FSM_H
#define TANDEM_SV_FSM_H

#include <stdint.h>
#include "sv_fifo.h"

enum sv_role {
    SV_ROLE_INIT = 0,  /* keepalived not started yet */
    SV_ROLE_BACKUP,    /* keepalived BACKUP, no stack */
    SV_ROLE_MASTER,    /* VIP held, stack running or starting */
    SV_ROLE_FAULT,     /* keepalived FAULT (health, maintenance, hold), no stack */
    SV_ROLE_STANDDOWN, /* we gave the VIP up on purpose; waiting for FAULT */
    SV_ROLE_DOWN,      /* keepalived not running (died, or stopping): state lines are
                        * stale (written before it died) and ignored until
                        * SV_EV_KA_STARTED */
};

enum sv_event {
    SV_EV_VRRP = 1,    /* a fifo state line; in.vrrp says which */
    SV_EV_KA_DIED,     /* keepalived exited or was killed */
    SV_EV_EPOCH_SEEN,  /* in.epoch = the epoch currently in Redis */
    SV_EV_PEER_MASTER, /* at promotion the peer still runs a fresh stack */
    SV_EV_HANDOVER,    /* switchover, maintenance or bad health while MASTER */
    SV_EV_SHUTDOWN,    /* SIGTERM */
    SV_EV_KA_STARTED,  /* a new keepalived was started: its lines count again */
};

enum sv_action {
    SV_ACT_PROMOTE = 1 << 0,    /* INCR epoch, start worker, server, beat */
    SV_ACT_DEMOTE = 1 << 1,     /* stop beat at once, then server, then drain worker */
    SV_ACT_DROP_VIP = 1 << 2,   /* remove the VIP from the interface ourselves */
    SV_ACT_RESTART_KA = 1 << 3, /* start keepalived again (with backoff) */
    SV_ACT_HOLD = 1 << 4,       /* write FAULT to the track file (give the VIP away) */
};

struct sv_input {
    enum sv_event ev;
    enum sv_vrrp vrrp; /* SV_EV_VRRP */
    int64_t epoch;     /* SV_EV_EPOCH_SEEN */
    const char *why;   /* SV_EV_HANDOVER: "switchover", "maintenance", "unhealthy: ..." */
};

struct sv_fsm {
    enum sv_role role;
    int64_t epoch;   /* the epoch our stack runs with (0 before the first promotion) */
    char cause[160]; /* why the last transition happened */
};

const char *sv_role_name(enum sv_role r);

/* Apply one input. Returns a mask of enum sv_action; f->role and f->cause
 * are updated (cause also when the role did not change but actions are due). */
unsigned sv_fsm_step(struct sv_fsm *f, const struct sv_input *in);

#endif
