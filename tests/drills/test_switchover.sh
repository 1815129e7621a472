#!/usr/bin/env bash
# Failover drill: switchover (see tests/drills/drills.sh for what it checks),
# over HTTPS: the client verifies the VIP's certificate against the lab's
# test CA, the certificate is renewed and reloaded (SIGHUP) under load
# first, and doctor on both nodes must find the same certificate.
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_drill.sh" switchover --tls
