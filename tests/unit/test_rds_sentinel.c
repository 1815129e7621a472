/* Sentinel discovery in rds_connect(): a real Redis master, its replica and
 * a real Sentinel on loopback. The master is found through the Sentinels
 * (a dead one first in the list), a wrong master name or no Sentinel is a
 * clear error, -READONLY marks a context broken, and after a Sentinel
 * failover a reconnect lands on the promoted replica. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "rds.h"
#include "task.h"

struct ha {
    char dir[64];
    int pm, pr, ps, dead; /* ports: master, replica, sentinel, nothing */
    pid_t pid[3];
    struct tconf conf;
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof a) == -1 ||
        getsockname(fd, (struct sockaddr *)&a, &l) == -1)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t spawn(const char *dir, char *const argv[])
{
    pid_t p = fork();
    if (p == 0) {
        if (chdir(dir) == -1)
            _exit(126);
        execv("/usr/bin/redis-server", argv);
        _exit(127);
    }
    return p;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static redisContext *direct(int port)
{
    struct timeval tv = {1, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (rc && rc->err) {
        redisFree(rc);
        return NULL;
    }
    return rc;
}

/* The port a context is connected to, asked of the server itself. */
static int server_port(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "CONFIG GET port");
    int p = (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) ? atoi(r->element[1]->str) : -1;
    if (r)
        freeReplyObject(r);
    return p;
}

static bool replica_synced(int port)
{
    redisContext *rc = direct(port);
    if (!rc)
        return false;
    redisReply *r = redisCommand(rc, "INFO replication");
    bool ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up") != NULL;
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return ok;
}

/* The master lists the replica online and acknowledging: a replica whose
 * own link is up can still be syncing in the master's eyes for a moment,
 * and the WAIT tests count what the master says. */
static bool master_sees_replica(int port)
{
    redisContext *rc = direct(port);
    if (!rc)
        return false;
    redisReply *r = redisCommand(rc, "INFO replication");
    bool ok = r && r->type == REDIS_REPLY_STRING && rds_replicas_acking_in(r->str, 2) >= 1;
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return ok;
}

static int ha_up(void **state)
{
    static struct ha h;
    memset(&h, 0, sizeof h);
    *state = &h;
    if (access("/usr/bin/redis-server", X_OK) != 0) {
        fprintf(stderr, "redis-server is not installed (appliance/deps installs it)\n");
        return -1; /* a missing component fails the test, never skips it */
    }
    snprintf(h.dir, sizeof h.dir, "/tmp/tandem-sentinel-XXXXXX");
    if (!mkdtemp(h.dir))
        return -1;
    h.pm = free_port();
    h.pr = free_port();
    h.ps = free_port();
    h.dead = free_port();
    char pm[8], pr[8], ps[8], conf[128];
    snprintf(pm, sizeof pm, "%d", h.pm);
    snprintf(pr, sizeof pr, "%d", h.pr);
    snprintf(ps, sizeof ps, "%d", h.ps);
    char *am[] = {"redis-server", "--port", pm,          "--bind", "127.0.0.1", "--save", "",
                  "--dbfilename", "m.rdb",  "--logfile", "m.log",  NULL};
    char *ar[] = {"redis-server", "--port",    pr,      "--bind",
                  "127.0.0.1",    "--save",    "",      "--dbfilename",
                  "r.rdb",        "--logfile", "r.log", "--replicaof",
                  "127.0.0.1",    pm,          NULL};
    h.pid[0] = spawn(h.dir, am);
    h.pid[1] = spawn(h.dir, ar);
    snprintf(conf, sizeof conf, "%s/sentinel.conf", h.dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "port %d\nbind 127.0.0.1\nlogfile s.log\n"
            "sentinel monitor tandem 127.0.0.1 %d 1\n"
            "sentinel down-after-milliseconds tandem 1000\n"
            "sentinel failover-timeout tandem 4000\n",
            h.ps, h.pm);
    fclose(f);
    char *as[] = {"redis-server", conf, "--sentinel", NULL};
    h.pid[2] = spawn(h.dir, as);
    for (int i = 0; i < 100 && !replica_synced(h.pr); i++)
        msleep(100);
    for (int i = 0; i < 100 && !master_sees_replica(h.pm); i++)
        msleep(100);
    tconf_defaults(&h.conf);
    snprintf(h.conf.redis_sentinels[0], sizeof h.conf.redis_sentinels[0], "127.0.0.1:%d", h.dead);
    snprintf(h.conf.redis_sentinels[1], sizeof h.conf.redis_sentinels[1], "127.0.0.1:%d", h.ps);
    h.conf.redis_nsentinels = 2;
    snprintf(h.conf.redis_master_name, sizeof h.conf.redis_master_name, "tandem");
    /* the Sentinel must have learnt the replica before a failover can pick it */
    for (int i = 0; i < 150; i++) {
        redisContext *s = direct(h.ps);
        redisReply *r = s ? redisCommand(s, "SENTINEL replicas tandem") : NULL;
        bool known = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
        if (r)
            freeReplyObject(r);
        if (s)
            redisFree(s);
        if (known)
            break;
        msleep(100);
    }
    return 0;
}

static int ha_down(void **state)
{
    struct ha *h = *state;
    for (int i = 0; i < 3; i++)
        if (h->pid[i] > 0) {
            kill(h->pid[i], SIGKILL);
            waitpid(h->pid[i], NULL, 0);
        }
    if (h->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", h->dir);
        if (system(cmd) != 0)
            return 0;
    }
    return 0;
}

static void test_sentinel_finds_master_past_a_dead_sentinel(void **state)
{
    struct ha *h = *state;
    char *err = NULL;
    redisContext *rc = rds_connect(&h->conf, 2000, &err);
    assert_non_null(rc);
    assert_null(err);
    assert_int_equal(server_port(rc), h->pm);
    redisFree(rc);
}

static void test_sentinel_unknown_master_name_is_a_clear_error(void **state)
{
    struct ha *h = *state;
    struct tconf c = h->conf;
    snprintf(c.redis_master_name, sizeof c.redis_master_name, "nosuch");
    char *err = NULL;
    assert_null(rds_connect(&c, 1000, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "does not know a master named \"nosuch\""));
    assert_non_null(strstr(err, "connect")); /* the dead sentinel is named too */
    free(err);
}

static void test_sentinel_none_answering_names_each(void **state)
{
    struct ha *h = *state;
    struct tconf c = h->conf;
    c.redis_nsentinels = 1; /* only the dead one */
    char *err = NULL;
    assert_null(rds_connect(&c, 500, &err));
    assert_non_null(strstr(err, "no master \"tandem\" found through 1 sentinel"));
    free(err);
}

static void test_readonly_reply_marks_context_broken(void **state)
{
    struct ha *h = *state;
    redisContext *rc = direct(h->pr); /* the replica */
    assert_non_null(rc);
    redisReply *r = redisCommand(rc, "SET k v");
    assert_non_null(r);
    assert_int_equal(rds_ok(rc, r, "SET"), 0);
    freeReplyObject(r);
    assert_int_not_equal(rc->err, 0);
    assert_null(redisCommand(rc, "PING")); /* later commands fail: the caller reconnects */
    redisFree(rc);
}

static int enqueue_lag(struct ha *h, int replicas, bool refuse, int max_lag, char **err)
{
    struct tconf c = h->conf;
    c.redis_wait_replicas = replicas;
    c.redis_wait_max_lag = max_lag;
    c.redis_wait_timeout_ms = 1000; /* generous: a loaded CI host delays the replica ack */
    c.redis_wait_refuse = refuse;
    redisContext *rc = rds_connect(&c, 2000, err);
    assert_non_null(rc);
    struct task t = {.origin = ORIGIN_FUNC, .timeout = 5, .enq_ms = 1};
    snprintf(t.id, sizeof t.id, "task-waittest%d%d", replicas, refuse);
    snprintf(t.func, sizeof t.func, "s__x.f");
    snprintf(t.queue, sizeof t.queue, "async");
    t.kwargs = json_object();
    int rc_ = task_enqueue(rc, &c, &t, err);
    task_free(&t);
    redisFree(rc);
    return rc_;
}

static int enqueue_with(struct ha *h, int replicas, bool refuse, char **err)
{
    return enqueue_lag(h, replicas, refuse, h->conf.redis_wait_max_lag, err);
}

static void test_enqueue_waits_for_a_replica(void **state)
{
    struct ha *h = *state;
    char *err = NULL;
    assert_int_equal(enqueue_with(h, 1, true, &err), 0); /* the one replica acknowledges */
    assert_null(err);
}

static void test_enqueue_without_enough_replicas_is_refused_or_warned(void **state)
{
    struct ha *h = *state;
    char *err = NULL;
    assert_int_equal(enqueue_with(h, 2, true, &err), -1); /* there is only one replica */
    assert_non_null(err);
    /* known before any WAIT: the one replica cannot make two */
    assert_non_null(strstr(err, "not durable: 1 of 2 Redis replica(s) online and acknowledging"));
    free(err);
    err = NULL;
    assert_int_equal(enqueue_with(h, 2, false, &err), 0); /* the operator chose to accept */
    assert_null(err);
}

static int64_t now_ms_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A hung replica (SIGSTOP: still connected, never acknowledging) made every
 * WAIT run to its timeout (bench/wait-cost). Once its last ack is older
 * than redis.wait_max_lag (2 s by default), enqueues are answered at once,
 * refused or accepted as configured; with a limit it is still within
 * (60 s), the WAIT is sent and runs to its timeout; once it acks again,
 * WAIT is used again. */
static void test_hung_replica_answers_at_once(void **state)
{
    struct ha *h = *state;
    char *err = NULL;
    assert_int_equal(kill(h->pid[1], SIGSTOP), 0);
    int64_t took = -1, t0 = now_ms_(), deadline = t0 + 15000;
    int rv = 0;
    while (now_ms_() < deadline) {
        int64_t s = now_ms_();
        rv = enqueue_with(h, 1, true, &err); /* WAIT timeout 1000 ms */
        took = now_ms_() - s;
        if (rv == -1 && took < 300)
            break;
        free(err);
        err = NULL;
    }
    /* accepted at once with a warning when the operator chose so */
    char *err2 = NULL;
    int64_t s = now_ms_();
    int rv2 = enqueue_with(h, 1, false, &err2);
    int64_t took2 = now_ms_() - s;
    /* the operator's limit decides: under 60 s the hung replica is still
     * trusted, so the WAIT is sent and times out (1000 ms) */
    char *err3 = NULL;
    int64_t s3 = now_ms_();
    int rv3 = enqueue_lag(h, 1, true, 60, &err3);
    int64_t took3 = now_ms_() - s3;
    kill(h->pid[1], SIGCONT);
    print_message("with wait_max_lag = 60: refused after %lld ms\n", (long long)took3);
    assert_int_equal(rv3, -1);
    assert_true(took3 >= 900);
    assert_non_null(strstr(err3, "0 of 1 Redis replica(s) acknowledged it within 1000 ms"));
    free(err3);
    print_message("hung replica: refused in %lld ms, %lld ms after SIGSTOP; accepted in %lld ms\n",
                  (long long)took, (long long)(s - t0), (long long)took2);
    assert_int_equal(rv, -1);
    assert_true(took < 300);
    assert_non_null(strstr(err, "0 of 1 Redis replica(s) online and acknowledging"));
    free(err);
    err = NULL;
    assert_int_equal(rv2, 0);
    assert_null(err2);
    assert_true(took2 < 300);
    /* back: acknowledged through WAIT again */
    for (int i = 0; i < 100 && enqueue_with(h, 1, true, &err) != 0; i++) {
        free(err);
        err = NULL;
        msleep(100);
    }
    assert_null(err);
}

static void test_sentinel_failover_is_followed_on_reconnect(void **state)
{
    struct ha *h = *state;
    char *err = NULL;
    redisContext *old = rds_connect(&h->conf, 2000, &err);
    assert_non_null(old);
    redisContext *s = direct(h->ps);
    /* the hung-replica test left the replica down in the Sentinel's eyes
     * for a while: until it has seen it healthy again it answers
     * NOGOODSLAVE, so ask again for a few seconds */
    redisReply *r = NULL;
    for (int i = 0; i < 50; i++) {
        if (r)
            freeReplyObject(r);
        r = redisCommand(s, "SENTINEL FAILOVER tandem");
        if (!r || r->type != REDIS_REPLY_ERROR || strncmp(r->str, "NOGOODSLAVE", 11) != 0)
            break;
        msleep(200);
    }
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("SENTINEL FAILOVER: %s", r->str);
    freeReplyObject(r);
    redisFree(s);
    int port = -1;
    for (int i = 0; i < 200 && port != h->pr; i++) {
        msleep(100);
        redisContext *rc = rds_connect(&h->conf, 1000, &err);
        free(err);
        err = NULL;
        if (rc) {
            port = server_port(rc);
            redisFree(rc);
        }
    }
    assert_int_equal(port, h->pr);
    /* the old connection is either killed by the Sentinel or refused as a
     * replica's once the Sentinel has turned the old master into a replica
     * (it waits a few publish periods, ~8 s, before it does); either way it
     * then reads as broken, so its owner reconnects */
    bool broken = false;
    for (int i = 0; i < 250 && !broken; i++) {
        r = redisCommand(old, "SET tandem:probe 1");
        if (r == NULL)
            broken = true;
        else {
            rds_ok(old, r, "SET");
            broken = old->err != 0;
            freeReplyObject(r);
        }
        if (!broken)
            msleep(100);
    }
    assert_true(broken);
    redisFree(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentinel_finds_master_past_a_dead_sentinel),
        cmocka_unit_test(test_sentinel_unknown_master_name_is_a_clear_error),
        cmocka_unit_test(test_sentinel_none_answering_names_each),
        cmocka_unit_test(test_readonly_reply_marks_context_broken),
        cmocka_unit_test(test_enqueue_waits_for_a_replica),
        cmocka_unit_test(test_enqueue_without_enough_replicas_is_refused_or_warned),
        cmocka_unit_test(test_hung_replica_answers_at_once),
        cmocka_unit_test(test_sentinel_failover_is_followed_on_reconnect),
    };
    return cmocka_run_group_tests(tests, ha_up, ha_down);
}
