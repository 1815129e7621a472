#!/usr/bin/env bash
# The CI subset on booted machines, on one set of machines (one up and
# down: CI's 40 minutes): up with the previous release's .deb (a fresh
# install by the doc's scripts), a rolling upgrade to this checkout's .deb
# with zero failed calls for a plain client (the old release does the
# handover: PREV_COMMIT in appliance/machines is one whose switchover fails
# no call), then, on the upgraded pair now running this checkout's .deb,
# systemd (notify, status, journal), switchover and power cut.
# A fresh install of this checkout's .deb is packaging/check's (on the host)
# and tests/machines/test_more.sh's (machines-extra).
here=$(dirname "${BASH_SOURCE[0]}")
exec bash "$here/run.sh" --prev rolling-upgrade systemd switchover power-cut
