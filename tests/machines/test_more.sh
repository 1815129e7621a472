#!/usr/bin/env bash
# The other drills on booted machines (ctest -L machines; not in plain
# tests/run): systemctl stop, systemctl kill -s KILL, reboot of the
# primary and its rejoin as backup, backend reboot.
exec bash "$(dirname "${BASH_SOURCE[0]}")/run.sh" stop kill reboot backend-reboot
