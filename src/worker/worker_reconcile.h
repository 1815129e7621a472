/* Reconciling the accept journal with Redis (see worker_reconcile.c). Runs
 * in the worker's keeper, so only on the primary. */
#ifndef TANDEM_WORKER_RECONCILE_H
#define TANDEM_WORKER_RECONCILE_H

#include <stdint.h>
#include <hiredis.h>

#include "config.h"

struct recon;

struct recon *recon_new(const struct tconf *c);
void recon_free(struct recon *p);

/* A bounded amount of work; returns the monotonic ms it wants to run again.
 * rc may be NULL (Redis down: only the journal's pruning runs). */
int64_t recon_tick(struct recon *p, redisContext *rc, int64_t now_mono);

struct recon_stats {
    int64_t pruned;     /* rows deleted because task_record has the outcome */
    int64_t sweeps;     /* full comparisons with Redis */
    int64_t requeued;   /* tasks missing from Redis and queued again */
    int64_t lost;       /* tasks missing a second time: recorded lost */
    int64_t recorded;   /* beat records (skipped/missed/failure) written from the journal */
    int64_t superseded; /* lost cron fires whose slot another task fired since: dropped */
};
void recon_stats(const struct recon *p, struct recon_stats *out);

#endif
