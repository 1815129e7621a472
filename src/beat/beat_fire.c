/* Firing: due slots go to Redis in batches, each batch ONE Lua script that
 * checks the lease and the epoch before doing anything, then per slot sets
 * the fired key NX and only then enqueues. Batches are pipelined so 10,000
 * jobs due in the same second cost a handful of round trips. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beat.h"
#include "clock.h"
#include "log.h"
#include "rds.h"
#include "task.h"

#define ITEM_ARGS 12

/* KEYS: lease, epoch, q:cron, taskrec. ARGV: lease value, epoch, prefix,
 * count, fired ttl s, task ttl s, then ITEM_ARGS per slot: cron id, slot,
 * kind (fire|rec), overlap (skip|allow), task id, task JSON, status JSON,
 * record JSON (skipped record for "fire", the record itself for "rec"),
 * running ttl s, next slot, outcome (for "rec": missed|failure), fire ms.
 * Returns -1 (not the lease holder), -2 (stale epoch) or one code per slot:
 * 1 fired, 2 skipped (overlap), 3 recorded, 0 already handled. */
static const char FIRE_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end\n"
    "local ep = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "if tonumber(ARGV[2]) < ep then return -2 end\n"
    "local P, n, fttl, tttl = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]\n"
    "if redis.call('EXISTS', KEYS[3]) == 0 then\n"
    "  redis.pcall('XGROUP', 'CREATE', KEYS[3], 'workers', '0', 'MKSTREAM')\n"
    "end\n"
    "local out = {}\n"
    "local i = 7\n"
    "for j = 1, n do\n"
    "  local id, slot, kind, overlap, tid, task, status, rec, rttl, nxt, outcome, at =\n"
    "    ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5], ARGV[i+6], ARGV[i+7],\n"
    "    ARGV[i+8], ARGV[i+9], ARGV[i+10], ARGV[i+11]\n"
    "  i = i + 12\n"
    "  local fk = P .. 'fired:' .. id .. ':' .. slot\n"
    "  local sk = P .. 'cron:state:' .. id\n"
    "  local res = 0\n"
    "  if kind == 'rec' then\n"
    "    if redis.call('SET', fk, outcome, 'NX', 'EX', fttl) then\n"
    "      redis.call('LPUSH', KEYS[4], rec)\n"
    "      res = 3\n"
    "    end\n"
    "  else\n"
    "    local rk = P .. 'cron:running:' .. id\n"
    "    local running = false\n"
    "    if overlap == 'skip' then running = redis.call('GET', rk) end\n"
    "    if running then\n"
    "      if redis.call('SET', fk, 'skipped', 'NX', 'EX', fttl) then\n"
    "        redis.call('LPUSH', KEYS[4], rec)\n"
    "        res = 2\n"
    "        outcome = 'skipped'\n"
    "      end\n"
    "    elseif redis.call('SET', fk, tid, 'NX', 'EX', fttl) then\n"
    "      if overlap == 'skip' then redis.call('SET', rk, tid, 'EX', rttl) end\n"
    "      redis.call('XADD', KEYS[3], '*', 't', task)\n"
    "      redis.call('SET', P .. 'task:' .. tid, status, 'EX', tttl)\n"
    "      res = 1\n"
    "      outcome = 'fired'\n"
    "    end\n"
    "  end\n"
    "  if res > 0 then\n"
    "    redis.call('HSET', sk, 'last_slot', slot, 'last_outcome', outcome, 'last_task', tid,\n"
    "               'last_fire_ms', at)\n"
    "  end\n"
    "  local cur = tonumber(redis.call('HGET', sk, 'next') or '0') or 0\n"
    "  if tonumber(nxt) > cur then redis.call('HSET', sk, 'next', nxt) end\n"
    "  out[j] = res\n"
    "end\n"
    "return out\n";

/* KEYS: lease, epoch, delayed. ARGV: lease value, epoch, now ms, limit, prefix. */
static const char DELAYED_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end\n"
    "local ep = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "if tonumber(ARGV[2]) < ep then return -2 end\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))\n"
    "local made = {}\n"
    "for _, m in ipairs(due) do\n"
    "  local q = 'async'\n"
    "  local ok, t = pcall(cjson.decode, m)\n"
    "  if ok and type(t) == 'table' and (t.queue == 'sync' or t.queue == 'async' or t.queue == 'cron') then\n"
    "    q = t.queue\n"
    "  end\n"
    "  local sk = ARGV[5] .. 'q:' .. q\n"
    "  if not made[sk] then\n"
    "    if redis.call('EXISTS', sk) == 0 then\n"
    "      redis.pcall('XGROUP', 'CREATE', sk, 'workers', '0', 'MKSTREAM')\n"
    "    end\n"
    "    made[sk] = true\n"
    "  end\n"
    "  redis.call('XADD', sk, '*', 't', m)\n"
    "  redis.call('ZREM', KEYS[3], m)\n"
    "end\n"
    "return #due\n";

struct item {
    int job;
    int64_t slot, next;
    const char *kind, *outcome;
    char tid[ID_MAX];
    char slot_s[24], next_s[24], rttl_s[16], at_s[24];
    char *task, *status, *rec;
};

static void item_free(struct item *it)
{
    free(it->task);
    free(it->status);
    free(it->rec);
}

static char *record_json(struct beat *b, const struct beat_job *j, const char *tid, int64_t slot,
                         const char *status, const char *reason, const char *message, int64_t at)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:n, s:s, s:I, s:I, "
                          "s:n, s:n, s:I, s:i}",
                          "id", tid, "func_id", j->func, "origin", "cron", "origin_id", j->id,
                          "queue", "cron", "status", status, "reason", reason, "message", message,
                          "traceback", "output", "node", b->node, "epoch", (json_int_t)b->epoch,
                          "nominal_at", (json_int_t)(slot * 1000), "enqueued_at", "started_at",
                          "ended_at", (json_int_t)at, "cost_ms", 0);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int item_build(struct beat *b, struct item *it, const struct beat_job *j, int64_t at_ms)
{
    char msg[512], when[64];
    id_new(it->tid, sizeof it->tid, "task-");
    snprintf(it->slot_s, sizeof it->slot_s, "%lld", (long long)it->slot);
    snprintf(it->next_s, sizeof it->next_s, "%lld", (long long)it->next);
    snprintf(it->rttl_s, sizeof it->rttl_s, "%d", j->timeout + b->conf.reclaim_margin + 60);
    snprintf(it->at_s, sizeof it->at_s, "%lld", (long long)at_ms);
    cron_format(it->slot, j->tz, when, sizeof when);
    if (strcmp(it->kind, "rec") == 0) {
        if (strcmp(it->outcome, "missed") == 0)
            snprintf(msg, sizeof msg,
                     "slot %s was not fired: no beat held the lease until %llds after it, past "
                     "the misfire grace of %ds",
                     when, (long long)(at_ms / 1000 - it->slot), j->grace);
        else
            snprintf(msg, sizeof msg, "slot %s: %s", when, j->bad);
        it->rec = record_json(b, j, it->tid, it->slot, it->outcome,
                              strcmp(it->outcome, "missed") == 0 ? "ECronMissed" : "EFuncNotFound",
                              msg, at_ms);
        it->task = strdup("");
        it->status = strdup("");
    } else {
        struct task t;
        memset(&t, 0, sizeof t);
        snprintf(t.id, sizeof t.id, "%s", it->tid);
        snprintf(t.func, sizeof t.func, "%s", j->func);
        json_error_t je;
        t.kwargs = json_loads(j->kwargs ? j->kwargs : "{}", 0, &je);
        t.origin = ORIGIN_CRON;
        snprintf(t.origin_id, sizeof t.origin_id, "%s", j->id);
        t.timeout = j->timeout;
        snprintf(t.queue, sizeof t.queue, "cron");
        t.enq_ms = at_ms;
        t.epoch = b->epoch;
        t.ver = j->ver;
        t.nominal = it->slot;
        it->task = task_encode(&t);
        task_free(&t);
        json_t *st = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", it->tid, "func",
                               j->func, "status", "queued", "origin", "cron", "origin_id", j->id,
                               "enq", (json_int_t)at_ms, "nominal", (json_int_t)it->slot);
        it->status = st ? json_dumps(st, JSON_COMPACT) : NULL;
        json_decref(st);
        snprintf(msg, sizeof msg,
                 "slot %s skipped: the previous run of this job is still running (overlap=skip)",
                 when);
        it->rec = record_json(b, j, it->tid, it->slot, "skipped", "ECronOverlap", msg, at_ms);
    }
    return it->task && it->status && it->rec ? 0 : -1;
}

static void lat_observe(struct beat_stats *st, int64_t ms)
{
    static const int64_t bounds[] = BEAT_LAT_BOUNDS;
    if (ms < 0)
        ms = 0;
    st->lat_sum += ms;
    st->lat_count++;
    for (int i = 0; i < BEAT_LAT_N; i++)
        if (i == BEAT_LAT_N - 1 || ms <= bounds[i])
            st->lat_le[i]++;
}

static void append_batch(struct beat *b, redisContext *rc, struct item *items, int n,
                         const char **keys, char *fttl, char *tttl, char *cnt)
{
    int argc = 3 + 4 + 6 + n * ITEM_ARGS;
    const char **av = malloc(sizeof *av * (size_t)argc);
    char nk[4] = "4";
    if (!av)
        return; /* the reply count check below turns this into a failure */
    int a = 0;
    av[a++] = "EVALSHA";
    av[a++] = b->sha_fire;
    av[a++] = nk;
    for (int k = 0; k < 4; k++)
        av[a++] = keys[k];
    snprintf(cnt, 16, "%d", n);
    av[a++] = b->lease_val;
    av[a++] = keys[4]; /* epoch string */
    av[a++] = b->conf.redis_prefix;
    av[a++] = cnt;
    av[a++] = fttl;
    av[a++] = tttl;
    for (int i = 0; i < n; i++) {
        struct item *it = &items[i];
        const struct beat_job *j = &b->jobs[it->job];
        av[a++] = j->id;
        av[a++] = it->slot_s;
        av[a++] = it->kind;
        av[a++] = j->skip_overlap ? "skip" : "allow";
        av[a++] = it->tid;
        av[a++] = it->task;
        av[a++] = it->status;
        av[a++] = it->rec;
        av[a++] = it->rttl_s;
        av[a++] = it->next_s;
        av[a++] = it->outcome;
        av[a++] = it->at_s;
    }
    if (!b->sha_fire[0])
        av[0] = "EVAL", av[1] = FIRE_LUA;
    redisAppendCommandArgv(rc, argc, av, NULL);
    free(av);
}

int beat_fire_due(struct beat *b, int64_t now)
{
    if (b->paused || !b->conf.cron_enabled || b->njobs == 0)
        return 0;
    int64_t now_s = now / 1000;
    int cap = 64, n = 0;
    struct item *items = calloc((size_t)cap, sizeof *items);
    if (!items)
        return -1;
    for (int ji = 0; ji < b->njobs; ji++) {
        struct beat_job *j = &b->jobs[ji];
        if (!j->enabled || j->bad_config || j->next < 0 || j->next > now_s)
            continue;
        int64_t slot = j->next;
        for (int k = 0; k < BEAT_CATCHUP_CAP && slot >= 0 && slot <= now_s; k++) {
            if (n == cap) {
                struct item *ni = realloc(items, sizeof *items * (size_t)cap * 2);
                if (!ni)
                    break;
                memset(ni + cap, 0, sizeof *items * (size_t)cap);
                items = ni;
                cap *= 2;
            }
            struct item *it = &items[n];
            it->job = ji;
            it->slot = slot;
            it->next = cron_next(&j->expr, j->tz, slot);
            if (it->next >= 0 && j->expires && it->next > j->expires)
                it->next = -1;
            if (j->bad[0]) {
                it->kind = "rec";
                it->outcome = "failure";
            } else if (now_s - slot > j->grace) {
                it->kind = "rec";
                it->outcome = "missed";
            } else {
                it->kind = "fire";
                it->outcome = "";
            }
            n++;
            slot = it->next;
        }
    }
    if (n == 0) {
        free(items);
        return 0;
    }
    redisContext *rc = beat_redis(b);
    if (!rc) {
        free(items);
        return -1;
    }
    int64_t at = now_ms();
    for (int i = 0; i < n; i++)
        if (item_build(b, &items[i], &b->jobs[items[i].job], at)) {
            log_warnx("beat: cron job %s: cannot encode its task (bad UTF-8 in kwargs?)",
                      b->jobs[items[i].job].id);
            items[i].kind = "rec";
            items[i].outcome = "failure";
        }

    char klease[128], kepoch[128], kq[128], krec[128], ep[32], fttl[24], tttl[24];
    rds_key(klease, sizeof klease, &b->conf, "beat:lease");
    rds_key(kepoch, sizeof kepoch, &b->conf, "epoch");
    rds_key(kq, sizeof kq, &b->conf, "q:cron");
    rds_key(krec, sizeof krec, &b->conf, "taskrec");
    snprintf(ep, sizeof ep, "%lld", (long long)b->epoch);
    int maxgrace = b->conf.misfire_grace;
    for (int i = 0; i < b->njobs; i++)
        if (b->jobs[i].grace > maxgrace)
            maxgrace = b->jobs[i].grace;
    /* The fired key must outlive every window in which some holder could
     * still try the slot: the grace, plus room for clocks and stalls. */
    snprintf(fttl, sizeof fttl, "%d", maxgrace + 600);
    snprintf(tttl, sizeof tttl, "%d", b->conf.task_ttl);
    const char *keys[5] = {klease, kepoch, kq, krec, ep};

    if (!b->sha_fire[0] && rds_script_load(rc, FIRE_LUA, b->sha_fire) == -1)
        b->sha_fire[0] = '\0';
    int nb = (n + BEAT_BATCH - 1) / BEAT_BATCH;
    char(*cnts)[16] = calloc((size_t)nb, sizeof *cnts);
    for (int bi = 0; bi < nb; bi++) {
        int off = bi * BEAT_BATCH, cnt = n - off < BEAT_BATCH ? n - off : BEAT_BATCH;
        append_batch(b, rc, items + off, cnt, keys, fttl, tttl, cnts[bi]);
    }
    int rv = 0;
    bool fenced = false;
    for (int bi = 0; bi < nb; bi++) {
        int off = bi * BEAT_BATCH, cnt = n - off < BEAT_BATCH ? n - off : BEAT_BATCH;
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            beat_redis_broken(b, "fire script");
            rv = -1;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            /* Redis restarted under us: run this batch again with EVAL
             * (which also re-caches it). The fired keys make a rerun safe. */
            freeReplyObject(r);
            r = NULL;
            char shasave[41];
            memcpy(shasave, b->sha_fire, sizeof shasave);
            b->sha_fire[0] = '\0';
            append_batch(b, rc, items + off, cnt, keys, fttl, tttl, cnts[bi]);
            memcpy(b->sha_fire, shasave, sizeof shasave);
            /* Replies are in order: drain the later batches first. */
            int later = nb - bi - 1;
            for (int k = 0; k < later; k++) {
                redisReply *x = NULL;
                if (redisGetReply(rc, (void **)&x) != REDIS_OK)
                    break;
                freeReplyObject(x);
            }
            if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
                beat_redis_broken(b, "fire script");
                rv = -1;
                break;
            }
            nb = bi + 1; /* the later batches go next tick, their cursors unmoved */
        }
        int64_t t_reply = now_ms();
        if (r->type == REDIS_REPLY_INTEGER) {
            /* Fenced: nothing in this batch happened. Keep reading, the
             * later replies of the pipeline are still on the wire. */
            if (!fenced)
                beat_lease_lost(b, r->integer == -2 ? "the fire script found a newer epoch"
                                                    : "the fire script found another lease holder");
            fenced = true;
            b->st.fenced++;
            freeReplyObject(r);
            continue;
        }
        if (r->type != REDIS_REPLY_ARRAY || (int)r->elements != cnt) {
            log_warnx("beat: fire script: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            freeReplyObject(r);
            rv = -1;
            continue;
        }
        for (int i = 0; i < cnt; i++) {
            struct item *it = &items[off + i];
            struct beat_job *j = &b->jobs[it->job];
            long long code = r->element[i]->integer;
            j->next = it->next;
            j->handled = it->next;
            switch (code) {
            case 1:
                b->st.fired++;
                lat_observe(&b->st, t_reply - it->slot * 1000);
                break;
            case 2: b->st.skipped++; break;
            case 3:
                if (strcmp(it->outcome, "missed") == 0)
                    b->st.missed++;
                else
                    b->st.failed++;
                break;
            default: b->st.dup++; break;
            }
        }
        freeReplyObject(r);
    }
    free(cnts);
    for (int i = 0; i < n; i++)
        item_free(&items[i]);
    free(items);
    beat_stats_flush(b);
    return fenced ? -2 : rv;
}

int beat_move_delayed(struct beat *b, int64_t now)
{
    redisContext *rc = beat_redis(b);
    if (!rc)
        return -1;
    char klease[128], kepoch[128], kz[128], ep[32], nows[32];
    rds_key(klease, sizeof klease, &b->conf, "beat:lease");
    rds_key(kepoch, sizeof kepoch, &b->conf, "epoch");
    rds_key(kz, sizeof kz, &b->conf, "delayed");
    snprintf(ep, sizeof ep, "%lld", (long long)b->epoch);
    snprintf(nows, sizeof nows, "%lld", (long long)now);
    const char *argv[] = {klease, kepoch, kz, b->lease_val, ep, nows, "500", b->conf.redis_prefix};
    for (int round = 0; round < 20; round++) {
        redisReply *r = rds_eval(rc, DELAYED_LUA, b->sha_delayed, 3, argv, 8);
        if (!r) {
            beat_redis_broken(b, "delayed script");
            return -1;
        }
        if (r->type != REDIS_REPLY_INTEGER) {
            log_warnx("beat: delayed script: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
            freeReplyObject(r);
            return -1;
        }
        long long v = r->integer;
        freeReplyObject(r);
        if (v < 0) {
            b->st.fenced++;
            beat_lease_lost(b, "the delayed-task script found another lease holder or epoch");
            return -2;
        }
        b->st.delayed += v;
        if (v < 500)
            break;
    }
    return 0;
}

void beat_stats_flush(struct beat *b)
{
    struct beat_stats *s = &b->st;
    redisContext *rc = b->rc;
    if (!rc)
        return;
    static const int64_t bounds[] = BEAT_LAT_BOUNDS;
    char k[128];
    rds_key(k, sizeof k, &b->conf, "stats:beat");
    struct {
        const char *f;
        int64_t *v;
    } fields[] = {{"fired_total", &s->fired},       {"skipped_total", &s->skipped},
                  {"missed_total", &s->missed},     {"failed_total", &s->failed},
                  {"duplicate_total", &s->dup},     {"fenced_total", &s->fenced},
                  {"delayed_moved_total", &s->delayed}, {"lease_takeovers_total", &s->takeovers},
                  {"latency_ms_sum", &s->lat_sum},  {"latency_ms_count", &s->lat_count}};
    int n = 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (*fields[i].v) {
            redisAppendCommand(rc, "HINCRBY %s %s %lld", k, fields[i].f, (long long)*fields[i].v);
            n++;
        }
    for (int i = 0; i < BEAT_LAT_N; i++)
        if (s->lat_le[i]) {
            char f[48];
            if (i == BEAT_LAT_N - 1)
                snprintf(f, sizeof f, "latency_ms_le_inf");
            else
                snprintf(f, sizeof f, "latency_ms_le_%lld", (long long)bounds[i]);
            redisAppendCommand(rc, "HINCRBY %s %s %lld", k, f, (long long)s->lat_le[i]);
            n++;
        }
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            beat_redis_broken(b, "HINCRBY stats:beat");
            return; /* counts stay pending for the next flush */
        }
        freeReplyObject(r);
    }
    memset(s, 0, sizeof *s);
}

void beat_ensure_groups(struct beat *b)
{
    redisContext *rc = b->rc;
    if (!rc)
        return;
    static const char *qs[] = {"sync", "async", "cron"};
    for (int i = 0; i < 3; i++) {
        char k[128];
        rds_key(k, sizeof k, &b->conf, "q:%s", qs[i]);
        redisReply *r = redisCommand(rc, "XGROUP CREATE %s workers 0 MKSTREAM", k);
        if (!r) {
            beat_redis_broken(b, "XGROUP CREATE");
            return;
        }
        freeReplyObject(r);
    }
}
