/* The master: no Python, one loop. Forks the children and the keeper,
 * learns from each child's shared slot what it runs, and covers for it: past the
 * task's timeout or over the memory limit it SIGKILLs the child; when a
 * child dies mid-task it records timeout/crashed and acks. Then respawns. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "rds.h"
#include "task.h"

#define MAX_CHILDREN 64
#define TICK_MS 20
#define RSS_BUSY_MS 100
#define RSS_IDLE_MS 1000
#define HEARTBEAT_MS 1000
#define HEARTBEAT_TTL_MS 5000

enum kill_why { KILL_NONE = 0, KILL_TIMEOUT, KILL_MEMORY, KILL_SHUTDOWN };

struct slot {
    int pid;           /* 0: empty */
    struct wslot *shm; /* its page of the shared slots */
    uint64_t seen;     /* messages of it read so far */
    bool ready, busy;
    struct wtask task; /* what it runs (busy) */
    int64_t deadline;  /* mono ms */
    enum kill_why kill_why;
    char kill_task[ID_MAX]; /* the task the kill was aimed at */
    int64_t kill_rss;
    int fails;          /* consecutive deaths outside a task */
    int64_t respawn_at; /* mono ms; 0 = now */
    int64_t next_rss;
};

struct pool {
    const struct tconf *c;
    int64_t epoch;
    int master_pid;
    int n;
    struct slot s[MAX_CHILDREN];
    /* One page per child (struct wslot), MAP_SHARED, mapped before any
     * fork; a memfd so that /proc/<pid>/maps names it. */
    char *shm;
    size_t page;
    struct wlisten *listen; /* the idle children's turn (worker_listen.c) */
    int keeper_pid;
    int keeper_fails;
    int64_t keeper_respawn_at;
    int64_t keeper_started;
    int sfd;
    redisContext *rc;
    bool redis_down;
    int redis_fails;
    int64_t redis_retry;
    bool stopping;
    int64_t stop_deadline;
    int64_t next_hb;
    bool serve[W_NQUEUES]; /* worker.queues, for the heartbeat */
};

/* ---- redis (heartbeat and the records of dead children) ------------------ */

static redisContext *p_redis(struct pool *p)
{
    if (p->rc || mono_ms() < p->redis_retry)
        return p->rc;
    char *err = NULL;
    /* Short timeouts: this loop also enforces the hard timeouts. */
    p->rc = rds_connect(p->c, 1000, &err);
    if (p->rc == NULL) {
        if (!p->redis_down)
            log_warnx("master: %s; retrying", err ? err : "redis unavailable");
        p->redis_down = true;
        p->redis_retry = mono_ms() + backoff_ms(++p->redis_fails, 200, 5000);
    } else {
        if (p->redis_down)
            log_info("master: redis is back");
        p->redis_down = false;
        p->redis_fails = 0;
    }
    free(err);
    return p->rc;
}

static void p_redis_broken(struct pool *p)
{
    if (p->rc)
        redisFree(p->rc);
    p->rc = NULL;
}

static void heartbeat(struct pool *p)
{
    int busy = 0, ready = 0;
    json_t *pids = json_array();
    for (int i = 0; i < p->n; i++) {
        if (p->s[i].pid) {
            json_array_append_new(pids, json_integer(p->s[i].pid));
            busy += p->s[i].busy;
            ready += p->s[i].ready;
        }
    }
    if (p->keeper_pid)
        json_array_append_new(pids, json_integer(p->keeper_pid));
    json_t *queues = json_array();
    for (int i = 0; i < W_NQUEUES; i++)
        if (p->serve[i])
            json_array_append_new(queues, json_string(w_queues[i]));
    /* children: those alive and past their start (Python up, reading the
     * queues); a crash-looping pool reports 0, which /health shows. */
    json_t *hb = json_pack("{s:s, s:s, s:i, s:I, s:I, s:i, s:i, s:o, s:o}", "kind", "worker",
                           "node", p->c->node_name, "pid", p->master_pid, "epoch",
                           (json_int_t)p->epoch, "ts", (json_int_t)now_ms(), "busy", busy,
                           "children", ready, "pids", pids, "queues", queues);
    char *s = hb ? json_dumps(hb, JSON_COMPACT) : NULL;
    json_decref(hb);
    redisContext *rc = p_redis(p);
    if (s && rc) {
        if (rds_hb_set(rc, p->c, "worker", p->c->node_name, p->master_pid, s, HEARTBEAT_TTL_MS) ==
            -1)
            p_redis_broken(p);
    }
    free(s);
}

/* ---- children ------------------------------------------------------------ */

/* In the new child: of the shared slots only its own stays mapped, and not
 * in any fork of it (user code's os.fork(), multiprocessing): they cannot
 * write into what the master reads. */
static void child_shm(struct pool *p, struct slot *s)
{
    char *own = (char *)s->shm;
    size_t all = p->page * (size_t)p->n;
    if (own > p->shm)
        munmap(p->shm, (size_t)(own - p->shm));
    if (own + p->page < p->shm + all)
        munmap(own + p->page, (size_t)(p->shm + all - (own + p->page)));
    if (madvise(own, p->page, MADV_DONTFORK) == -1)
        log_warn("child %d: madvise(MADV_DONTFORK) of its slot", (int)getpid());
}

static void spawn_child(struct pool *p, struct slot *s)
{
    /* a fresh slot: nothing published, nothing seen */
    memset(s->shm, 0, sizeof(*s->shm));
    pid_t pid = fork();
    if (pid == -1) {
        log_warn("master: fork");
        s->respawn_at = mono_ms() + 1000;
        return;
    }
    if (pid == 0) {
        /* A child must never outlive the master: nobody would cover its
         * crashes or timeouts. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != p->master_pid)
            _exit(0);
        /* Its own process group: a timeout or memory kill takes whatever
         * the task started along with it. */
        setpgid(0, 0);
        close_range(3, ~0U, 0);
        child_shm(p, s);
        if (madvise(p->listen, p->page, MADV_DONTFORK) == -1)
            log_warn("child %d: madvise(MADV_DONTFORK) of the turn page", (int)getpid());
        _exit(child_main(p->c, p->epoch, s->shm, p->listen));
    }
    setpgid(pid, pid); /* also here: no window where a kill of the group misses */
    int fails = s->fails;
    struct wslot *shm = s->shm;
    memset(s, 0, sizeof(*s));
    s->fails = fails;
    s->shm = shm;
    s->pid = pid;
    s->next_rss = mono_ms() + RSS_IDLE_MS;
    log_debug("master: child %d started", (int)pid);
    /* The consumer name appears in the heartbeat before it can claim
     * anything, so no keeper mistakes it for a dead one. */
    heartbeat(p);
}

static void spawn_keeper(struct pool *p)
{
    pid_t pid = fork();
    if (pid == -1) {
        log_warn("master: fork keeper");
        p->keeper_respawn_at = mono_ms() + 1000;
        return;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != p->master_pid)
            _exit(0);
        close_range(3, ~0U, 0);
        munmap(p->shm, p->page * (size_t)p->n); /* the children's, not its own */
        _exit(keeper_main(p->c, p->epoch));
    }
    p->keeper_pid = pid;
    p->keeper_started = mono_ms();
    /* Its pid in the heartbeat before it takes a batch: no other keeper
     * mistakes its processing list for a dead keeper's. */
    heartbeat(p);
}

/* The child's latest message. Messages between two ticks are not seen,
 * only the last: a task that began and ended meanwhile needed no policing,
 * and any message at all means the child got past its start. */
static void on_message(struct pool *p, struct slot *s, const struct wmsg *m)
{
    char why[128];
    if (wmsg_check(m, why, sizeof(why)) == -1) {
        log_warnx("master: child %d published a bad message (%s); ignored", s->pid, why);
        return;
    }
    if (!s->ready) {
        s->ready = true;
        p->next_hb = 0; /* the child count in the heartbeat now, not in a second */
    }
    s->fails = 0;
    switch (m->type) {
    case WMSG_READY:
        break;
    case WMSG_START:
        s->busy = true;
        s->task = m->t;
        {
            /* from when the child started it: the monotonic clock is the
             * host's, shared by both processes and blind to wall steps */
            int64_t now = mono_ms(), start = m->t.start_mono;
            if (start <= 0 || start > now || now - start > 60000)
                start = now; /* not a time of this boot: count from now */
            s->deadline = start + (int64_t)m->t.timeout * 1000;
        }
        s->next_rss = mono_ms() + RSS_BUSY_MS;
        break;
    case WMSG_DONE:
        s->busy = false;
        break;
    }
}

/* Reads what the child published since the last look (no syscall). */
static void read_slot(struct pool *p, struct slot *s)
{
    struct wmsg m;
    if (s->shm && wslot_read(s->shm, &s->seen, &m) == 1)
        on_message(p, s, &m);
}

/* What the record of a task whose child died should still say, read
 * again from Redis (the master's message carries only the task's fixed
 * fields): the kwargs from its stream entry, and for a DFF.FUNC subtask
 * its root task and call chain (<prefix>fchain:<id>). Best effort: a
 * field that cannot be read stays out of the record. */
static void death_context(redisContext *rc, const struct tconf *c, const struct wtask *t,
                          struct woutcome *o, json_t **chain_doc)
{
    char k[256];
    rds_key(k, sizeof(k), c, "q:%s", t->queue);
    redisReply *r = redisCommand(rc, "XRANGE %s %s %s", k, t->entry, t->entry);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        redisReply *f = r->element[0]->element[1];
        for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
            if (f->element[i]->type != REDIS_REPLY_STRING || strcmp(f->element[i]->str, "t"))
                continue;
            struct task tk;
            char *err = NULL;
            if (task_decode(&tk, f->element[i + 1]->str, &err) == 0) {
                o->kwargs = json_incref(tk.kwargs);
                task_free(&tk);
            }
            free(err);
        }
    }
    if (r)
        freeReplyObject(r);
    rds_key(k, sizeof(k), c, "fchain:%s", t->id);
    r = redisCommand(rc, "GET %s", k);
    if (r && r->type == REDIS_REPLY_STRING) {
        json_t *d = json_loads(r->str, 0, NULL);
        const char *root = json_string_value(json_object_get(d, "root"));
        if (root && *root)
            o->root_task = root;
        if (json_is_array(json_object_get(d, "chain")))
            o->chain = json_object_get(d, "chain");
        *chain_doc = d; /* owns root and chain */
    }
    if (r)
        freeReplyObject(r);
}

/* The record for the task a dead child was running. */
static void record_death(struct pool *p, struct slot *s, int status)
{
    char msg[512], ws[128];
    struct woutcome o;
    struct wtask *t = &s->task;
    bool aimed = s->kill_why != KILL_NONE && strcmp(s->kill_task, t->id) == 0;

    memset(&o, 0, sizeof(o));
    o.start_ms = t->start_ms;
    o.end_ms = now_ms();
    o.start_mono = t->start_mono;
    o.end_mono = mono_ms();
    wait_status_text(status, ws, sizeof(ws));
    if (aimed && s->kill_why == KILL_TIMEOUT) {
        o.status = "timeout";
        o.reason = "EFuncTimeout";
        snprintf(msg, sizeof(msg), "func %s did not finish within its timeout of %d s; killed",
                 t->func, t->timeout);
    } else if (aimed && s->kill_why == KILL_MEMORY) {
        o.status = "crashed";
        o.reason = "EWorkerCrashed";
        snprintf(msg, sizeof(msg), "memory limit %d MiB exceeded (resident %lld MiB); killed",
                 p->c->child_memory_mb, (long long)(s->kill_rss >> 20));
    } else {
        o.status = "crashed";
        o.reason = "EWorkerCrashed";
        snprintf(msg, sizeof(msg), "worker child running func %s %s", t->func, ws);
    }
    o.message = msg;
    log_warnx("master: task %s (%s): %s: %s", t->id, t->func, o.status, msg);

    char *err = NULL;
    json_t *chain_doc = NULL;
    redisContext *rc = p_redis(p);
    if (rc)
        death_context(rc, p->c, t, &o, &chain_doc);
    if (rc == NULL ||
        wrec_commit(rc, p->c, t, &o, p->c->node_name, p->epoch, NULL, NULL, &err) == -1) {
        log_warnx("master: cannot record task %s (%s); its queue entry stays pending and will be "
                  "re-queued",
                  t->id, err ? err : "redis unavailable");
        if (rc && rc->err)
            p_redis_broken(p);
    }
    free(err);
    json_decref(o.kwargs);
    json_decref(chain_doc);
}

/* Processes a dead child left behind: its process group, and orphans that
 * left the group (setsid) and were re-parented to us (we are a subreaper). */
static void kill_leftovers(struct pool *p, int child_pid)
{
    if (kill(-child_pid, SIGKILL) == 0)
        log_warnx("master: killed processes left in the group of child %d", child_pid);
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", p->master_pid, p->master_pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
        int pid = atoi(tok);
        bool ours = pid <= 0 || pid == p->keeper_pid;
        for (int i = 0; i < p->n && !ours; i++)
            ours = p->s[i].pid == pid;
        if (!ours) {
            log_warnx("master: killing orphan %d a task left behind", pid);
            kill(pid, SIGKILL);
        }
    }
}

static void child_died(struct pool *p, struct slot *s, int status)
{
    char ws[128];
    /* Its last word is still in its slot. */
    read_slot(p, s);
    wait_status_text(status, ws, sizeof(ws));

    bool task_death = s->busy;
    if (s->busy && s->kill_why != KILL_SHUTDOWN)
        record_death(p, s, status);
    else if (s->busy)
        log_warnx("master: child %d killed at shutdown while running %s; it will be re-queued",
                  s->pid, s->task.id);
    else if (!p->stopping && s->kill_why == KILL_MEMORY)
        log_warnx("master: idle child %d over the memory limit (%lld MiB) was replaced", s->pid,
                  (long long)(s->kill_rss >> 20));
    else if (!p->stopping)
        log_warnx("master: child %d %s%s", s->pid, ws, s->ready ? "" : " before it was ready");

    int dead_pid = s->pid;
    s->pid = 0;
    s->busy = s->ready = false;
    kill_leftovers(p, dead_pid);
    if (!p->stopping)
        p->next_hb = 0; /* tell the others the child count now */
    if (task_death || s->kill_why == KILL_MEMORY) {
        s->fails = 0; /* the task's fault, not the pool's: replace at once */
        s->respawn_at = 0;
    } else {
        s->fails++;
        s->respawn_at = mono_ms() + backoff_ms(s->fails, 200, 30000);
        if (!p->stopping && s->fails > 1)
            log_warnx("master: respawning in %lld ms", (long long)backoff_ms(s->fails, 200, 30000));
    }
    s->kill_why = KILL_NONE;
}

static void reap(struct pool *p)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == p->keeper_pid) {
            p->keeper_pid = 0;
            if (!p->stopping) {
                char ws[128];
                wait_status_text(status, ws, sizeof(ws));
                log_warnx("master: keeper %d %s; restarting", (int)pid, ws);
                p->keeper_fails = mono_ms() - p->keeper_started < 5000 ? p->keeper_fails + 1 : 0;
                p->keeper_respawn_at = mono_ms() + backoff_ms(p->keeper_fails, 500, 30000);
            }
            continue;
        }
        wlisten_dead(p->listen, (int)pid); /* nothing if the turn was not its */
        for (int i = 0; i < p->n; i++)
            if (p->s[i].pid == pid) {
                child_died(p, &p->s[i], status);
                break;
            }
    }
}

static void kill_slot(struct slot *s, enum kill_why why, int64_t rss)
{
    if (s->kill_why != KILL_NONE)
        return;
    s->kill_why = why;
    s->kill_rss = rss;
    snprintf(s->kill_task, sizeof(s->kill_task), "%s", s->busy ? s->task.id : "");
    kill(-s->pid, SIGKILL); /* the child and everything in its process group */
    kill(s->pid, SIGKILL);  /* in case it left its group */
}

/* Hard timeouts and memory limits. */
static void police(struct pool *p)
{
    int64_t now = mono_ms();
    int64_t limit = (int64_t)p->c->child_memory_mb << 20;
    for (int i = 0; i < p->n; i++) {
        struct slot *s = &p->s[i];
        if (!s->pid || s->kill_why != KILL_NONE)
            continue;
        if (s->busy && now >= s->deadline) {
            /* It may have just finished: read before deciding. */
            read_slot(p, s);
            if (s->busy && now >= s->deadline) {
                kill_slot(s, KILL_TIMEOUT, 0);
                continue;
            }
        }
        if (now >= s->next_rss) {
            int64_t rss = proc_rss_bytes(s->pid);
            if (rss > limit) {
                read_slot(p, s);
                kill_slot(s, KILL_MEMORY, rss);
                continue;
            }
            s->next_rss = now + (s->busy ? RSS_BUSY_MS : RSS_IDLE_MS);
        }
    }
}

static int64_t next_wake(struct pool *p)
{
    int64_t now = mono_ms(), wake = now + TICK_MS;
    for (int i = 0; i < p->n; i++) {
        struct slot *s = &p->s[i];
        if (s->pid && s->busy && s->deadline < wake)
            wake = s->deadline;
        if (s->pid && s->next_rss < wake)
            wake = s->next_rss;
    }
    if (p->next_hb < wake)
        wake = p->next_hb;
    return wake < now ? 0 : wake - now;
}

static void begin_stop(struct pool *p, const char *why)
{
    if (p->stopping) {
        log_info("master: %s again; killing the children now", why);
        p->stop_deadline = 0;
        return;
    }
    /* A second less than the supervisor gives us, so our own SIGKILLs and
     * the heartbeat cleanup happen before it SIGKILLs the master. */
    int grace = p->c->fo_drain_grace > 1 ? p->c->fo_drain_grace - 1 : 1;
    log_info("master: %s; stopping (running tasks get %d s to finish)", why, grace);
    p->stopping = true;
    p->stop_deadline = mono_ms() + (int64_t)grace * 1000;
    for (int i = 0; i < p->n; i++)
        if (p->s[i].pid)
            kill(p->s[i].pid, SIGTERM);
    if (p->keeper_pid)
        kill(p->keeper_pid, SIGTERM);
}

static bool all_gone(struct pool *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->s[i].pid)
            return false;
    return p->keeper_pid == 0;
}

static void read_signals(struct pool *p)
{
    struct signalfd_siginfo si;
    while (read(p->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGTERM:
            begin_stop(p, "SIGTERM");
            break;
        case SIGINT:
            begin_stop(p, "SIGINT");
            break;
        case SIGCHLD:
            break; /* reaped below */
        default:
            break;
        }
    }
    reap(p);
}

static void read_epoch(struct pool *p)
{
    redisContext *rc = p_redis(p);
    char k[128];
    p->epoch = 0;
    if (rc == NULL) {
        log_warnx("master: epoch unknown (redis unavailable); records carry epoch 0");
        return;
    }
    rds_key(k, sizeof(k), p->c, "epoch");
    redisReply *r = redisCommand(rc, "GET %s", k);
    if (r && r->type == REDIS_REPLY_STRING)
        p->epoch = strtoll(r->str, NULL, 10);
    if (r == NULL)
        p_redis_broken(p);
    else
        freeReplyObject(r);
}

int pool_run(const struct wopts *o)
{
    struct pool *p = calloc(1, sizeof(*p));
    sigset_t mask;
    if (p == NULL)
        fatal("master: calloc");
    p->c = o->conf;
    p->master_pid = (int)getpid();
    p->n = o->conf->worker_children;
    if (p->n > MAX_CHILDREN)
        p->n = MAX_CHILDREN;
    p->page = (size_t)sysconf(_SC_PAGESIZE);
    if (p->page < sizeof(struct wslot))
        fatalx("master: a page (%zu bytes) is smaller than a child's slot", p->page);
    if (p->n > 0) {
        int mfd = memfd_create("tandem-worker-slots", MFD_CLOEXEC);
        if (mfd == -1 || ftruncate(mfd, (off_t)(p->page * (size_t)p->n)) == -1)
            fatal("master: memfd for the children's slots");
        p->shm = mmap(NULL, p->page * (size_t)p->n, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        if (p->shm == MAP_FAILED)
            fatal("master: mmap of the children's slots");
        close(mfd);
        for (int i = 0; i < p->n; i++)
            p->s[i].shm = (struct wslot *)(p->shm + p->page * (size_t)i);
    }
    _Static_assert(sizeof(struct wlisten) <= 4096, "the turn must fit in one page");
    p->listen = mmap(NULL, p->page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p->listen == MAP_FAILED)
        fatal("master: mmap of the children's turn page");

    char why[256];
    if (w_queues_served(o->conf, p->serve, why, sizeof(why)) == -1)
        fatalx("master: %s", why);
    if (o->supervised)
        prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* Orphans of tasks whose child died come to us, not to init: they are
     * killed (kill_leftovers) instead of running on unsupervised. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
        log_warn("master: PR_SET_CHILD_SUBREAPER");
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1)
        fatal("master: sigprocmask");
    p->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (p->sfd == -1)
        fatal("master: signalfd");

    if (o->epoch >= 0)
        p->epoch = o->epoch;
    else
        read_epoch(p);
    char qs[128] = "";
    for (int i = 0; i < W_NQUEUES; i++)
        if (p->serve[i])
            snprintf(qs + strlen(qs), sizeof(qs) - strlen(qs), "%s%s", qs[0] ? "," : "",
                     w_queues[i]);
    log_info("master %d: node %s, epoch %lld, %d children, memory limit %d MiB, queues %s",
             p->master_pid, p->c->node_name, (long long)p->epoch, p->n, p->c->child_memory_mb, qs);

    spawn_keeper(p);
    for (int i = 0; i < p->n; i++)
        spawn_child(p, &p->s[i]);

    for (;;) {
        /* The slots are read on a short tick: a child tells nobody, it
         * only writes its slot. Deadlines come from the child's own start
         * time, so reading late does not lengthen a timeout. */
        struct pollfd pfd = {.fd = p->sfd, .events = POLLIN};
        if (poll(&pfd, 1, (int)next_wake(p)) == -1 && errno != EINTR)
            fatal("master: poll");
        for (int i = 0; i < p->n; i++)
            if (p->s[i].pid)
                read_slot(p, &p->s[i]);
        /* Signals last: a child's final messages are read before its death. */
        read_signals(p);
        police(p);

        int64_t now = mono_ms();
        if (!p->stopping) {
            for (int i = 0; i < p->n; i++)
                if (!p->s[i].pid && now >= p->s[i].respawn_at)
                    spawn_child(p, &p->s[i]);
            if (!p->keeper_pid && now >= p->keeper_respawn_at)
                spawn_keeper(p);
        }
        if (now >= p->next_hb) {
            heartbeat(p);
            p->next_hb = now + HEARTBEAT_MS;
        }
        if (p->stopping) {
            if (all_gone(p))
                break;
            if (now >= p->stop_deadline) {
                for (int i = 0; i < p->n; i++)
                    if (p->s[i].pid)
                        kill_slot(&p->s[i], KILL_SHUTDOWN, 0);
                if (p->keeper_pid)
                    kill(p->keeper_pid, SIGKILL);
                p->stop_deadline = now + 1000000;
            }
        }
    }
    if (p_redis(p))
        rds_hb_del(p->rc, p->c, "worker", p->c->node_name, p->master_pid);
    log_info("master %d: stopped", p->master_pid);
    if (p->rc)
        redisFree(p->rc);
    close(p->sfd);
    if (p->shm)
        munmap(p->shm, p->page * (size_t)p->n);
    free(p);
    return 0;
}
