#!/usr/bin/env bash
# The other drills on booted machines (ctest -L machines; not in plain
# tests/run): systemctl stop, systemctl kill -s KILL, reboot of the
# primary and its rejoin as backup, backend reboot; then machines with
# HTTPS on the VIP (up --tls, the doc's node-tls.sh): the systemd checks
# and a switchover whose client verifies the certificate, renewed under
# load first.
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/run.sh" stop kill reboot backend-reboot || exit $?
exec bash "$here/run.sh" --tls systemd switchover
