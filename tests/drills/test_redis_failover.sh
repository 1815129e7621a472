#!/usr/bin/env bash
# Failover drill: redis-failover (see tests/drills/drills.sh for what it checks).
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_drill.sh" redis-failover
