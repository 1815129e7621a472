/* tandem-beat: fires cron jobs once per slot and moves due delayed tasks to
 * their queues, only while it holds the lease (<prefix>beat:lease) with the
 * current epoch. Single-threaded: one loop, one Redis and one MariaDB
 * connection, all in struct beat.
 *
 * Exactly once per slot rests on one Lua script per batch of fires
 * (beat_fire.c): it checks the lease value and the epoch, HSETNXes field
 * <cron_id> of the per-second hash <prefix>fired:<slot> (value: task id, or
 * skipped|missed|failure; EXPIREd per batch to the largest misfire grace +
 * 600 s), checks/sets <prefix>cron:running:<id> (overlap=skip) and XADDs the
 * task to <prefix>q:cron. A beat that lost the lease (frozen, partitioned)
 * is refused by the script even before it notices; a later holder refuses a
 * slot already fired. Slots due before this beat took the lease are also
 * refused if an older beat's per-slot key <prefix>fired:<cron_id>:<slot>
 * exists (upgrade from that layout). <prefix>task:<id> ("queued") is SET NX
 * just after the script, off the latency path: until then GET
 * /api/v1/tasks/<id> answers 404 for a task only the stream knows.
 *
 * A job whose func declares DFF's delayed_cron_job [d1, d2, ...] makes one
 * run per delay instead of one at the slot: a delay of 0 is XADDed as
 * usual, the others are ZADDed to <prefix>delayed (score slot + d) by the
 * same script, after the same HSETNX, so a slot's delayed runs exist
 * exactly once whichever beat fired it; the lease holder's delayed-task
 * script then moves each to its stream when due.
 *
 * The catch-up cursor of a job is <prefix>cron:state:<id> field "next": the
 * oldest slot not yet handled, valid for the schedule version in field
 * "sched" (the job's updated_at). A new lease holder starts each job at
 * max(that, its own memory, the first slot after the job's last change, the
 * first slot after the last global pause/resume, and -- as Redis may have
 * come back from an older snapshot -- the first slot after the latest one
 * MariaDB's accept journal or task_record shows handled), fires slots at
 * most misfire_grace late, and records older ones as "missed". */
#ifndef TANDEM_BEAT_H
#define TANDEM_BEAT_H

#include <stdbool.h>
#include <stdint.h>
#include <hiredis.h>
#include <jansson.h>
#include <mysql.h>

#include "config.h"
#include "cron.h"
#include "ids.h"

#define BEAT_BATCH 256        /* fires per Lua call */
#define BEAT_CATCHUP_CAP 1000 /* slots one job may fire/record per catch-up pass */
/* Missed slots recorded one by one per job and pass; older ones of the same
 * outage get one summary record. */
#define BEAT_MISSED_ONE_BY_ONE 100

struct beat_job {
    char id[ID_MAX];
    char func[256];
    struct cron_expr expr;
    struct cron_tz *tz; /* borrowed from the zone cache */
    char *kwargs;       /* compact JSON object */
    bool enabled;
    bool skip_overlap; /* overlap = 'skip' */
    int grace;         /* misfire grace, s */
    int64_t expires;   /* unix s, 0 = never */
    int64_t changed;   /* updated_at, unix s */
    int timeout;       /* the func's timeout, s */
    int64_t ver;       /* script publish_version */
    int *delays;       /* DFF's delayed_cron_job: the slot's runs, s after it (NULL = one run
                          at the slot); sorted, owned */
    int ndelays;
    char bad[256];   /* why the job cannot run ("" = fine): recorded per slot */
    bool bad_config; /* expression/zone/kwargs broken: nothing to schedule */
    int64_t next;    /* next slot to handle (unix s), -1 = none; valid while leader */
    int64_t handled; /* cursor this process advanced itself (0 = never): a lower
                        bound it can trust on the next takeover */
};

/* Latency bucket bounds, ms; the last bucket is +Inf. */
#define BEAT_LAT_BOUNDS                                                                            \
    {                                                                                              \
        5, 10, 25, 50, 100, 250, 500, 1000, 5000                                                   \
    }
#define BEAT_LAT_N 10

struct item;

struct beat_stats {
    int64_t fired, skipped, missed, failed, dup, fenced, delayed, takeovers;
    int64_t lat_sum, lat_count;
    int64_t lat_le[BEAT_LAT_N]; /* cumulative, Prometheus style */
};

struct beat {
    struct tconf conf;
    char node[64];
    int pid;
    bool epoch_fixed; /* --epoch given: never follow Pepoch */
    int64_t epoch;
    char lease_val[160]; /* <node>:<epoch>:<nonce> */
    bool leader;
    int64_t lease_until_mono; /* our own view of the lease expiry */
    int64_t next_lease_mono;  /* next renew/acquire attempt */

    redisContext *rc;
    int64_t rc_retry_mono;
    char sha_fire[41], sha_plain[41], sha_delayed[41], sha_acquire[41], sha_renew[41];

    MYSQL *db;
    int64_t db_retry_mono;

    int64_t gen_seen; /* Pgen at the last successful load, -1 = never loaded */
    int64_t gen_check_mono;
    bool reload_pending;
    bool paused;           /* setting cron.paused */
    int64_t pause_changed; /* setting's updated_at, unix s */

    struct beat_job *jobs;
    int njobs;
    struct beat_zone {
        char name[64];
        struct cron_tz *tz;
    } * zones;
    int nzones;

    struct item *prep; /* items built ahead for prep_slot (beat_fire_prepare) */
    int nprep;
    int64_t prep_slot;
    uint64_t prep_gen, jobs_gen; /* jobs_gen: bumped whenever jobs or cursors are replaced */

    int64_t takeover_s; /* unix s when this beat last took the lease: slots up to
                           it may have been fired by an older beat version
                           (legacy per-slot fired keys, see FIRE_LUA) */
    int64_t hb_mono;
    struct beat_stats st; /* pending increments of Pstats:beat */
    volatile int stop;
};

/* beat_lease.c */
void beat_lease_init(struct beat *b);
/* Acquire or renew as due; returns true if this beat is the holder now. */
bool beat_lease_tick(struct beat *b);
void beat_lease_release(struct beat *b);
/* Lost the lease (Lua refused): stand down at once. */
void beat_lease_lost(struct beat *b, const char *why);

/* beat_jobs.c */
int beat_db_ensure(struct beat *b);
/* (Re)load every cron job, keeping cursors of unchanged jobs. 0 or -1. */
int beat_jobs_load(struct beat *b);
void beat_jobs_free(struct beat *b);
/* Start cursors after taking the lease (reads Redis state). */
void beat_jobs_takeover(struct beat *b, int64_t now_s);
/* Earliest pending slot across jobs, unix s, or INT64_MAX. */
int64_t beat_jobs_earliest(const struct beat *b);
struct cron_tz *beat_zone(struct beat *b, const char *name, char **err);

/* beat_fire.c */
/* Fire every due slot; returns -1 on a Redis failure, -2 if fenced. */
int beat_fire_due(struct beat *b, int64_t now_ms_);
/* Move due delayed tasks to their queues. -1 on failure, -2 fenced. */
int beat_move_delayed(struct beat *b, int64_t now_ms_);
void beat_stats_flush(struct beat *b);
/* Build the items of `slot` ahead of time (and journal them) / drop them
 * (unprepare: their journal rows stay, a fire another holder may still do
 * as journaled, e.g. after losing the lease; discard: the rows go too, the
 * jobs changed). */
void beat_fire_prepare(struct beat *b, int64_t slot);
void beat_fire_unprepare(struct beat *b);
void beat_fire_discard(struct beat *b);
void beat_ensure_groups(struct beat *b);
/* For the jobs with want[i]: last[i] = the latest slot >= lo_s that the
 * accept journal (task_accept) or task_record shows handled, else -1.
 * After a Redis restore these, not Redis's cursors and fired marks, know
 * which slots already fired. 0, or -1 (MariaDB unavailable or failing). */
int beat_journal_handled(struct beat *b, const bool *want, int64_t lo_s, int64_t *last);
/* At a takeover, after beat_journal_handled: the journal's fires (task
 * rows, no outcome in task_record yet) of the jobs with want[i], from slot
 * from[i] on and within the job's misfire grace, fired again as the very
 * tasks journaled. The fire script's mark makes this a no-op for a fire
 * Redis has (or the reconciler did); it fires a write-ahead row whose
 * holder died before its fire, or one a Redis restore lost. */
void beat_journal_refire(struct beat *b, const bool *want, const int64_t *from, int64_t lo_s,
                         int64_t now_s);

/* beat_main.c */
redisContext *beat_redis(struct beat *b);
void beat_redis_broken(struct beat *b, const char *what);

#endif
