#!/usr/bin/env bash
# The other drills on booted machines (ctest -L machines; not in plain
# tests/run): systemctl stop, systemctl kill -s KILL, reboot of the
# primary and its rejoin as backup, backend reboot; then machines with
# HTTPS on the VIP (up --tls, the doc's node-tls.sh): the systemd checks
# and a switchover whose client verifies the certificate, renewed under
# load first; then machines with the highly available backend (up --ha,
# the doc's backend-ha.sh): doctor and status show the pair, SIGKILL of the
# Redis master under load (redis-failover), and the topology again with the
# master moved. Not in CI (test_ci.sh): the --ha set of machines costs
# another up and down (~3 min), over the 60 s CI can still give.
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/run.sh" stop kill reboot backend-reboot || exit $?
bash "$here/run.sh" --tls systemd switchover || exit $?
exec bash "$here/run.sh" --ha topology redis-failover topology
