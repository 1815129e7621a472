/* db_migrate and friends against a real mariadbd started in a temp dir
 * (unix socket, no networking). Skips when mariadbd is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "db.h"
#include "log.h"

#define MARIADBD "/usr/sbin/mariadbd"
#define INSTALL_DB "/usr/bin/mariadb-install-db"

static struct {
    bool available;
    char dir[64];
    char mig[128]; /* a migrations dir the tests fill */
    pid_t pid;
    struct tconf conf;
    int dbn; /* each test gets a fresh database */
} fx;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int run_quiet(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == -1)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd != -1) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int rm_rf(const char *path)
{
    char *argv[] = {"/bin/rm", "-rf", (char *)path, NULL};
    return run_quiet(argv, "/dev/null");
}

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_LVL_WARN);
    if (access(MARIADBD, X_OK) != 0 || access(INSTALL_DB, X_OK) != 0)
        return 0;
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/tandem-common-db-XXXXXX");
    if (mkdtemp(fx.dir) == NULL)
        return -1;
    char datadir[128], sock[128], log[128], a1[160], a2[160], a3[160];
    snprintf(datadir, sizeof(datadir), "%s/data", fx.dir);
    snprintf(sock, sizeof(sock), "%s/mysql.sock", fx.dir);
    snprintf(log, sizeof(log), "%s/mariadb.log", fx.dir);
    snprintf(fx.mig, sizeof(fx.mig), "%s/migrations", fx.dir);
    mkdir(fx.mig, 0700);

    snprintf(a1, sizeof(a1), "--datadir=%s", datadir);
    char *install[] = {INSTALL_DB,
                       "--no-defaults",
                       a1,
                       "--user=root",
                       "--auth-root-authentication-method=normal",
                       "--skip-test-db",
                       NULL};
    if (run_quiet(install, log) != 0) {
        fprintf(stderr, "mariadb-install-db failed, see %s\n", log);
        return -1;
    }
    snprintf(a2, sizeof(a2), "--socket=%s", sock);
    snprintf(a3, sizeof(a3), "--log-error=%s", log);
    fx.pid = fork();
    if (fx.pid == 0) {
        char pidf[160];
        snprintf(pidf, sizeof(pidf), "--pid-file=%s/mariadb.pid", fx.dir);
        execl(MARIADBD, MARIADBD, "--no-defaults", a1, a2, a3, pidf, "--skip-networking",
              "--user=root", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
              "--skip-log-bin", (char *)NULL);
        _exit(127);
    }
    tconf_defaults(&fx.conf);
    snprintf(fx.conf.db_socket, sizeof(fx.conf.db_socket), "%s", sock);
    snprintf(fx.conf.db_user, sizeof(fx.conf.db_user), "root");
    snprintf(fx.conf.db_name, sizeof(fx.conf.db_name), "mysql");
    for (int i = 0; i < 300; i++) {
        char *err = NULL;
        MYSQL *m = db_connect(&fx.conf, 2, &err);
        if (m) {
            mysql_close(m);
            fx.available = true;
            return 0;
        }
        free(err);
        int st;
        if (waitpid(fx.pid, &st, WNOHANG) == fx.pid) {
            fprintf(stderr, "mariadbd exited, see %s\n", log);
            fx.pid = 0;
            return -1;
        }
        sleep_ms(100);
    }
    fprintf(stderr, "mariadbd did not come up, see %s\n", log);
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (fx.pid > 0) {
        kill(fx.pid, SIGTERM);
        waitpid(fx.pid, NULL, 0);
    }
    if (fx.dir[0])
        rm_rf(fx.dir);
    return 0;
}

/* A fresh, empty database and an empty migrations dir for each test. */
static int test_setup(void **state)
{
    (void)state;
    if (!fx.available)
        return 0;
    rm_rf(fx.mig);
    mkdir(fx.mig, 0700);
    snprintf(fx.conf.db_name, sizeof(fx.conf.db_name), "mysql");
    char *err = NULL;
    MYSQL *m = db_connect(&fx.conf, 5, &err);
    if (m == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    fx.dbn++;
    int rc = db_exec(m, &err, "CREATE DATABASE ut%d CHARACTER SET utf8mb4", fx.dbn);
    mysql_close(m);
    if (rc == -1) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    snprintf(fx.conf.db_name, sizeof(fx.conf.db_name), "ut%d", fx.dbn);
    return 0;
}

static void put_migration(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", fx.mig, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static MYSQL *connect_or_fail(void)
{
    char *err = NULL;
    MYSQL *m = db_connect(&fx.conf, 10, &err);
    if (m == NULL)
        fail_msg("db_connect: %s", err);
    return m;
}

static long long scalar(MYSQL *m, const char *sql)
{
    char *err = NULL;
    MYSQL_RES *r = db_query(m, &err, "%s", sql);
    if (r == NULL)
        fail_msg("%s: %s", sql, err);
    MYSQL_ROW row = mysql_fetch_row(r);
    assert_non_null(row);
    long long v = row[0] ? atoll(row[0]) : -1;
    mysql_free_result(r);
    return v;
}

static const char mig1[] = "-- first migration; a comment with a ; at the end;\n"
                           "CREATE TABLE a (\n"
                           "  id INT PRIMARY KEY, -- inline comment\n"
                           "  note VARCHAR(64) NOT NULL DEFAULT 'x;y'\n"
                           ");\n"
                           "\n"
                           "   -- indented comment\n"
                           "INSERT INTO a (id) VALUES (1);   \n"
                           "INSERT INTO a (id) VALUES (2)";
static const char mig2[] = "ALTER TABLE a ADD COLUMN b INT NOT NULL DEFAULT 7;\r\n";

static void test_db_migrate_applies_in_order_once(void **state)
{
    (void)state;
    if (!fx.available)
        skip();
    put_migration("002_b.sql", mig2);
    put_migration("001_a.sql", mig1);
    put_migration("README", "not a migration");
    put_migration("01_short.sql", "garbage");
    put_migration("003_x.sql.orig", "garbage");
    MYSQL *m = connect_or_fail();
    char *err = NULL;
    int applied = -1, pending = -1;
    assert_int_equal(db_migrations_pending(m, fx.mig, &pending, &err), 0);
    assert_int_equal(pending, 2);
    if (db_migrate(m, fx.mig, &applied, &err) != 0)
        fail_msg("%s", err);
    assert_int_equal(applied, 2);
    assert_int_equal(scalar(m, "SELECT COUNT(*) FROM a"), 2);
    assert_int_equal(scalar(m, "SELECT SUM(b) FROM a"), 14);
    assert_int_equal(scalar(m, "SELECT COUNT(*) FROM schema_migrations"), 2);
    assert_int_equal(scalar(m, "SELECT COUNT(*) FROM schema_migrations WHERE version = 2 AND name "
                               "= '002_b.sql' AND applied_at IS NOT NULL"),
                     1);

    /* Again: nothing to do, nothing re-run. */
    assert_int_equal(db_migrate(m, fx.mig, &applied, &err), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(scalar(m, "SELECT COUNT(*) FROM a"), 2);
    assert_int_equal(db_migrations_pending(m, fx.mig, &pending, &err), 0);
    assert_int_equal(pending, 0);

    /* A new file is picked up alone. */
    put_migration("003_c.sql", "INSERT INTO a (id) VALUES (3);\n");
    assert_int_equal(db_migrations_pending(m, fx.mig, &pending, &err), 0);
    assert_int_equal(pending, 1);
    assert_int_equal(db_migrate(m, fx.mig, &applied, &err), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(scalar(m, "SELECT COUNT(*) FROM a"), 3);
    mysql_close(m);
}

static void test_db_migrate_failure_names_file_and_releases_lock(void **state)
{
    (void)state;
    if (!fx.available)
        skip();
    put_migration("001_a.sql", mig1);
    put_migration("002_bad.sql", "CREATE TABLE ok1 (id INT);\n\nCREATE TABLEX oops (id INT);\n");
    MYSQL *m = connect_or_fail();
    char *err = NULL;
    int applied = -1;
    assert_int_equal(db_migrate(m, fx.mig, &applied, &err), -1);
    assert_non_null(err);
    char want[256];
    snprintf(want, sizeof(want), "%s/002_bad.sql:3:", fx.mig);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" does not name %s", err, want);
    free(err);
    err = NULL;
    assert_int_equal(applied, 1);
    assert_int_equal(scalar(m, "SELECT COUNT(*) FROM schema_migrations"), 1);
    /* The lock is free for anyone else. */
    MYSQL *other = connect_or_fail();
    assert_int_equal(scalar(other, "SELECT GET_LOCK('tandem_migrate', 0)"), 1);
    assert_int_equal(scalar(other, "SELECT RELEASE_LOCK('tandem_migrate')"), 1);
    mysql_close(other);

    /* Fixed file: the migration is retried and succeeds. */
    put_migration("002_bad.sql",
                  "CREATE TABLE IF NOT EXISTS ok1 (id INT);\nCREATE TABLE oops (id INT);\n");
    assert_int_equal(db_migrate(m, fx.mig, &applied, &err), 0);
    assert_int_equal(applied, 1);
    mysql_close(m);
}

static void test_db_migrate_rejects_duplicate_versions(void **state)
{
    (void)state;
    if (!fx.available)
        skip();
    put_migration("001_a.sql", mig1);
    put_migration("001_again.sql", mig2);
    MYSQL *m = connect_or_fail();
    char *err = NULL;
    int applied = -1;
    assert_int_equal(db_migrate(m, fx.mig, &applied, &err), -1);
    assert_non_null(strstr(err, "same version"));
    free(err);
    err = NULL;
    assert_int_equal(db_migrate(m, "/nonexistent/migrations", &applied, &err), -1);
    assert_non_null(strstr(err, "/nonexistent/migrations"));
    free(err);
    mysql_close(m);
}

/* Two processes migrate the same empty database at once: every migration
 * is applied exactly once between them and neither fails. */
static void test_db_migrate_concurrent_is_safe(void **state)
{
    (void)state;
    if (!fx.available)
        skip();
    put_migration("001_a.sql", mig1);
    /* Widen the window in which a second migrator could interleave. */
    put_migration("002_slow.sql",
                  "DO SLEEP(0.5);\nALTER TABLE a ADD COLUMN b INT NOT NULL DEFAULT 7;\n");
    put_migration("003_c.sql", "INSERT INTO a (id) VALUES (3);\n");
    enum { NPROC = 3 };
    pid_t pids[NPROC];
    fflush(NULL);
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        assert_true(pids[i] != -1);
        if (pids[i] == 0) {
            char *err = NULL;
            MYSQL *m = db_connect(&fx.conf, 30, &err);
            if (m == NULL) {
                fprintf(stderr, "child: %s\n", err);
                _exit(200);
            }
            int applied = 0;
            if (db_migrate(m, fx.mig, &applied, &err) != 0) {
                fprintf(stderr, "child: %s\n", err);
                _exit(201);
            }
            mysql_close(m);
            _exit(applied);
        }
    }
    int total = 0, sts[NPROC];
    /* Reap every child before judging, so none outlives a failed test. */
    for (int i = 0; i < NPROC; i++)
        assert_int_equal(waitpid(pids[i], &sts[i], 0), pids[i]);
    for (int i = 0; i < NPROC; i++) {
        int st = sts[i];
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) >= 200)
            fail_msg("migrator %d failed (%d)", i, WEXITSTATUS(st));
        total += WEXITSTATUS(st);
    }
    assert_int_equal(total, 3);
    MYSQL *m = connect_or_fail();
    assert_int_equal(scalar(m, "SELECT COUNT(*) FROM a"), 3);
    assert_int_equal(scalar(m, "SELECT COUNT(*) FROM schema_migrations"), 3);
    mysql_close(m);
}

/* The real schema applies cleanly and twice is a no-op. */
static void test_db_migrate_shipped_schema(void **state)
{
    (void)state;
    if (!fx.available)
        skip();
    char dir[1024];
    const char *src = getenv("TANDEM_SRC");
    if (src && src[0]) {
        snprintf(dir, sizeof(dir), "%s/migrations", src);
    } else {
        snprintf(dir, sizeof(dir), "%s", __FILE__);
        char *p = strstr(dir, "tests/unit/test_db.c");
        assert_non_null(p);
        snprintf(p, sizeof(dir) - (size_t)(p - dir), "migrations");
    }
    MYSQL *m = connect_or_fail();
    char *err = NULL;
    int applied = -1;
    if (db_migrate(m, dir, &applied, &err) != 0)
        fail_msg("%s", err);
    assert_true(applied >= 1);
    assert_true(
        scalar(m,
               "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()") >
        3);
    assert_int_equal(db_migrate(m, dir, &applied, &err), 0);
    assert_int_equal(applied, 0);
    mysql_close(m);
}

static void test_db_session_and_quoting(void **state)
{
    (void)state;
    if (!fx.available)
        skip();
    MYSQL *m = connect_or_fail();
    char *err = NULL;
    MYSQL_RES *r =
        db_query(m, &err, "SELECT @@session.time_zone, @@character_set_client, @@autocommit");
    assert_non_null(r);
    MYSQL_ROW row = mysql_fetch_row(r);
    assert_string_equal(row[0], "+00:00");
    assert_string_equal(row[1], "utf8mb4");
    assert_string_equal(row[2], "1");
    mysql_free_result(r);

    assert_int_equal(db_exec(m, &err, "CREATE TABLE q (s VARCHAR(64) NULL)"), 0);
    const char *nasty = "it's \"quoted\" \\ back; -- \xf0\x9f\x98\x80";
    char *q = db_q(m, nasty);
    char *qn = db_q(m, NULL);
    assert_string_equal(qn, "NULL");
    assert_int_equal(db_exec(m, &err, "INSERT INTO q VALUES (%s), (%s)", q, qn), 0);
    free(q);
    free(qn);
    r = db_query(m, &err, "SELECT s FROM q WHERE s IS NOT NULL");
    assert_non_null(r);
    row = mysql_fetch_row(r);
    assert_string_equal(row[0], nasty);
    mysql_free_result(r);

    /* Errors carry the server's text. */
    assert_int_equal(db_exec(m, &err, "SELEC 1"), -1);
    assert_non_null(strstr(err, "SQL syntax"));
    free(err);
    err = NULL;
    assert_null(db_query(m, &err, "SELECT * FROM no_such_table"));
    assert_non_null(strstr(err, "no_such_table"));
    free(err);
    mysql_close(m);

    /* A bad socket is reported with where it tried. */
    struct tconf c = fx.conf;
    snprintf(c.db_socket, sizeof(c.db_socket), "%s/none.sock", fx.dir);
    assert_null(db_connect(&c, 2, &err));
    assert_non_null(strstr(err, "none.sock"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_db_migrate_applies_in_order_once, test_setup),
        cmocka_unit_test_setup(test_db_migrate_failure_names_file_and_releases_lock, test_setup),
        cmocka_unit_test_setup(test_db_migrate_rejects_duplicate_versions, test_setup),
        cmocka_unit_test_setup(test_db_migrate_concurrent_is_safe, test_setup),
        cmocka_unit_test_setup(test_db_migrate_shipped_schema, test_setup),
        cmocka_unit_test_setup(test_db_session_and_quoting, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
