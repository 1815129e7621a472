#!/usr/bin/env bash
# Failover drill: kill-tree (see tests/drills/drills.sh for what it checks),
# over HTTPS: the client verifies the VIP's certificate against the lab's
# test CA, the certificate is renewed and reloaded (SIGHUP) under load
# first, and after the failover the new primary serves the renewed one and
# doctor on both nodes finds the same certificate.
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_drill.sh" kill-tree --tls
