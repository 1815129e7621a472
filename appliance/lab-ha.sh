# Sourced by appliance/lab: `up --ha-backend`, the backend as a pair
# (docs/backend-ha.md, whose settings these are):
#
#   tandem-backend  198.18.N.2  Redis master, MariaDB primary, Sentinel 1
#   tandem-backend2 198.18.N.3  Redis replica, MariaDB replica (GTID, read_only)
#   tandem-a / -b               Sentinel 2 / 3 (one per node: any two of the
#                               three are a majority, so losing the backend
#                               machine or one node still leaves a quorum)
#
# The nodes find Redis through the three Sentinels (redis.sentinels) and
# MariaDB through mysql.hosts; every enqueue waits for the replica
# (redis.wait_replicas = 1). DIR/ha-backend marks such a lab, so `drill` and
# `status` know. Each function is one hook called from appliance/lab.
#
# The Redis replica's and the Sentinels' files and the nodes' redis/mysql
# blocks come from docs/two-servers/backend-ha.sh, the script
# docs/two-servers.md shows, run here with ETC in the lab's directory and
# RESTART=true (the lab starts each daemon itself, on the file written):
# the lab tests the doc. tests/machines/test_docs.py fails when a step of
# that script is not run here.

BACKEND2_IP=198.18.${LABNET}.3
SENTINEL_PORT=26379
HA_MASTER_NAME=tandem

ha_on() { [ "${HA_BACKEND:-0}" = 1 ] || [ -f "$DIR/ha-backend" ]; }

# hook: the extra namespace and its address (before the network is made)
ha_nets() {
    ha_on || return 0
    NETS+=("${NS}backend2")
    NET_SPECS+=("backend2:$BACKEND2_IP")
}

# No min-replicas-to-write on either Redis: with one replica it stops every
# write (BLPOP included) whenever the replica is away, and after a failover
# the promoted master has none until the old one is back (measured: ~17 s,
# long enough for the nodes to fail over too; bench/RESULTS-failover.md).
# WAIT per enqueue (redis.wait_replicas) keeps accepted tasks on two servers
# instead.

# The doc's script, one step, for the machine at MY_IP with its files
# under ETC (no Redis password in the lab; MariaDB's is DBPW; HA_SQL the
# mariadb client command for the server the step talks to, HA_REPL_PW the
# replication user's password).
ha_doc_step() { # STEP MY_IP ETC
    ETC=$3 RESTART=true MY_IP=$2 BACKEND_IP=$BACKEND_IP BACKEND2_IP=$BACKEND2_IP \
        NODE_A_IP=$A_IP NODE_B_IP=$B_IP SECRET=${DBPW:-} REDIS_SECRET= \
        MARIADB="${HA_SQL:-mariadb}" REPL_SECRET=${HA_REPL_PW:-} \
        WAIT_REFUSE=${LAB_WAIT_REFUSE:-false} sh "$CHECKOUT/docs/two-servers/backend-ha.sh" "$1"
}

# The replica on backend2, following the master on backend: redis.conf by
# the doc's step, the lab's own settings (address, directory, no snapshots,
# foreground) on the command line. (A killed master comes back through
# redis_start, as the master it was; the Sentinels turn it into a replica:
# the redis-failover drill.)
# ha_redis_replica_start add: the same, its redis.conf written by the
# add-replica script's step instead (the add-replica drill).
ha_redis_replica_start() {
    local i etc=$DIR/backend2/etc
    mkdir -p "$DIR/backend2"
    rm -f "$etc/redis/redis.conf" # a fresh machine's: the step appends
    if [ "${1:-}" = add ]; then
        ha_add_step redis "$etc" || return 1
    else
        ha_doc_step redis "$BACKEND2_IP" "$etc" || return 1
    fi
    start redis-r 1 ${NS}backend2 "$DIR/log/redis-r.log" redis-server "$etc/redis/redis.conf" \
        --bind "$BACKEND2_IP" --port 6379 \
        --protected-mode no --dir "$DIR/backend2" --dbfilename redis.rdb --save "" \
        --appendonly yes --appendfsync "${LAB_REDIS_FSYNC:-everysec}" --daemonize no --logfile ""
    for ((i = 0; i < 100; i++)); do
        [ "$(nsx ${NS}backend2 redis-cli -h $BACKEND2_IP ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    return 1
}

# One Sentinel per place (backend, a, b), each with the file the doc's
# step writes (Sentinel records what it learns there).
ha_sentinel_start() { # WHERE IP
    local where=$1 ip=$2 d=$DIR/sentinel-$1 i
    mkdir -p "$d"
    ha_doc_step sentinel "$ip" "$d" || return 1
    start "sentinel-$where" 0 "${NS}$where" "$DIR/log/sentinel-$where.log" \
        redis-server "$d/redis/sentinel.conf" --sentinel --dir "$d" --daemonize no --logfile ""
    for ((i = 0; i < 100; i++)); do
        [ "$(nsx "${NS}$where" redis-cli -h "$ip" -p $SENTINEL_PORT ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    return 1
}

# hook: after the master answers
ha_redis_up() {
    ha_on || return 0
    touch "$DIR/ha-backend"
    ha_redis_replica_start || fail redis-replica "$DIR/log/redis-r.log" "the replica does not answer on $BACKEND2_IP:6379"
    local spec i
    for spec in backend:$BACKEND_IP a:$A_IP b:$B_IP; do
        ha_sentinel_start "${spec%%:*}" "${spec#*:}" ||
            fail sentinel "$DIR/log/sentinel-${spec%%:*}.log" "Sentinel in ${NS}${spec%%:*} does not answer"
    done
    # a failover can only pick a replica the Sentinels know, and only with
    # the others in view (quorum 2, majority to be elected)
    for ((i = 0; i < 150; i++)); do
        [ "$(rcli_sentinel SENTINEL replicas $HA_MASTER_NAME | grep -c "^$BACKEND2_IP$")" -ge 1 ] &&
            [ "$(rcli_sentinel SENTINEL master $HA_MASTER_NAME | sed -n '/^num-other-sentinels$/{n;p}')" = 2 ] && return 0
        sleep 0.2
    done
    fail sentinel "$DIR/log/sentinel-backend.log" "the Sentinels do not see the replica and each other after 30 s"
}

# Sentinel 1 (backend side), asked from the backend namespace.
rcli_sentinel() { nsx ${NS}backend redis-cli -h "$BACKEND_IP" -p $SENTINEL_PORT "$@" 2>/dev/null; }

# The current master's address per the Sentinels, or the plain backend.
ha_redis_master_ip() {
    if ha_on; then
        local ip
        ip=$(rcli_sentinel SENTINEL get-master-addr-by-name $HA_MASTER_NAME | head -n1)
        echo "${ip:-$BACKEND_IP}"
    else
        echo "$BACKEND_IP"
    fi
}

# MariaDB with a binary log (GTID), so the replica can follow it and either
# can be primary: the doc's step writes the [mariadbd] file, whose lines
# become options here (the lab's mariadbd runs with --no-defaults). Extra
# arguments for mariadb_start, also when a drill restarts a server.
ha_mariadb_args() { # 1 (backend) | 2 (backend2)
    ha_on || { echo --skip-log-bin; return 0; }
    local ip=$BACKEND_IP etc=$DIR/backend/etc
    [ "$1" = 2 ] && ip=$BACKEND2_IP etc=$DIR/backend2/etc
    ha_doc_step mariadb "$ip" "$etc" >/dev/null || return 1
    sed -n 's/^\([a-z_]*\) *= *\(.*\)$/--\1=\2/p' "$etc/mysql/mariadb.conf.d/60-tandem-ha.cnf"
}

# hook: before the primary first starts: the replica's datadir is a copy of
# the freshly installed one (identical, so replication starts at the empty
# GTID; a copy is quicker than a second mariadb-install-db)
ha_mariadb_seed() {
    ha_on || return 0
    [ -d "$DIR/backend2/mysql/mysql" ] && return 0
    mkdir -p "$DIR/backend2"
    cp -a "$DIR/backend/mysql" "$DIR/backend2/mysql" || fail mariadb-seed "" "cannot copy the datadir"
}

# hook: after the primary answers, before the database and user are made
# (they reach the replica by replication). Both datadirs start from
# mariadb-install-db, identical, so replication starts at the empty GTID.
ha_mariadb_up() {
    ha_on || return 0
    local d=$DIR/backend2 ilog=$DIR/log/mariadb-r-install.log
    mkdir -p "$d/tmp"
    # read_only comes from the doc's file for backend2
    mariadb_start_at r 2 ${NS}backend2 "$BACKEND2_IP" "$d" $(ha_mariadb_args 2) ||
        fail mariadb-replica "$DIR/log/mariadb-r.log" "the MariaDB replica does not answer"
    local rpw
    rpw=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (umask 077 && echo "$rpw" >"$DIR/repl.pw") # the switch drill re-points the old primary
    HA_REPL_PW=$rpw HA_SQL="mariadb --no-defaults -S $DIR/backend/mysql.sock -u root"
    ha_doc_step mariadb-replication "$BACKEND_IP" "$DIR/backend/etc" >>"$ilog" 2>&1 ||
        fail mariadb-replication "$ilog" "cannot create the replication user"
    HA_SQL="mariadb --no-defaults -S $d/mysql.sock -u root"
    ha_doc_step mariadb-replication "$BACKEND2_IP" "$d/etc" >>"$ilog" 2>&1 ||
        fail mariadb-replication "$ilog" "CHANGE MASTER / START SLAVE failed on the replica"
    HA_SQL="" HA_REPL_PW=""
}

# hook: node_conf's redis and mysql lines (both from the doc's step in an
# HA lab). wait_refuse false by default here: after a failover the new
# master has no replica until the old one is back, and the lab's drills
# measure the service going on meanwhile (LAB_WAIT_REFUSE=true to see
# enqueues refused instead, as the doc's default does).
ha_conf_redis() {
    if ha_on; then
        ha_doc_step tandem-conf "" "$DIR"
    else
        printf 'redis = { host = "%s"; port = 6379; prefix = "tandem:"; };\n' "$BACKEND_IP"
    fi
}
ha_conf_mysql() {
    ha_on && return 0 # in ha_conf_redis's block
    printf 'mysql = { host = "%s"; port = 3306; user = "tandem"; password = "%s"; database = "tandem"; };\n' \
        "$BACKEND_IP" "$DBPW"
}

# The MariaDB primary's socket now: the one whose read_only is off.
ha_mariadb_primary_sock() {
    local s
    ha_on || { echo "$DIR/backend/mysql.sock"; return 0; }
    for s in "$DIR/backend/mysql.sock" "$DIR/backend2/mysql.sock"; do
        [ -S "$s" ] || continue
        [ "$(mariadb --no-defaults -S "$s" -u root -N -B -e 'SELECT @@read_only' 2>/dev/null)" = 0 ] &&
            { echo "$s"; return 0; }
    done
    echo "$DIR/backend/mysql.sock"
}

# hook: `status` of an HA lab, one line per server
ha_status() {
    ha_on || return 0
    local ip role s
    for ip in "$BACKEND_IP" "$BACKEND2_IP"; do
        role=$(ip netns exec ${NS}backend redis-cli -h "$ip" ROLE 2>/dev/null | head -n1)
        echo "redis $ip: ${role:-down}"
    done
    echo "sentinels' master: $(ha_redis_master_ip)"
    for s in "$DIR/backend/mysql.sock" "$DIR/backend2/mysql.sock"; do
        echo "mariadb ${s%/mysql.sock}: read_only=$(mariadb --no-defaults -S "$s" -u root -N -B -e 'SELECT @@read_only' 2>/dev/null || echo down)"
    done
}

# --- adding a replica to a backend in use (the add-replica drill) ------------

# docs/two-servers/backend-add-replica.sh, one step, for the new replica on
# backend2 (files under ETC; HA_SQL / HA_DUMP the mariadb and mariadb-dump
# commands for the server the step talks to; redis-cli from backend2's
# namespace; the dump in DIR).
ha_add_step() { # STEP [ETC]
    ETC=${2:-$DIR/backend2/etc} RESTART=true MY_IP=$BACKEND2_IP BACKEND_IP=$BACKEND_IP \
        BACKEND2_IP=$BACKEND2_IP REDIS_SECRET= PRIMARY_IP=$BACKEND_IP SENTINEL_IP=$BACKEND_IP \
        MARIADB="${HA_SQL:-mariadb}" MARIADB_DUMP="${HA_DUMP:-mariadb-dump}" \
        REDIS_CLI="ip netns exec ${NS}backend2 redis-cli" REPL_SECRET="$(cat "$DIR/repl.pw")" \
        DUMP=$DIR/replica.sql WAIT_S=${HA_ADD_WAIT_S:-90} \
        sh "$CHECKOUT/docs/two-servers/backend-add-replica.sh" "$1"
}

# The replica machine is lost under load (its Redis and MariaDB SIGKILLed,
# its disk wiped), the backend runs on the master alone for a few seconds,
# then a new replica is added by the doc's script while the load goes on:
# Redis follows the master again (full sync), MariaDB loads a consistent
# dump and follows the primary from its GTID. The drill's usual checks say
# whether anything accepted was lost meanwhile; after the load, the new
# MariaDB replica must hold exactly the primary's task records.
fault_add-replica() {
    local d=$DIR/backend2 p f i t0 t_redis="" t_sync="" ilog=$DIR/log/add-replica.log dbpw
    local q=(mariadb --no-defaults -u root -N -B)
    echo "  the replica machine is lost: its Redis and MariaDB SIGKILLed, its disk wiped"
    for f in "$DIR"/pids/*-redis-r.pid "$DIR"/pids/*-mariadb-r.pid; do
        p=$(cat "$f" 2>/dev/null)
        pid_is_ours "$p" && kill -KILL "$p"
        for ((i = 0; i < 100; i++)); do pid_is_ours "$p" || break; sleep 0.05; done
        rm -f "$f"
    done
    rm -rf -- "${d:?}"/*
    sleep "${HA_ADD_ALONE_S:-4}"
    t0=$(now_ms)
    echo "  new replica at $(date -u +%T.%3N): docs/two-servers/backend-add-replica.sh (log $ilog)"
    # Redis: the step's redis.conf, then the lab starts it (a full sync)
    ha_redis_replica_start add >>"$ilog" 2>&1 || { FIG_FAIL="add-replica: step redis / the new Redis does not answer"; return; }
    t_redis=$(($(now_ms) - t0))
    # MariaDB: a fresh datadir (backend.sh's server and its tandem user:
    # not in the primary's binary log, so not logged here either), the
    # doc's step mariadb (binary log, read_only), then dump and load
    mkdir -p "$d/tmp"
    mariadb-install-db --no-defaults --datadir="$d/mysql" --user=root --skip-test-db \
        --auth-root-authentication-method=socket >>"$ilog" 2>&1 || { FIG_FAIL="add-replica: mariadb-install-db failed ($ilog)"; return; }
    mariadb_start_at r 2 ${NS}backend2 "$BACKEND2_IP" "$d" $(ha_mariadb_args 2) ||
        { FIG_FAIL="add-replica: the new MariaDB does not answer"; return; }
    dbpw=$(sed -n 's/^ *password = "\([^"]*\)"; database.*/\1/p' "$DIR/a/tandem.conf" | head -n 1)
    "${q[@]}" -S "$d/mysql.sock" >>"$ilog" 2>&1 <<SQL || { FIG_FAIL="add-replica: cannot create the tandem user"; return; }
SET SESSION sql_log_bin = 0;
CREATE DATABASE IF NOT EXISTS tandem CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'tandem'@'198.18.${LABNET}.%' IDENTIFIED BY '$dbpw';
GRANT ALL PRIVILEGES ON tandem.* TO 'tandem'@'198.18.${LABNET}.%';
SQL
    HA_SQL="mariadb --no-defaults -S $DIR/backend/mysql.sock -u root" \
        HA_DUMP="mariadb-dump --no-defaults -S $DIR/backend/mysql.sock -u root" \
        ha_add_step mariadb-dump >>"$ilog" 2>&1 || { FIG_FAIL="add-replica: step mariadb-dump failed ($ilog)"; return; }
    HA_SQL="mariadb --no-defaults -S $d/mysql.sock -u root" ha_add_step mariadb-load >>"$ilog" 2>&1 ||
        { FIG_FAIL="add-replica: step mariadb-load failed ($ilog)"; return; }
    HA_SQL="mariadb --no-defaults -S $d/mysql.sock -u root" ha_add_step check >>"$ilog" 2>&1 ||
        { FIG_FAIL="add-replica: step check: $(tail -n 1 "$ilog")"; return; }
    t_sync=$(($(now_ms) - t0))
    echo "  new replica in sync after $t_sync ms (Redis answering after $t_redis ms)"
    FIGURES+="add_redis_started_ms=$t_redis"$'\n'"add_in_sync_ms=$t_sync"$'\n'
    AFTER_LOAD=ha_add_compare
    EXPECT_PRIMARY=same EXPECT_EPOCH=same OUTAGE_TARGET_MS=${HA_OUTAGE_TARGET_MS:-3000}
}

# After the load: the primary's task records up to a cutoff 5 s back
# (count and a checksum of the ids), then its GTID position; once the new
# replica has applied up to there it must hold the same. Tried three times:
# a record that ended before the cutoff can still be flushed after it.
ha_add_compare() {
    local q=(mariadb --no-defaults -u root -N -B) prim=$DIR/backend/mysql.sock rep=$DIR/backend2/mysql.sock
    local cut pos try a b sql
    cut=$(($(date +%s) - 5))
    sql="SELECT COUNT(*), COALESCE(SUM(CRC32(id)), 0) FROM tandem.task_record WHERE ended_at < FROM_UNIXTIME($cut)"
    for ((try = 0; try < 3; try++)); do
        a=$("${q[@]}" -S "$prim" -e "$sql")
        pos=$("${q[@]}" -S "$prim" -e 'SELECT @@gtid_binlog_pos')
        [ "$("${q[@]}" -S "$rep" -e "SELECT MASTER_GTID_WAIT('$pos', 30)")" = 0 ] || pos=""
        b=$("${q[@]}" -S "$rep" -e "$sql")
        [ -n "$pos" ] && [ -n "$a" ] && [ "$a" = "$b" ] && break
        sleep 2
    done
    echo "  task records before $(date -u -d @"$cut" +%T): primary '${a//$'\t'/ }', new replica '${b//$'\t'/ }' (replica at ${pos:-?})"
    FIGURES+="add_records_primary=${a%%$'\t'*}"$'\n'"add_records_replica=${b%%$'\t'*}"$'\n'
    [ -n "$pos" ] || FIG_FAIL="add-replica: the new MariaDB replica did not reach the primary's GTID within 30 s"
    [ -n "$a" ] && [ "$a" = "$b" ] || FIG_FAIL="add-replica: the new replica's task records differ from the primary's ($b vs $a)"
}
