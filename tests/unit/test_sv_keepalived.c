/* keepalived.conf generated from tandem.conf: the supervisor's only say in
 * how keepalived elects, so every option must land where keepalived reads it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sv_keepalived.h"

static void base_conf(struct tconf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->node_name, sizeof(c->node_name), "node-a");
    snprintf(c->fo_interface, sizeof(c->fo_interface), "eth0");
    snprintf(c->fo_vip, sizeof(c->fo_vip), "198.18.0.100/24");
    c->fo_vrid = 51;
    c->fo_priority = 100;
    c->fo_advert_int = 1.0;
    c->fo_nopreempt = true;
}

static int render(const struct tconf *c, char *buf, size_t n, char *err)
{
    struct sv_kpaths p;
    assert_int_equal(sv_kpaths_init(&p, "/run/tandem"), 0);
    return sv_kconf_render(c, &p, buf, n, err, 256);
}

static void test_sv_kconf_multicast_nopreempt_backup(void **st)
{
    (void)st;
    struct tconf c;
    char buf[8192], err[256];
    base_conf(&c);
    assert_true(render(&c, buf, sizeof(buf), err) > 0);
    assert_non_null(strstr(buf, "vrrp_version 3\n"));
    assert_non_null(strstr(buf, "vrrp_notify_fifo \"/run/tandem/vrrp.fifo\"\n"));
    assert_non_null(strstr(buf, "file \"/run/tandem/health.track\"\n"));
    assert_non_null(strstr(buf, "state BACKUP\n"));
    assert_non_null(strstr(buf, "nopreempt\n"));
    assert_non_null(strstr(buf, "interface eth0\n"));
    assert_non_null(strstr(buf, "virtual_router_id 51\n"));
    assert_non_null(strstr(buf, "priority 100\n"));
    assert_non_null(strstr(buf, "advert_int 1\n"));
    assert_non_null(strstr(buf, "198.18.0.100/24 dev eth0\n"));
    assert_non_null(strstr(buf, "track_file {\n        " SV_TRACK_NAME "\n"));
    assert_null(strstr(buf, "unicast"));
}

static void test_sv_kconf_preempt_still_starts_backup(void **st)
{
    (void)st;
    struct tconf c;
    char buf[8192], err[256];
    base_conf(&c);
    c.fo_nopreempt = false;
    assert_true(render(&c, buf, sizeof(buf), err) > 0);
    assert_null(strstr(buf, "nopreempt"));
    assert_non_null(strstr(buf, "state BACKUP\n"));
    assert_null(strstr(buf, "state MASTER"));
}

static void test_sv_kconf_unicast_peers(void **st)
{
    (void)st;
    struct tconf c;
    char buf[8192], err[256];
    base_conf(&c);
    snprintf(c.fo_unicast_src, sizeof(c.fo_unicast_src), "198.18.0.11");
    snprintf(c.fo_unicast_peers[0], 64, "198.18.0.12");
    snprintf(c.fo_unicast_peers[1], 64, "198.18.0.13");
    c.fo_unicast_npeers = 2;
    assert_true(render(&c, buf, sizeof(buf), err) > 0);
    assert_non_null(strstr(buf, "unicast_src_ip 198.18.0.11\n"));
    assert_non_null(strstr(buf, "check_unicast_src\n"));
    assert_non_null(
        strstr(buf, "unicast_peer {\n        198.18.0.12\n        198.18.0.13\n    }\n"));
}

static void test_sv_kconf_subsecond_advert(void **st)
{
    (void)st;
    struct tconf c;
    char buf[8192], err[256];
    base_conf(&c);
    c.fo_advert_int = 0.2;
    assert_true(render(&c, buf, sizeof(buf), err) > 0);
    assert_non_null(strstr(buf, "advert_int 0.2\n"));
    c.fo_advert_int = 0.05;
    assert_true(render(&c, buf, sizeof(buf), err) > 0);
    assert_non_null(strstr(buf, "advert_int 0.05\n"));
    c.fo_advert_int = 2.5;
    assert_true(render(&c, buf, sizeof(buf), err) > 0);
    assert_non_null(strstr(buf, "advert_int 2.5\n"));
    char s[16];
    sv_fmt_advert(0.01, s, sizeof(s));
    assert_string_equal(s, "0.01");
}

static void test_sv_kconf_refuses_bad_options(void **st)
{
    (void)st;
    struct tconf c;
    char buf[8192], err[256];

    base_conf(&c);
    c.fo_advert_int = 0.001;
    assert_int_equal(render(&c, buf, sizeof(buf), err), -1);
    assert_non_null(strstr(err, "advert_int"));

    base_conf(&c);
    c.fo_advert_int = 50;
    assert_int_equal(render(&c, buf, sizeof(buf), err), -1);

    base_conf(&c);
    snprintf(c.fo_vip, sizeof(c.fo_vip), "198.18.0.300");
    assert_int_equal(render(&c, buf, sizeof(buf), err), -1);
    assert_non_null(strstr(err, "failover.vip"));

    base_conf(&c);
    snprintf(c.fo_interface, sizeof(c.fo_interface), "eth0 }");
    assert_int_equal(render(&c, buf, sizeof(buf), err), -1);
    assert_non_null(strstr(err, "failover.interface"));

    base_conf(&c);
    snprintf(c.fo_unicast_peers[0], 64, "198.18.0.12");
    c.fo_unicast_npeers = 1;
    assert_int_equal(render(&c, buf, sizeof(buf), err), -1);
    assert_non_null(strstr(err, "unicast_src"));

    base_conf(&c);
    c.fo_vrid = 0;
    assert_int_equal(render(&c, buf, sizeof(buf), err), -1);

    base_conf(&c);
    assert_int_equal(render(&c, buf, 64, err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sv_kconf_multicast_nopreempt_backup),
        cmocka_unit_test(test_sv_kconf_preempt_still_starts_backup),
        cmocka_unit_test(test_sv_kconf_unicast_peers),
        cmocka_unit_test(test_sv_kconf_subsecond_advert),
        cmocka_unit_test(test_sv_kconf_refuses_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
