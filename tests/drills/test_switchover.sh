#!/usr/bin/env bash
# Failover drill: switchover (see tests/drills/drills.sh for what it checks),
# over HTTPS: the client verifies the VIP's certificate against the lab's
# test CA on every call (a new connection and handshake each), the
# certificate is renewed and reloaded (SIGHUP) under load first, doctor runs
# on both nodes afterwards, and no call may fail. Connections caught by the
# VIP's move are passed on to the old primary by the new one (the relay,
# failover/sv_relay.c); the figure relayed_packets says how many packets.
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_drill.sh" switchover --tls
