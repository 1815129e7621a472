#!/usr/bin/env bash
# Vagrant backend, after docs/two-servers/backend.sh: the firewall the
# document asks for ("accept 6379 and 3306 from the two node addresses
# only"), as an nftables ruleset; ssh stays open for vagrant.
# Usage: firewall.sh NODE_A_IP NODE_B_IP
set -euo pipefail
a=$1 b=$2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q nftables
cat >/etc/nftables.conf <<NFT
#!/usr/sbin/nft -f
flush ruleset
table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    meta l4proto { icmp, ipv6-icmp } accept
    tcp dport 22 accept
    ip saddr { $a, $b } tcp dport { 6379, 3306 } accept
  }
}
NFT
systemctl enable --now nftables
nft -f /etc/nftables.conf
echo "backend: redis :6379 and mariadb :3306 open to $a and $b only"
