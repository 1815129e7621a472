#!/usr/bin/env bash
# Failover drill: stop-primary (see tests/drills/drills.sh for what it checks).
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_drill.sh" stop-primary
