/* Cron jobs from MariaDB: loaded at start and whenever <prefix>gen changes,
 * kept as they were while MariaDB is away. A job that cannot be scheduled
 * (broken expression, zone or kwargs) or whose func is gone is kept with the
 * reason, so the others keep firing and the reason is visible. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beat.h"
#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "task.h"

int beat_db_ensure(struct beat *b)
{
    if (b->db)
        return 0;
    int64_t t = mono_ms();
    if (t < b->db_retry_mono)
        return -1;
    char *err = NULL;
    b->db = db_connect(&b->conf, 3, &err);
    if (!b->db) {
        log_warnx("beat: MariaDB: %s (retrying; cron jobs stay as last loaded)", err ? err : "?");
        free(err);
        b->db_retry_mono = t + 2000;
        return -1;
    }
    return 0;
}

static void db_broken(struct beat *b)
{
    if (b->db)
        mysql_close(b->db);
    b->db = NULL;
    b->db_retry_mono = mono_ms() + 1000;
}

struct cron_tz *beat_zone(struct beat *b, const char *name, char **err)
{
    for (int i = 0; i < b->nzones; i++)
        if (strcmp(b->zones[i].name, name) == 0)
            return b->zones[i].tz;
    struct cron_tz *tz = cron_tz_load(name, err);
    if (!tz)
        return NULL;
    struct beat_zone *z = realloc(b->zones, sizeof *z * (size_t)(b->nzones + 1));
    if (!z) {
        cron_tz_free(tz);
        return NULL;
    }
    b->zones = z;
    snprintf(z[b->nzones].name, sizeof z[b->nzones].name, "%s", name);
    z[b->nzones].tz = tz;
    b->nzones++;
    return tz;
}

static void job_clear(struct beat_job *j)
{
    free(j->kwargs);
    j->kwargs = NULL;
    free(j->delays);
    j->delays = NULL;
    j->ndelays = 0;
}

/* The func's delayed_cron_job (its extra JSON). A malformed list (the
 * publish check refuses these, so only a hand-edited row) makes every slot
 * a failure record naming it rather than runs nobody asked for. */
static void job_delays(struct beat_job *j, const char *extra_json)
{
    if (!extra_json || !strstr(extra_json, "delayed_cron_job"))
        return; /* the common case: no JSON parse per job and reload */
    json_t *extra = json_loads(extra_json, 0, NULL);
    int d[TASK_CRON_DELAYS_MAX];
    char why[160] = "";
    int n = task_cron_delays(extra, d, why, sizeof why);
    json_decref(extra);
    if (n < 0) {
        snprintf(j->bad, sizeof j->bad, "func %.80s: %.150s", j->func, why);
        return;
    }
    if (n > 0 && (j->delays = malloc(sizeof d[0] * (size_t)n)) != NULL) {
        memcpy(j->delays, d, sizeof d[0] * (size_t)n);
        j->ndelays = n;
    }
}

void beat_jobs_free(struct beat *b)
{
    for (int i = 0; i < b->njobs; i++)
        job_clear(&b->jobs[i]);
    free(b->jobs);
    b->jobs = NULL;
    b->njobs = 0;
    for (int i = 0; i < b->nzones; i++)
        cron_tz_free(b->zones[i].tz);
    free(b->zones);
    b->zones = NULL;
    b->nzones = 0;
}

static int64_t ts_of(const char *s)
{
    return s ? (int64_t)floor(strtod(s, NULL)) : 0;
}

/* A change at 12:00:00.5 affects slots from 12:00:01 on. */
static int64_t ts_ceil(const char *s)
{
    return s ? (int64_t)ceil(strtod(s, NULL)) : 0;
}

static void load_setting(struct beat *b)
{
    char *err = NULL;
    MYSQL_RES *res = db_query(
        b->db, &err, "SELECT v, UNIX_TIMESTAMP(updated_at) FROM setting WHERE k = 'cron.paused'");
    if (!res) {
        log_warnx("beat: reading setting cron.paused: %s", err ? err : "?");
        free(err);
        return;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    bool paused = row && row[0] && (strcmp(row[0], "1") == 0 || strcmp(row[0], "true") == 0);
    int64_t changed = row ? ts_ceil(row[1]) : 0;
    if (paused != b->paused)
        log_info("beat: cron jobs %s globally", paused ? "paused" : "resumed");
    b->paused = paused;
    b->pause_changed = changed;
    mysql_free_result(res);
}

/* First slot of a job strictly after t (unix s), honouring expiry. */
static int64_t first_after(const struct beat_job *j, int64_t t)
{
    if (j->bad_config || !j->tz)
        return -1;
    int64_t n = cron_next(&j->expr, j->tz, t);
    if (n >= 0 && j->expires && n > j->expires)
        return -1;
    return n;
}

/* Whether a reload left job a as it was (b): then the items built ahead
 * for the next slot (and journaled) still hold. */
static bool job_same(const struct beat_job *a, const struct beat_job *b)
{
    return strcmp(a->id, b->id) == 0 && strcmp(a->func, b->func) == 0 &&
           strcmp(a->expr.text, b->expr.text) == 0 && a->tz == b->tz &&
           strcmp(a->kwargs ? a->kwargs : "", b->kwargs ? b->kwargs : "") == 0 &&
           a->enabled == b->enabled && a->skip_overlap == b->skip_overlap && a->grace == b->grace &&
           a->expires == b->expires && a->changed == b->changed && a->timeout == b->timeout &&
           a->ver == b->ver && a->ndelays == b->ndelays &&
           (a->ndelays == 0 ||
            memcmp(a->delays, b->delays, sizeof *a->delays * (size_t)a->ndelays) == 0) &&
           strcmp(a->bad, b->bad) == 0 && a->bad_config == b->bad_config && a->next == b->next;
}

/* The loaded job with this id, or NULL. Both loads come in the same ORDER
 * BY, so the next old job is almost always the one: *hint walks along and
 * a reload of 10,000 jobs costs 10,000 compares, not 50 million (a full
 * scan per job took ~0.3 s of CPU every 5 s). A job added or removed moves
 * the hint once; the scan remains for the order changing. */
static struct beat_job *old_job(struct beat *b, const char *id, int *hint)
{
    for (int d = 0; d < 2 && *hint + d < b->njobs; d++)
        if (strcmp(b->jobs[*hint + d].id, id) == 0) {
            *hint += d + 1;
            return &b->jobs[*hint - 1];
        }
    for (int i = 0; i < b->njobs; i++)
        if (strcmp(b->jobs[i].id, id) == 0) {
            *hint = i + 1;
            return &b->jobs[i];
        }
    return NULL;
}

int beat_jobs_load(struct beat *b)
{
    if (beat_db_ensure(b))
        return -1;
    char *err = NULL;
    MYSQL_RES *res = db_query(
        b->db, &err,
        /* a func's fixed_cron_expr (DFF) overrides the expression of the
         * jobs configured for it, and a publish that changes it is a new
         * schedule version */
        "SELECT c.id, c.func_id, COALESCE(NULLIF(f.fixed_cron_expr, ''), c.expr), c.timezone, "
        "c.kwargs_json, c.enabled, c.overlap, c.misfire_grace, UNIX_TIMESTAMP(c.expires_at), "
        "UNIX_TIMESTAMP(IF(COALESCE(f.fixed_cron_expr, '') <> '', "
        "GREATEST(c.updated_at, COALESCE(s.published_at, c.updated_at)), c.updated_at)), f.id, "
        "f.timeout, s.publish_version, f.extra_json FROM cron_job c LEFT JOIN func f ON f.id = "
        "c.func_id "
        "LEFT JOIN script s ON s.id = f.script_id ORDER BY c.id");
    if (!res) {
        log_warnx("beat: loading cron jobs: %s (keeping the %d loaded)", err ? err : "?", b->njobs);
        free(err);
        db_broken(b);
        return -1;
    }
    int64_t pause_was = b->pause_changed;
    bool paused_was = b->paused;
    load_setting(b);
    int n = (int)mysql_num_rows(res);
    struct beat_job *jobs = calloc((size_t)(n ? n : 1), sizeof *jobs);
    if (!jobs) {
        mysql_free_result(res);
        return -1;
    }
    int k = 0, hint = 0;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) && k < n) {
        struct beat_job *j = &jobs[k++];
        snprintf(j->id, sizeof j->id, "%s", row[0] ? row[0] : "");
        snprintf(j->func, sizeof j->func, "%s", row[1] ? row[1] : "");
        j->enabled = row[5] && atoi(row[5]) != 0;
        j->skip_overlap = !(row[6] && strcmp(row[6], "allow") == 0);
        j->grace = row[7] ? atoi(row[7]) : b->conf.misfire_grace;
        if (j->grace < 0)
            j->grace = 0;
        j->expires = row[8] ? ts_of(row[8]) : 0;
        j->changed = ts_ceil(row[9]);
        j->timeout = row[11] ? atoi(row[11]) : b->conf.func_timeout;
        if (j->timeout < 1 || j->timeout > 3600)
            j->timeout = b->conf.func_timeout;
        j->ver = row[12] ? strtoll(row[12], NULL, 10) : 0;
        j->next = -1;

        char *perr = NULL;
        if (!id_valid(j->id) || !func_id_split(j->func, NULL, 0, NULL, 0, NULL, 0)) {
            /* both are written into task JSON unescaped: only valid ids */
            snprintf(j->bad, sizeof j->bad, "malformed job id or func id \"%.100s\"", j->func);
            j->bad_config = true;
        } else if (cron_parse(&j->expr, row[2], &perr)) {
            snprintf(j->bad, sizeof j->bad, "%s", perr ? perr : "bad cron expression");
            j->bad_config = true;
        } else if (!(j->tz =
                         beat_zone(b, row[3] && row[3][0] ? row[3] : b->conf.timezone, &perr))) {
            snprintf(j->bad, sizeof j->bad, "%s", perr ? perr : "bad time zone");
            j->bad_config = true;
        }
        free(perr);
        if (!j->bad_config) {
            json_error_t je;
            json_t *kw = json_loads(row[4] ? row[4] : "{}", 0, &je);
            if (!kw || !json_is_object(kw)) {
                snprintf(j->bad, sizeof j->bad, "kwargs_json is not a JSON object%s%s",
                         kw ? "" : ": ", kw ? "" : je.text);
                j->bad_config = true;
            } else {
                j->kwargs = json_dumps(kw, JSON_COMPACT);
            }
            json_decref(kw);
        }
        if (!j->bad_config && !row[10])
            snprintf(j->bad, sizeof j->bad,
                     "func %.180s not found (its script was deleted or no longer publishes it)",
                     j->func);
        else if (!j->bad_config)
            job_delays(j, row[13]);
        if (j->bad[0])
            log_warnx("beat: cron job %s: %s", j->id, j->bad);

        /* Keep the cursor of a job whose schedule did not change. */
        struct beat_job *o = old_job(b, j->id, &hint);
        if (o && o->changed == j->changed && strcmp(o->expr.text, j->expr.text) == 0 &&
            o->tz == j->tz) {
            j->next = o->next;
            j->handled = o->handled;
        }
        if (b->leader && j->enabled && !j->bad_config) {
            /* New or changed while we lead: slots from its change on are due;
             * after a global pause, slots from the resume on. */
            int64_t from = j->changed > b->pause_changed ? j->changed : b->pause_changed;
            int64_t c = first_after(j, from - 1);
            if (j->next == -1 || c > j->next)
                j->next = c;
        }
    }
    mysql_free_result(res);
    /* Nothing changed (the periodic reload, mostly): the items built ahead
     * stay valid (same jobs at the same indexes), and so do their journal
     * rows. Otherwise they go, rows too. */
    bool same = k == b->njobs && pause_was == b->pause_changed && paused_was == b->paused;
    for (int i = 0; same && i < k; i++)
        same = job_same(&b->jobs[i], &jobs[i]);
    if (!same)
        beat_fire_discard(b); /* its job indexes point into the old array */
    for (int i = 0; i < b->njobs; i++)
        job_clear(&b->jobs[i]);
    free(b->jobs);
    b->jobs = jobs;
    b->njobs = k;
    if (!same) {
        b->jobs_gen++;
        log_info("beat: loaded %d cron job(s)%s", k, b->paused ? " (globally paused)" : "");
    }
    return 0;
}

void beat_jobs_takeover(struct beat *b, int64_t now_s)
{
    redisContext *rc = beat_redis(b);
    int n = b->njobs;
    int64_t *cur = calloc((size_t)(n ? n : 1), sizeof *cur);
    if (!cur)
        return;
    if (rc) {
        char k[192];
        for (int i = 0; i < n; i++) {
            rds_key(k, sizeof k, &b->conf, "cron:state:%s", b->jobs[i].id);
            redisAppendCommand(rc, "HMGET %s next sched", k);
        }
        for (int i = 0; i < n; i++) {
            redisReply *r = NULL;
            if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
                beat_redis_broken(b, "HMGET cron state");
                break;
            }
            /* A cursor counts only for the schedule it was computed for:
             * after an edit its slots mean nothing. */
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                r->element[0]->type == REDIS_REPLY_STRING &&
                r->element[1]->type == REDIS_REPLY_STRING &&
                strtoll(r->element[1]->str, NULL, 10) == b->jobs[i].changed)
                cur[i] = strtoll(r->element[0]->str, NULL, 10);
            freeReplyObject(r);
        }
    }
    int64_t late = 0;
    b->takeover_s = now_s;
    beat_fire_unprepare(b);
    b->jobs_gen++;
    for (int i = 0; i < n; i++) {
        struct beat_job *j = &b->jobs[i];
        if (j->bad_config || !j->enabled) {
            j->next = -1;
            continue;
        }
        /* The oldest slot nobody handled yet, but none from before the job's
         * or the global switch's last change (paused time is not missed). */
        int64_t from = j->changed;
        if (b->pause_changed > from)
            from = b->pause_changed;
        int64_t c = first_after(j, from - 1);
        if (cur[i] > c)
            c = cur[i];
        if (j->handled > c)
            c = j->handled;
        j->next = c;
    }
    /* Redis's cursors and fired marks may be older than the truth (a Redis
     * restored from an older snapshot, or one that lost writes): a slot due
     * now is first looked up in MariaDB, and one the journal or task_record
     * shows handled is not handled again. */
    bool *want = calloc((size_t)(n ? n : 1), sizeof *want);
    int64_t lo = INT64_MAX;
    for (int i = 0; want && i < n; i++) {
        int64_t c = b->jobs[i].next;
        cur[i] = c; /* what Redis (and this process) say is the oldest slot to do */
        if (c >= 0 && c <= now_s) {
            want[i] = true;
            lo = c < lo ? c : lo;
        }
    }
    int64_t *last = calloc((size_t)(n ? n : 1), sizeof *last);
    if (want && last && lo != INT64_MAX) {
        if (beat_journal_handled(b, want, lo, last) != 0) {
            log_warnx("beat: takeover: MariaDB did not say which slots were handled; trusting "
                      "Redis's cursors (after a Redis restore a slot could fire again)");
        } else {
            for (int i = 0; i < n; i++) {
                struct beat_job *j = &b->jobs[i];
                if (want[i] && last[i] >= j->next) {
                    log_info("beat: cron job %s: slots up to %lld already handled (journal), "
                             "not %lld as Redis says",
                             j->id, (long long)last[i], (long long)j->next);
                    j->next = first_after(j, last[i]);
                }
            }
            /* The journal's fires from the cursor Redis gave on may be
             * intents a dead holder never fired, or fires a restore lost:
             * done now, as journaled, where Redis has no mark. */
            beat_journal_refire(b, want, cur, lo, now_s);
        }
    }
    free(want);
    free(last);
    for (int i = 0; i < n; i++)
        if (b->jobs[i].next >= 0 && b->jobs[i].next <= now_s)
            late++;
    free(cur);
    if (late)
        log_info("beat: %lld job(s) have slots due since before this takeover", (long long)late);
}

int64_t beat_jobs_earliest(const struct beat *b)
{
    int64_t e = INT64_MAX;
    for (int i = 0; i < b->njobs; i++)
        if (b->jobs[i].next >= 0 && b->jobs[i].next < e && b->jobs[i].enabled)
            e = b->jobs[i].next;
    return e;
}
