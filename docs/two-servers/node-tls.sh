#!/bin/sh
# docs/two-servers.md, "HTTPS on the VIP": the VIP's certificate (chain
# allowed) and its key on one node, as root; the same pair on both nodes.
#   CERT=vip.crt KEY=vip.key sh node-tls.sh
# The first time, then node-config.sh with TLS=1 URL=https://<VIP's name>:8088.
# A renewal is this script again on both nodes: a running node reloads.
set -eu
: "${CERT:?}" "${KEY:?}"
install -d -m 0755 /etc/tandem/tls
install -m 0644 "$CERT" /etc/tandem/tls/vip.crt
# root only: the supervisor reads it and hands it to the server
install -m 0600 -o root -g root "$KEY" /etc/tandem/tls/vip.key
if systemctl is-active --quiet tandem; then
  systemctl reload tandem
fi
