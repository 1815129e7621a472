#!/bin/sh
# docs/two-servers.md, "Adding a replica to a backend in use": a new (or
# wiped) second backend machine becomes the replica of the Redis master and
# of the MariaDB primary while the nodes go on working; nothing on the
# primaries is restarted or locked. As root, one STEP per machine, in order:
#   redis          on the new machine (after backend.sh there): its Redis
#                  follows the master the Sentinels name (a full sync)
#   mariadb-dump   on the MariaDB primary: a consistent copy of the tandem
#                  database and its GTID position, into DUMP
#   mariadb-load   on the new machine (after backend-ha.sh step mariadb
#                  there), with DUMP copied over: load it, follow the primary
#   check          on the new machine: waits until both replicas are in sync
#                  and the Sentinels list the new one
#   BACKEND_IP=192.168.56.10 BACKEND2_IP=192.168.56.13 MY_IP=<the new machine>
#   SECRET=<password> REPL_SECRET=<replication password> \
#   sh backend-add-replica.sh STEP
# The primaries' own settings must be the pair's already (backend-ha.sh steps
# redis, sentinel, mariadb and mariadb-replication on the primary: a binary
# log and the replication user for both addresses). PRIMARY_IP (default
# BACKEND_IP): the MariaDB server that is writable now; SENTINEL_IP (default
# BACKEND_IP): a Sentinel to ask. DUMP defaults to /root/tandem-replica.sql.
# appliance/lab runs these steps in its add-replica drill, under load, with
# ETC, RESTART=true, MARIADB, MARIADB_DUMP and REDIS_CLI of its own.
set -eu
STEP=${1:?"redis, mariadb-dump, mariadb-load or check"}
: "${BACKEND_IP:?the first backend machine's address}" "${BACKEND2_IP:?the second one's}"
ETC=${ETC:-/etc}
RESTART=${RESTART:-systemctl restart}
REDIS_SECRET=${REDIS_SECRET-${SECRET:?the backend password}}
PRIMARY_IP=${PRIMARY_IP:-$BACKEND_IP}
SENTINEL_IP=${SENTINEL_IP:-$BACKEND_IP}
DUMP=${DUMP:-/root/tandem-replica.sql}
WAIT_S=${WAIT_S:-300}
umask 027 # redis.conf and the dump hold secrets

rcli() { # HOST PORT ARGS...: redis-cli with the password, if there is one
  h=$1 p=$2
  shift 2
  if [ -n "$REDIS_SECRET" ]; then
    REDISCLI_AUTH=$REDIS_SECRET ${REDIS_CLI:-redis-cli} -h "$h" -p "$p" "$@"
  else
    ${REDIS_CLI:-redis-cli} -h "$h" -p "$p" "$@"
  fi
}

case "$STEP" in
redis)
  # The master now (a failover may have moved it), from a Sentinel. The new
  # Redis is empty: restarting it costs nothing, and its full sync (a
  # snapshot of the master, then the stream of writes) does not stop the
  # master. masterauth: either server may later be promoted or demoted.
  : "${MY_IP:?the new machine's address}"
  master=$(rcli "$SENTINEL_IP" 26379 SENTINEL get-master-addr-by-name tandem | head -n 1)
  [ -n "$master" ] || { echo "backend-add-replica: the Sentinel at $SENTINEL_IP:26379 names no master" >&2; exit 1; }
  [ "$master" != "$MY_IP" ] || { echo "backend-add-replica: $MY_IP is the master already" >&2; exit 1; }
  mkdir -p "$ETC/redis"
  {
    [ -z "$REDIS_SECRET" ] || echo "masterauth $REDIS_SECRET"
    echo "replicaof $master 6379"
  } >>"$ETC/redis/redis.conf"
  $RESTART redis-server
  ;;
mariadb-dump)
  # One transaction's consistent snapshot with its GTID position (MariaDB
  # takes both together: no FLUSH TABLES WITH READ LOCK, writes go on).
  # The users are not copied: backend.sh made them on the new machine.
  ${MARIADB:-mariadb} -N -B -e 'SELECT @@log_bin' | grep -qx 1 ||
    { echo "backend-add-replica: no binary log here: run backend-ha.sh mariadb first" >&2; exit 1; }
  ${MARIADB_DUMP:-mariadb-dump} --single-transaction --gtid --master-data=1 \
    --routines --triggers --databases tandem >"$DUMP.tmp"
  mv "$DUMP.tmp" "$DUMP"
  echo "backend-add-replica: $DUMP at $(grep -o "gtid_slave_pos='[^']*'" "$DUMP")"
  ;;
mariadb-load)
  # Loaded outside the binary log (sql_log_bin = 0): the copy's rows are the
  # primary's transactions, not new ones of this server (gtid_strict_mode
  # would refuse the stream after them). The dump sets gtid_slave_pos, where
  # following the primary starts. The replication user too, for when this
  # server is primary and the other follows it. read_only now, whichever
  # address the new machine has (backend-ha.sh's file sets it only for
  # BACKEND2_IP: a new first machine needs read_only = 1 in its file too).
  : "${MY_IP:?the new machine's address}" "${REPL_SECRET:?the replication user's password}"
  [ -s "$DUMP" ] || { echo "backend-add-replica: no $DUMP (copy it from the primary)" >&2; exit 1; }
  {
    echo "SET GLOBAL read_only = 1;"
    echo "SET SESSION sql_log_bin = 0;"
    cat "$DUMP"
    echo "CREATE USER IF NOT EXISTS 'repl'@'$BACKEND_IP' IDENTIFIED BY '$REPL_SECRET';"
    echo "CREATE USER IF NOT EXISTS 'repl'@'$BACKEND2_IP' IDENTIFIED BY '$REPL_SECRET';"
    echo "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'$BACKEND_IP';"
    echo "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'$BACKEND2_IP';"
  } | ${MARIADB:-mariadb}
  ${MARIADB:-mariadb} <<SQL
CHANGE MASTER TO MASTER_HOST='$PRIMARY_IP', MASTER_PORT=3306, MASTER_USER='repl',
  MASTER_PASSWORD='$REPL_SECRET', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
START SLAVE;
SQL
  rm -f "$DUMP"
  ;;
check)
  # In sync: Redis's link up and the Sentinels listing this replica;
  # MariaDB's both threads running and no second behind.
  : "${MY_IP:?the new machine's address}"
  i=0
  while :; do
    link=$(rcli "$MY_IP" 6379 INFO replication | tr -d '\r' | sed -n 's/^master_link_status://p')
    # its entry's flags just "slave": not down (a dead predecessor with the
    # same address stays listed, flagged s_down, until this one answers)
    known=$(rcli "$SENTINEL_IP" 26379 SENTINEL replicas tandem |
      awk -v me="$MY_IP:6379" '$0 == "name" { getline n } $0 == "flags" { getline f; if (n == me && f == "slave") k = 1 }
        END { print k + 0 }')
    st=$(${MARIADB:-mariadb} -e 'SHOW SLAVE STATUS\G' |
      sed -n 's/^ *\(Slave_IO_Running\|Slave_SQL_Running\|Seconds_Behind_Master\): //p' | tr '\n' ' ')
    [ "$link" = up ] && [ "$known" = 1 ] && [ "$st" = "Yes Yes 0 " ] && break
    i=$((i + 1))
    [ $i -lt $((WAIT_S * 5)) ] || {
      echo "backend-add-replica: not in sync after $WAIT_S s: redis link '$link', Sentinel lists it: $known, mariadb (IO SQL behind): $st" >&2
      exit 1
    }
    sleep 0.2
  done
  echo "backend-add-replica: in sync: redis link up, listed by the Sentinels; mariadb replicating, 0 s behind"
  ;;
*)
  echo "backend-add-replica.sh: unknown step '$STEP' (redis, mariadb-dump, mariadb-load or check)" >&2
  exit 2
  ;;
esac
