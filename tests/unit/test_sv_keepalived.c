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
    assert_non_null(strstr(buf, "vrrp_rt_priority 50\n"));
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

/* Defect 12: every string copied into keepalived.conf (which keepalived
 * reads as root) is checked; one bad byte must refuse the whole file, never
 * reach it. Each row breaks one option. */
static void test_sv_kconf_refuses_injection(void **st)
{
    (void)st;
    static const struct {
        const char *opt, *value, *err;
    } rows[] = {
        {"interface", "eth0\n}\nvrrp_script x {", "failover.interface"},
        {"interface", "eth0\"", "failover.interface"},
        {"interface", "eth0{", "failover.interface"},
        {"interface", "eth0#x", "failover.interface"},
        {"interface", "", "failover.interface"},
        {"interface", "a-very-long-interface", "failover.interface"},
        {"vip", "198.18.0.100/24\nglobal_defs {", "failover.vip"},
        {"vip", "198.18.0.100 dev lo", "failover.vip"},
        {"vip", "198.18.0.100/33", "failover.vip"},
        {"vip", "\"198.18.0.100\"", "failover.vip"},
        {"vip", "", "failover.vip"},
        {"src", "198.18.0.11\n}", "unicast_src"},
        {"peer", "198.18.0.12 }", "unicast_peers"},
        {"peer", "198.18.0.12\nnopreempt", "unicast_peers"},
        {"peer", "peer.example", "unicast_peers"},
        {"name", "node a", "node.name"},
        {"name", "node\n}", "node.name"},
        {"name", "node{", "node.name"},
        {"run", "/run/tandem\"\nglobal_defs {", "paths.run"},
        {"run", "/run/tan\\dem", "paths.run"},
        {"run", "run/tandem", "paths.run"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct tconf c;
        base_conf(&c);
        const char *run = "/run/tandem";
        snprintf(c.fo_unicast_src, sizeof(c.fo_unicast_src), "198.18.0.11");
        snprintf(c.fo_unicast_peers[0], 64, "198.18.0.12");
        c.fo_unicast_npeers = 1;
        if (strcmp(rows[i].opt, "interface") == 0)
            snprintf(c.fo_interface, sizeof(c.fo_interface), "%s", rows[i].value);
        else if (strcmp(rows[i].opt, "vip") == 0)
            snprintf(c.fo_vip, sizeof(c.fo_vip), "%s", rows[i].value);
        else if (strcmp(rows[i].opt, "src") == 0)
            snprintf(c.fo_unicast_src, sizeof(c.fo_unicast_src), "%s", rows[i].value);
        else if (strcmp(rows[i].opt, "peer") == 0)
            snprintf(c.fo_unicast_peers[0], 64, "%s", rows[i].value);
        else if (strcmp(rows[i].opt, "name") == 0)
            snprintf(c.node_name, sizeof(c.node_name), "%s", rows[i].value);
        else
            run = rows[i].value;
        struct sv_kpaths p;
        char buf[8192], err[256] = "";
        assert_int_equal(sv_kpaths_init(&p, run), 0);
        int rc = sv_kconf_render(&c, &p, buf, sizeof(buf), err, sizeof(err));
        if (rc != -1 || strstr(err, rows[i].err) == NULL)
            fail_msg("row %zu (%s = \"%s\"): rc %d, err \"%s\" (want one naming %s)", i,
                     rows[i].opt, rows[i].value, rc, err, rows[i].err);
    }
    /* the config file's own path only lands in a comment: a newline in it
     * is shown as '?', never starts a line */
    struct tconf c;
    char buf[8192], err[256];
    base_conf(&c);
    snprintf(c.path, sizeof(c.path), "/etc/x\nglobal_defs {\n");
    assert_true(render(&c, buf, sizeof(buf), err) > 0);
    assert_non_null(strstr(buf, "from /etc/x?global_defs {?;"));
    assert_null(strstr(buf, "\nglobal_defs {\n}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sv_kconf_multicast_nopreempt_backup),
        cmocka_unit_test(test_sv_kconf_preempt_still_starts_backup),
        cmocka_unit_test(test_sv_kconf_unicast_peers),
        cmocka_unit_test(test_sv_kconf_subsecond_advert),
        cmocka_unit_test(test_sv_kconf_refuses_bad_options),
        cmocka_unit_test(test_sv_kconf_refuses_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
