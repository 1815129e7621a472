/* The supervisor's state machine (see sv_fsm.h). */
#include "sv_fsm.h"

#include <stdio.h>
#include <string.h>

static const char *const role_names[] = {"init", "backup", "master", "fault", "standdown", "down"};

const char *sv_role_name(enum sv_role r)
{
    if ((int)r < 0 || (size_t)r >= sizeof(role_names) / sizeof(role_names[0]))
        return "unknown";
    return role_names[r];
}

static enum sv_role role_of_vrrp(enum sv_vrrp v)
{
    switch (v) {
    case SV_VRRP_MASTER:
        return SV_ROLE_MASTER;
    case SV_VRRP_BACKUP:
        return SV_ROLE_BACKUP;
    case SV_VRRP_FAULT:
        return SV_ROLE_FAULT;
    default:
        return SV_ROLE_DOWN; /* STOP, DELETED */
    }
}

unsigned sv_fsm_step(struct sv_fsm *f, const struct sv_input *in)
{
    unsigned act = 0;
    switch (in->ev) {
    case SV_EV_VRRP:
        if (in->vrrp == SV_VRRP_NONE)
            return 0;
        /* No keepalived runs: a line still in the fifo was written by the
         * one that died (or is stopping). Acting on it would promote with
         * nobody holding the VRRP election, so it is ignored. */
        if (f->role == SV_ROLE_DOWN)
            return 0;
        if (in->vrrp == SV_VRRP_MASTER) {
            /* Standing down: keepalived has not seen the hold yet; the
             * FAULT line follows. Never start a stack meanwhile. */
            if (f->role == SV_ROLE_MASTER || f->role == SV_ROLE_STANDDOWN)
                return 0;
            f->role = SV_ROLE_MASTER;
            snprintf(f->cause, sizeof(f->cause), "keepalived: MASTER");
            return SV_ACT_PROMOTE;
        }
        if (f->role == SV_ROLE_MASTER)
            act |= SV_ACT_DEMOTE;
        f->role = role_of_vrrp(in->vrrp);
        snprintf(f->cause, sizeof(f->cause), "keepalived: %s", sv_vrrp_name(in->vrrp));
        return act;

    case SV_EV_KA_DIED:
        if (f->role == SV_ROLE_MASTER || f->role == SV_ROLE_STANDDOWN)
            act |= SV_ACT_DEMOTE;
        f->role = SV_ROLE_DOWN;
        snprintf(f->cause, sizeof(f->cause), "keepalived died");
        /* A SIGKILLed keepalived leaves the VIP behind, whatever our role. */
        return act | SV_ACT_DROP_VIP | SV_ACT_RESTART_KA;

    case SV_EV_EPOCH_SEEN:
        if (f->role != SV_ROLE_MASTER || f->epoch <= 0 || in->epoch <= f->epoch)
            return 0;
        f->role = SV_ROLE_STANDDOWN;
        snprintf(f->cause, sizeof(f->cause), "stale primary: epoch %lld in Redis > ours %lld",
                 (long long)in->epoch, (long long)f->epoch);
        return SV_ACT_DEMOTE | SV_ACT_HOLD;

    case SV_EV_PEER_MASTER:
        if (f->role != SV_ROLE_MASTER)
            return 0;
        f->role = SV_ROLE_STANDDOWN;
        snprintf(f->cause, sizeof(f->cause), "peer still primary: not promoting");
        return SV_ACT_DEMOTE | SV_ACT_HOLD;

    case SV_EV_HANDOVER:
        if (f->role != SV_ROLE_MASTER)
            return 0;
        f->role = SV_ROLE_STANDDOWN;
        snprintf(f->cause, sizeof(f->cause), "%s", in->why ? in->why : "handover");
        return SV_ACT_DEMOTE | SV_ACT_HOLD;

    case SV_EV_KA_STARTED:
        if (f->role == SV_ROLE_DOWN) {
            f->role = SV_ROLE_INIT;
            snprintf(f->cause, sizeof(f->cause), "keepalived started");
        }
        return 0;

    case SV_EV_SHUTDOWN:
        if (f->role == SV_ROLE_MASTER || f->role == SV_ROLE_STANDDOWN)
            act |= SV_ACT_DEMOTE;
        f->role = SV_ROLE_DOWN;
        snprintf(f->cause, sizeof(f->cause), "supervisor stopping");
        return act;
    }
    return 0;
}
