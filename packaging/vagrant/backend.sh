#!/usr/bin/env bash
# Vagrant backend (Debian 12): Redis and MariaDB for both Tandem nodes,
# listening on the private address only and reachable only from the nodes.
# Usage: backend.sh BACKEND_IP NODE_A_IP NODE_B_IP SECRET
set -euo pipefail
ip=$1 a=$2 b=$3 secret=$4
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q redis-server mariadb-server nftables

# Redis: private address (and loopback), a password, no dangerous commands.
conf=/etc/redis/redis.conf
sed -i "s/^bind .*/bind 127.0.0.1 $ip/" "$conf"
sed -i "s/^#\? *requirepass .*/requirepass $secret/" "$conf"
grep -q "^requirepass $secret" "$conf" || echo "requirepass $secret" >>"$conf"
# Durable: accepted tasks and the fencing epoch live in Redis. Debian ships
# appendonly no (a restart loses everything since the last snapshot);
# everysec loses at most ~1 s of writes on a crash of this machine, nothing
# on a crash or restart of Redis alone (docs/two-servers.md).
sed -i "s/^appendonly .*/appendonly yes/; s/^appendfsync .*/appendfsync everysec/" "$conf"
grep -q "^appendonly yes" "$conf" || echo "appendonly yes" >>"$conf"
grep -q "^appendfsync " "$conf" || echo "appendfsync everysec" >>"$conf"
systemctl restart redis-server

# MariaDB: private address, one user per node address.
cat >/etc/mysql/mariadb.conf.d/90-tandem.cnf <<CNF
[mysqld]
bind-address = $ip
default-time-zone = '+00:00'
CNF
systemctl restart mariadb
mariadb <<SQL
CREATE DATABASE IF NOT EXISTS tandem CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'tandem'@'$a' IDENTIFIED BY '$secret';
CREATE USER IF NOT EXISTS 'tandem'@'$b' IDENTIFIED BY '$secret';
GRANT ALL PRIVILEGES ON tandem.* TO 'tandem'@'$a';
GRANT ALL PRIVILEGES ON tandem.* TO 'tandem'@'$b';
FLUSH PRIVILEGES;
SQL

# Firewall: 6379 and 3306 from the two nodes only; ssh for vagrant.
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
echo "backend: redis $ip:6379 and mariadb $ip:3306 open to $a and $b only"
