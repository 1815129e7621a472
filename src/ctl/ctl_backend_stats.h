/* The backend's size for tandemctl status and doctor (ctl_backend_stats.c). */
#ifndef TANDEM_CTL_BACKEND_STATS_H
#define TANDEM_CTL_BACKEND_STATS_H

#include <stdbool.h>
#include <jansson.h>

#include "config.h"
#include "ctl_doctor_tls.h" /* doctor_report_fn */

/* {"redis": {used_memory, keys, aof_enabled, aof_size?, purge?: Pstats:purge,
 * dir?, disk?, disk_unseen?} | {error}, "mariadb": {task_record_rows_estimate,
 * task_record_bytes, datadir?, disk?, disk_unseen?} | {error}}. disk: also
 * look at the data directories' disks ({seen, total, available, used_pct}).
 * Short timeouts: a dead backend costs about 1.5 s per part, never a hang. */
json_t *ctl_backend_stats(const struct tconf *t, bool disk);

/* The human lines of `tandemctl status` for it. */
void ctl_backend_print(const json_t *b);

/* doctor's checks: retention (warn when task_record has no bound) and the
 * backend disks (warn over 80 % full, "not checked" when not visible). */
void ctl_backend_doctor(const struct tconf *t, doctor_report_fn report, void *d);

#endif
