#!/bin/sh
# docs/two-servers.md, "A highly available backend": Redis master + replica
# watched by three Sentinels, MariaDB primary + replica; as root, one STEP
# per machine:
#   redis          on both backend machines (after backend.sh on each):
#                  the second one's Redis follows the master
#   sentinel       on the backend machine and on both nodes: a Sentinel
#   mariadb        on both backend machines: a binary log (GTID), the
#                  second one read-only
#   mariadb-replication  then on the backend machine (the replication
#                  user), then on the second one (it follows the first)
#   tandem-conf    on each node: prints the redis and mysql blocks of its
#                  tandem.conf (into a file for node-config.sh's BACKEND_CONF)
#   BACKEND_IP=192.168.56.10 BACKEND2_IP=192.168.56.13 NODE_A_IP=192.168.56.11 \
#   NODE_B_IP=192.168.56.12 MY_IP=<this machine's address> SECRET=<password> \
#   REPL_SECRET=<replication password> sh backend-ha.sh STEP
# SECRET is backend.sh's password (MariaDB's tandem user, and Redis's unless
# REDIS_SECRET says otherwise; REDIS_SECRET= for a Redis without one).
# appliance/machines up --ha runs these steps on its machines; appliance/lab
# up --ha-backend too, with ETC set to its own directory, RESTART=true (it
# starts the daemons itself, with the files written here) and MARIADB its
# client command. For a fresh pair; to add a replica to a backend already in
# use: backend-add-replica.sh.
set -eu
STEP=${1:?"redis, sentinel, mariadb, mariadb-replication or tandem-conf"}
: "${BACKEND_IP:?the Redis master's address}" "${BACKEND2_IP:?the replica's address}"
ETC=${ETC:-/etc}
RESTART=${RESTART:-systemctl restart}
REDIS_SECRET=${REDIS_SECRET-${SECRET:?the backend password}}
umask 027 # the files below hold the password

case "$STEP" in
redis)
  # On both backend machines, after backend.sh: the replica follows the
  # master; either may be promoted or demoted later, so both know the
  # password a replica gives its master. In redis.conf itself, not the
  # included tandem.conf: Sentinel rewrites replicaof there (CONFIG REWRITE)
  # when it promotes or demotes a server, and Redis rewrites only that file.
  : "${MY_IP:?this machine's address}"
  mkdir -p "$ETC/redis"
  {
    [ -z "$REDIS_SECRET" ] || echo "masterauth $REDIS_SECRET"
    [ "$MY_IP" != "$BACKEND2_IP" ] || echo "replicaof $BACKEND_IP 6379"
  } >>"$ETC/redis/redis.conf"
  $RESTART redis-server
  ;;
sentinel)
  # One per machine: any two of the three are a majority, so losing the
  # backend machine or one node still leaves a quorum to promote the
  # replica. Sentinel rewrites this file with what it learns (the replica,
  # the other Sentinels): it must stay writable by the redis user.
  : "${MY_IP:?this machine's address}"
  mkdir -p "$ETC/redis"
  {
    echo "bind $MY_IP"
    echo "port 26379"
    if [ -n "$REDIS_SECRET" ]; then
      echo "requirepass $REDIS_SECRET"
    else
      echo "protected-mode no"
    fi
    echo "sentinel monitor tandem $BACKEND_IP 6379 2"
    [ -z "$REDIS_SECRET" ] || echo "sentinel auth-pass tandem $REDIS_SECRET"
    echo "sentinel down-after-milliseconds tandem 2000"
    echo "sentinel failover-timeout tandem 10000"
  } >"$ETC/redis/sentinel.conf"
  ! id redis >/dev/null 2>&1 || chown redis:redis "$ETC/redis/sentinel.conf"
  $RESTART redis-sentinel
  ;;
mariadb)
  # On both backend machines, after backend.sh on each and before the
  # first node bootstraps (section 4): a binary log with GTIDs, so either
  # server can follow the other; the second one read-only. backend.sh's
  # database and users are on both already, outside the log.
  : "${MY_IP:?this machine's address}"
  mkdir -p "$ETC/mysql/mariadb.conf.d"
  umask 022
  {
    echo "[mariadbd]"
    if [ "$MY_IP" = "$BACKEND2_IP" ]; then echo "server_id = 2"; else echo "server_id = 1"; fi
    echo "log_bin = mariadb-bin"
    echo "binlog_format = ROW"
    echo "gtid_strict_mode = 1"
    echo "log_slave_updates = 1"
    [ "$MY_IP" != "$BACKEND2_IP" ] || echo "read_only = 1"
  } >"$ETC/mysql/mariadb.conf.d/60-tandem-ha.cnf"
  $RESTART mariadb
  ;;
mariadb-replication)
  # After step mariadb on both: on the backend machine, the replication
  # user (for both addresses: after a switch the old primary follows the
  # new one); then on the second machine, follow the first from the start
  # of its log.
  : "${MY_IP:?this machine's address}" "${REPL_SECRET:?the replication user's password}"
  if [ "$MY_IP" != "$BACKEND2_IP" ]; then
    ${MARIADB:-mariadb} <<SQL
CREATE USER IF NOT EXISTS 'repl'@'$BACKEND_IP' IDENTIFIED BY '$REPL_SECRET';
CREATE USER IF NOT EXISTS 'repl'@'$BACKEND2_IP' IDENTIFIED BY '$REPL_SECRET';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'$BACKEND_IP';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'$BACKEND2_IP';
SQL
  else
    ${MARIADB:-mariadb} <<SQL
CHANGE MASTER TO MASTER_HOST='$BACKEND_IP', MASTER_PORT=3306, MASTER_USER='repl',
  MASTER_PASSWORD='$REPL_SECRET', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
START SLAVE;
SQL
  fi
  ;;
tandem-conf)
  # Redis through the Sentinels, every enqueue on the replica too before it
  # is accepted (wait_refuse: refused, not accepted, when the replica does
  # not acknowledge it); MariaDB: the hosts in order, writes only to the one
  # that is not read_only (docs/backend-ha.md, MariaDB).
  : "${NODE_A_IP:?node-a's address}" "${NODE_B_IP:?node-b's address}"
  pw=""
  [ -z "$REDIS_SECRET" ] || pw=" password = \"$REDIS_SECRET\"; sentinel_password = \"$REDIS_SECRET\";"
  cat <<CONF
redis = { sentinels = [ "$BACKEND_IP:26379", "$NODE_A_IP:26379", "$NODE_B_IP:26379" ];
          master_name = "tandem"; prefix = "tandem:";$pw
          wait_replicas = 1; wait_timeout_ms = 500; wait_refuse = ${WAIT_REFUSE:-true}; };
mysql = { hosts = [ "$BACKEND_IP:3306", "$BACKEND2_IP:3306" ]; user = "tandem";
          password = "$SECRET"; database = "tandem"; };
CONF
  ;;
*)
  echo "backend-ha.sh: unknown step '$STEP' (redis, sentinel, mariadb, mariadb-replication or tandem-conf)" >&2
  exit 2
  ;;
esac
