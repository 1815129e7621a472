/* bench/floor.c: what the shape of a sync call costs on this machine with
 * nothing of Tandem in it.
 *
 * A caller process keeps C calls in flight (one thread and one Redis
 * connection each, as an HTTP server thread would); W worker processes take
 * them from a stream and answer on a list, as tandem-worker's children do.
 * No HTTP, no JSON, no Python, no MariaDB: only the hops between processes
 * and Redis's commands. Two shapes:
 *
 *   min     XADD, XREADGROUP, then LPUSH reply + XACK in one write, BLPOP:
 *           5 commands a call, the least any Redis-queued design can do
 *           with an acknowledged queue.
 *   tandem  Tandem's commands a sync call (its hot path, bench/RESULTS.md):
 *           XADD; XREADGROUP; MULTI, SET status, LPUSH reply, LPUSH record,
 *           XACK, XDEL, EXEC; BLPOP (Tandem: one BLMPOP for many replies).
 *   drain   no caller: SECONDS × 20,000 entries are XADDed first, then the
 *           workers run them as in "min" (XREADGROUP, LPUSH, XACK) and the
 *           clock runs until the last outcome is pushed: the tasks run/s an
 *           async backlog could get, and what running one costs.
 *
 * Usage: floor SOCKET REDIS_PID SHAPE CALLERS WORKERS SECONDS
 * Prints one line: calls, calls/s, p50/p99 µs, and CPU µs a call of the
 * caller, the workers and Redis (from /proc, children and threads included),
 * and their voluntary context switches a call. bench/floor drives it. */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 400000

static const char *sock;
static bool tandem_shape, drain_shape;
static atomic_bool stop;
static uint32_t *lat_us;
static atomic_long nlat;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static redisContext *conn(void)
{
    redisContext *rc = redisConnectUnix(sock);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "floor: redis %s: %s\n", sock, rc ? rc->errstr : "out of memory");
        exit(1);
    }
    return rc;
}

static redisReply *cmd(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "floor: %s: %s\n", fmt, r ? r->str : rc->errstr);
        exit(1);
    }
    return r;
}

/* cpu ticks (utime + stime) and voluntary switches of a process, all threads */
static void proc_cost(pid_t pid, long long *ticks, long long *vcsw)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    *ticks = 0;
    *vcsw = 0;
    if (f) {
        char buf[1024];
        if (fgets(buf, sizeof buf, f)) {
            char *s = strrchr(buf, ')');
            unsigned long ut = 0, st = 0;
            /* fields after ")": state(3) ... utime(14) stime(15) */
            if (s &&
                sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
                *ticks = (long long)(ut + st);
        }
        fclose(f);
    }
    /* voluntary switches of every thread */
    char cmdl[128];
    snprintf(cmdl, sizeof cmdl, "cat /proc/%d/task/*/status 2>/dev/null", (int)pid);
    FILE *q = popen(cmdl, "r");
    if (q) {
        while (fgets(line, sizeof line, q)) {
            long long v;
            if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1)
                *vcsw += v;
        }
        pclose(q);
    }
}

/* The next entry is asked for in the same write as the commit, as
 * tandem-worker does under load; only when that finds nothing does the
 * worker block in an XREADGROUP of its own. */
static void worker(int n)
{
    redisContext *rc = conn();
    char consumer[32];
    snprintf(consumer, sizeof consumer, "w%d", n);
    redisReply *r = NULL;
    for (;;) { /* until the parent's SIGTERM */
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            if (r)
                freeReplyObject(r);
            r = cmd(rc, "XREADGROUP GROUP g %s COUNT 1 BLOCK 500 STREAMS fq >", consumer);
            continue;
        }
        /* [[stream, [[id, [field, value]]]]] */
        redisReply *e = r->element[0]->element[1]->element[0];
        const char *id = e->element[0]->str, *reply = e->element[1]->element[1]->str;
        int k = 0;
        if (tandem_shape) {
            redisAppendCommand(rc, "MULTI");
            redisAppendCommand(rc, "SET fs:%s {\"status\":\"success\"} EX 10", id);
            redisAppendCommand(rc, "LPUSH %s {\"status\":\"success\",\"result\":1}", reply);
            redisAppendCommand(rc, "LPUSH frec {\"id\":\"%s\"}", id);
            redisAppendCommand(rc, "XACK fq g %s", id);
            redisAppendCommand(rc, "XDEL fq %s", id);
            redisAppendCommand(rc, "EXEC");
            k = 7;
        } else {
            redisAppendCommand(rc, "LPUSH %s {\"status\":\"success\",\"result\":1}", reply);
            redisAppendCommand(rc, "XACK fq g %s", id);
            k = 2;
        }
        redisAppendCommand(rc, "XREADGROUP GROUP g %s COUNT 1 STREAMS fq >", consumer);
        freeReplyObject(r);
        r = NULL;
        for (int i = 0; i <= k; i++) {
            void *a;
            if (redisGetReply(rc, &a) != REDIS_OK) {
                fprintf(stderr, "floor: worker: %s\n", rc->errstr);
                exit(1);
            }
            if (i < k)
                freeReplyObject(a);
            else
                r = a; /* the next entry, or nil */
        }
    }
}

static void *caller(void *arg)
{
    long n = (long)arg;
    redisContext *rc = conn();
    char key[32];
    snprintf(key, sizeof key, "freply:%ld", n);
    while (!atomic_load(&stop)) {
        int64_t t0 = now_us();
        freeReplyObject(cmd(rc, "XADD fq * r %s t {\"func\":\"ping\",\"kwargs\":{\"x\":1}}", key));
        redisReply *r = cmd(rc, "BLPOP %s 2", key);
        bool got = r->type == REDIS_REPLY_ARRAY;
        freeReplyObject(r);
        if (!got)
            continue; /* at the end: the workers stopped */
        long i = atomic_fetch_add(&nlat, 1);
        if (i < MAX_SAMPLES)
            lat_us[i] = (uint32_t)(now_us() - t0);
    }
    redisFree(rc);
    return NULL;
}

/* cost so far of the caller (this process), the workers together and Redis */
static void snap(pid_t me, const pid_t *wp, int nwork, pid_t rpid, long long c[3], long long v[3])
{
    long long t, w;
    proc_cost(me, &c[0], &v[0]);
    c[1] = v[1] = 0;
    for (int i = 0; i < nwork; i++) {
        proc_cost(wp[i], &t, &w);
        c[1] += t;
        v[1] += w;
    }
    proc_cost(rpid, &c[2], &v[2]);
}

/* the backlog: XADD n entries, then time the workers until all n are run */
static int drain(redisContext *rc, pid_t rpid, int nwork, long n)
{
    for (long i = 0; i < n; i += 1000) {
        long k = n - i < 1000 ? n - i : 1000;
        for (long j = 0; j < k; j++)
            redisAppendCommand(rc, "XADD fq * r fdrain t {\"func\":\"ping\",\"kwargs\":{\"x\":1}}");
        for (long j = 0; j < k; j++) {
            void *a;
            if (redisGetReply(rc, &a) != REDIS_OK) {
                fprintf(stderr, "floor: XADD: %s\n", rc->errstr);
                return 1;
            }
            freeReplyObject(a);
        }
    }
    long long c0[2] = {0, 0}, v0[2] = {0, 0}, c1[2] = {0, 0}, v1[2] = {0, 0}, t, v;
    proc_cost(rpid, &c0[1], &v0[1]);
    pid_t wp[16];
    int64_t w0 = now_us();
    for (int i = 0; i < nwork; i++) {
        wp[i] = fork();
        if (wp[i] == 0) {
            worker(i);
            _exit(0);
        }
    }
    long done = 0;
    while (done < n) {
        usleep(2000);
        redisReply *r = cmd(rc, "LLEN fdrain");
        done = (long)r->integer;
        freeReplyObject(r);
        if (now_us() - w0 > 300 * 1000000LL) {
            fprintf(stderr, "floor: drain: %ld of %ld run after 300 s\n", done, n);
            break;
        }
    }
    int64_t w1 = now_us();
    for (int i = 0; i < nwork; i++) {
        proc_cost(wp[i], &t, &v);
        c1[0] += t;
        v1[0] += v;
    }
    proc_cost(rpid, &c1[1], &v1[1]);
    for (int i = 0; i < nwork; i++) {
        kill(wp[i], SIGTERM);
        waitpid(wp[i], NULL, 0);
    }
    double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
    double wus = (double)(c1[0] - c0[0]) * tick_us / (double)done,
           rus = (double)(c1[1] - c0[1]) * tick_us / (double)done;
    printf(
        "FLOOR shape=drain callers=0 workers=%d calls=%ld rps=%.0f p50_us=0 p99_us=0 caller_us=0 "
        "caller_csw=0 workers_us=%.0f workers_csw=%.2f redis_us=%.0f redis_csw=%.2f "
        "total_us=%.0f\n",
        nwork, done, done * 1e6 / (double)(w1 - w0), wus, (double)(v1[0] - v0[0]) / (double)done,
        rus, (double)(v1[1] - v0[1]) / (double)done, wus + rus);
    freeReplyObject(redisCommand(rc, "DEL fq frec fdrain"));
    redisFree(rc);
    return done == n ? 0 : 1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 7 || (strcmp(argv[3], "min") != 0 && strcmp(argv[3], "tandem") != 0 &&
                      strcmp(argv[3], "drain") != 0)) {
        fprintf(stderr, "usage: floor SOCKET REDIS_PID min|tandem|drain CALLERS WORKERS SECONDS\n");
        return 2;
    }
    sock = argv[1];
    pid_t rpid = (pid_t)atoi(argv[2]);
    tandem_shape = strcmp(argv[3], "tandem") == 0;
    drain_shape = strcmp(argv[3], "drain") == 0;
    int ncall = atoi(argv[4]), nwork = atoi(argv[5]), secs = atoi(argv[6]);
    if (ncall < (drain_shape ? 0 : 1) || ncall > 256 || nwork < 1 || nwork > 16 || secs < 1) {
        fprintf(stderr, "floor: callers 1-256 (drain: 0), workers 1-16, seconds >= 1\n");
        return 2;
    }
    redisContext *rc = conn();
    freeReplyObject(redisCommand(rc, "DEL fq frec fdrain"));
    freeReplyObject(cmd(rc, "XGROUP CREATE fq g $ MKSTREAM"));
    if (drain_shape)
        return drain(rc, rpid, nwork, (long)secs * 20000);

    pid_t wp[16];
    for (int i = 0; i < nwork; i++) {
        wp[i] = fork();
        if (wp[i] == 0) {
            signal(SIGTERM, SIG_DFL);
            worker(i);
            _exit(0);
        }
    }
    usleep(200000);
    lat_us = calloc(MAX_SAMPLES, sizeof *lat_us);
    long long c0[3], v0[3], c1[3], v1[3];
    /* warm-up: one second of calls, then the measured window */
    pthread_t th[256];
    for (long i = 0; i < ncall; i++)
        pthread_create(&th[i], NULL, caller, (void *)i);
    sleep(1);
    atomic_store(&nlat, 0);
    pid_t me = getpid();
    snap(me, wp, nwork, rpid, c0, v0);
    int64_t w0 = now_us();
    sleep((unsigned)secs);
    long calls = atomic_load(&nlat);
    int64_t w1 = now_us();
    snap(me, wp, nwork, rpid, c1, v1);
    atomic_store(&stop, true);
    for (long i = 0; i < ncall; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < nwork; i++) { /* a fork does not see stop */
        kill(wp[i], SIGTERM);
        waitpid(wp[i], NULL, 0);
    }

    long n = calls < MAX_SAMPLES ? calls : MAX_SAMPLES;
    if (n == 0) {
        fprintf(stderr, "floor: no call completed\n");
        return 1;
    }
    qsort(lat_us, (size_t)n, sizeof *lat_us, cmp_u32);
    double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
    const char *who[3] = {"caller", "workers", "redis"};
    printf("FLOOR shape=%s callers=%d workers=%d calls=%ld rps=%.0f p50_us=%u p99_us=%u", argv[3],
           ncall, nwork, calls, calls * 1e6 / (double)(w1 - w0), lat_us[n / 2],
           lat_us[n * 99 / 100]);
    double tot = 0;
    for (int i = 0; i < 3; i++) {
        double us = (double)(c1[i] - c0[i]) * tick_us / (double)calls;
        tot += us;
        printf(" %s_us=%.0f %s_csw=%.2f", who[i], us, who[i],
               (double)(v1[i] - v0[i]) / (double)calls);
    }
    printf(" total_us=%.0f\n", tot);
    freeReplyObject(redisCommand(rc, "DEL fq frec"));
    redisFree(rc);
    return 0;
}
