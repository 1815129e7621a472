#!/usr/bin/env bash
# Failover drill: clock-step (see tests/drills/drills.sh for what it checks):
# one node's wall clock stepped +-5 s under load (libfaketime, a lab made
# with --faketime).
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_drill.sh" clock-step
