/* keepalived notify fifo lines: the supervisor acts on what these parse to,
 * so malformed lines must be refused, never half-read. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sv_fifo.h"

static void test_sv_fifo_parses_instance_master(void **st)
{
    (void)st;
    struct sv_fifo_msg m;
    char err[128];
    assert_int_equal(sv_fifo_parse("INSTANCE \"VI_1\" MASTER 100\n", &m, err, sizeof(err)), 0);
    assert_string_equal(m.kind, "INSTANCE");
    assert_string_equal(m.name, "VI_1");
    assert_int_equal(m.state, SV_VRRP_MASTER);
    assert_int_equal(m.priority, 100);
}

static void test_sv_fifo_parses_every_state(void **st)
{
    (void)st;
    struct sv_fifo_msg m;
    char err[128];
    const struct {
        const char *line;
        enum sv_vrrp s;
    } rows[] = {{"INSTANCE \"a\" BACKUP 90", SV_VRRP_BACKUP},
                {"INSTANCE \"a\" FAULT 0", SV_VRRP_FAULT},
                {"INSTANCE \"a\" STOP 100", SV_VRRP_STOP},
                {"INSTANCE \"a\" DELETED 100", SV_VRRP_DELETED},
                {"GROUP \"g\" MASTER", SV_VRRP_MASTER},
                {"INSTANCE \"a b\" MASTER_RX_LOWER_PRI 100", SV_VRRP_NONE},
                {"INSTANCE \"a\" MASTER_PRIORITY 50\r\n", SV_VRRP_NONE}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(sv_fifo_parse(rows[i].line, &m, err, sizeof(err)), 0);
        assert_int_equal(m.state, rows[i].s);
    }
    assert_int_equal(sv_fifo_parse("GROUP \"g\" MASTER", &m, err, sizeof(err)), 0);
    assert_int_equal(m.priority, -1);
    assert_string_equal(m.name, "g");
}

static void test_sv_fifo_refuses_malformed_lines(void **st)
{
    (void)st;
    struct sv_fifo_msg m;
    char err[128];
    const char *bad[] = {
        "",
        "   ",
        "HELLO \"VI_1\" MASTER 100",
        "INSTANCE VI_1 MASTER 100",
        "INSTANCE \"VI_1 MASTER 100",
        "INSTANCE \"\" MASTER 100",
        "INSTANCE \"VI_1\"",
        "INSTANCE \"VI_1\" master 100",
        "INSTANCE \"VI_1\" MASTER abc",
        "INSTANCE \"VI_1\" MASTER 300",
        "INSTANCE \"VI_1\" MASTER -1",
        "INSTANCE \"VI_1\" MASTER 100 extra",
        "INSTANCE \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaa\" MASTER 1",
        "INSTANCE \"VI_1\" MASTERMASTERMASTERMASTERMASTERMASTER 1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(sv_fifo_parse(bad[i], &m, err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
    }
}

struct collected {
    char lines[8][64];
    int overlong[8];
    int n;
};

static void collect(void *arg, const char *line, int overlong)
{
    struct collected *c = arg;
    if (c->n < 8) {
        snprintf(c->lines[c->n], sizeof(c->lines[0]), "%s", line);
        c->overlong[c->n] = overlong;
        c->n++;
    }
}

static void test_sv_fifo_linebuf_keeps_order_across_reads(void **st)
{
    (void)st;
    struct sv_linebuf lb = {0};
    struct collected c = {0};
    const char *s = "INSTANCE \"VI_1\" BACKUP 100\nINSTANCE \"VI_1\" MAS";
    sv_linebuf_feed(&lb, s, strlen(s), collect, &c);
    assert_int_equal(c.n, 1);
    sv_linebuf_feed(&lb, "TER 100\n", 8, collect, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0], "INSTANCE \"VI_1\" BACKUP 100");
    assert_string_equal(c.lines[1], "INSTANCE \"VI_1\" MASTER 100");
}

static void test_sv_fifo_linebuf_drops_overlong_line_whole(void **st)
{
    (void)st;
    struct sv_linebuf lb = {0};
    struct collected c = {0};
    char big[3000];
    memset(big, 'x', sizeof(big));
    sv_linebuf_feed(&lb, big, sizeof(big), collect, &c);
    sv_linebuf_feed(&lb, "tail\nINSTANCE \"a\" FAULT 1\n", 26, collect, &c);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.overlong[0], 1);
    assert_int_equal(c.overlong[1], 0);
    assert_string_equal(c.lines[1], "INSTANCE \"a\" FAULT 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sv_fifo_parses_instance_master),
        cmocka_unit_test(test_sv_fifo_parses_every_state),
        cmocka_unit_test(test_sv_fifo_refuses_malformed_lines),
        cmocka_unit_test(test_sv_fifo_linebuf_keeps_order_across_reads),
        cmocka_unit_test(test_sv_fifo_linebuf_drops_overlong_line_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
