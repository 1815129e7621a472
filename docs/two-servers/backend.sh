#!/bin/sh
# docs/two-servers.md, section 1: the backend (Debian 12), as root.
#   BACKEND_IP=192.168.56.10 NODE_A_IP=192.168.56.11 NODE_B_IP=192.168.56.12 \
#   SECRET=<password> sh backend.sh
set -eu
: "${BACKEND_IP:?the backend's address}" "${NODE_A_IP:?node-a's address}"
: "${NODE_B_IP:?node-b's address}" "${SECRET:?the backend password ([A-Za-z0-9] only)}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y redis-server mariadb-server

# Redis: the backend address, a password, and an append-only file so that a
# restart keeps queued tasks and the failover epoch (fsync every second).
# No periodic RDB snapshots: with the AOF on they are not what a restart
# loads, and each one forks Redis (a stall) every minute under load, often
# right on a cron boundary. Settings in a file of their own, included last
# so they win.
umask 027
cat >/etc/redis/tandem.conf <<CONF
bind 127.0.0.1 $BACKEND_IP
requirepass $SECRET
appendonly yes
appendfsync everysec
save ""
CONF
chown redis:redis /etc/redis/tandem.conf
grep -qx 'include /etc/redis/tandem.conf' /etc/redis/redis.conf ||
  echo 'include /etc/redis/tandem.conf' >>/etc/redis/redis.conf

# Redis first when the backend is busy: every queue, lease and cron fire
# goes through its one thread. With three busy loops beside the stack on two
# cores, 10,000 per-minute cron jobs fired with p99 115-164 ms (median 134)
# at the default priority, 81-110 ms (median 93) at Nice=-5
# (bench/RESULTS-beat.md, session 9).
mkdir -p /etc/systemd/system/redis-server.service.d
cat >/etc/systemd/system/redis-server.service.d/tandem.conf <<UNIT
[Service]
Nice=-5
UNIT
systemctl daemon-reload
systemctl restart redis-server

# MariaDB: the backend address, UTC, one database, one user per node.
umask 022
cat >/etc/mysql/mariadb.conf.d/90-tandem.cnf <<CONF
[mysqld]
bind-address = $BACKEND_IP
default-time-zone = '+00:00'
CONF
systemctl restart mariadb
mariadb <<SQL
CREATE DATABASE IF NOT EXISTS tandem CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'tandem'@'$NODE_A_IP' IDENTIFIED BY '$SECRET';
CREATE USER IF NOT EXISTS 'tandem'@'$NODE_B_IP' IDENTIFIED BY '$SECRET';
GRANT ALL PRIVILEGES ON tandem.* TO 'tandem'@'$NODE_A_IP';
GRANT ALL PRIVILEGES ON tandem.* TO 'tandem'@'$NODE_B_IP';
SQL
