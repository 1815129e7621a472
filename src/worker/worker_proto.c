/* Child -> master messages, published in the child's shared slot. */
#include "worker.h"

#include <stdio.h>
#include <string.h>

/* One page per child: the master maps the slots page by page, so a child
 * can unmap every slot but its own. */
_Static_assert(sizeof(struct wslot) <= 4096, "a child's slot must fit in one page");

/* snprintf(dst, n, "%s", src) without the format machinery: seven of
 * them a task showed in the child's profile */
static void copy_str(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}
#define COPY(dst, src) copy_str((dst), sizeof(dst), (src))

void wmsg_init(struct wmsg *m, enum wmsg_type type, const struct wtask *t)
{
    memset(m, 0, sizeof(*m));
    m->magic = WMSG_MAGIC;
    m->type = (uint32_t)type;
    if (t)
        m->t = *t;
}

static bool terminated(const char *s, size_t n)
{
    return memchr(s, '\0', n) != NULL;
}

int wmsg_check(const struct wmsg *m, char *why, size_t n)
{
    const struct wtask *t = &m->t;
    if (m->magic != WMSG_MAGIC) {
        snprintf(why, n, "bad magic 0x%08x", m->magic);
        return -1;
    }
    if (m->type < WMSG_READY || m->type > WMSG_DONE) {
        snprintf(why, n, "unknown message type %u", m->type);
        return -1;
    }
    if (!terminated(t->id, sizeof(t->id)) || !terminated(t->func, sizeof(t->func)) ||
        !terminated(t->origin_id, sizeof(t->origin_id)) ||
        !terminated(t->queue, sizeof(t->queue)) || !terminated(t->reply, sizeof(t->reply)) ||
        !terminated(t->entry, sizeof(t->entry)) ||
        !terminated(t->cron_expr, sizeof(t->cron_expr))) {
        snprintf(why, n, "unterminated string field");
        return -1;
    }
    if (m->type == WMSG_START) {
        if (t->id[0] == '\0' || t->entry[0] == '\0') {
            snprintf(why, n, "START without task id or entry id");
            return -1;
        }
        if (t->timeout < 1 || t->timeout > 3600) {
            snprintf(why, n, "START of %s with timeout %d outside 1..3600", t->id, t->timeout);
            return -1;
        }
    }
    return 0;
}

void wtask_from_task(struct wtask *w, const struct task *t, const char *queue, const char *entry)
{
    memset(w, 0, sizeof(*w));
    COPY(w->id, t->id);
    COPY(w->func, t->func);
    w->origin = (int32_t)t->origin;
    w->timeout = t->timeout;
    COPY(w->origin_id, t->origin_id);
    COPY(w->queue, queue);
    COPY(w->reply, t->reply);
    COPY(w->entry, entry);
    w->enq_ms = t->enq_ms;
    w->epoch = t->epoch;
    w->nominal = t->nominal;
    w->ver = t->ver;
    w->expires_ms = t->expires_ms;
    w->delay = t->delay;
    COPY(w->cron_expr, t->cron_expr);
}

void wslot_publish(struct wslot *s, enum wmsg_type type, const struct wtask *t)
{
    /* the only writer: its own last store is what it reads */
    uint64_t n = atomic_load_explicit(&s->pub, memory_order_relaxed) + 1;
    wmsg_init(&s->m[n & 1], type, t);
    /* release: the message is whole before the master can see n */
    atomic_store_explicit(&s->pub, n, memory_order_release);
}

int wslot_read(struct wslot *s, uint64_t *seen, struct wmsg *out)
{
    /* A seqlock read: the buffer of message n is written again only for
     * message n + 2, after n + 1 is published; so an unchanged pub after
     * the copy means nobody wrote into it meanwhile. A few tries: the
     * child publishes at most twice per task. */
    for (int tries = 0; tries < 8; tries++) {
        uint64_t n = atomic_load_explicit(&s->pub, memory_order_acquire);
        if (n == *seen)
            return 0;
        memcpy(out, &s->m[n & 1], sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->pub, memory_order_relaxed) == n) {
            *seen = n;
            return 1;
        }
    }
    return -1;
}
