/* The backend's topology as this node sees it (ctl_topology.c): which Redis
 * is master, its replicas and their lag, the Sentinels and whether they
 * agree, the MariaDB servers and which is writable. For tandemctl status
 * and doctor. */
#ifndef TANDEM_CTL_TOPOLOGY_H
#define TANDEM_CTL_TOPOLOGY_H

#include <jansson.h>
#include "config.h"
#include "ctl_doctor_tls.h"

/* Asks every configured server; never fails (what cannot be reached says so
 * in the object). Caller decrefs. Shape in docs/INTERNALS.md. */
json_t *ctl_topology_probe(const struct tconf *t, int timeout_ms);

/* status: a few lines under "backend:" */
void ctl_topology_print(json_t *topo);

/* doctor: the "redis-topo" and "mysql-topo" checks */
void ctl_topology_doctor(const struct tconf *t, doctor_report_fn report, void *d);

#endif
