/* The planned handover's relay (failover/sv_relay.c): the nft script that
 * passes packets of connections begun on the old primary on to it. What
 * matters: only the VIP's ports, never a SYN, only packets conntrack has
 * not seen a connection for, and removal that works with no table there. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sv_relay.h"

static void base_conf(struct tconf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->fo_interface, sizeof(c->fo_interface), "eth0");
    snprintf(c->fo_vip, sizeof(c->fo_vip), "198.18.0.100/24");
    snprintf(c->fo_peer, sizeof(c->fo_peer), "198.18.0.12");
    c->server_port = 8088;
    c->health_port = -1;
}

static void test_sv_relay_script_on(void **st)
{
    (void)st;
    struct tconf c;
    char buf[1024], err[256];
    base_conf(&c);
    int n = sv_relay_render(&c, "198.18.0.12", true, buf, sizeof(buf), err, sizeof(err));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    /* replaces an earlier table in the same transaction */
    assert_ptr_equal(strstr(buf, "add table ip tandem_relay\ndelete table ip tandem_relay\n"), buf);
    assert_non_null(strstr(buf, "hook prerouting priority -150;"));
    const char *m = "ip daddr 198.18.0.100 tcp dport { 8088 } ct state new tcp flags & syn == 0";
    const char *dup = strstr(buf, m);
    assert_non_null(dup);
    assert_non_null(strstr(dup, " counter dup to 198.18.0.12 device \"eth0\"\n"));
    const char *drop = strstr(dup + 1, m);
    assert_non_null(drop);
    assert_ptr_equal(strstr(drop, " drop\n"), drop + strlen(m));
    assert_null(strstr(buf, "/24"));
}

static void test_sv_relay_script_ports(void **st)
{
    (void)st;
    struct tconf c;
    char buf[1024], err[256];
    base_conf(&c);
    c.plain_port = 8080;
    c.health_port = 0; /* server.port + 1 */
    assert_true(sv_relay_render(&c, "10.1.2.3", true, buf, sizeof(buf), err, sizeof(err)) > 0);
    assert_non_null(strstr(buf, "tcp dport { 8088, 8080, 8089 }"));
    assert_non_null(strstr(buf, "dup to 10.1.2.3 "));
}

static void test_sv_relay_script_off(void **st)
{
    (void)st;
    struct tconf c;
    char buf[1024], err[256];
    base_conf(&c);
    c.fo_vip[0] = '\0'; /* removal needs nothing from the config */
    assert_true(sv_relay_render(&c, NULL, false, buf, sizeof(buf), err, sizeof(err)) > 0);
    assert_string_equal(buf, "add table ip tandem_relay\ndelete table ip tandem_relay\n");
}

static void test_sv_relay_script_refuses(void **st)
{
    (void)st;
    struct tconf c;
    char buf[1024], err[256];
    base_conf(&c);
    assert_int_equal(sv_relay_render(&c, "node-b", true, buf, sizeof(buf), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "node-b"));
    assert_int_equal(sv_relay_render(&c, NULL, true, buf, sizeof(buf), err, sizeof(err)), -1);
    snprintf(c.fo_vip, sizeof(c.fo_vip), "vip.example/24");
    assert_int_equal(sv_relay_render(&c, "10.0.0.1", true, buf, sizeof(buf), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "failover.vip"));
    base_conf(&c);
    snprintf(c.fo_interface, sizeof(c.fo_interface), "eth0\" drop");
    assert_int_equal(sv_relay_render(&c, "10.0.0.1", true, buf, sizeof(buf), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "failover.interface"));
    base_conf(&c);
    assert_int_equal(sv_relay_render(&c, "10.0.0.1", true, buf, 100, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too long"));
}

static void test_sv_relay_peer(void **st)
{
    (void)st;
    struct tconf c;
    char ip[64], err[256];
    base_conf(&c);
    assert_int_equal(sv_relay_peer(&c, ip, sizeof(ip), err, sizeof(err)), 0);
    assert_string_equal(ip, "198.18.0.12");
    c.fo_peer[0] = '\0';
    snprintf(c.fo_unicast_peers[0], sizeof(c.fo_unicast_peers[0]), "198.18.0.13");
    assert_int_equal(sv_relay_peer(&c, ip, sizeof(ip), err, sizeof(err)), 0);
    assert_string_equal(ip, "198.18.0.13");
    c.fo_unicast_peers[0][0] = '\0';
    assert_int_equal(sv_relay_peer(&c, ip, sizeof(ip), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "failover.peer"));
    snprintf(c.fo_peer, sizeof(c.fo_peer), "localhost");
    assert_int_equal(sv_relay_peer(&c, ip, sizeof(ip), err, sizeof(err)), 0);
    assert_string_equal(ip, "127.0.0.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sv_relay_script_on),  cmocka_unit_test(test_sv_relay_script_ports),
        cmocka_unit_test(test_sv_relay_script_off), cmocka_unit_test(test_sv_relay_script_refuses),
        cmocka_unit_test(test_sv_relay_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
