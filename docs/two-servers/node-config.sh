#!/bin/sh
# docs/two-servers.md, section 3: /etc/tandem/tandem.conf on one node, as root.
# The two nodes differ only in NODE_NAME, NODE_IP, PEER_IP and PRIORITY.
#   NODE_NAME=node-a NODE_IP=192.168.56.11 PEER_IP=192.168.56.12 PRIORITY=150 \
#   BACKEND_IP=192.168.56.10 VIP=192.168.56.100/24 SECRET=<password> \
#   SECRET_KEY=<same on both nodes: head -c 32 /dev/urandom | base64> sh node-config.sh
# HTTPS on the VIP (after node-tls.sh): TLS=1 URL=https://<VIP's name>:8088
# A highly available backend: BACKEND_CONF=<file with what backend-ha.sh
# tandem-conf printed> instead of BACKEND_IP and SECRET.
set -eu
: "${NODE_NAME:?}" "${NODE_IP:?}" "${PEER_IP:?}" "${PRIORITY:?}" "${VIP:?}"
# Redis and MariaDB: the one backend machine, or the HA backend's blocks.
if [ -n "${BACKEND_CONF:-}" ]; then
  backend=$(cat "$BACKEND_CONF")
else
  : "${BACKEND_IP:?}" "${SECRET:?}"
  backend="redis = { host = \"$BACKEND_IP\"; port = 6379; password = \"$SECRET\"; };
mysql = { host = \"$BACKEND_IP\"; port = 3306; user = \"tandem\";
          password = \"$SECRET\"; database = \"tandem\"; };"
fi
# The interface that carries NODE_IP (ip -br addr shows it).
ifname=$(ip -o -4 addr show | awk -v ip="$NODE_IP" '{split($4, a, "/"); if (a[1] == ip) print $2}' | head -n 1)
[ -n "$ifname" ] || { echo "node-config: no interface has $NODE_IP" >&2; exit 1; }
# Unicast VRRP (UNICAST=0: multicast, IP protocol 112 to 224.0.0.18).
unicast=""
[ "${UNICAST:-1}" = 1 ] &&
  unicast="unicast_src = \"$NODE_IP\"; unicast_peers = [ \"$PEER_IP\" ];"
# secret.key seals password-typed values at rest; empty: none can be stored.
secret=""
[ -n "${SECRET_KEY:-}" ] && secret="secret = { key = \"$SECRET_KEY\"; };"
# TLS=1: the server speaks HTTPS only, with node-tls.sh's files; URL: where
# tandemctl calls the server (the VIP's name, which the certificate covers).
server=""
[ "${TLS:-0}" = 1 ] &&
  server='server = { tls_cert = "/etc/tandem/tls/vip.crt"; tls_key = "/etc/tandem/tls/vip.key"; };'
url=""
[ -n "${URL:-}" ] && url="url = \"$URL\"; "

conf=/etc/tandem/tandem.conf
cat >"$conf" <<CONF
node = { name = "$NODE_NAME"; };
$backend
failover = {
  interface = "$ifname";
  vip = "$VIP";
  virtual_router_id = 51;     # same on both nodes, unique on the network
  priority = $PRIORITY;
  peer = "$PEER_IP";
  $unicast
};
$secret
$server
ctl = { ${url}key_file = "/etc/tandem/admin.key"; };
CONF
chgrp tandem "$conf"
chmod 0640 "$conf"
tandem-supervisor -c "$conf" --check-config
