/* Small pure helpers, unit-tested in tests/unit/test_worker_util.c. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sha256.h"

int64_t statm_rss_bytes(const char *text, long page_size)
{
    /* statm: size resident shared text lib data dt (pages) */
    char *end;
    long long size, rss;

    if (text == NULL || page_size <= 0)
        return -1;
    errno = 0;
    size = strtoll(text, &end, 10);
    if (errno || end == text || *end != ' ' || size < 0)
        return -1;
    text = end + 1;
    rss = strtoll(text, &end, 10);
    if (errno || end == text || rss < 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
        return -1;
    return (int64_t)rss * page_size;
}

int64_t proc_rss_bytes(int pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return statm_rss_bytes(buf, sysconf(_SC_PAGESIZE));
}

int64_t backoff_ms(int fails, int64_t base, int64_t cap)
{
    if (fails <= 0)
        return 0;
    int64_t d = base;
    for (int i = 1; i < fails && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

const char *signal_name(int sig, char *buf, size_t n)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, n, "SIG%s", abbrev);
    else
        snprintf(buf, n, "signal %d", sig);
    return buf;
}

void wait_status_text(int status, char *buf, size_t n)
{
    char sb[32];
    if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "killed by signal %s%s", signal_name(WTERMSIG(status), sb, sizeof(sb)),
                 WCOREDUMP(status) ? " (core dumped)" : "");
    else
        snprintf(buf, n, "stopped (wait status 0x%x)", status);
}

/* ---- queues and their scheduling ---------------------------------------- */

const char *const w_queues[W_NQUEUES] = {"sync", "cron", "async", "0", "1", "2", "3",
                                         "4",    "5",    "6",     "7", "8", "9"};

int w_queue_index(const char *name)
{
    for (int i = 0; i < W_NQUEUES; i++)
        if (strcmp(w_queues[i], name) == 0)
            return i;
    return -1;
}

int w_queues_served(const struct tconf *c, bool serve[W_NQUEUES], char *why, size_t n)
{
    for (int i = 0; i < W_NQUEUES; i++)
        serve[i] = c->worker_nqueues == 0;
    for (int i = 0; i < c->worker_nqueues; i++) {
        int q = w_queue_index(c->worker_queues[i]);
        if (q < 0) {
            snprintf(why, n, "worker.queues: \"%s\" is not a queue (sync, cron, async or 0..9)",
                     c->worker_queues[i]);
            return -1;
        }
        serve[q] = true;
    }
    return 0;
}

int w_queue_weight(int q)
{
    /* Sync callers wait on an open HTTP request, so sync goes first most
     * of the time, but never always: cron slots and async work still move
     * under a sync flood. */
    static const int w[3] = {4, 2, 1};
    return q >= 0 && q < 3 ? w[q] : 1;
}

void wrr_init(struct wrr *w, const bool serve[W_NQUEUES])
{
    int cur[W_NQUEUES] = {0}, total = 0;
    memset(w, 0, sizeof(*w));
    for (int i = 0; i < W_NQUEUES; i++)
        if (serve[i]) {
            w->q[w->n++] = i;
            total += w_queue_weight(i);
        }
    /* One cycle of smooth weighted round-robin with every stream busy
     * (nginx's upstream algorithm): spreads a stream's turns evenly. */
    for (int k = 0; k < total && k < W_WRR_MAX; k++) {
        int best = 0;
        for (int i = 0; i < w->n; i++) {
            cur[i] += w_queue_weight(w->q[i]);
            if (cur[i] > cur[best])
                best = i;
        }
        cur[best] -= total;
        w->seq[w->nseq++] = w->q[best];
    }
}

void wrr_order(const struct wrr *w, int order[W_NQUEUES])
{
    /* The cycle from this turn on, each stream once: an empty stream's
     * turn goes to the next in the cycle, so the busy ones share it in
     * proportion to their weights. */
    bool seen[W_NQUEUES] = {false};
    int k = 0;
    for (int i = 0; i < w->nseq && k < w->n; i++) {
        int q = w->seq[(w->pos + i) % w->nseq];
        if (!seen[q]) {
            seen[q] = true;
            order[k++] = q;
        }
    }
    for (int i = 0; i < w->n && k < w->n; i++) /* cannot happen: all are in the cycle */
        if (!seen[w->q[i]])
            order[k++] = w->q[i];
}

void wrr_took(struct wrr *w)
{
    if (w->nseq > 0)
        w->pos = (w->pos + 1) % w->nseq;
}

/* ---- a child's Pstats:worker counters --------------------------------- */

void wstats_add(struct wstats *s, const char *status, long long cost_ms)
{
    s->tasks++;
    s->cost_ms += cost_ms;
    for (int i = 0; i < s->nby; i++)
        if (strcmp(s->by[i].status, status) == 0) {
            s->by[i].n++;
            return;
        }
    if (s->nby < W_STATS_MAX) {
        snprintf(s->by[s->nby].status, sizeof(s->by[0].status), "%s", status);
        s->by[s->nby++].n = 1;
    } else {
        s->by[W_STATS_MAX - 1].n++; /* cannot happen: five statuses exist */
    }
}

int wstats_argv(struct wstats *s)
{
    int n = 0;
    if (s->tasks == 0)
        return 0;
    snprintf(s->num[0], sizeof(s->num[0]), "%lld", s->tasks);
    snprintf(s->num[1], sizeof(s->num[1]), "%lld", s->cost_ms);
    s->argv[n++] = "tasks";
    s->argv[n++] = s->num[0];
    s->argv[n++] = "cost_ms";
    s->argv[n++] = s->num[1];
    for (int i = 0; i < s->nby; i++) {
        snprintf(s->num[2 + i], sizeof(s->num[0]), "%lld", s->by[i].n);
        s->argv[n++] = s->by[i].status;
        s->argv[n++] = s->num[2 + i];
    }
    return n;
}

void wstats_clear(struct wstats *s, int64_t now_mono)
{
    s->tasks = s->cost_ms = 0;
    s->nby = 0;
    s->flushed_mono = now_mono;
}
