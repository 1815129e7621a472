/* Firing: due slots go to Redis in batches, each batch ONE Lua script that
 * checks the lease and the epoch before doing anything, then per slot sets
 * the slot's field in the fired hash NX and only then enqueues. Batches are
 * pipelined so 10,000 jobs due in the same second cost a handful of round
 * trips. Latency of the last of 10,000 fires is Redis time: every write the
 * script does per slot is paid 10,000 times, so it does only the two that
 * exactly-once needs (HSETNX, XADD); the status SET and the state HSET go
 * after all batches (see FIRE_LUA and bench/RESULTS-beat.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beat.h"
#include "clock.h"
#include "db.h"
#include "journal.h"
#include "log.h"
#include "rds.h"
#include "task.h"

#define ITEM_ARGS 11 /* at most; plain fires send 6 */

/* KEYS: lease, epoch, q:cron, taskrec. ARGV: lease value, epoch, prefix,
 * count, fired ttl s, node, legacy_upto, then per slot: cron id, slot, kind
 * (fire|delay|missed|failure), overlap (skip|allow), task id, task JSON, and
 * only when kind is not fire or overlap is skip (a record or the running key
 * may be written): func id, slot as local ISO time, message (failure),
 * running ttl s, fire ms; kind delay (a fire with DFF's delayed runs) adds
 * the delayed runs, one "<due ms> <task JSON>" line each (task JSON is
 * compact: no raw newline), ZADDed to <prefix>delayed. Its task JSON is ""
 * when no run is at the slot itself (no delay 0); the task id is then the
 * first delayed run's. Plain fires carry 6 arguments, not 11: Lua copies
 * every argument into a string, and 10,000 plain fires are the hot case.
 * Returns -1 (not the lease holder), -2 (stale epoch) or one code per slot:
 * 1 fired, 2 skipped (overlap), 3 recorded (missed/failure), 0 already
 * handled, 4 already fired as this very task (a journaled fire done again:
 * by the reconciler, whose mark is "<task id>+r", or at a takeover); 2 and 3 come back as the
 * string "2<record JSON>" / "3<record JSON>", so the beat can journal the record: until the keeper
 * flushes Ptaskrec it exists only in Redis, and a restore would lose the slot's only trace (see
 * journal_fired).
 *
 * Fired slots: one hash per nominal second, <prefix>fired:<slot>, field =
 * cron id, value = the task id (fired) or skipped|missed|failure; HSETNX
 * decides who handles a slot, and one EXPIRE per hash and batch keeps it
 * for the largest misfire grace + 600 s after its last write. A hash field
 * costs Redis about half of a key with its own TTL (no keyspace and expires
 * entries per slot), which is most of the 10,000-jobs budget.
 * legacy_upto: slots up to this second (those due before this beat took the
 * lease) are also refused if the pre-hash key <prefix>fired:<cron_id>:<slot>
 * exists, so a takeover from an older beat version cannot fire a slot twice;
 * later slots were only ever handled by hash-writing beats.
 *
 * <prefix>task:<id> (status "queued") is not written here: the beat SETs it
 * NX right after the script answers (send_items), so the fires of a batch
 * do not wait for it, and NX never overwrites what a fast worker wrote. The
 * cron state hash that names the task id is written after it, so a reader
 * who learns the id from there finds the status. Records (task_record rows
 * for the worker's flusher) are built here, only when one is written. */
static const char FIRE_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end\n"
    "local ep = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "local epoch = tonumber(ARGV[2])\n"
    "if epoch < ep then return -2 end\n"
    "local P, n, fttl, node, legacy = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], "
    "tonumber(ARGV[7])\n"
    "if redis.call('EXISTS', KEYS[3]) == 0 then\n"
    "  redis.pcall('XGROUP', 'CREATE', KEYS[3], 'workers', '0', 'MKSTREAM')\n"
    "end\n"
    "local function record(id, func, tid, slot, status, reason, msg, at)\n"
    "  return cjson.encode({id = tid, func_id = func, origin = 'cron', origin_id = id,\n"
    "    queue = 'cron', status = status, reason = reason, message = msg, node = node,\n"
    "    epoch = epoch, nominal_at = tonumber(slot) * 1000, ended_at = tonumber(at), cost_ms = "
    "0})\n"
    "end\n"
    "local out, hashes = {}, {}\n"
    "local lastslot, fk, old\n"
    "local i = 8\n"
    "for j = 1, n do\n"
    "  local id, slot, kind, overlap, tid, task =\n"
    "    ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5]\n"
    "  local func, when, msg, rttl, at, dl\n"
    "  if kind ~= 'fire' or overlap == 'skip' then\n"
    "    func, when, msg, rttl, at = ARGV[i+6], ARGV[i+7], ARGV[i+8], ARGV[i+9], ARGV[i+10]\n"
    "    i = i + 11\n"
    "    if kind == 'delay' then dl = ARGV[i]; i = i + 1 end\n"
    "  else\n"
    "    i = i + 6\n"
    "  end\n"
    "  if slot ~= lastslot then\n"
    "    fk = P .. 'fired:' .. slot\n"
    "    lastslot = slot\n"
    "    hashes[fk] = true\n"
    "    old = legacy >= tonumber(slot)\n"
    "  end\n"
    "  local res = 0\n"
    "  if old and\n"
    "    redis.call('EXISTS', P .. 'fired:' .. id .. ':' .. slot) == 1 then\n"
    "    res = 0\n"
    "  elseif kind ~= 'fire' and kind ~= 'delay' then\n"
    "    if redis.call('HSETNX', fk, id, kind) == 1 then\n"
    "      if kind == 'missed' and msg == '' then\n"
    "        msg = 'slot ' .. when .. ' was not fired: no beat held the lease until ' ..\n"
    "          (math.floor(tonumber(at) / 1000) - tonumber(slot)) ..\n"
    "          's after it, past its misfire grace'\n"
    "      end\n"
    "      local rec = record(id, func, tid, slot, kind,\n"
    "        kind == 'missed' and 'ECronMissed' or 'EFuncNotFound', msg, at)\n"
    "      redis.call('LPUSH', KEYS[4], rec)\n"
    "      res = '3' .. rec\n"
    "    end\n"
    "  else\n"
    "    local rk, running = nil, false\n"
    "    if overlap == 'skip' then\n"
    "      rk = P .. 'cron:running:' .. id\n"
    "      running = redis.call('GET', rk)\n"
    "    end\n"
    "    if running then\n"
    "      if redis.call('HSETNX', fk, id, 'skipped') == 1 then\n"
    "        local rec = record(id, func, tid, slot, 'skipped', 'ECronOverlap',\n"
    "          'slot ' .. when .. ' skipped: the previous run (' .. running ..\n"
    "          ') is still running (overlap=skip)', at)\n"
    "        redis.call('LPUSH', KEYS[4], rec)\n"
    "        res = '2' .. rec\n"
    "      end\n"
    "    elseif redis.call('HSETNX', fk, id, tid) == 1 then\n"
    "      if task ~= '' then\n"
    "        if overlap == 'skip' then redis.call('SET', rk, tid, 'EX', rttl) end\n"
    "        redis.call('XADD', KEYS[3], '*', 't', task)\n"
    "      end\n"
    "      if dl then\n"
    "        for due, m in string.gmatch(dl, '(%d+) ([^\\n]+)') do\n"
    "          redis.call('ZADD', P .. 'delayed', due, m)\n"
    "        end\n"
    "      end\n"
    "      res = 1\n"
    "    else\n"
    "      local m = redis.call('HGET', fk, id)\n"
    "      if m == tid or m == tid .. '+r' then res = 4 end\n"
    "    end\n"
    "  end\n"
    "  out[j] = res\n"
    "end\n"
    "for k in pairs(hashes) do redis.call('EXPIRE', k, fttl) end\n"
    "return out\n";

/* The hot case on its own: a batch of plain fires (kind fire, overlap
 * allow, not refused by an older beat's per-slot key) of ONE slot, the
 * 10,000 per-minute jobs of a boundary. Same answers as FIRE_LUA (1, 0 or
 * 4 per slot), but the fired marks are read with one HMGET and written
 * with one HSET per batch instead of an HSETNX per slot (the script is
 * atomic, so read-then-write is the same check-and-set), and each slot
 * sends 3 arguments (cron id, task id, task JSON), not 6: per slot only
 * the XADD is a Redis call. bench/RESULTS-beat.md has the measurements.
 * KEYS: lease, epoch, q:cron. ARGV: lease value, epoch, prefix, count,
 * fired ttl s, slot, then per slot the three. */
static const char PLAIN_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end\n"
    "local ep = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "if tonumber(ARGV[2]) < ep then return -2 end\n"
    "local n = tonumber(ARGV[4])\n"
    "if redis.call('EXISTS', KEYS[3]) == 0 then\n"
    "  redis.pcall('XGROUP', 'CREATE', KEYS[3], 'workers', '0', 'MKSTREAM')\n"
    "end\n"
    "local fk = ARGV[3] .. 'fired:' .. ARGV[6]\n"
    "local ids = {}\n"
    "for j = 1, n do ids[j] = ARGV[4 + 3 * j] end\n"
    "local have = redis.call('HMGET', fk, unpack(ids))\n"
    "local set, out = {}, {}\n"
    "for j = 1, n do\n"
    "  local tid = ARGV[5 + 3 * j]\n"
    "  local m = have[j]\n"
    "  if not m then\n"
    "    set[#set + 1] = ids[j]\n"
    "    set[#set + 1] = tid\n"
    "    redis.call('XADD', KEYS[3], '*', 't', ARGV[6 + 3 * j])\n"
    "    out[j] = 1\n"
    "  elseif m == tid or m == tid .. '+r' then\n"
    "    out[j] = 4\n"
    "  else\n"
    "    out[j] = 0\n"
    "  end\n"
    "end\n"
    "if #set > 0 then redis.call('HSET', fk, unpack(set)) end\n"
    "redis.call('EXPIRE', fk, ARGV[5])\n"
    "return out\n";

/* KEYS: lease, epoch, delayed. ARGV: lease value, epoch, now ms, limit, prefix. */
static const char DELAYED_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end\n"
    "local ep = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "if tonumber(ARGV[2]) < ep then return -2 end\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3], 'LIMIT', 0, "
    "tonumber(ARGV[4]))\n"
    "local made = {}\n"
    "for _, m in ipairs(due) do\n"
    "  local q = 'async'\n"
    "  local ok, t = pcall(cjson.decode, m)\n"
    "  if ok and type(t) == 'table' and (t.queue == 'sync' or t.queue == 'async' or t.queue == "
    "'cron' or (type(t.queue) == 'string' and string.match(t.queue, '^%d$'))) then\n"
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
    const char *kind; /* fire | missed | failure */
    char tid[ID_MAX];
    char slot_s[24], next_s[24], rttl_s[16], at_s[24], when[40];
    char msg[256]; /* record message when not the default one */
    char *task, *status;
    char *rec;                   /* codes 2/3: the record the script wrote (for the journal) */
    size_t task_enq, status_enq; /* offsets of the 13 enq digits, patched at send time */
    int code;                    /* the script's answer, -1 = not sent */
    bool journaled;              /* its task rows are in task_accept (written ahead of the fire) */
    bool refire; /* a journaled fire done again at a takeover (beat_journal_refire): its
                    task JSON is the journal's, its slot is past and the job's cursor is
                    not its to move */
    /* kind "delay": the delayed runs ("<due ms> <task JSON>\n" each) and
     * their ids, task JSON (journaled) and statuses, SET once the script
     * fired the slot */
    char *dl;
    int ndl;
    struct delayed_run {
        char tid[ID_MAX];
        char *task, *status;
    } * runs;
};

static bool is_fire(const char *kind)
{
    return strcmp(kind, "fire") == 0 || strcmp(kind, "delay") == 0;
}

static void item_free(struct item *it)
{
    free(it->task);
    free(it->status);
    free(it->rec);
    free(it->dl);
    for (int i = 0; i < it->ndl; i++) {
        free(it->runs[i].task);
        free(it->runs[i].status);
    }
    free(it->runs);
}

/* The job's effective expression for the task JSON (DFF's _DFF_CRON_EXPR
 * and the record's cronExpr). cron_parse admits no quote, backslash or
 * control character; one that got through anyway is left out rather than
 * break the message. */
static const char *expr_json(const struct beat_job *j)
{
    for (const char *p = j->expr.text; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            return "";
    return j->expr.text;
}

/* The delayed runs of a fire (DFF's delayed_cron_job): one task per delay
 * > 0, due at slot + delay, carrying the delay for _DFF_DELAY and
 * _DFF_CRON_JOB_DELAY. Their enq is the slot (known when built ahead).
 * "due" and "fire" (the slot's task id, the value of its fired mark) are
 * for the journaled copy: the reconciler queues a lost run again into
 * Pdelayed at its due time, and only when the slot's mark is not there
 * (worker_reconcile.c). With no delay 0 the first run is the slot's task
 * (its id is the mark). */
static int item_build_delayed(struct beat *b, struct item *it, const struct beat_job *j)
{
    it->runs = calloc((size_t)j->ndelays, sizeof *it->runs);
    size_t cap = 0;
    FILE *f = open_memstream(&it->dl, &cap);
    if (!it->runs || !f) {
        if (f)
            fclose(f);
        return -1;
    }
    int rv = 0;
    for (int k = 0; k < j->ndelays; k++) {
        int d = j->delays[k];
        if (d == 0)
            continue;
        struct delayed_run *r = &it->runs[it->ndl];
        if (it->ndl++ == 0 && j->delays[0] != 0)
            memcpy(r->tid, it->tid, sizeof r->tid);
        else
            id_new(r->tid, sizeof r->tid, "task-");
        long long due = (long long)(it->slot + d) * 1000, enq = (long long)it->slot * 1000;
        if (asprintf(&r->task,
                     "{\"id\":\"%s\",\"func\":\"%s\",\"kwargs\":%s,\"origin\":\"cron\","
                     "\"origin_id\":\"%s\",\"timeout\":%d,\"reply\":\"\",\"queue\":\"cron\","
                     "\"expires\":0,\"epoch\":%lld,\"ver\":%lld,\"nominal\":%lld,\"enq\":%lld,"
                     "\"delay\":%d,\"cron_job_delay\":%d,\"cron_expr\":\"%s\",\"due\":%lld,"
                     "\"fire\":\"%s\"}",
                     r->tid, j->func, j->kwargs ? j->kwargs : "{}", j->id, j->timeout,
                     (long long)b->epoch, (long long)j->ver, (long long)it->slot, enq, d, d,
                     expr_json(j), due, it->tid) < 0) {
            r->task = NULL;
            rv = -1;
            continue;
        }
        fprintf(f, "%lld %s\n", due, r->task);
        if (asprintf(&r->status,
                     "{\"id\":\"%s\",\"func\":\"%s\",\"status\":\"queued\",\"origin\":\"cron\","
                     "\"origin_id\":\"%s\",\"queue\":\"cron\",\"nominal\":%lld,\"enq\":%lld,"
                     "\"eta\":%lld,\"delay\":%d}",
                     r->tid, j->func, j->id, (long long)it->slot, enq, due, d) < 0) {
            r->status = NULL;
            rv = -1;
        }
    }
    if (fclose(f) != 0)
        rv = -1;
    return rv;
}

/* The task JSON of docs/INTERNALS.md, written directly: ids and func ids
 * are validated identifiers and kwargs is already compact JSON, so there is
 * nothing to escape, and 10,000 of these must take milliseconds. */
static int item_build(struct beat *b, struct item *it, const struct beat_job *j)
{
    id_new(it->tid, sizeof it->tid, "task-");
    snprintf(it->slot_s, sizeof it->slot_s, "%lld", (long long)it->slot);
    snprintf(it->next_s, sizeof it->next_s, "%lld", (long long)it->next);
    snprintf(it->rttl_s, sizeof it->rttl_s, "%d", j->timeout + b->conf.reclaim_margin + 60);
    cron_format(it->slot, j->tz, it->when, sizeof it->when);
    it->code = -1;
    if (!is_fire(it->kind)) {
        it->task = strdup("");
        it->status = strdup("");
        return it->task && it->status ? 0 : -1;
    }
    if (strcmp(it->kind, "delay") == 0) {
        if (item_build_delayed(b, it, j))
            return -1;
        if (j->delays[0] != 0) {
            /* no run at the slot itself: the slot is fired as its first
             * delayed run (which took it->tid) */
            it->task = strdup("");
            it->status = strdup("");
            return it->task && it->status ? 0 : -1;
        }
    }
    /* enq is written as 13 zeros and patched just before sending, so items
     * can be built ahead of their slot. */
    if (asprintf(&it->task,
                 "{\"id\":\"%s\",\"func\":\"%s\",\"kwargs\":%s,\"origin\":\"cron\","
                 "\"origin_id\":\"%s\",\"timeout\":%d,\"reply\":\"\",\"queue\":\"cron\","
                 "\"expires\":0,\"epoch\":%lld,\"ver\":%lld,\"nominal\":%lld,\"cron_expr\":\"%s\","
                 "\"enq\":0000000000000}",
                 it->tid, j->func, j->kwargs ? j->kwargs : "{}", j->id, j->timeout,
                 (long long)b->epoch, (long long)j->ver, (long long)it->slot, expr_json(j)) < 0)
        it->task = NULL;
    if (asprintf(&it->status,
                 "{\"id\":\"%s\",\"func\":\"%s\",\"status\":\"queued\",\"origin\":\"cron\","
                 "\"origin_id\":\"%s\",\"queue\":\"cron\",\"nominal\":%lld,\"enq\":0000000000000}",
                 it->tid, j->func, j->id, (long long)it->slot) < 0)
        it->status = NULL;
    if (!it->task || !it->status)
        return -1;
    it->task_enq = strlen(it->task) - 14;
    it->status_enq = strlen(it->status) - 14;
    return 0;
}

/* at_s / d13: the send time as decimal and as the 13 enq digits, formatted
 * once per send: 10,000 snprintf pairs would cost milliseconds of latency. */
static void item_stamp(struct item *it, const char *at_s, const char *d13)
{
    memcpy(it->at_s, at_s, sizeof it->at_s);
    if (is_fire(it->kind) && !it->refire && it->task[0] && strlen(d13) == 13) {
        memcpy(it->task + it->task_enq, d13, 13);
        memcpy(it->status + it->status_enq, d13, 13);
    }
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

/* Whether items[0, n) go as one PLAIN_LUA batch: plain fires of one slot,
 * after this beat took the lease (legacy keys need FIRE_LUA). */
static bool batch_plain(const struct beat *b, const struct item *items, int n)
{
    for (int i = 0; i < n; i++) {
        const struct item *it = &items[i];
        if (strcmp(it->kind, "fire") != 0 || it->refire || !it->task[0] ||
            b->jobs[it->job].skip_overlap || it->slot != items[0].slot || it->slot <= b->takeover_s)
            return false;
    }
    return n > 0;
}

/* The arguments both fire scripts start with: the command (EVALSHA, or
 * EVAL while the script is not loaded), the nk (a numeral) first keys,
 * lease value, epoch, prefix, count, fired ttl. Returns how many. */
static int fire_head(const struct beat *b, const char **av, const char *sha, const char *script,
                     const char *nk, const char **keys, int n, char *cnt, const char *fttl)
{
    int a = 0;
    av[a++] = sha[0] ? "EVALSHA" : "EVAL";
    av[a++] = sha[0] ? sha : script;
    av[a++] = nk;
    for (int k = 0; k < atoi(nk); k++)
        av[a++] = keys[k];
    snprintf(cnt, 16, "%d", n);
    av[a++] = b->lease_val;
    av[a++] = keys[4]; /* epoch string */
    av[a++] = b->conf.redis_prefix;
    av[a++] = cnt;
    av[a++] = fttl;
    return a;
}

static void append_plain(struct beat *b, redisContext *rc, struct item *items, int n,
                         const char **keys, char *fttl, char *cnt)
{
    const char **av = malloc(sizeof *av * (size_t)(3 + 3 + 6 + 3 * n));
    if (!av)
        return; /* the reply count check turns this into a failure */
    int a = fire_head(b, av, b->sha_plain, PLAIN_LUA, "3", keys, n, cnt, fttl);
    av[a++] = items[0].slot_s;
    for (int i = 0; i < n; i++) {
        av[a++] = b->jobs[items[i].job].id;
        av[a++] = items[i].tid;
        av[a++] = items[i].task;
    }
    redisAppendCommandArgv(rc, a, av, NULL);
    free(av);
}

static void append_batch(struct beat *b, redisContext *rc, struct item *items, int n,
                         const char **keys, char *fttl, char *legacy, char *cnt)
{
    if (batch_plain(b, items, n)) {
        append_plain(b, rc, items, n, keys, fttl, cnt);
        return;
    }
    int argc = 3 + 4 + 7 + n * (ITEM_ARGS + 1);
    const char **av = malloc(sizeof *av * (size_t)argc);
    if (!av)
        return; /* the reply count check below turns this into a failure */
    int a = fire_head(b, av, b->sha_fire, FIRE_LUA, "4", keys, n, cnt, fttl);
    av[a++] = b->node;
    av[a++] = legacy;
    for (int i = 0; i < n; i++) {
        struct item *it = &items[i];
        const struct beat_job *j = &b->jobs[it->job];
        /* a journaled fire done again is not skipped for overlap: the
         * reconciler would queue it regardless */
        bool skip = j->skip_overlap && !it->refire;
        av[a++] = j->id;
        av[a++] = it->slot_s;
        av[a++] = it->kind;
        av[a++] = skip ? "skip" : "allow";
        av[a++] = it->tid;
        av[a++] = it->task;
        if (strcmp(it->kind, "fire") != 0 || skip) {
            av[a++] = j->func;
            av[a++] = it->when;
            av[a++] = it->msg[0] ? it->msg : j->bad;
            av[a++] = it->rttl_s;
            av[a++] = it->at_s;
            if (strcmp(it->kind, "delay") == 0)
                av[a++] = it->dl;
        }
    }
    redisAppendCommandArgv(rc, a, av, NULL);
    free(av);
}

/* Due slots (next <= now_s) of every runnable job, built. */
static struct item *collect(struct beat *b, int64_t now_s, int *nout)
{
    int cap = 64, n = 0;
    struct item *items = calloc((size_t)cap, sizeof *items);
    *nout = 0;
    if (!items)
        return NULL;
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
            if (j->bad[0])
                it->kind = "failure";
            else if (now_s - slot > j->grace)
                it->kind = "missed";
            else
                it->kind = j->ndelays > 0 ? "delay" : "fire";
            if (k == BEAT_MISSED_ONE_BY_ONE && strcmp(it->kind, "missed") == 0) {
                /* A long outage: past this many, one record stands for the
                 * rest of the missed slots instead of one row per slot. */
                int64_t resume = cron_next(&j->expr, j->tz, now_s - j->grace - 1);
                if (resume >= 0 && j->expires && resume > j->expires)
                    resume = -1;
                char a[40], z[40];
                cron_format(slot, j->tz, a, sizeof a);
                cron_format(resume >= 0 ? resume : now_s, j->tz, z, sizeof z);
                snprintf(it->msg, sizeof it->msg,
                         "slots from %s until before %s were not fired: no beat held the lease in "
                         "their misfire grace (recorded as this one record)",
                         a, z);
                it->next = resume;
            }
            if (item_build(b, it, j)) {
                log_warnx("beat: cron job %s: cannot encode its task", j->id);
                item_free(it);
                memset(it, 0, sizeof *it);
                break;
            }
            n++;
            slot = it->next;
        }
    }
    *nout = n;
    return items;
}

static void items_free(struct item *items, int n)
{
    for (int i = 0; i < n; i++)
        item_free(&items[i]);
    free(items);
}

void beat_fire_unprepare(struct beat *b)
{
    items_free(b->prep, b->nprep);
    b->prep = NULL;
    b->nprep = 0;
}

static void journal_intents(struct beat *b, struct item *items, int n, int64_t at);
static void journal_drop(struct beat *b, const struct item *items, int n, const bool *drop);

/* The send time `at` (ms) into every item (see item_stamp). */
static void stamp_all(struct item *items, int n, int64_t at)
{
    char at_s[sizeof items[0].at_s], d13[24];
    snprintf(at_s, sizeof at_s, "%lld", (long long)at);
    snprintf(d13, sizeof d13, "%013lld", (long long)at);
    for (int i = 0; i < n; i++)
        item_stamp(&items[i], at_s, d13);
}

/* Build the items of the next slot ahead of it, and write their journal
 * rows (enq and accepted at the slot): at the slot only the Redis work
 * remains on the latency path. */
void beat_fire_prepare(struct beat *b, int64_t slot)
{
    if (b->prep || b->paused || !b->conf.cron_enabled || !b->leader)
        return;
    b->prep = collect(b, slot, &b->nprep);
    b->prep_slot = slot;
    b->prep_gen = b->jobs_gen;
    if (b->prep && b->nprep == 0) {
        beat_fire_unprepare(b);
        return;
    }
    stamp_all(b->prep, b->nprep, slot * 1000);
    int64_t t0 = mono_ms();
    journal_intents(b, b->prep, b->nprep, slot * 1000);
    if (b->nprep >= 1000)
        log_info("beat: %d slot(s) at %lld built ahead, journaled in %lld ms", b->nprep,
                 (long long)slot, (long long)(mono_ms() - t0));
}

void beat_fire_discard(struct beat *b)
{
    bool *drop = b->nprep ? calloc((size_t)b->nprep, sizeof *drop) : NULL;
    for (int i = 0; drop && i < b->nprep; i++)
        drop[i] = b->prep[i].journaled;
    if (drop)
        journal_drop(b, b->prep, b->nprep, drop);
    free(drop);
    beat_fire_unprepare(b);
}

/* The accept journal (task_accept) and cron. A Redis restored from an older
 * snapshot must not take a slot's only trace with it, so MariaDB has:
 * - every fire, as its task rows (queue "cron": the slot's run and each of
 *   its delayed runs), written AHEAD of the fire script: the write-ahead
 *   rows of a batch are one journal_write (a handful of statements for
 *   10,000 slots), before its first script; for a slot built ahead
 *   (beat_fire_prepare) they are written then, up to a second before the
 *   slot, off the latency path. A beat dying between its fire script and
 *   any later write therefore leaves nothing unjournaled. A row is an
 *   intent until the fired mark says otherwise: the keeper's reconciler
 *   queues a row whose task Redis does not know only when the slot has no
 *   mark (or one naming this very task), and a beat taking over fires such
 *   rows again as the very tasks journaled (beat_journal_refire); the
 *   mark, HSETNX in one script with the XADD/ZADD, decides, so a slot runs
 *   once whoever gets there first.
 * - every skipped/missed/failure record (queue "record"), written after
 *   the script that decided it (only the script knows a skip): the
 *   reconciler writes it into task_record if the keeper never flushed it.
 *   A beat dying before that INSERT while Redis is also restored leaves a
 *   skipped slot's fire row: the slot then runs once instead of being
 *   recorded skipped; a missed/failure slot is recorded again by the next
 *   holder.
 * After the script, the write-ahead rows of fires that did not happen as
 * their task (the slot was another's, or skipped) are deleted, so they are
 * not taken for lost fires. These rows also tell a beat taking over which
 * slots were handled (beat_journal_handled): Redis's cursors and fired
 * marks may be older than the truth after a restore. MariaDB down: logged,
 * the fires go on unjournaled (beat_db_ensure retries every 2 s). */

/* The task rows of a fire: its run at the slot and its delayed runs. */
static size_t item_rows(const struct item *it, struct journal_row *rows, int64_t at)
{
    size_t k = 0;
    if (it->task && it->task[0])
        rows[k++] = (struct journal_row){it->tid, "cron", it->task, at};
    for (int d = 0; d < it->ndl; d++)
        if (it->runs[d].task)
            rows[k++] = (struct journal_row){it->runs[d].tid, "cron", it->runs[d].task, at};
    return k;
}

/* rows[0, k) into the journal; what for: the log's words. 0 or -1. */
static int journal_put(struct beat *b, const struct journal_row *rows, size_t k, const char *what)
{
    if (k == 0)
        return 0;
    if (beat_db_ensure(b) != 0) {
        log_warnx("beat: accept journal: MariaDB unavailable, %zu %s not recorded", k, what);
        return -1;
    }
    char *err = NULL;
    size_t done = journal_write(b->db, rows, k, &err);
    if (done == k)
        return 0;
    log_warnx("beat: accept journal: %zu %s not recorded: %s", k - done, what, err ? err : "?");
    free(err);
    mysql_close(b->db);
    b->db = NULL;
    return -1;
}

/* Write-ahead: the task rows of the fires among items not journaled yet,
 * accepted at `at` (ms). */
static void journal_intents(struct beat *b, struct item *items, int n, int64_t at)
{
    size_t cap = 0, k = 0;
    for (int i = 0; i < n; i++)
        if (is_fire(items[i].kind) && !items[i].journaled && !items[i].refire)
            cap += 1 + (size_t)items[i].ndl;
    if (cap == 0)
        return;
    struct journal_row *rows = calloc(cap, sizeof *rows);
    if (!rows)
        return;
    for (int i = 0; i < n; i++)
        if (is_fire(items[i].kind) && !items[i].journaled && !items[i].refire)
            k += item_rows(&items[i], rows + k, at);
    if (journal_put(b, rows, k, "fire(s) (they go to Redis unjournaled)") == 0)
        for (int i = 0; i < n; i++)
            if (is_fire(items[i].kind) && !items[i].refire)
                items[i].journaled = true;
    free(rows);
}

/* Deletes the write-ahead rows of items[i] with drop[i] (fires that did
 * not happen as their tasks). Only "cron" rows: a record row of the same
 * id may replace one. */
static void journal_drop(struct beat *b, const struct item *items, int n, const bool *drop)
{
    size_t nid = 0;
    for (int i = 0; i < n; i++)
        if (drop[i])
            nid += 1 + (size_t)items[i].ndl;
    if (nid == 0 || beat_db_ensure(b) != 0)
        return;
    size_t cap = 128 + nid * (2 * ID_MAX + 4), len = 0;
    char *sql = malloc(cap);
    if (!sql)
        return;
    len = (size_t)snprintf(sql, cap, "DELETE FROM task_accept WHERE queue = 'cron' AND id IN (");
    bool first = true;
    for (int i = 0; i < n; i++) {
        if (!drop[i])
            continue;
        for (int d = -1; d < items[i].ndl; d++) {
            const char *id = d < 0 ? items[i].tid : items[i].runs[d].tid;
            if (!first)
                sql[len++] = ',';
            first = false;
            sql[len++] = '\'';
            len += mysql_real_escape_string(b->db, sql + len, id, strlen(id));
            sql[len++] = '\'';
        }
    }
    sql[len++] = ')';
    if (mysql_real_query(b->db, sql, len) != 0) {
        log_warnx("beat: accept journal: dropping %zu row(s) of fires that did not happen: %s "
                  "(the reconciler drops them)",
                  nid, mysql_error(b->db));
        mysql_close(b->db);
        b->db = NULL;
    }
    free(sql);
}

/* After the script: drop the rows of fires that did not happen as their
 * tasks, then journal the records it wrote. (A fire whose write-ahead row
 * could not be written stays unjournaled: MariaDB was down a moment ago.) */
static void journal_settle(struct beat *b, const struct item *items, int n, int64_t at)
{
    size_t cnt = n > 0 ? (size_t)n : 1;
    bool *drop = calloc(cnt, sizeof *drop);
    for (int i = 0; drop && i < n; i++) {
        const struct item *it = &items[i];
        /* a refire recorded missed (3) replaces its rows by the record;
         * one refused (0) with its mark maybe its own keeps them */
        drop[i] = (it->journaled && (it->code == 0 || it->code == 2)) ||
                  (it->refire && (it->code == 3 || (it->code == 0 && is_fire(it->kind))));
    }
    size_t k = 0;
    struct journal_row *rows = drop ? calloc(cnt, sizeof *rows) : NULL;
    if (!rows) {
        free(drop);
        return;
    }
    journal_drop(b, items, n, drop);
    for (int i = 0; i < n; i++) {
        const struct item *it = &items[i];
        if ((it->code == 2 || it->code == 3) && it->rec)
            rows[k++] = (struct journal_row){it->tid, "record", it->rec, at};
    }
    journal_put(b, rows, k, "handled slot(s)");
    free(rows);
    free(drop);
}

struct job_ix {
    const char *id;
    int i;
};

static int job_ix_cmp(const void *a, const void *b)
{
    return strcmp(((const struct job_ix *)a)->id, ((const struct job_ix *)b)->id);
}

static void handled_at(const struct job_ix *ix, int n, const char *id, int64_t slot, int64_t *last)
{
    struct job_ix key = {id, 0};
    const struct job_ix *f = bsearch(&key, ix, (size_t)n, sizeof *ix, job_ix_cmp);
    if (f && slot > last[f->i])
        last[f->i] = slot;
}

/* The latest slot each journaled/recorded cron row names, from task_accept
 * rows accepted since lo_ms (cron tasks carry "nominal" in s, records
 * "nominal_at" in ms). -1 on a MariaDB error. */
static int journal_scan(struct beat *b, const struct job_ix *ix, int n, int64_t lo_ms,
                        int64_t *last)
{
    char *err = NULL;
    MYSQL_RES *res = db_query(b->db, &err,
                              "SELECT queue, task FROM task_accept WHERE accepted_ms >= %lld AND "
                              "queue IN ('cron', 'record')",
                              (long long)lo_ms);
    if (!res) {
        log_warnx("beat: reading the accept journal: %s", err ? err : "?");
        free(err);
        return -1;
    }
    MYSQL_ROW row;
    int64_t now_s = now_ms() / 1000;
    while ((row = mysql_fetch_row(res))) {
        if (!row[0] || !row[1])
            continue;
        json_t *t = json_loads(row[1], 0, NULL);
        const char *origin = json_string_value(json_object_get(t, "origin"));
        const char *oid = json_string_value(json_object_get(t, "origin_id"));
        bool rec = strcmp(row[0], "record") == 0;
        json_t *v = json_object_get(t, rec ? "nominal_at" : "nominal");
        int64_t slot = json_is_number(v) ? (int64_t)json_number_value(v) : -1;
        if (rec && slot > 0)
            slot /= 1000;
        /* a slot still ahead is a fire built ahead by a holder that is gone
         * (a write-ahead row): not handled, this beat fires it */
        if (origin && oid && strcmp(origin, "cron") == 0 && slot >= 0 && slot <= now_s)
            handled_at(ix, n, oid, slot, last);
        json_decref(t);
    }
    mysql_free_result(res);
    return 0;
}

int beat_journal_handled(struct beat *b, const bool *want, int64_t lo_s, int64_t *last)
{
    int n = b->njobs > 0 ? b->njobs : 0, nw = 0;
    for (int i = 0; i < n; i++)
        last[i] = -1;
    struct job_ix *ix = calloc((size_t)n + 1, sizeof *ix);
    if (!ix)
        return -1;
    for (int i = 0; i < n; i++)
        if (want[i])
            ix[nw++] = (struct job_ix){b->jobs[i].id, i};
    int rv = 0;
    if (nw == 0)
        goto out;
    if (beat_db_ensure(b) != 0) {
        rv = -1;
        goto out;
    }
    qsort(ix, (size_t)nw, sizeof *ix, job_ix_cmp);
    /* task_record: MAX(nominal_at) per job is one seek each on KEY
     * (origin_id, nominal_at); only cron records have a nominal_at, so no
     * origin filter is needed (it would defeat the index). */
    enum { CHUNK = 500 };
    for (int off = 0; off < nw && rv == 0; off += CHUNK) {
        int cnt = nw - off < CHUNK ? nw - off : CHUNK;
        size_t cap = 256 + (size_t)cnt * (2 * ID_MAX + 4), len;
        char *sql = malloc(cap);
        if (!sql) {
            rv = -1;
            break;
        }
        len = (size_t)snprintf(sql, cap,
                               "SELECT origin_id, FLOOR(UNIX_TIMESTAMP(MAX(nominal_at))) FROM "
                               "task_record WHERE nominal_at >= FROM_UNIXTIME(%lld) AND "
                               "origin_id IN (",
                               (long long)lo_s);
        for (int k = 0; k < cnt; k++) {
            const char *id = ix[off + k].id;
            sql[len++] = k ? ',' : ' ';
            sql[len++] = '\'';
            len += mysql_real_escape_string(b->db, sql + len, id, strlen(id));
            sql[len++] = '\'';
        }
        len += (size_t)snprintf(sql + len, cap - len, ") GROUP BY origin_id");
        MYSQL_RES *res = NULL;
        if (mysql_real_query(b->db, sql, len) != 0 || !(res = mysql_store_result(b->db))) {
            log_warnx("beat: reading task_record: %s (errno %u)", mysql_error(b->db),
                      mysql_errno(b->db));
            rv = -1;
        }
        free(sql);
        MYSQL_ROW row;
        while (res && (row = mysql_fetch_row(res)))
            if (row[0] && row[1])
                handled_at(ix, nw, row[0], strtoll(row[1], NULL, 10), last);
        if (res)
            mysql_free_result(res);
    }
    /* 60 s: a fire is journaled at its send time, which a slow or skewed
     * holder may put after the slot, never much before it */
    if (rv == 0)
        rv = journal_scan(b, ix, nw, (lo_s - 60) * 1000, last);
    if (rv != 0 && b->db) {
        mysql_close(b->db);
        b->db = NULL;
    }
out:
    free(ix);
    return rv;
}

/* Test hook (integration/test_cron_snapshot): with
 * TANDEM_TEST_BEAT_DIE_AFTER_FIRE=<cron job id> in its environment the beat
 * dies right after a fire script fired that job, before it writes anything
 * else: the window in which a beat that journaled after the fire lost the
 * slot to a Redis restore. */
static void test_die_after_fire(const struct beat *b, const struct item *items, int n)
{
    const char *job = getenv("TANDEM_TEST_BEAT_DIE_AFTER_FIRE");
    if (!job || !*job)
        return;
    for (int i = 0; i < n; i++)
        if (items[i].code == 1 && strcmp(b->jobs[items[i].job].id, job) == 0) {
            log_warnx("beat: TANDEM_TEST_BEAT_DIE_AFTER_FIRE: dying after firing %s slot %lld", job,
                      (long long)items[i].slot);
            _exit(9);
        }
}

/* Send items in pipelined batches and apply the answers. 0, -1 (Redis
 * failure), -2 (fenced). */
static int send_items(struct beat *b, struct item *items, int n)
{
    redisContext *rc = beat_redis(b);
    if (!rc)
        return -1;
    int64_t at = now_ms(), tj = mono_ms();
    stamp_all(items, n, at);
    /* before any script: the fires are in MariaDB first (those built
     * ahead already are) */
    journal_intents(b, items, n, at);
    tj = mono_ms() - tj;

    char klease[128], kepoch[128], kq[128], krec[128], ep[32], fttl[24], legacy[24];
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
    snprintf(legacy, sizeof legacy, "%lld", (long long)b->takeover_s);
    const char *keys[5] = {klease, kepoch, kq, krec, ep};

    if (!b->sha_fire[0] && rds_script_load(rc, FIRE_LUA, b->sha_fire) == -1)
        b->sha_fire[0] = '\0';
    if (!b->sha_plain[0] && rds_script_load(rc, PLAIN_LUA, b->sha_plain) == -1)
        b->sha_plain[0] = '\0';
    int64_t t0 = mono_ms();
    int nb = (n + BEAT_BATCH - 1) / BEAT_BATCH;
    char(*cnts)[16] = calloc((size_t)nb, sizeof *cnts);
    if (!cnts)
        return -1;
    /* Each batch goes on the wire as soon as it is formatted: Redis starts
     * on the first while the beat formats the rest (megabytes for 10,000
     * slots), instead of after all of them. Blocking writes only wait for
     * Redis to read; its replies (a few bytes per slot) fit in the socket
     * buffer until we read them below. */
    for (int bi = 0; bi < nb; bi++) {
        int off = bi * BEAT_BATCH, cnt = n - off < BEAT_BATCH ? n - off : BEAT_BATCH;
        append_batch(b, rc, items + off, cnt, keys, fttl, legacy, cnts[bi]);
        int done = 0;
        while (!done)
            if (redisBufferWrite(rc, &done) == REDIS_ERR)
                break; /* the first redisGetReply reports it */
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
            /* The script cache was flushed under us: run this batch again
             * with EVAL; the later ones go next tick, cursors unmoved. */
            freeReplyObject(r);
            r = NULL;
            for (int k = bi + 1; k < nb; k++) {
                redisReply *x = NULL;
                if (redisGetReply(rc, (void **)&x) != REDIS_OK)
                    break;
                freeReplyObject(x);
            }
            char shasave[41], plainsave[41];
            memcpy(shasave, b->sha_fire, sizeof shasave);
            memcpy(plainsave, b->sha_plain, sizeof plainsave);
            b->sha_fire[0] = b->sha_plain[0] = '\0';
            append_batch(b, rc, items + off, cnt, keys, fttl, legacy, cnts[bi]);
            memcpy(b->sha_fire, shasave, sizeof shasave);
            memcpy(b->sha_plain, plainsave, sizeof plainsave);
            if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
                beat_redis_broken(b, "fire script");
                rv = -1;
                break;
            }
            nb = bi + 1;
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
            log_warnx("beat: fire script: %s",
                      r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            freeReplyObject(r);
            rv = -1;
            continue;
        }
        for (int i = 0; i < cnt; i++) {
            struct item *it = &items[off + i];
            struct beat_job *j = &b->jobs[it->job];
            const redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_STRING && e->len > 1 &&
                (e->str[0] == '2' || e->str[0] == '3')) {
                it->code = e->str[0] - '0';
                free(it->rec);
                it->rec = strdup(e->str + 1);
            } else {
                it->code = e->type == REDIS_REPLY_INTEGER ? (int)e->integer : 0;
            }
            if (!it->refire) {
                j->next = it->next;
                j->handled = it->next;
            }
            switch (it->code) {
            case 1:
                b->st.fired++;
                if (!it->refire)
                    lat_observe(&b->st, t_reply - it->slot * 1000);
                break;
            case 2:
                b->st.skipped++;
                break;
            case 3:
                if (strcmp(it->kind, "missed") == 0)
                    b->st.missed++;
                else
                    b->st.failed++;
                break;
            case 4: /* the reconciler or a takeover fired it as this task */
                break;
            default:
                b->st.dup++;
                break;
            }
        }
        freeReplyObject(r);
    }
    free(cnts);
    test_die_after_fire(b, items, n);
    int64_t t1 = mono_ms();
    /* The queued status of each fired task (NX: a worker that already took
     * the task wrote a newer one), then the state hashes (observability and
     * the takeover cursor), after the fact and in this order: the state
     * names the task id, which must then resolve. */
    int ns = 0;
    if (b->rc) {
        char k[192];
        for (int i = 0; i < n; i++) {
            struct item *it = &items[i];
            if (it->code != 1)
                continue;
            if (it->task[0]) {
                rds_key(k, sizeof k, &b->conf, "task:%s", it->tid);
                redisAppendCommand(rc, "SET %s %s NX EX %d", k, it->status, b->conf.task_ttl);
                ns++;
            }
            for (int d = 0; d < it->ndl; d++) {
                if (!it->runs[d].status)
                    continue;
                rds_key(k, sizeof k, &b->conf, "task:%s", it->runs[d].tid);
                redisAppendCommand(rc, "SET %s %s NX EX %d", k, it->runs[d].status,
                                   b->conf.task_ttl);
                ns++;
            }
        }
        for (int i = 0; i < n; i++) {
            struct item *it = &items[i];
            if (it->code <= 0 || it->code == 4 || it->refire)
                continue;
            static const char *outcome[] = {"", "fired", "skipped", ""};
            rds_key(k, sizeof k, &b->conf, "cron:state:%s", b->jobs[it->job].id);
            redisAppendCommand(rc,
                               "HSET %s last_slot %s last_outcome %s last_task %s last_fire_ms %s "
                               "next %s sched %lld",
                               k, it->slot_s, it->code == 3 ? it->kind : outcome[it->code], it->tid,
                               it->at_s, it->next_s, (long long)b->jobs[it->job].changed);
            ns++;
        }
        for (int i = 0; i < ns; i++) {
            redisReply *r = NULL;
            if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
                beat_redis_broken(b, "SET task / HSET cron state");
                break;
            }
            freeReplyObject(r);
        }
    }
    int64_t t2 = mono_ms();
    journal_settle(b, items, n, at);
    /* where a big slot's time goes (bench/beat_bench reads these) */
    if (n >= 1000)
        log_info("beat: %d slot(s) at %lld: %lld ms journal before, %lld ms firing, %lld ms status "
                 "and state, %lld ms journal after",
                 n, (long long)items[0].slot, (long long)tj, (long long)(t1 - t0),
                 (long long)(t2 - t1), (long long)(mono_ms() - t2));
    return fenced ? -2 : rv;
}

int beat_fire_due(struct beat *b, int64_t now)
{
    if (b->paused || !b->conf.cron_enabled || b->njobs == 0) {
        beat_fire_discard(b);
        return 0;
    }
    int64_t now_s = now / 1000;
    int rv = 0;
    if (b->prep) {
        /* Built for exactly this second with the jobs and cursors we have
         * (a reload that changed a job or a takeover bumps jobs_gen)?
         * Otherwise rebuild (and drop their journal rows: not fired). */
        bool usable = b->prep_gen == b->jobs_gen && b->prep_slot == now_s;
        if (usable) {
            rv = send_items(b, b->prep, b->nprep);
            beat_fire_unprepare(b);
        } else if (b->prep_slot < now_s || b->prep_gen != b->jobs_gen) {
            beat_fire_discard(b);
        }
    }
    if (rv == 0) {
        int n = 0;
        struct item *items = collect(b, now_s, &n);
        if (n > 0)
            rv = send_items(b, items, n);
        items_free(items, n);
    }
    beat_stats_flush(b);
    return rv;
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
    } fields[] = {{"fired_total", &s->fired},           {"skipped_total", &s->skipped},
                  {"missed_total", &s->missed},         {"failed_total", &s->failed},
                  {"duplicate_total", &s->dup},         {"fenced_total", &s->fenced},
                  {"delayed_moved_total", &s->delayed}, {"lease_takeovers_total", &s->takeovers},
                  {"latency_ms_sum", &s->lat_sum},      {"latency_ms_count", &s->lat_count}};
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

/* A journaled fire's task row, for beat_journal_refire. */
struct refire_row {
    int job;
    int64_t slot, due; /* due: a delayed run's due ms, 0 = the run at the slot */
    bool missed;       /* past the job's misfire grace: recorded missed if not fired */
    char id[ID_MAX], fire[ID_MAX];
    char *task, *status;
};

static int refire_cmp(const void *a, const void *b)
{
    const struct refire_row *x = a, *y = b;
    int c = strcmp(x->fire, y->fire);
    return c ? c : (x->due > y->due) - (x->due < y->due);
}

/* The row's status key value, as the fire would have SET it. */
static char *refire_status(json_t *t, const char *id, int64_t slot, int64_t due)
{
    json_t *st = json_pack("{s:s, s:O?, s:s, s:s, s:O?, s:s, s:I, s:O?}", "id", id, "func",
                           json_object_get(t, "func"), "status", "queued", "origin", "cron",
                           "origin_id", json_object_get(t, "origin_id"), "queue", "cron", "nominal",
                           (json_int_t)slot, "enq", json_object_get(t, "enq"));
    if (st && due > 0)
        json_object_set_new(st, "eta", json_integer(due));
    char *s = st ? json_dumps(st, JSON_COMPACT) : NULL;
    json_decref(st);
    return s;
}

/* Rows [0, n) of one fire (same fire id, sorted by due) as one item. */
static int refire_item(struct beat *b, struct item *it, struct refire_row *rows, int n)
{
    const struct beat_job *j = &b->jobs[rows[0].job];
    it->job = rows[0].job;
    it->slot = rows[0].slot;
    it->next = -1;
    it->refire = true;
    it->code = -1;
    snprintf(it->tid, sizeof it->tid, "%s", rows[0].fire);
    snprintf(it->slot_s, sizeof it->slot_s, "%lld", (long long)it->slot);
    snprintf(it->next_s, sizeof it->next_s, "-1");
    snprintf(it->rttl_s, sizeof it->rttl_s, "%d", j->timeout + b->conf.reclaim_margin + 60);
    cron_format(it->slot, j->tz, it->when, sizeof it->when);
    if (rows[0].missed) {
        /* too late to run: the slot is recorded missed unless its mark
         * says it fired (then nothing happens); its rows go with the
         * record (runs: their ids only) */
        it->kind = "missed";
        it->task = strdup("");
        it->status = strdup("");
        if (!it->task || !it->status || !(it->runs = calloc((size_t)n, sizeof *it->runs)))
            return -1;
        for (int k = 0; k < n; k++)
            if (strcmp(rows[k].id, it->tid) != 0)
                memcpy(it->runs[it->ndl++].tid, rows[k].id, sizeof it->runs[0].tid);
        return 0;
    }
    int at_slot = rows[0].due == 0 ? 1 : 0, ndl = n - at_slot;
    it->kind = ndl > 0 ? "delay" : "fire";
    /* the strings move from the rows into the item */
    it->task = at_slot ? rows[0].task : strdup("");
    it->status = at_slot ? rows[0].status : strdup("");
    if (at_slot)
        rows[0].task = rows[0].status = NULL;
    if (!it->task || !it->status)
        return -1;
    if (ndl == 0)
        return 0;
    if (!(it->runs = calloc((size_t)ndl, sizeof *it->runs)))
        return -1;
    it->ndl = ndl;
    size_t cap = 0;
    FILE *f = open_memstream(&it->dl, &cap);
    if (!f)
        return -1;
    for (int k = at_slot; k < n; k++) {
        struct delayed_run *r = &it->runs[k - at_slot];
        memcpy(r->tid, rows[k].id, sizeof r->tid);
        r->task = rows[k].task;
        r->status = rows[k].status;
        rows[k].task = rows[k].status = NULL;
        fprintf(f, "%lld %s\n", (long long)rows[k].due, r->task);
    }
    return fclose(f) == 0 ? 0 : -1;
}

void beat_journal_refire(struct beat *b, const bool *want, const int64_t *from, int64_t lo_s,
                         int64_t now_s)
{
    int n = b->njobs > 0 ? b->njobs : 0, nw = 0, nr = 0, cap = 0, ni = 0;
    struct job_ix *ix = calloc((size_t)n + 1, sizeof *ix);
    struct refire_row *rows = NULL;
    struct item *items = NULL;
    MYSQL_RES *res = NULL;
    for (int i = 0; ix && i < n; i++)
        if (want[i])
            ix[nw++] = (struct job_ix){b->jobs[i].id, i};
    if (nw == 0 || beat_db_ensure(b) != 0)
        goto out;
    qsort(ix, (size_t)nw, sizeof *ix, job_ix_cmp);
    char *err = NULL;
    res = db_query(b->db, &err,
                   "SELECT a.id, a.task FROM task_accept a WHERE a.accepted_ms >= %lld AND "
                   "a.queue = 'cron' AND NOT EXISTS (SELECT 1 FROM task_record r WHERE r.id = "
                   "a.id)",
                   (long long)(lo_s - 60) * 1000);
    if (!res) {
        log_warnx("beat: takeover: reading the journal's fires: %s (the keeper's reconciler "
                  "queues any Redis lost)",
                  err ? err : "?");
        free(err);
        mysql_close(b->db);
        b->db = NULL;
        goto out;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        json_t *t = row[0] && row[1] ? json_loads(row[1], 0, NULL) : NULL;
        const char *origin = json_string_value(json_object_get(t, "origin"));
        const char *oid = json_string_value(json_object_get(t, "origin_id"));
        const char *fire = json_string_value(json_object_get(t, "fire"));
        json_t *nom = json_object_get(t, "nominal");
        struct job_ix key = {oid, 0}, *f = NULL;
        if (origin && strcmp(origin, "cron") == 0 && oid && json_is_integer(nom) &&
            strlen(row[0]) < ID_MAX && (!fire || strlen(fire) < ID_MAX))
            f = bsearch(&key, ix, (size_t)nw, sizeof *ix, job_ix_cmp);
        int64_t slot = f ? (int64_t)json_integer_value(nom) : -1;
        /* Within the grace: fired. Past it: recorded missed (as the
         * holder would have). Only while the fired mark surely lives
         * (grace + 600 s): older rows are the reconciler's. */
        if (!f || slot < from[f->i] || slot > now_s || slot < now_s - b->jobs[f->i].grace - 300) {
            json_decref(t);
            continue;
        }
        if (nr == cap) {
            cap = cap ? cap * 2 : 64;
            struct refire_row *nrw = realloc(rows, sizeof *rows * (size_t)cap);
            if (!nrw) {
                json_decref(t);
                break;
            }
            rows = nrw;
        }
        struct refire_row *w = &rows[nr];
        memset(w, 0, sizeof *w);
        w->job = f->i;
        w->slot = slot;
        w->missed = slot < now_s - b->jobs[f->i].grace;
        json_t *due = json_object_get(t, "due");
        w->due = json_is_integer(due) ? (int64_t)json_integer_value(due) : 0;
        snprintf(w->id, sizeof w->id, "%s", row[0]);
        snprintf(w->fire, sizeof w->fire, "%s", fire ? fire : row[0]);
        w->task = strdup(row[1]);
        w->status = refire_status(t, w->id, slot, w->due);
        json_decref(t);
        if (!w->task || !w->status) {
            free(w->task);
            free(w->status);
            break;
        }
        nr++;
    }
    if (nr == 0)
        goto out;
    qsort(rows, (size_t)nr, sizeof *rows, refire_cmp);
    items = calloc((size_t)nr, sizeof *items);
    for (int g = 0, e; items && g < nr; g = e) {
        for (e = g + 1; e < nr && strcmp(rows[e].fire, rows[g].fire) == 0;)
            e++;
        if (refire_item(b, &items[ni], rows + g, e - g) != 0) {
            item_free(&items[ni]);
            memset(&items[ni], 0, sizeof items[ni]);
            continue;
        }
        ni++;
    }
    if (ni > 0 && send_items(b, items, ni) == 0) {
        int fired = 0;
        for (int i = 0; i < ni; i++)
            fired += items[i].code == 1 || items[i].code == 3;
        if (fired)
            log_warnx("beat: takeover: %d journaled fire(s) Redis did not know (a holder died "
                      "before its fire, or Redis lost it) done now as journaled, or recorded "
                      "missed past their grace",
                      fired);
    }
out:
    if (res)
        mysql_free_result(res);
    if (items)
        items_free(items, ni);
    for (int i = 0; i < nr; i++) {
        free(rows[i].task);
        free(rows[i].status);
    }
    free(rows);
    free(ix);
}
