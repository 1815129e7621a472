/* tandem.conf loading: defaults, a valid file, and that every kind of
 * problem is reported as FILE:LINE: KEY: reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "build_config.h"
#include "config.h"

static char tmpdir[64];
static char conf_path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tandem-common-conf-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(conf_path, sizeof(conf_path), "%s/t.conf", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(conf_path);
    char inc[160];
    snprintf(inc, sizeof(inc), "%s/inc.conf", tmpdir);
    unlink(inc);
    rmdir(tmpdir);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Loads text; expects failure with an error line containing each of the
 * NULL-terminated needles (each of the form "LINE: key: reason"). */
static void expect_errors(const char *text, ...)
{
    struct tconf c;
    char *err = NULL;
    write_file(conf_path, text);
    if (tconf_load(&c, conf_path, &err) != -1)
        fail_msg("config accepted:\n%s", text);
    assert_non_null(err);
    va_list ap;
    va_start(ap, text);
    const char *needle;
    while ((needle = va_arg(ap, const char *)) != NULL) {
        char want[512];
        snprintf(want, sizeof(want), "%s:%s", conf_path, needle);
        if (strstr(err, want) == NULL)
            fail_msg("error output lacks \"%s\"; got:\n%s", want, err);
    }
    va_end(ap);
    free(err);
}

static void load_ok(struct tconf *c, const char *text)
{
    char *err = NULL;
    write_file(conf_path, text);
    if (tconf_load(c, conf_path, &err) != 0)
        fail_msg("config rejected: %s\n%s", err, text);
    assert_null(err);
}

static void test_config_defaults(void **state)
{
    (void)state;
    struct tconf c;
    tconf_defaults(&c);
    assert_true(c.node_name[0] != '\0');
    assert_string_equal(c.log_level, "info");
    assert_false(c.log_syslog);
    assert_string_equal(c.redis_host, "127.0.0.1");
    assert_int_equal(c.redis_port, 6379);
    assert_string_equal(c.redis_socket, "");
    assert_int_equal(c.redis_db, 0);
    assert_string_equal(c.redis_prefix, "tandem:");
    assert_string_equal(c.db_host, "127.0.0.1");
    assert_int_equal(c.db_port, 3306);
    assert_string_equal(c.db_user, "tandem");
    assert_string_equal(c.db_name, "tandem");
    assert_string_equal(c.migrations_dir, TANDEM_DATADIR "/migrations");
    assert_string_equal(c.python_dir, TANDEM_DATADIR "/python");
    assert_string_equal(c.run_dir, "/run/tandem");
    assert_string_equal(c.server_listen, "0.0.0.0");
    assert_int_equal(c.server_port, 8088);
    assert_int_equal(c.server_threads, 4);
    assert_int_equal(c.body_limit, 1024 * 1024);
    assert_int_equal(c.conn_timeout, 10);
    assert_int_equal(c.sync_timeout, 35);
    assert_int_equal(c.async_timeout, 3600);
    assert_int_equal(c.max_connections, 1024);
    assert_int_equal(c.worker_children, 2);
    assert_int_equal(c.func_timeout, 30);
    assert_int_equal(c.child_memory_mb, 512);
    assert_int_equal(c.output_cap, 64 * 1024);
    assert_int_equal(c.reclaim_margin, 10);
    assert_int_equal(c.task_ttl, 86400);
    assert_int_equal(c.record_flush_ms, 1000);
    assert_int_equal(c.lease_ms, 3000);
    assert_int_equal(c.misfire_grace, 60);
    assert_string_equal(c.timezone, "UTC");
    assert_int_equal(c.beat_tick_ms, 100);
    assert_true(c.cron_enabled);
    assert_string_equal(c.fo_interface, "eth0");
    assert_int_equal(c.fo_vrid, 51);
    assert_int_equal(c.fo_priority, 250);
    assert_true(c.fo_advert_int == 0.2);
    assert_true(c.fo_nopreempt);
    assert_int_equal(c.fo_unicast_npeers, 0);
    assert_string_equal(c.fo_keepalived, "/usr/sbin/keepalived");
    assert_string_equal(c.fo_user, "tandem");
    assert_string_equal(c.fo_bin_dir, "/usr/bin");
    assert_string_equal(c.fo_socket, "/run/tandem/supervisor.sock");
    assert_int_equal(c.fo_drain_grace, 10);
    assert_int_equal(c.fo_health_weight, 50);
    assert_string_equal(c.ctl_url, "http://127.0.0.1:8088");
    assert_string_equal(c.ctl_key_file, "");
}

static void test_config_empty_file_is_defaults(void **state)
{
    (void)state;
    struct tconf c;
    load_ok(&c, "# nothing\n");
    assert_string_equal(c.path, conf_path);
    assert_int_equal(c.server_port, 8088);
}

static void test_config_valid_file(void **state)
{
    (void)state;
    struct tconf c;
    load_ok(&c,
            "node = { name = \"node-a\"; };\n"
            "log = { level = \"debug\"; syslog = true; };\n"
            "redis = { socket = \"/tmp/r.sock\"; port = 0; db = 3; prefix = \"x:\"; };\n"
            "mysql = { socket = \"/tmp/m.sock\"; user = \"u\"; password = \"p w\"; database = "
            "\"d\"; };\n"
            "paths = { run = \"/tmp/run\"; };\n"
            "server = { port = 9000; body_limit = 2048; };\n"
            "worker = { children = 8; output_cap = 100000L; };\n"
            "beat = { timezone = \"Asia/Shanghai\"; enabled = false; };\n"
            "failover = { vip = \"198.18.0.100/24\"; advert_int = 0.5; priority = 150;\n"
            "  unicast_src = \"198.18.0.1\"; unicast_peers = [\"198.18.0.2\", \"198.18.0.3\"]; };\n"
            "ctl = { key_file = \"/etc/tandem/key\"; };\n");
    assert_string_equal(c.node_name, "node-a");
    assert_string_equal(c.log_level, "debug");
    assert_true(c.log_syslog);
    assert_string_equal(c.redis_socket, "/tmp/r.sock");
    assert_int_equal(c.redis_port, 0);
    assert_int_equal(c.redis_db, 3);
    assert_string_equal(c.redis_prefix, "x:");
    assert_string_equal(c.db_password, "p w");
    assert_int_equal(c.server_port, 9000);
    assert_int_equal(c.body_limit, 2048);
    assert_int_equal(c.worker_children, 8);
    assert_int_equal(c.output_cap, 100000);
    assert_string_equal(c.timezone, "Asia/Shanghai");
    assert_false(c.cron_enabled);
    assert_string_equal(c.fo_vip, "198.18.0.100/24");
    assert_true(c.fo_advert_int == 0.5);
    assert_int_equal(c.fo_priority, 150);
    assert_int_equal(c.fo_unicast_npeers, 2);
    assert_string_equal(c.fo_unicast_peers[1], "198.18.0.3");
    /* Derived defaults follow the options they derive from. */
    assert_string_equal(c.ctl_url, "http://127.0.0.1:9000");
    assert_string_equal(c.fo_socket, "/tmp/run/supervisor.sock");
    /* Untouched options keep their defaults. */
    assert_int_equal(c.lease_ms, 3000);
}

static void test_config_output_cap_is_int64(void **state)
{
    (void)state;
    /* 64 MiB is the cap; an int64 literal above it is out of range, not truncated. */
    expect_errors("worker = {\n  output_cap = 5000000000L;\n};\n",
                  "2: worker.output_cap: 5000000000 is out of range", NULL);
}

static void test_config_integer_for_double(void **state)
{
    (void)state;
    struct tconf c;
    load_ok(&c, "failover = { advert_int = 2; };\n");
    assert_true(c.fo_advert_int == 2.0);
}

static void test_config_unknown_key(void **state)
{
    (void)state;
    expect_errors("server = {\n  port = 8088;\n  prot = 1;\n};\n", "3: server.prot: unknown option",
                  NULL);
}

static void test_config_unknown_section(void **state)
{
    (void)state;
    expect_errors("\n\nserverr = { port = 1; };\n", "3: serverr: unknown section", NULL);
}

static void test_config_top_level_key(void **state)
{
    (void)state;
    expect_errors("port = 8088;\n", "1: port: unknown option", NULL);
    expect_errors("server = 5;\n", "1: server: is a section", NULL);
}

static void test_config_wrong_type(void **state)
{
    (void)state;
    expect_errors(
        "server = {\n  port = \"8088\";\n};\nlog = {\n  syslog = 1;\n};\nredis = { host = 5; };\n",
        "2: server.port: expected an integer, got a string", "5: log.syslog: expected a boolean",
        "7: redis.host: expected a string", NULL);
    expect_errors("failover = {\n unicast_peers = \"198.18.0.2\";\n};\n",
                  "2: failover.unicast_peers: expected a list of strings", NULL);
    expect_errors("failover = {\n unicast_peers = (\"198.18.0.2\", 3);\n};\n",
                  "2: failover.unicast_peers: item 2 is an integer", NULL);
}

static void test_config_out_of_bounds(void **state)
{
    (void)state;
    expect_errors("server = {\n  port = 70000;\n  threads = 0;\n};\n"
                  "failover = { advert_int = 0.001; };\n"
                  "redis = {\n\n db = 16; };\n",
                  "2: server.port: 70000 is out of range 1..65535",
                  "3: server.threads: 0 is out of range 1..64",
                  "5: failover.advert_int: 0.001 is out of range",
                  "8: redis.db: 16 is out of range 0..15", NULL);
}

/* redis.wait_max_lag: 2 s unless set; out of range is refused with the
 * reason each bound has (not only the range). */
static void test_config_wait_max_lag_is_bounded_with_reasons(void **state)
{
    (void)state;
    struct tconf c;
    tconf_defaults(&c);
    assert_int_equal(c.redis_wait_max_lag, 2);
    load_ok(&c, "redis = {\n wait_replicas = 1;\n wait_max_lag = 5;\n};\n");
    assert_int_equal(c.redis_wait_max_lag, 5);
    expect_errors("redis = {\n\n wait_max_lag = 0;\n};\n",
                  "3: redis.wait_max_lag: 0 is out of range 1..60: a replica acknowledges once a "
                  "second",
                  NULL);
    expect_errors("redis = {\n wait_max_lag = 61;\n};\n",
                  "2: redis.wait_max_lag: 61 is out of range 1..60: a hung replica would be "
                  "trusted that long",
                  NULL);
    expect_errors("redis = {\n wait_max_lag = 1.5;\n};\n",
                  "2: redis.wait_max_lag: expected an integer", NULL);
    /* doctor's warning threshold beside it: 10 s unless set */
    assert_int_equal(c.redis_replica_lag_warn, 10);
    load_ok(&c, "redis = {\n replica_lag_warn = 30;\n};\n");
    assert_int_equal(c.redis_replica_lag_warn, 30);
    expect_errors("redis = {\n replica_lag_warn = 0;\n};\n",
                  "2: redis.replica_lag_warn: 0 is out of range 1..3600", NULL);
}

/* The values' own rules (the table's valid/invalid): each bad value is
 * named, in quotes, with what is wrong with it. */
static void test_config_each_rule_names_the_value(void **state)
{
    (void)state;
    expect_errors("redis = {\n sentinels = [\"10.0.0.1:26379\", \"10.0.0.2\"];\n};\n",
                  "2: redis.sentinels: item 2 \"10.0.0.2\" is not host:port", NULL);
    expect_errors("mysql = {\n hosts = [\"db:x\"];\n database = \"\";\n};\n",
                  "2: mysql.hosts: item 1 \"db:x\" is not host:port",
                  "3: mysql.database: must not be empty", NULL);
    expect_errors("failover = {\n unicast_src = \"10.0.0\";\n};\n",
                  "2: failover.unicast_src: \"10.0.0\" is not an IPv4 address", NULL);
    expect_errors("worker = {\n queues = [\"sync\", \"x\", \"sync\"];\n};\n",
                  "2: worker.queues: item 2 \"x\" is not a queue",
                  "2: worker.queues: item 3 \"sync\" is listed twice", NULL);
    struct tconf c;
    load_ok(&c, "failover = {\n unicast_src = \"\";\n vip = \"\";\n};\n"); /* empty = off */
}

static void test_config_too_long_string(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof(text), "node = {\n name = \"%070d\";\n};\n", 0);
    expect_errors(text, "2: node.name: value is too long", NULL);
}

/* server.health_port: 0 follows server.port, -1 turns it off, and it may
 * not be server.port itself. */
static void test_config_health_port(void **state)
{
    (void)state;
    struct tconf c;
    load_ok(&c, "server = {\n port = 9000;\n};\n");
    assert_int_equal(tconf_health_port(&c), 9001);
    assert_int_equal(c.header_timeout, 10);
    assert_int_equal(c.body_timeout, 30);
    assert_int_equal(c.max_conn_per_ip, 64);
    load_ok(&c, "server = {\n port = 9000;\n health_port = -1;\n};\n");
    assert_int_equal(tconf_health_port(&c), -1);
    load_ok(&c, "server = {\n port = 65535;\n};\n");
    assert_int_equal(tconf_health_port(&c), -1);
    load_ok(&c, "server = {\n health_port = 7000;\n};\n");
    assert_int_equal(tconf_health_port(&c), 7000);
    expect_errors("server = {\n port = 9000;\n health_port = 9000;\n};\n",
                  "3: server.health_port: 9000 is server.port too", NULL);
    expect_errors("server = {\n header_timeout = 0;\n};\n", "2: server.header_timeout:", NULL);
}

static void test_config_bad_values(void **state)
{
    (void)state;
    expect_errors("log = {\n level = \"loud\";\n};\n", "2: log.level: \"loud\" is not one of",
                  NULL);
    expect_errors("beat = {\n timezone = \"\";\n};\n", "2: beat.timezone: must not be empty", NULL);
    expect_errors("redis = {\n prefix = \"\";\n};\n", "2: redis.prefix: must not be empty", NULL);
    expect_errors("node = {\n name = \"a:b\";\n};\n", "2: node.name:", NULL);
    expect_errors("ctl = {\n url = \"localhost:8088\";\n};\n", "2: ctl.url:", NULL);
    static const char *bad_vips[] = {"198.18.0.100",  "198.18.0.100/33", "198.18.0/24",
                                     "198.18.0.100/", "198.18.0.100/2x", "::1/64",
                                     "host/24"};
    for (size_t i = 0; i < sizeof(bad_vips) / sizeof(bad_vips[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "failover = {\n\n vip = \"%s\";\n};\n", bad_vips[i]);
        expect_errors(text, "3: failover.vip: ", NULL);
    }
    expect_errors("failover = {\n unicast_peers = [\"198.18.0.2\", \"peer\"];\n};\n",
                  "2: failover.unicast_peers: item 2 \"peer\" is not an IPv4 address", NULL);
}

static void test_config_collects_all_problems(void **state)
{
    (void)state;
    struct tconf c;
    char *err = NULL;
    write_file(conf_path,
               "a = { x = 1; };\nserver = { port = 0; nope = 1; };\nlog = { level = \"x\"; };\n");
    assert_int_equal(tconf_load(&c, conf_path, &err), -1);
    int lines = 1;
    for (const char *p = err; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4);
    free(err);
}

static void test_config_syntax_error_has_line(void **state)
{
    (void)state;
    expect_errors("server = {\n  port = 8088;\n  threads = = 2;\n};\n", "3: syntax error", NULL);
    expect_errors("server = {\n  port = 8088;\n", "3: syntax error", NULL);
    expect_errors("server = { port = 1; };\nserver = { port = 2; };\n", "2: syntax error", NULL);
}

static void test_config_missing_file(void **state)
{
    (void)state;
    struct tconf c;
    char *err = NULL;
    assert_int_equal(tconf_load(&c, "/nonexistent/tandem.conf", &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, "/nonexistent/tandem.conf: cannot read: No such file"));
    free(err);
}

static void test_config_include_reports_included_file(void **state)
{
    (void)state;
    char inc[160], text[256];
    snprintf(inc, sizeof(inc), "%s/inc.conf", tmpdir);
    write_file(inc, "server = {\n  port = 99999;\n};\nlog = {\n  level = \"x\";\n};\n");
    snprintf(text, sizeof(text), "@include \"inc.conf\"\n");
    struct tconf c;
    char *err = NULL;
    write_file(conf_path, text);
    assert_int_equal(tconf_load(&c, conf_path, &err), -1);
    char want[256];
    snprintf(want, sizeof(want), "%s:2: server.port:", inc);
    if (strstr(err, want) == NULL)
        fail_msg("want \"%s\" in \"%s\"", want, err);
    snprintf(want, sizeof(want), "%s:5: log.level:", inc);
    if (strstr(err, want) == NULL)
        fail_msg("want \"%s\" in \"%s\"", want, err);
    free(err);
}

static char *dump_str(const struct tconf *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tconf_dump(c, f);
    fclose(f);
    char *body = strdup(strchr(buf, '\n') + 1); /* skip the header naming the path */
    free(buf);
    return body;
}

static void test_config_dump_round_trips(void **state)
{
    (void)state;
    struct tconf a, b;
    load_ok(&a, "server = { port = 9001; };\nfailover = { advert_int = 0.25; unicast_peers = "
                "[\"198.18.0.2\"]; };\nredis = { password = \"q\\\"uote\\\\\"; };\n"
                "worker = { output_cap = 1000; };\n");
    char *da = dump_str(&a);
    /* Every option appears in the dump. */
    assert_non_null(strstr(da, "control_socket = "));
    assert_non_null(strstr(da, "unicast_peers = [\"198.18.0.2\"]"));
    write_file(conf_path, da);
    char *err = NULL;
    if (tconf_load(&b, conf_path, &err) != 0)
        fail_msg("dump does not load back: %s\n%s", err, da);
    char *db = dump_str(&b);
    assert_string_equal(da, db);
    assert_string_equal(b.redis_password, "q\"uote\\");
    free(da);
    free(db);
}

/* A file of the source tree: under $TANDEM_SRC, else next to this test. */
static void src_path(char *path, size_t n, const char *rel)
{
    const char *src = getenv("TANDEM_SRC");
    if (src && src[0]) {
        snprintf(path, n, "%s/%s", src, rel);
        return;
    }
    /* __FILE__ is .../tests/unit/test_config.c */
    snprintf(path, n, "%s", __FILE__);
    char *p = strstr(path, "tests/unit/test_config.c");
    assert_non_null(p);
    snprintf(p, n - (size_t)(p - path), "%s", rel);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot read %s", path);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, got, m);
    fclose(f);
    fclose(m);
    return buf;
}

/* Whether the shipped tandem.conf's section block mentions key (set or
 * commented out, "key =" or "# key ="). */
static bool conf_mentions(const char *conf, const char *section, const char *key)
{
    char head[64], want[96];
    snprintf(head, sizeof head, "\n%s = {", section);
    const char *b = strstr(conf, head);
    if (b == NULL)
        return false;
    const char *end = strstr(b, "\n};");
    snprintf(want, sizeof want, " %s = ", key);
    for (const char *p = strstr(b, want); p && (!end || p < end); p = strstr(p + 1, want))
        if (p[-1] == ' ' || p[-1] == '#' || p[-1] == '\n')
            return true;
    return false;
}

/* Walks the option table (through tconf_dump, which prints every row):
 * each option is described in tandem.conf(5) and shown in the shipped
 * tandem.conf, so a new option cannot land undocumented. */
static void test_config_every_option_is_documented(void **state)
{
    (void)state;
    char path[1024];
    src_path(path, sizeof path, "docs/man/tandem.conf.5");
    char *man = slurp(path);
    src_path(path, sizeof path, "conf/tandem.conf");
    char *conf = slurp(path);
    struct tconf c;
    tconf_defaults(&c);
    char *dump = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&dump, &len);
    tconf_dump(&c, f);
    fclose(f);
    char section[64] = "", missing[2048] = "";
    int n = 0;
    for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n")) {
        char key[64];
        if (sscanf(line, "%63[a-z_] = {", section) == 1)
            continue;
        if (line[0] != ' ' || line[2] == '#' || sscanf(line, " %63[a-z_0-9] =", key) != 1)
            continue;
        char full[160];
        snprintf(full, sizeof full, "%s.%s", section, key);
        n++;
        size_t ml = strlen(missing);
        if (strstr(man, full) == NULL)
            snprintf(missing + ml, sizeof missing - ml, " %s (tandem.conf.5)", full);
        ml = strlen(missing);
        if (!conf_mentions(conf, section, key))
            snprintf(missing + ml, sizeof missing - ml, " %s (conf/tandem.conf)", full);
    }
    free(dump);
    free(man);
    free(conf);
    assert_true(n > 80); /* the dump was read */
    if (missing[0])
        fail_msg("undocumented options:%s", missing);
}

/* The shipped example must load with no problems. */
static void test_config_shipped_example_loads_clean(void **state)
{
    (void)state;
    char path[1024];
    src_path(path, sizeof path, "conf/tandem.conf");
    struct tconf c;
    char *err = NULL;
    if (tconf_load(&c, path, &err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.server_port, 8088);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_empty_file_is_defaults),
        cmocka_unit_test(test_config_valid_file),
        cmocka_unit_test(test_config_output_cap_is_int64),
        cmocka_unit_test(test_config_integer_for_double),
        cmocka_unit_test(test_config_unknown_key),
        cmocka_unit_test(test_config_unknown_section),
        cmocka_unit_test(test_config_top_level_key),
        cmocka_unit_test(test_config_wrong_type),
        cmocka_unit_test(test_config_out_of_bounds),
        cmocka_unit_test(test_config_too_long_string),
        cmocka_unit_test(test_config_wait_max_lag_is_bounded_with_reasons),
        cmocka_unit_test(test_config_each_rule_names_the_value),
        cmocka_unit_test(test_config_bad_values),
        cmocka_unit_test(test_config_collects_all_problems),
        cmocka_unit_test(test_config_syntax_error_has_line),
        cmocka_unit_test(test_config_missing_file),
        cmocka_unit_test(test_config_include_reports_included_file),
        cmocka_unit_test(test_config_health_port),
        cmocka_unit_test(test_config_dump_round_trips),
        cmocka_unit_test(test_config_shipped_example_loads_clean),
        cmocka_unit_test(test_config_every_option_is_documented),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
