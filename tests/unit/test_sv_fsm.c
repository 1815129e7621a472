/* The supervisor's state machine: promise 3 (only the primary runs a stack)
 * rests on these transitions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sv_fsm.h"

static unsigned vrrp(struct sv_fsm *f, enum sv_vrrp v)
{
    struct sv_input in = {.ev = SV_EV_VRRP, .vrrp = v};
    return sv_fsm_step(f, &in);
}

static unsigned ev(struct sv_fsm *f, enum sv_event e, int64_t epoch)
{
    struct sv_input in = {.ev = e, .epoch = epoch, .why = "switchover"};
    return sv_fsm_step(f, &in);
}

static void test_sv_fsm_master_promotes_once(void **st)
{
    (void)st;
    struct sv_fsm f = {0};
    assert_int_equal(vrrp(&f, SV_VRRP_BACKUP), 0);
    assert_int_equal(f.role, SV_ROLE_BACKUP);
    assert_int_equal(vrrp(&f, SV_VRRP_MASTER), SV_ACT_PROMOTE);
    assert_int_equal(f.role, SV_ROLE_MASTER);
    /* a repeated MASTER line must not start a second stack */
    assert_int_equal(vrrp(&f, SV_VRRP_MASTER), 0);
    assert_int_equal(vrrp(&f, SV_VRRP_NONE), 0);
}

static void test_sv_fsm_backup_fault_stop_demote_only_master(void **st)
{
    (void)st;
    enum sv_vrrp downs[] = {SV_VRRP_BACKUP, SV_VRRP_FAULT, SV_VRRP_STOP, SV_VRRP_DELETED};
    for (size_t i = 0; i < 4; i++) {
        struct sv_fsm f = {0};
        vrrp(&f, SV_VRRP_MASTER);
        assert_int_equal(vrrp(&f, downs[i]), SV_ACT_DEMOTE);
        assert_int_not_equal(f.role, SV_ROLE_MASTER);
        assert_int_equal(vrrp(&f, downs[i]), 0);
    }
}

static void test_sv_fsm_keepalived_death_demotes_and_drops_vip(void **st)
{
    (void)st;
    struct sv_fsm f = {0};
    vrrp(&f, SV_VRRP_MASTER);
    unsigned a = ev(&f, SV_EV_KA_DIED, 0);
    assert_int_equal(a, SV_ACT_DEMOTE | SV_ACT_DROP_VIP | SV_ACT_RESTART_KA);
    assert_int_equal(f.role, SV_ROLE_DOWN);
    /* on a backup: nothing to stop, but the VIP is still dropped */
    struct sv_fsm g = {0};
    vrrp(&g, SV_VRRP_BACKUP);
    assert_int_equal(ev(&g, SV_EV_KA_DIED, 0), SV_ACT_DROP_VIP | SV_ACT_RESTART_KA);
    /* after the restart keepalived reports again and may promote */
    assert_int_equal(ev(&f, SV_EV_KA_STARTED, 0), 0);
    assert_int_equal(f.role, SV_ROLE_INIT);
    assert_int_equal(vrrp(&f, SV_VRRP_BACKUP), 0);
    assert_int_equal(vrrp(&f, SV_VRRP_MASTER), SV_ACT_PROMOTE);
}

/* Defect 11: keepalived wrote MASTER to the fifo and died; the supervisor
 * reaps it (KA_DIED) before it reads the line in the same tick. That line
 * must not start a stack: nobody holds the election any more. */
static void test_sv_fsm_master_line_after_keepalived_death_ignored(void **st)
{
    (void)st;
    struct sv_fsm f = {0};
    vrrp(&f, SV_VRRP_BACKUP);
    ev(&f, SV_EV_KA_DIED, 0);
    assert_int_equal(vrrp(&f, SV_VRRP_MASTER), 0);
    assert_int_equal(f.role, SV_ROLE_DOWN);
    /* same while a primary's keepalived died: demoted, and stays down */
    struct sv_fsm g = {0};
    vrrp(&g, SV_VRRP_MASTER);
    ev(&g, SV_EV_KA_DIED, 0);
    assert_int_equal(vrrp(&g, SV_VRRP_MASTER), 0);
    assert_int_equal(vrrp(&g, SV_VRRP_BACKUP), 0);
    assert_int_equal(g.role, SV_ROLE_DOWN);
    /* and while stopping: keepalived's last lines never promote */
    struct sv_fsm h = {0};
    vrrp(&h, SV_VRRP_BACKUP);
    ev(&h, SV_EV_SHUTDOWN, 0);
    assert_int_equal(vrrp(&h, SV_VRRP_MASTER), 0);
    /* a started keepalived's lines count again */
    assert_int_equal(ev(&f, SV_EV_KA_STARTED, 0), 0);
    assert_int_equal(vrrp(&f, SV_VRRP_MASTER), SV_ACT_PROMOTE);
}

static void test_sv_fsm_stale_primary_stands_down(void **st)
{
    (void)st;
    struct sv_fsm f = {0};
    vrrp(&f, SV_VRRP_MASTER);
    f.epoch = 7;
    assert_int_equal(ev(&f, SV_EV_EPOCH_SEEN, 7), 0);
    assert_int_equal(ev(&f, SV_EV_EPOCH_SEEN, 6), 0);
    assert_int_equal(ev(&f, SV_EV_EPOCH_SEEN, 8), SV_ACT_DEMOTE | SV_ACT_HOLD);
    assert_int_equal(f.role, SV_ROLE_STANDDOWN);
    assert_non_null(strstr(f.cause, "stale"));
    /* keepalived still says MASTER until it reads the hold: no new stack */
    assert_int_equal(vrrp(&f, SV_VRRP_MASTER), 0);
    assert_int_equal(vrrp(&f, SV_VRRP_FAULT), 0);
    assert_int_equal(f.role, SV_ROLE_FAULT);
    /* a backup never reacts to the epoch */
    struct sv_fsm g = {0};
    vrrp(&g, SV_VRRP_BACKUP);
    assert_int_equal(ev(&g, SV_EV_EPOCH_SEEN, 100), 0);
}

static void test_sv_fsm_handover_and_refusal(void **st)
{
    (void)st;
    struct sv_fsm f = {0};
    assert_int_equal(ev(&f, SV_EV_HANDOVER, 0), 0); /* not primary: nothing to hand over */
    vrrp(&f, SV_VRRP_MASTER);
    assert_int_equal(ev(&f, SV_EV_HANDOVER, 0), SV_ACT_DEMOTE | SV_ACT_HOLD);
    assert_string_equal(f.cause, "switchover");
    struct sv_fsm g = {0};
    vrrp(&g, SV_VRRP_MASTER);
    assert_int_equal(ev(&g, SV_EV_PEER_MASTER, 0), SV_ACT_DEMOTE | SV_ACT_HOLD);
    assert_int_equal(g.role, SV_ROLE_STANDDOWN);
}

static void test_sv_fsm_shutdown(void **st)
{
    (void)st;
    struct sv_fsm f = {0};
    vrrp(&f, SV_VRRP_MASTER);
    assert_int_equal(ev(&f, SV_EV_SHUTDOWN, 0), SV_ACT_DEMOTE);
    struct sv_fsm g = {0};
    vrrp(&g, SV_VRRP_BACKUP);
    assert_int_equal(ev(&g, SV_EV_SHUTDOWN, 0), 0);
    assert_string_equal(sv_role_name(SV_ROLE_STANDDOWN), "standdown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sv_fsm_master_promotes_once),
        cmocka_unit_test(test_sv_fsm_backup_fault_stop_demote_only_master),
        cmocka_unit_test(test_sv_fsm_keepalived_death_demotes_and_drops_vip),
        cmocka_unit_test(test_sv_fsm_master_line_after_keepalived_death_ignored),
        cmocka_unit_test(test_sv_fsm_stale_primary_stands_down),
        cmocka_unit_test(test_sv_fsm_handover_and_refusal),
        cmocka_unit_test(test_sv_fsm_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
