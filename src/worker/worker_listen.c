/* One idle child at a time waits on the queues in Redis.
 *
 * Every idle child used to block in its own XREAD on every stream, so one
 * new entry woke them all: each paid a wakeup, a fetch script that found
 * the entry already claimed and a new XREAD, and with two children the
 * loser's round trips fell in the winner's run on the same two CPUs
 * (one-connection p50 0.71-0.84 ms against 0.56-0.59 ms with one child;
 * bench/RESULTS.md). Now the idle children take turns: the one holding the
 * turn (struct wlisten, a page every child of this master maps) blocks in
 * Redis; the others wait on a futex in that page. The listener gives the
 * turn away as soon as it has claimed an entry, before it runs it, with the
 * stream ids the next listener may start from (so it does not wake again
 * for the entry just claimed).
 *
 * The ids handed over obey the rule of wchild.last_ids: every entry up to
 * each one has been delivered. Either kind of id, the listener's or a
 * waiter's own, obeys it, so the later of the two is as safe and wakes for
 * less. A listener that dies holding the turn is found by the master when
 * it reaps it (wlisten_dead), or by a waiter whose wait timed out. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

static long futex(_Atomic uint32_t *w, int op, uint32_t val, const struct timespec *ts)
{
    /* shared between processes: no FUTEX_PRIVATE_FLAG */
    return syscall(SYS_futex, (uint32_t *)w, op, val, ts, NULL, 0);
}

int stream_id_cmp(const char *a, const char *b)
{
    char *end;
    unsigned long long ams = strtoull(a, &end, 10);
    unsigned long long aseq = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;
    unsigned long long bms = strtoull(b, &end, 10);
    unsigned long long bseq = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;
    if (ams != bms)
        return ams < bms ? -1 : 1;
    if (aseq != bseq)
        return aseq < bseq ? -1 : 1;
    return 0;
}

/* "<ms>-<seq>", both decimal: anything else a corrupt page may hold is
 * ignored. */
static bool stream_id_ok(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    if (len == 0 || len == n)
        return false;
    const char *dash = memchr(s, '-', len);
    if (!dash || dash == s || dash == s + len - 1)
        return false;
    for (const char *p = s; p < s + len; p++)
        if (p != dash && (*p < '0' || *p > '9'))
            return false;
    return true;
}

bool wlisten_try(struct wlisten *l, int pid, uint32_t *turn)
{
    /* the turn word first: a release after this read makes the wait
     * below return at once instead of sleeping through it */
    *turn = atomic_load(&l->turn);
    int expect = 0;
    if (atomic_compare_exchange_strong(&l->owner, &expect, pid))
        return true;
    return expect == pid;
}

void wlisten_wait(struct wlisten *l, uint32_t turn, int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    atomic_fetch_add(&l->waiters, 1);
    long rc = futex(&l->turn, FUTEX_WAIT, turn, &ts);
    int e = errno;
    atomic_fetch_sub(&l->waiters, 1);
    if (rc == -1 && e == ETIMEDOUT) {
        /* a second without a turn: is its holder still there? */
        int owner = atomic_load(&l->owner);
        if (owner > 0 && kill(owner, 0) == -1 && errno == ESRCH)
            wlisten_dead(l, owner);
    }
}

void wlisten_take_ids(struct wlisten *l, char ids[W_NQUEUES][48], const bool serve[W_NQUEUES])
{
    if (!atomic_load(&l->valid))
        return;
    atomic_store(&l->valid, 0); /* ours now; written again at our release */
    for (int q = 0; q < W_NQUEUES; q++) {
        if (!serve[q] || !stream_id_ok(l->ids[q], sizeof(l->ids[q])))
            continue;
        if (stream_id_cmp(l->ids[q], ids[q]) > 0)
            memcpy(ids[q], l->ids[q], strnlen(l->ids[q], sizeof(l->ids[q]) - 1) + 1);
    }
}

void wlisten_release(struct wlisten *l, int pid, const char ids[W_NQUEUES][48])
{
    if (atomic_load(&l->owner) != pid)
        return;
    if (ids) {
        for (int q = 0; q < W_NQUEUES; q++) {
            size_t len = strnlen(ids[q], sizeof(l->ids[q]) - 1);
            memcpy(l->ids[q], ids[q], len);
            l->ids[q][len] = '\0';
        }
    }
    atomic_store(&l->valid, ids ? 1 : 0);
    atomic_store(&l->owner, 0);
    atomic_fetch_add(&l->turn, 1);
    if (atomic_load(&l->waiters) > 0)
        futex(&l->turn, FUTEX_WAKE, 1, NULL);
}

void wlisten_dead(struct wlisten *l, int pid)
{
    int expect = pid;
    if (!atomic_compare_exchange_strong(&l->owner, &expect, 0))
        return;
    atomic_store(&l->valid, 0); /* it may have died writing them */
    atomic_fetch_add(&l->turn, 1);
    futex(&l->turn, FUTEX_WAKE, INT_MAX, NULL);
}
