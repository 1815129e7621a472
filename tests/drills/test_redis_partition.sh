#!/usr/bin/env bash
# Failover drill: redis-partition (see tests/drills/drills.sh for what it checks).
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_drill.sh" redis-partition
