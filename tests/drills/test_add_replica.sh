#!/usr/bin/env bash
# Failover drill: add-replica (appliance/lab-ha.sh: a replica rebuilt under
# load by docs/two-servers/backend-add-replica.sh).
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_drill.sh" add-replica
