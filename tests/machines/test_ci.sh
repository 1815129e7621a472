#!/usr/bin/env bash
# The CI subset on booted machines: up from this checkout's .deb, systemd
# (notify, status, journal), switchover, power cut; then the previous
# release's .deb and a rolling upgrade to this one with zero failed calls
# for a plain client (the old release does the handover: PREV_COMMIT in
# appliance/machines is one whose switchover fails no call).
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/run.sh" systemd switchover power-cut || exit $?
exec bash "$here/run.sh" --prev rolling-upgrade
