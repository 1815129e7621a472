#!/usr/bin/env bash
# Vagrant node: writes /etc/tandem/tandem.conf for this node, turns the
# distribution's keepalived.service off (Tandem runs its own), prepares the
# schema (idempotent) and an admin key of its own, checks the node with tandemctl doctor and starts Tandem.
# Usage: node-config.sh NAME MY_IP PEER_IP BACKEND_IP VIP PRIORITY SECRET
set -euo pipefail
name=$1 me=$2 peer=$3 backend=$4 vip=$5 prio=$6 secret=$7
# The interface that carries the private network, found by its address.
ifname=$(ip -o -4 addr show | awk -v ip="$me" '{split($4, a, "/"); if (a[1] == ip) print $2}' | head -n 1)
[ -n "$ifname" ] || { echo "node-config: no interface has $me" >&2; exit 1; }

conf=/etc/tandem/tandem.conf
cat >"$conf" <<CONF
# Written by packaging/vagrant/node-config.sh for the Vagrant lab.
node = { name = "$name"; };
redis = { host = "$backend"; port = 6379; password = "$secret"; };
mysql = { host = "$backend"; port = 3306; user = "tandem"; password = "$secret"; database = "tandem"; };
failover = {
  interface = "$ifname";
  vip = "$vip";
  virtual_router_id = 51;
  priority = $prio;
  # Unicast VRRP: hypervisor networks do not always pass multicast.
  unicast_src = "$me";
  unicast_peers = [ "$peer" ];
  peer = "$peer";
};
ctl = { key_file = "/etc/tandem/admin.key"; };
CONF
chgrp tandem "$conf"
chmod 0640 "$conf"

systemctl disable --now keepalived 2>/dev/null || true
tandemctl -c "$conf" db migrate
if [ ! -s /etc/tandem/admin.key ]; then
  # The secret is printed once; keep it only in a root-only file.
  umask 077
  tandemctl -c "$conf" key create "admin-$name" --bootstrap | sed -n 's/^KEY=//p' >/etc/tandem/admin.key
fi
tandemctl -c "$conf" doctor || true
systemctl enable --now tandem
sleep 3
tandemctl -c "$conf" status || true
