# Failover drills, sourced by `appliance/lab drill NAME` (which provides DIR,
# BIN, VIP, PORT, nsx, start, pid_is_ours, redis_start, kill_ns_leftovers).
#
# Every drill: a client in tandem-client calls a sync API through the VIP in
# a loop and async APIs every 200 ms, while a per-second cron job runs; the
# fault is injected a few seconds in. The report says what a client saw and
# what the backend recorded, and the drill fails on any broken promise:
#   - an accepted async task that never completed (promise 2)
#   - a cron slot fired twice, or not fired at all within the window (promise 1)
#   - not exactly one node running a stack at the end, or that node not
#     holding the VIP and the newest epoch (promise 3)
#   - the drill's own expectation (who ends primary, epoch moved or not)
#   - an outage longer than the drill's target, any failed call in a
#     planned handover (switchover, stop-primary), nothing accepted at all
#   - the standby not ready to take over again at the end (role backup)
#
# Names: switchover stop-primary power-cut kill-tree kill-keepalived kill-server sigstop
# partition redis-restart redis-kill redis-snapshot mariadb-restart redis-oom
# backend-reboot; in an `up --ha-backend` lab (run_drill.sh makes one):
# redis-failover mariadb-switch redis-partition add-replica (its fault is in
# appliance/lab-ha.sh); in an `up --faketime` lab:
# clock-step

DRILL_NAMES="switchover stop-primary power-cut kill-tree kill-keepalived kill-server sigstop partition redis-restart redis-kill redis-snapshot mariadb-restart redis-oom backend-reboot redis-failover mariadb-switch redis-partition add-replica clock-step"
HA_DRILLS="redis-failover mariadb-switch redis-partition add-replica"
LOAD_S=${DRILL_LOAD_S:-22}   # client load duration
FAULT_AT=${DRILL_FAULT_AT:-5} # s into the load
CRON_ID=cron-drill

# the Redis master and the MariaDB primary (which move in an --ha-backend lab)
rcli() { nsx ${NS}backend redis-cli -h "$(ha_redis_master_ip)" "$@" 2>/dev/null; }
sqlq() { mariadb --no-defaults -S "$(ha_mariadb_primary_sock)" -u root -N -B tandem -e "$1"; }
now_ms() { date +%s%3N; }

# The node (a|b) whose eth0 holds the VIP; "none" or "a b" otherwise.
vip_holders() {
    local n out=""
    for n in a b; do
        ip -n "${NS}$n" -o -4 addr show dev eth0 2>/dev/null | grep -q " $VIP/" && out="$out $n"
    done
    out=${out# }
    echo "${out:-none}"
}

ns_pids() { # NS -> pids of every process in that network namespace
    # (one ip(8) call; a stat(1) per process in /proc took seconds on a
    # loaded host)
    ip netns pids "$1" 2>/dev/null
}

# Nodes running any stack process (tandem-server, -worker, -beat).
stack_nodes() {
    local n p c out=""
    for n in a b; do
        for p in $(ns_pids "${NS}$n"); do
            c=$(cat "/proc/$p/comm" 2>/dev/null)
            case "$c" in tandem-server | tandem-worker | tandem-beat) out="$out $n"; break ;; esac
        done
    done
    out=${out# }
    echo "${out:-none}"
}

tree_pids() { # PID -> PID and all its descendants
    local p=$1 c
    echo "$p"
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}

sv_status() { # NODE -> JSON status from its supervisor
    nsx "${NS}$1" "$BIN/tandemctl" -c "$DIR/$1/tandem.conf" --json status 2>/dev/null
}

jget() { /usr/bin/python3 -c 'import json,sys
d=json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[int(k)] if isinstance(d, list) else d.get(k) if isinstance(d, dict) else None
print("" if d is None else d)' "$1" 2>/dev/null; }

child_pid() { # NODE NAME -> pid of worker|server|beat per the supervisor
    sv_status "$1" | /usr/bin/python3 -c 'import json,sys
d=json.load(sys.stdin)
print(next((c["pid"] for c in d["children"] if c["name"]==sys.argv[1]), 0))' "$2" 2>/dev/null
}

other() { [ "$1" = a ] && echo b || echo a; }

# The lab's URL (https:// for a lab made with --tls): the client verifies
# the server against the lab's CA.
CLIENT_TLS=()
[ "${TLS:-0}" = 1 ] && CLIENT_TLS=(--cacert "$CACERT")

drill_setup() {
    [ -s "$DIR/drill.env" ] && return 0
    local key out
    key=$(head -n1 "$DIR/admin.key")
    out=$(nsx ${NS}client /usr/bin/python3 "$CHECKOUT/tests/drills/client.py" setup \
        --url "$URL" "${CLIENT_TLS[@]}" --key "$key") || { echo "drill setup failed: $out" >&2; return 1; }
    printf '%s\n' "$out" >"$DIR/drill.env.tmp"
    local func
    func=$(sed -n 's/^FUNC_CRON=//p' "$DIR/drill.env.tmp")
    # The cron job goes in by SQL (+ a generation bump), the way an admin API
    # would leave it, so the drills do not depend on the cron API's shape.
    sqlq "INSERT INTO cron_job (id, func_id, title, expr, timezone, kwargs_json, enabled)
          VALUES ('$CRON_ID', '$func', 'drill: every second', '* * * * * *', 'UTC', '{}', 1)
          ON DUPLICATE KEY UPDATE enabled = 1, expr = '* * * * * *'" ||
        { echo "drill setup: cannot create the cron job" >&2; return 1; }
    rcli INCR tandem:gen >/dev/null
    mv "$DIR/drill.env.tmp" "$DIR/drill.env"
}

# --- faults: each sets EXPECT_PRIMARY (a|b|same|other|any), EXPECT_EPOCH
# (same|newer|any) and may add FIGURES (name=value lines). ----------------

served_cert() { # -> SHA-256 of the certificate the VIP serves, verified by the client
    nsx ${NS}client /usr/bin/python3 "$CHECKOUT/tests/drills/client.py" cert --url "$URL" "${CLIENT_TLS[@]}"
}

# A lab made with --tls: the certificate is renewed on both nodes under the
# client's load and the primary's supervisor gets SIGHUP (systemctl reload
# tandem). The supervisor reads the root-only key and hands it to the
# server, which runs as failover.user, over its pipe: the VIP must serve the
# new certificate within 5 s, with no failed call (NO_FAILED) and no
# failover (same VIP holder, same epoch).
tls_reload() {
    local srv uid kst fp0 e0 svpid
    srv=$(child_pid "$P0" server)
    uid=$(awk '$1 == "Uid:" {print $2}' "/proc/$srv/status" 2>/dev/null)
    kst=$(stat -c '%U %a' "$DIR/$P0/tls/vip.key")
    FIGURES+="tls_server_uid=${uid:-?}"$'\n'"tls_key_owner_mode=${kst// /:}"$'\n'
    [ "$kst" = "root 600" ] || FIG_FAIL="the key on node $P0 is '$kst', want root-only (root 600)"
    # the point of the hand-over: a server that could not read the key itself
    # (a --tls lab runs the stack as tandem, or nobody, never as root)
    local cap
    cap=$(awk '$1 == "CapEff:" {print $2}' "/proc/$srv/status" 2>/dev/null)
    [ "${uid:-0}" != 0 ] && [ "$cap" = 0000000000000000 ] ||
        FIG_FAIL="the server (pid $srv) runs with uid ${uid:-?}, capabilities ${cap:-?}: it could read the key itself"
    fp0=$(served_cert) || { FIG_FAIL="the VIP's certificate: $fp0"; return; }
    e0=$(rcli GET tandem:epoch)
    # one new certificate, the same copy on both nodes (as doctor wants)
    tls_issue 45 "$DIR/pki/vip.crt" "$DIR/pki/vip.key" && tls_install ||
        { FIG_FAIL="cannot renew the certificate"; return; }
    svpid=$(cat "$DIR"/pids/*-sv-"$P0".pid)
    echo "  renewed the certificate on both nodes; SIGHUP node $P0's supervisor (pid $svpid), server uid ${uid:-?}"
    echo "  SIGHUP at $(date -u +%T.%3N)"
    kill -HUP "$svpid"
    tls_reloaded "$fp0" "$e0"
}

# tls_reloaded FP0 EPOCH0: a new certificate was handed to the primary P0
# (which served FP0 at EPOCH0): the VIP must serve another one within 5 s,
# and nothing failed over. Sets TLS_NEW_FP (also used by the booted
# machines' drills).
tls_reloaded() {
    local fp0=$1 e0=$2 fp1="" e1 i
    for ((i = 0; i < 50; i++)); do
        fp1=$(served_cert) && [ "$fp1" != "$fp0" ] && break
        sleep 0.1
    done
    e1=$(rcli GET tandem:epoch)
    echo "  served certificate ${fp0:0:16}... -> ${fp1:0:16}... after $((i * 100)) ms; epoch $e0 -> $e1, VIP on $(vip_holders)"
    FIGURES+="tls_reload_ms=$((i * 100))"$'\n'
    [ "$fp1" != "$fp0" ] || FIG_FAIL="the VIP still serves the old certificate 5 s after the reload"
    [ "$e1" = "$e0" ] && [ "$(vip_holders)" = "$P0" ] || FIG_FAIL="the reload caused a failover (epoch $e0 -> $e1, VIP on $(vip_holders))"
    TLS_NEW_FP=$fp1
    sleep 1 # calls over the new certificate before the switchover
}

# After the switchover's load (--tls lab): the new primary serves the
# renewed certificate, and doctor on both nodes finds the pair, the VIP's
# name and the same certificate on the peer.
tls_after() {
    local fp n out bad i
    for ((i = 0; i < 30; i++)); do
        fp=$(served_cert 2>/dev/null) && break
        sleep 0.1
    done
    [ "$fp" = "$TLS_NEW_FP" ] || FIG_FAIL="after the failover the VIP serves ${fp:0:16}..., not the renewed ${TLS_NEW_FP:0:16}..."
    # a, b, a: each doctor publishes its fingerprint and compares it with
    # the other's, so the first one run has no peer (or a stale one) to
    # compare with: b and the second a are judged
    local runs=0
    for n in a b a; do
        runs=$((runs + 1))
        out=$(nsx "${NS}$n" "$BIN/tandemctl" -c "$DIR/$n/tandem.conf" --cacert "$CACERT" --json doctor 2>/dev/null)
        bad=$(printf '%s' "$out" | /usr/bin/python3 -c 'import json,sys
d=json.load(sys.stdin)
c={x["check"]:x for x in d["checks"] if x["check"].startswith("tls")}
print("; ".join("%s %s: %s" % (k, c[k]["status"] if k in c else "missing", c[k]["message"] if k in c else "")
      for k in ("tls","tls-name","tls-peer") if k not in c or c[k]["status"] != "ok"))' 2>&1)
        [ $runs = 1 ] && continue
        echo "  doctor on node $n: ${bad:-tls, tls-name, tls-peer ok}"
        [ -z "$bad" ] || FIG_FAIL="doctor on node $n: $bad"
    done
}

fault_switchover() {
    local t0 out
    [ "$TLS" = 1 ] && tls_reload
    t0=$(now_ms)
    out=$(nsx "${NS}$P0" "$BIN/tandemctl" -c "$DIR/$P0/tandem.conf" --json switchover --wait 10)
    echo "  tandemctl switchover: $out (done at $(date -u +%T.%3N))"
    FIGURES+="switchover_ctl_ms=$(echo "$out" | jget ms)"$'\n'
    # after the load: doctor's checks (Python imports among them) take CPU
    # that would show up as outage on a small machine
    AFTER_LOAD=switchover_after
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=500 NO_FAILED=1
}

# A planned handover's relay (failover/sv_relay.c): the new primary passes
# packets of connections begun on the old one on to it. Its supervisor logs
# how many when it removes the relay; the figure says how many packets
# would otherwise have been reset (0 is a run where no call straddled the
# VIP's move).
relay_figure() {
    local n line
    n=$(other "$P0")
    line=$(grep -h -E 'relay (off|on)|no relay to the old primary' "$DIR/log/sv-$n.log" 2>/dev/null | tail -n1)
    case "$line" in
    *"relay off: "*) FIGURES+="relayed_packets=$(sed -n 's/.*relay off: \([0-9-]*\) packets.*/\1/p' <<<"$line")"$'\n' ;;
    *"no relay"*) FIGURES+="relayed_packets=none (${line##*relay to the old primary })"$'\n' ;;
    *"relay on"*) FIGURES+="relayed_packets=still on"$'\n' ;;
    *) FIGURES+="relayed_packets=none (no relay)"$'\n' ;;
    esac
}

switchover_after() {
    [ "$TLS" = 1 ] && tls_after
    relay_figure
}

# `systemctl stop tandem` on the primary: SIGTERM to its supervisor, which
# hands over first; then started again, as an operator would, so the drill
# can check the standby is ready at the end.
fault_stop-primary() {
    local svpid i order t0
    svpid=$(cat "$DIR"/pids/*-sv-"$P0".pid)
    order=$(basename "$(ls "$DIR"/pids/*-sv-"$P0".pid)" | cut -d- -f1)
    t0=$(now_ms)
    echo "  SIGTERM node $P0's supervisor (pid $svpid), as systemctl stop does"
    kill -TERM "$svpid"
    for ((i = 0; i < 300; i++)); do pid_is_ours "$svpid" || break; sleep 0.05; done
    if pid_is_ours "$svpid"; then
        FIG_FAIL="the supervisor did not exit within 15 s of SIGTERM"
    fi
    FIGURES+="stop_primary_exit_ms=$(($(now_ms) - t0))"$'\n'
    echo "  supervisor exited after $(($(now_ms) - t0)) ms; starting it again"
    start "sv-$P0" "$order" "${NS}$P0" "$DIR/log/sv-$P0.log" "$BIN/tandem-supervisor" -c "$DIR/$P0/tandem.conf"
    AFTER_LOAD=relay_figure
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=500 NO_FAILED=1
}

fault_kill-tree() {
    local svpid pids
    # a --tls lab (CI's kill-tree): the certificate is renewed under load
    # first, and after the failover the new primary must serve it
    [ "$TLS" = 1 ] && tls_reload
    [ "$TLS" = 1 ] && AFTER_LOAD=tls_after
    svpid=$(cat "$DIR"/pids/*-sv-"$P0".pid)
    pids=$(tree_pids "$svpid" | tr '\n' ' ')
    echo "  SIGKILL node $P0's supervisor tree: $pids"
    kill -KILL $pids 2>/dev/null
    # as systemd would (tandem.service RestartSec=2): the supervisor comes
    # back and drops the VIP the killed keepalived left; until then this
    # node still answers ARP for the VIP and RSTs calls that reach it,
    # hence a target above power-cut's
    sleep 2
    local order
    order=$(basename "$(ls "$DIR"/pids/*-sv-"$P0".pid)" | cut -d- -f1)
    kill_ns_leftovers "${NS}$P0"
    start "sv-$P0" "$order" "${NS}$P0" "$DIR/log/sv-$P0.log" "$BIN/tandem-supervisor" -c "$DIR/$P0/tandem.conf"
    echo "  restarted node $P0's supervisor (pid $LAST_PID)"
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=2500
}

# A power cut of the primary: its whole tree dies and its cable is out at
# the same instant (kill-tree leaves the node on the network, still holding
# the VIP until its supervisor is back, which a dead machine does not).
# Back after 4 s: the supervisor first (it drops the stale VIP), then the link.
fault_power-cut() {
    local svpid pids order
    svpid=$(cat "$DIR"/pids/*-sv-"$P0".pid)
    pids=$(tree_pids "$svpid" | tr '\n' ' ')
    echo "  power cut of node $P0: link p-$P0 down, SIGKILL $pids"
    nsx ${NS}br ip link set "p-$P0" down
    kill -KILL $pids 2>/dev/null
    sleep 4
    order=$(basename "$(ls "$DIR"/pids/*-sv-"$P0".pid)" | cut -d- -f1)
    kill_ns_leftovers "${NS}$P0"
    start "sv-$P0" "$order" "${NS}$P0" "$DIR/log/sv-$P0.log" "$BIN/tandem-supervisor" -c "$DIR/$P0/tandem.conf"
    sleep 1
    nsx ${NS}br ip link set "p-$P0" up
    echo "  node $P0 back: supervisor pid $LAST_PID, link up"
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=1500
}

fault_kill-keepalived() {
    local ka kv srv beat t0 t_vip="" t_srv="" t_beat="" t i
    ka=$(cat "$DIR/$P0/run/keepalived.pid") kv=$(cat "$DIR/$P0/run/keepalived-vrrp.pid")
    srv=$(child_pid "$P0" server) beat=$(child_pid "$P0" beat)
    echo "  SIGKILL keepalived on node $P0 (pids $ka $kv); server $srv, beat $beat"
    t0=$(now_ms)
    # the VRRP child first: killed after its parent it would get SIGTERM
    # (keepalived asks for PDEATHSIG) and leave with a priority-0 advert
    kill -KILL "$kv" "$ka"
    for ((i = 0; i < 500; i++)); do
        t=$(now_ms)
        if [ -z "$t_vip" ] && ! ip -n "${NS}$P0" -o -4 addr show dev eth0 | grep -q " $VIP/"; then
            t_vip=$((t - t0))
        fi
        [ -z "$t_beat" ] && ! kill -0 "$beat" 2>/dev/null && t_beat=$((t - t0))
        [ -z "$t_srv" ] && ! kill -0 "$srv" 2>/dev/null && t_srv=$((t - t0))
        [ -n "$t_vip" ] && [ -n "$t_srv" ] && [ -n "$t_beat" ] && break
        sleep 0.01
    done
    echo "  VIP gone from $P0 after ${t_vip:-?} ms; beat gone after ${t_beat:-?} ms, server after ${t_srv:-?} ms"
    FIGURES+="ka_kill_vip_removed_ms=${t_vip:-timeout}"$'\n'"ka_kill_beat_stopped_ms=${t_beat:-timeout}"$'\n'
    FIGURES+="ka_kill_server_stopped_ms=${t_srv:-timeout}"$'\n'
    [ -n "$t_vip" ] && [ -n "$t_srv" ] && [ -n "$t_beat" ] || FIG_FAIL="VIP or stack still there 5 s after keepalived died"
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=""
}

fault_kill-server() {
    local srv new i
    srv=$(child_pid "$P0" server)
    echo "  SIGKILL node $P0's tandem-server (pid $srv)"
    kill -KILL "$srv"
    for ((i = 0; i < 100; i++)); do
        new=$(child_pid "$P0" server)
        [ -n "$new" ] && [ "$new" != 0 ] && [ "$new" != "$srv" ] && break
        sleep 0.1
    done
    echo "  server restarted as pid ${new:-none}"
    FIGURES+="server_restarted_pid=${new:-none}"$'\n'
    EXPECT_PRIMARY=same EXPECT_EPOCH=same OUTAGE_TARGET_MS=""
}

fault_sigstop() {
    local pids
    pids=$(ns_pids "${NS}$P0" | tr '\n' ' ')
    echo "  SIGSTOP every process of node $P0 for 5 s: $pids"
    kill -STOP $pids
    sleep 5
    kill -CONT $pids
    echo "  SIGCONT"
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=""
}

fault_partition() {
    # Drop IP protocol 112 (VRRP) in and out of both nodes with nftables,
    # inside the node namespaces; both nodes then become MASTER. Without nft,
    # stop multicast flooding to both node ports on the lab bridge instead:
    # VRRP adverts are the lab's only multicast (not for --unicast labs).
    local n how
    if command -v nft >/dev/null; then
        how="IP protocol 112 dropped by nftables in ${NS}a and ${NS}b"
        for n in a b; do
            nsx "${NS}$n" nft -f - <<'NFT' || { echo "  FAIL: nft in ${NS}$n"; return 1; }
table inet tandem_drill {
    chain in { type filter hook input priority 0; policy accept; ip protocol vrrp drop; }
    chain out { type filter hook output priority 0; policy accept; ip protocol vrrp drop; }
}
NFT
        done
    else
        how="multicast to p-a and p-b blocked on the bridge"
        nsx ${NS}br bridge link set dev p-a mcast_flood off
        nsx ${NS}br bridge link set dev p-b mcast_flood off
    fi
    echo "  VRRP partition ($how) for 10 s"
    sleep 10
    if command -v nft >/dev/null; then
        for n in a b; do nsx "${NS}$n" nft delete table inet tandem_drill; done
    else
        nsx ${NS}br bridge link set dev p-a mcast_flood on
        nsx ${NS}br bridge link set dev p-b mcast_flood on
    fi
    echo "  healed; stack nodes now: $(stack_nodes)"
    EXPECT_PRIMARY=any EXPECT_EPOCH=any OUTAGE_TARGET_MS=""
}

redis_pid() { cat "$DIR"/pids/1-redis.pid; }

redis_kill_start() { # SIGKILL redis-server and start it again at once
    local rp i
    rp=$(redis_pid)
    kill -KILL "$rp"
    for ((i = 0; i < 100; i++)); do pid_is_ours "$rp" || break; sleep 0.02; done
    redis_start || FIG_FAIL="redis did not come back"
    echo "  redis back as pid $LAST_PID"
}

# SIGKILL under async load: the append-only file (everysec) gives every
# accepted task back; the drill's usual checks say whether it did.
fault_redis-kill() {
    echo "  SIGKILL redis-server (pid $(redis_pid)), appendfsync ${LAB_REDIS_FSYNC:-everysec}"
    redis_kill_start
    EXPECT_PRIMARY=same EXPECT_EPOCH=same OUTAGE_TARGET_MS=3000
}

# Redis comes back from an older snapshot (an operator restoring a backup):
# a switchover first moves the epoch past the snapshot's, then the snapshot
# is restored (the epoch in Redis goes back), then a second switchover. The
# promises that must still hold: the epoch never goes back (the primary
# raises it again; the promotion takes one above every epoch used, from
# failover_event), no cron slot fires twice, and every accepted task runs:
# the tasks accepted after the snapshot are gone from Redis, and the accept
# journal (MariaDB task_accept) gives them back (figure
# tasks_queued_again_from_the_journal, from Pstats:reconcile). So that some
# are surely waiting in Redis when it goes back, the primary's workers are
# stopped (SIGSTOP) for the 2 s before the restore, as busy workers would be.
switchover_on_primary() {
    local p out
    p=$(vip_holders)
    out=$(nsx "${NS}$p" "$BIN/tandemctl" -c "$DIR/$p/tandem.conf" --json switchover --wait 10)
    echo "  tandemctl switchover on $p: $out"
}

fault_redis-snapshot() {
    local rp i e_before p wpids c rq0
    switchover_on_primary
    sleep 1
    p=$(vip_holders) wpids=""
    for i in $(ns_pids "${NS}$p"); do
        c=$(cat "/proc/$i/comm" 2>/dev/null)
        [ "$c" = tandem-worker ] && wpids="$wpids $i"
    done
    echo "  SIGSTOP the workers of node $p for 2 s (tasks wait in Redis):$wpids"
    [ -n "$wpids" ] && kill -STOP $wpids
    sleep 2
    e_before=$(rcli GET tandem:epoch)
    echo "  restoring the snapshot taken at the start (epoch then: $SNAP_EPOCH, now: $e_before)"
    rp=$(redis_pid)
    kill -KILL "$rp"
    for ((i = 0; i < 100; i++)); do pid_is_ours "$rp" || break; sleep 0.02; done
    rm -rf "$DIR/backend/appendonlydir"
    cp "$DIR/backend/snapshot.rdb" "$DIR/backend/redis.rdb"
    redis_start rdb || FIG_FAIL="redis did not come back"
    rq0=$(rcli HGET tandem:stats:reconcile requeued_total) # the snapshot's count
    [ -n "$wpids" ] && kill -CONT $wpids
    echo "  redis back from the snapshot as pid $LAST_PID: epoch $(rcli GET tandem:epoch); workers continued"
    sleep 2
    echo "  epoch 2 s later: $(rcli GET tandem:epoch) (the primary raises it)"
    FIGURES+="epoch_before_restore=$e_before"$'\n'"epoch_in_snapshot=$SNAP_EPOCH"$'\n'
    FIGURES+="epoch_2s_after_restore=$(rcli GET tandem:epoch)"$'\n'
    switchover_on_primary
    sleep 2
    local rq=$(($(rcli HGET tandem:stats:reconcile requeued_total) - ${rq0:-0}))
    FIGURES+="tasks_queued_again_from_the_journal=$rq"$'\n'
    # teeth: the restore must have lost accepted tasks, or nothing was tested
    [ "$rq" -gt 0 ] || FIG_FAIL="the restore lost no accepted task (none queued again from the journal): the drill tested nothing"
    EPOCH_FLOOR=$e_before
    EXPECT_PRIMARY=same EXPECT_EPOCH=newer OUTAGE_TARGET_MS=""
}

fault_redis-restart() {
    local rp i
    rp=$(cat "$DIR"/pids/1-redis.pid)
    echo "  restarting redis-server (pid $rp)"
    kill -TERM "$rp"
    for ((i = 0; i < 100; i++)); do pid_is_ours "$rp" || break; sleep 0.1; done
    redis_start || echo "  redis did not come back!"
    echo "  redis back as pid $LAST_PID"
    EXPECT_PRIMARY=any EXPECT_EPOCH=any OUTAGE_TARGET_MS=""
}

fault_mariadb-restart() {
    local mp i
    mp=$(cat "$DIR"/pids/2-mariadb.pid)
    echo "  restarting mariadbd (pid $mp)"
    kill -TERM "$mp"
    for ((i = 0; i < 300; i++)); do pid_is_ours "$mp" || break; sleep 0.1; done
    mariadb_start || FIG_FAIL="mariadb did not come back"
    echo "  mariadb back as pid $LAST_PID"
    EXPECT_PRIMARY=same EXPECT_EPOCH=same OUTAGE_TARGET_MS=""
}

# The backend machine reboots: Redis and MariaDB go down together (SIGKILL,
# as a power cut) and come back from their files.
fault_backend-reboot() {
    local rp mp i
    rp=$(redis_pid) mp=$(cat "$DIR"/pids/2-mariadb.pid)
    echo "  SIGKILL redis-server ($rp) and mariadbd ($mp), 3 s down, then both start again"
    kill -KILL "$rp" "$mp"
    for ((i = 0; i < 100; i++)); do pid_is_ours "$rp" || pid_is_ours "$mp" || break; sleep 0.05; done
    sleep 3
    redis_start || FIG_FAIL="redis did not come back"
    mariadb_start || FIG_FAIL="mariadb did not come back"
    EXPECT_PRIMARY=any EXPECT_EPOCH=any OUTAGE_TARGET_MS=""
}

# Redis out of memory for 4 s: maxmemory below what it holds, noeviction.
# Enqueues are refused (503) meanwhile; nothing accepted may be lost.
fault_redis-oom() {
    local used
    used=$(rcli INFO memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r')
    echo "  Redis maxmemory $((used / 2)) (half of what it uses) for 4 s, noeviction"
    rcli CONFIG SET maxmemory-policy noeviction >/dev/null
    rcli CONFIG SET maxmemory "$((used / 2))" >/dev/null
    sleep 4
    rcli CONFIG SET maxmemory 0 >/dev/null
    echo "  maxmemory lifted"
    EXPECT_PRIMARY=any EXPECT_EPOCH=any OUTAGE_TARGET_MS=""
}

# --- the clock step (a lab made by `up --faketime`) ------------------------------
#
# One node's wall clock is stepped by 5 s forward and back under load, the
# primary's first (its stack: beat, server, worker), then the standby's, as
# an NTP step or an operator's `date -s` would: libfaketime in every process
# of the node reads the offset from DIR/<node>/faketime on each call, so all
# of them see the step at once; their monotonic clock is untouched, as a
# real step leaves it. Promises, besides the usual ones: no failover (same
# primary, same epoch), no failed call, no outage over 1 s, the beat keeps
# its lease (no takeover, no duplicate refused), every cron slot fires once:
# the per-second drill job (grace 60 s) catches up the slots a forward step
# jumped over; a second per-second job with a misfire grace of 2 s records
# the ones past its grace as missed (at least one must be, one record per
# slot: reported, not silent). And each supervisor keeps judging its peer
# alive: the age at which it sees the peer's entry stays under 1 s whichever
# clock moved (ages are read on Redis's clock), so neither a promotion guard
# nor a switchover's "is the backup ready" is fooled by the step.
CRON_GRACE_ID=cron-drill-grace2
CLOCK_AGE_MAX_MS=1000

clock_set() { # NODE OFFSET: node's wall clock = real time + OFFSET s, from now on
    printf '%s\n' "$2" >"$DIR/$1/faketime.tmp" && chmod 644 "$DIR/$1/faketime.tmp" &&
        mv -f "$DIR/$1/faketime.tmp" "$DIR/$1/faketime"
}

# Offset (ms) of node N's wall clock from Redis's: its supervisor's last
# entry carries both (ts: the node's clock, rts: Redis's, same write).
sv_clock_offset() {
    rcli HGET tandem:sv "node-$1" | /usr/bin/python3 -c 'import json,sys
d=json.load(sys.stdin); print(d["ts"] - d["rts"])' 2>/dev/null
}

# Offset (ms) of the wall clock of node N's beat (its stack) from Redis's:
# its heartbeat's ts (written every second) against TIME now.
beat_clock_offset() {
    local k
    for k in $(rcli SMEMBERS tandem:hb:beat); do
        case "$k" in *":node-$1:"*) rcli GET "$k"; rcli TIME; break ;; esac
    done | /usr/bin/python3 -c 'import json,sys
l=sys.stdin.read().split("\n")
print(json.loads(l[0])["ts"] - (int(l[1]) * 1000 + int(l[2]) // 1000))' 2>/dev/null
}

peer_age() { # NODE -> the age at which NODE's supervisor sees its peer's entry, ms
    sv_status "$1" | /usr/bin/python3 -c 'import json,sys
print(json.load(sys.stdin)["peers"][0]["age_ms"])' 2>/dev/null
}

# NODE OFFSET SECONDS: step NODE's clock to OFFSET, check it took, and until
# SECONDS after the step (at least once) watch how old the other node's
# supervisor finds NODE's entry.
clock_phase() {
    local n=$1 off=$2 secs=$3 obs want got beat="" age worst=0 end
    obs=$(other "$n")
    want=$((${off#+} * 1000))
    end=$(($(now_ms) + secs * 1000))
    clock_set "$n" "$off"
    echo "  $(date -u +%T.%3N) node $n's wall clock stepped to real time $off s"
    sleep 1 # the supervisor publishes every 200 ms, the beat beats every second
    got=$(sv_clock_offset "$n")
    [ "$n" = "$P0" ] && beat=$(beat_clock_offset "$n")
    if [ -z "$got" ] || [ $((got - want)) -gt 1000 ] || [ $((want - got)) -gt 1000 ]; then
        FIG_FAIL="node $n's supervisor clock is ${got:-?} ms from Redis's, want $want: the step did not take (libfaketime not in effect?)"
    fi
    # the heartbeat read is up to a second (and a busy host's redis-cli) old
    if [ "$n" = "$P0" ] && { [ -z "$beat" ] || [ $((beat - want)) -gt 200 ] || [ $((want - beat)) -gt 2500 ]; }; then
        FIG_FAIL="node $n's beat clock is ${beat:-?} ms from Redis's, want $want: its stack did not see the step"
    fi
    while :; do
        age=$(peer_age "$obs")
        [ -n "$age" ] || age=999999
        [ "${age#-}" -gt "${worst#-}" ] && worst=$age
        [ "$(now_ms)" -lt "$end" ] || break
        sleep 0.2
    done
    [ -n "$beat" ] && beat=" (the beat: $beat ms)"
    echo "    its clock $got ms from Redis's$beat; node $obs saw its entry at most $worst ms old"
    FIGURES+="clock_${n}_${off}_peer_age_max_ms=$worst"$'\n'
    [ "${worst#-}" -lt "$CLOCK_AGE_MAX_MS" ] ||
        FIG_FAIL="with node $n's clock at $off s, node $obs saw its entry $worst ms old (want under $CLOCK_AGE_MAX_MS): it would misjudge its peer"
}

beat_stat() { rcli HGET tandem:stats:beat "$1" || echo 0; }

fault_clock-step() {
    local n sb
    for n in a b; do
        [ -f "$DIR/$n/faketime" ] ||
            { FIG_FAIL="node $n does not run under libfaketime (a lab made without --faketime): no clock could be stepped"; return; }
    done
    sb=$(other "$P0")
    CLK_TK0=$(beat_stat lease_takeovers_total) CLK_DUP0=$(beat_stat duplicate_total)
    CLK_FEN0=$(beat_stat fenced_total)
    sqlq "INSERT INTO cron_job (id, func_id, title, expr, timezone, kwargs_json, enabled, misfire_grace)
          VALUES ('$CRON_GRACE_ID', '$FUNC_CRON', 'drill: every second, grace 2 s', '* * * * * *', 'UTC', '{}', 1, 2)
          ON DUPLICATE KEY UPDATE enabled = 1, misfire_grace = 2" ||
        { FIG_FAIL="cannot create the cron job $CRON_GRACE_ID"; return; }
    rcli INCR tandem:gen >/dev/null
    sleep 2 # loaded; its slots from the next second on
    CLK_FROM=$(($(date +%s) + 1))
    clock_phase "$P0" +5 4
    clock_phase "$P0" +0 4
    clock_phase "$P0" -5 4
    clock_phase "$P0" +0 3
    CLK_TO=$(($(date +%s) - 1))
    clock_phase "$sb" +5 2
    clock_phase "$sb" -5 2
    clock_phase "$sb" +0 2
    CLK_END=$(date +%s)
    AFTER_LOAD=clock_step_after
    EXPECT_PRIMARY=same EXPECT_EPOCH=same OUTAGE_TARGET_MS=1000 NO_FAILED=1
}

# After the load: the grace-2 job's slots while the primary's clock moved,
# and the beat's counters.
clock_step_after() {
    local t_end
    t_end=$(jget t_load_end <"$DIR/drill-clock-step-client.json" | cut -d. -f1)
    [ -n "$t_end" ] && [ "$CLK_END" -le "$t_end" ] ||
        FIG_FAIL="the steps ended at $CLK_END, after the client's load (${t_end:-?}): calls under them were not all measured (DRILL_LOAD_S longer)"
    sleep 3 # task records are flushed to MariaDB in batches
    local rows verdict
    rows=$(sqlq "SELECT UNIX_TIMESTAMP(nominal_at) DIV 1, COUNT(DISTINCT id), GROUP_CONCAT(DISTINCT status)
          FROM task_record WHERE origin = 'cron' AND origin_id = '$CRON_GRACE_ID'
          AND nominal_at >= FROM_UNIXTIME($CLK_FROM) AND nominal_at <= FROM_UNIXTIME($CLK_TO)
          GROUP BY 1")
    sqlq "UPDATE cron_job SET enabled = 0 WHERE id = '$CRON_GRACE_ID'" && rcli INCR tandem:gen >/dev/null
    verdict=$(printf '%s\n' "$rows" | /usr/bin/python3 -c 'import sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
slots = {}
for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    if len(f) >= 2 and f[0]:
        slots[int(f[0])] = (int(f[1]), f[2] if len(f) > 2 else "")
missing = [s for s in range(lo, hi + 1) if s not in slots]
double = [s for s, (k, _) in slots.items() if k > 1]
missed = sorted(s for s, (_, st) in slots.items() if "missed" in st)
print("%d %d %d %d %s" % (hi - lo + 1, len(missing), len(double), len(missed), missed[:10]))' "$CLK_FROM" "$CLK_TO")
    local total miss dbl mis
    read -r total miss dbl mis _ <<<"$verdict"
    echo "  grace-2 job, slots $CLK_FROM..$CLK_TO: $total slots, $miss without a record, $dbl with two, $mis recorded missed (${verdict#* * * * })"
    FIGURES+="grace2_slots=$total"$'\n'"grace2_missed_recorded=$mis"$'\n'
    [ "${miss:-1}" = 0 ] && [ "${dbl:-1}" = 0 ] ||
        FIG_FAIL="grace-2 job: $miss slot(s) without a record, $dbl with two (want one record per slot)"
    [ "${mis:-0}" -gt 0 ] ||
        FIG_FAIL="grace-2 job: no slot recorded missed, yet a 5 s step forward jumped over its 2 s grace"
    local tk du fe
    tk=$(($(beat_stat lease_takeovers_total) - CLK_TK0)) du=$(($(beat_stat duplicate_total) - CLK_DUP0))
    fe=$(($(beat_stat fenced_total) - CLK_FEN0))
    echo "  beat: $tk lease takeover(s), $du duplicate(s) refused, $fe fenced batch(es) during the drill"
    FIGURES+="beat_takeovers=$tk"$'\n'"beat_duplicates=$du"$'\n'"beat_fenced=$fe"$'\n'
    [ "$tk" = 0 ] && [ "$fe" = 0 ] ||
        FIG_FAIL="the beat lost its lease over a clock step ($tk takeover(s), $fe fenced batch(es))"
    [ "$du" = 0 ] || FIG_FAIL="the beat tried $du slot(s) a second time after a clock step"
}

# --- faults of the highly available backend (appliance/lab-ha.sh) -------------

# SIGKILL the Redis master under load. The Sentinels promote the replica
# (down-after 2 s); the old master is started again at once, as the master
# it was (its own AOF, no replicaof: what a restarted machine does), and the
# Sentinels must turn it into a replica of the new master. Every accepted
# task was on the replica (wait_replicas = 1), so none may be lost.
fault_redis-failover() {
    local rp old t0 i
    rp=$(redis_pid) old=$(ha_redis_master_ip)
    echo "  SIGKILL the Redis master $old (pid $rp)"
    t0=$(now_ms)
    kill -KILL "$rp"
    for ((i = 0; i < 100; i++)); do pid_is_ours "$rp" || break; sleep 0.02; done
    sentinel_takeover "$old" "$t0" redis_start
}

# IP -> "role link" of the old master's Redis (the machines override it).
old_master_role() { redis_role_at "${NS}backend" "$1"; }

# The Sentinels' part of a Redis-master kill at T0 (ms), shared by the
# lab's and the machines' redis-failover: another master named within
# 30 s, the old one started again by START_CMD..., then a replica with its
# link up within 60 s; the figures and the drill's expectations.
sentinel_takeover() { # OLD T0 START_CMD...
    local old=$1 t0=$2 new="" t_new="" t_back="" i role_link=""
    shift 2
    for ((i = 0; i < 300; i++)); do
        new=$(ha_redis_master_ip)
        [ -n "$new" ] && [ "$new" != "$old" ] && { t_new=$(($(now_ms) - t0)); break; }
        sleep 0.1
    done
    echo "  Sentinels' master: ${new:-?} after ${t_new:-timeout} ms; starting the old master again"
    "$@" || FIG_FAIL="the old master did not start again"
    for ((i = 0; i < 600; i++)); do
        role_link=$(old_master_role "$old")
        [ "$role_link" = "slave up" ] && { t_back=$(($(now_ms) - t0)); break; }
        sleep 0.1
    done
    echo "  old master $old: '${role_link}' after ${t_back:-timeout} ms"
    FIGURES+="sentinel_promoted_ms=${t_new:-timeout}"$'\n'"old_master_replica_again_ms=${t_back:-timeout}"$'\n'
    [ -n "$t_new" ] || FIG_FAIL="the Sentinels did not promote the replica within 30 s"
    [ -n "$t_back" ] || FIG_FAIL="the old master did not come back as a replica within 60 s"
    EXPECT_PRIMARY=same EXPECT_EPOCH=same OUTAGE_TARGET_MS=${HA_OUTAGE_TARGET_MS:-15000}
}

# The operator switches MariaDB's primary to the replica under load, as
# docs/backend-ha.md says: read_only on the old one, wait until the replica
# has applied all of it, stop replicating there and turn read_only off; then
# the old primary follows the new one. Task records written meanwhile wait
# in Redis; the usual checks (every accepted task finished, every cron slot
# recorded, read from the new primary) say whether any was lost.
fault_mariadb-switch() {
    local old=$DIR/backend/mysql.sock new=$DIR/backend2/mysql.sock t0 pos i t_caught="" t_done
    local q=(mariadb --no-defaults -u root -N -B)
    t0=$(now_ms)
    echo "  read_only on the MariaDB primary ($BACKEND_IP)"
    "${q[@]}" -S "$old" -e 'SET GLOBAL read_only = 1' || FIG_FAIL="cannot set read_only on the primary"
    pos=$("${q[@]}" -S "$old" -e 'SELECT @@gtid_binlog_pos')
    for ((i = 0; i < 300; i++)); do
        [ "$("${q[@]}" -S "$new" -e 'SELECT @@gtid_slave_pos')" = "$pos" ] && { t_caught=$(($(now_ms) - t0)); break; }
        sleep 0.1
    done
    "${q[@]}" -S "$new" -e 'STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0' ||
        FIG_FAIL="cannot promote the replica"
    t_done=$(($(now_ms) - t0))
    echo "  replica at GTID $pos after ${t_caught:-timeout} ms; primary now $BACKEND2_IP (${t_done} ms)"
    "${q[@]}" -S "$old" -e "CHANGE MASTER TO MASTER_HOST='$BACKEND2_IP', MASTER_PORT=3306, MASTER_USER='repl',
        MASTER_PASSWORD='$(cat "$DIR/repl.pw")', MASTER_USE_GTID=current_pos, MASTER_CONNECT_RETRY=1;
        START SLAVE" || echo "  (the old primary could not be made a replica)"
    FIGURES+="replica_caught_up_ms=${t_caught:-timeout}"$'\n'"switch_done_ms=$t_done"$'\n'
    [ -n "$t_caught" ] || FIG_FAIL="the replica did not reach the primary's GTID $pos within 30 s"
    EXPECT_PRIMARY=same EXPECT_EPOCH=same OUTAGE_TARGET_MS=""
}

# A network partition on the lab's bridge (nftables, bridge family, in the
# bridge namespace only): frames between a port of the first group and one
# of the second are dropped both ways; TCP connections across it hang
# (nothing resets them), as with a cut cable between two racks.
part_cut() { # '"p-x", "p-y"' '"p-z", ...': the two groups of bridge ports
    nsx ${NS}br nft -f - <<NFT
table bridge tandem_part {
    chain cut {
        type filter hook forward priority 0; policy accept;
        iifname { $1 } oifname { $2 } drop
        iifname { $2 } oifname { $1 } drop
    }
}
NFT
}
part_heal() { nsx ${NS}br nft delete table bridge tandem_part; }

sentinel_says() { # NODE(a|b|backend) IP -> the master that Sentinel names
    nsx "${NS}$1" redis-cli -h "$2" -p $SENTINEL_PORT SENTINEL get-master-addr-by-name $HA_MASTER_NAME 2>/dev/null | head -n1
}
redis_role_at() { # NS IP -> role, link status of that Redis
    local info
    info=$(nsx "$1" redis-cli -h "$2" INFO replication 2>/dev/null | tr -d '\r')
    echo "$(echo "$info" | sed -n 's/^role://p') $(echo "$info" | sed -n 's/^master_link_status://p')"
}

# Two partitions of the HA backend under load (needs nft):
#  1. The Redis master's machine (with Sentinel 1 and the MariaDB primary),
#     the primary node and the client on one side; the replica's machine and
#     the standby node on the other. The master's side holds two of the
#     three Sentinels, so no promotion may happen: the standby's side (one
#     Sentinel, the replica) must stay passive, and the client goes on.
#  2. The master's machine alone: the Sentinels on the nodes (a majority)
#     promote the replica, the nodes follow through them; when the cable is
#     back the old master must become a replica. Anything a node wrote to
#     the old master before it was demoted has no replica to acknowledge it,
#     so with wait_refuse (the lab runs this drill with it on) it was never
#     accepted; the usual checks (every accepted task completed, no cron slot
#     twice or missing) say whether anything accepted was lost.
fault_redis-partition() {
    command -v nft >/dev/null || { FIG_FAIL="nft (nftables) is not installed: no partition possible"; return; }
    local o t0 i m r1 st1 t_new="" t_back="" role_link old=$BACKEND_IP
    o=$(other "$P0")
    echo "  partition 1 (8 s): {backend: Redis master, Sentinel 1, MariaDB primary; node $P0; client} | {backend2: replica; node $o}"
    echo "  cut at $(date -u +%T.%3N)"
    part_cut '"p-backend", "p-'$P0'", "p-client"' '"p-backend2", "p-'$o'"' || { FIG_FAIL="nft: cannot cut the bridge"; return; }
    sleep 8
    m=$(sentinel_says backend "$BACKEND_IP") r1=$(redis_role_at "${NS}backend2" "$BACKEND2_IP")
    st1=$(stack_nodes)
    part_heal
    echo "  healed: Sentinel 1 names ${m:-?} as master; the replica was '${r1}'; stack on: $st1"
    FIGURES+="p1_master_after=${m:-none}"$'\n'"p1_replica_role_link=${r1// /:}"$'\n'"p1_stack_nodes=${st1// /+}"$'\n'
    [ "$m" = "$BACKEND_IP" ] || FIG_FAIL="partition 1: the master changed to ${m:-none} though its side held two Sentinels"
    for ((i = 0; i < 100; i++)); do
        [ "$(redis_role_at "${NS}backend2" "$BACKEND2_IP")" = "slave up" ] && break
        sleep 0.1
    done
    sleep 2

    echo "  partition 2: {backend: Redis master, Sentinel 1, MariaDB primary} | {everything else}"
    t0=$(now_ms)
    echo "  cut at $(date -u +%T.%3N)"
    part_cut '"p-backend"' '"p-backend2", "p-a", "p-b", "p-client"' || { FIG_FAIL="nft: cannot cut the bridge"; return; }
    for ((i = 0; i < 300; i++)); do
        m=$(sentinel_says a "$A_IP")
        [ "$m" = "$BACKEND2_IP" ] && { t_new=$(($(now_ms) - t0)); break; }
        sleep 0.1
    done
    echo "  Sentinel 2 names ${m:-?} as master after ${t_new:-timeout} ms; 4 s more for the nodes to follow"
    sleep 4
    part_heal
    echo "  healed at $(date -u +%T.%3N) ($(($(now_ms) - t0)) ms after the cut)"
    for ((i = 0; i < 600; i++)); do
        role_link=$(redis_role_at "${NS}backend" "$old")
        [ "$role_link" = "slave up" ] && { t_back=$(($(now_ms) - t0)); break; }
        sleep 0.1
    done
    echo "  old master $old: '${role_link}' after ${t_back:-timeout} ms"
    FIGURES+="p2_sentinels_promoted_ms=${t_new:-timeout}"$'\n'"p2_old_master_replica_again_ms=${t_back:-timeout}"$'\n'
    [ -n "$t_new" ] || FIG_FAIL="partition 2: the Sentinels on the nodes did not promote the replica within 30 s"
    [ -n "$t_back" ] || FIG_FAIL="partition 2: the old master was not a replica with its link up within 60 s of the heal"
    EXPECT_PRIMARY=any EXPECT_EPOCH=any OUTAGE_TARGET_MS=""
}

drill_run() {
    local name=$1
    case " $DRILL_NAMES " in *" $name "*) ;; *)
        echo "$PROG: unknown drill '$name' (one of: $DRILL_NAMES)" >&2; return 2 ;;
    esac
    case " $HA_DRILLS " in *" $name "*)
        ha_on || { echo "$PROG: drill $name needs a lab made by 'up --ha-backend'" >&2; return 2; } ;;
    esac
    drill_setup || return 1
    . "$DIR/drill.env"
    local key; key=$(head -n1 "$DIR/admin.key")
    local out=$DIR/drill-$name
    FIGURES="" FIG_FAIL="" EXPECT_PRIMARY=any EXPECT_EPOCH=any OUTAGE_TARGET_MS=""
    NO_FAILED=0 EPOCH_FLOOR="" AFTER_LOAD=""

    P0=$(vip_holders)
    case "$P0" in a | b) ;; *) echo "drill $name: no single primary before the drill (VIP on: $P0)" >&2; return 1 ;; esac
    local e0; e0=$(rcli GET tandem:epoch)
    if [ "$name" = redis-snapshot ]; then # the "backup" restored later
        rcli SAVE >/dev/null && cp "$DIR/backend/redis.rdb" "$DIR/backend/snapshot.rdb" ||
            { echo "drill $name: cannot take the snapshot" >&2; return 1; }
        SNAP_EPOCH=$e0
    fi
    # the clock step's seven phases (and their checks, ~5 s each on a busy host)
    # need a longer load than the other drills
    [ "$name" = clock-step ] && LOAD_S=${DRILL_LOAD_S:-75}
    # two partitions, each with its settling, need a longer load
    [ "$name" = redis-partition ] && [ -z "${DRILL_LOAD_S:-}" ] && LOAD_S=45
    # the replica's rebuild (a fresh MariaDB, dump, load, sync) under load
    [ "$name" = add-replica ] && [ -z "${DRILL_LOAD_S:-}" ] && LOAD_S=40
    local t0; t0=$(date +%s)
    echo "drill $name: primary node $P0, epoch $e0; client load ${LOAD_S}s, fault at ${FAULT_AT}s"
    nsx ${NS}client /usr/bin/python3 "$CHECKOUT/tests/drills/client.py" load --url "$URL" "${CLIENT_TLS[@]}" \
        --key "$key" --sapi "$SAPI" --aapi "$AAPI" --seconds "$LOAD_S" --out "$out-client.json" \
        --settle "$([ "$name" = redis-snapshot ] && echo 20 || echo 90)" \
        >"$out-client.log" 2>&1 &
    local cpid=$!
    sleep "$FAULT_AT"
    "fault_$name"
    echo "  waiting for the client (load, then every accepted task)"
    wait "$cpid"
    [ -z "$AFTER_LOAD" ] || "$AFTER_LOAD"
    [ -s "$out-client.json" ] || { echo "drill $name: the client failed:"; tail -5 "$out-client.log"; return 1; }
    local t1; t1=$(jget t_load_end <"$out-client.json" | cut -d. -f1)
    sleep 3 # task records are flushed to MariaDB in batches

    # cron slots in the window, from task_record (distinct task ids per slot)
    local lo=$((t0 + 2)) hi=$((t1 - 3))
    sqlq "SELECT UNIX_TIMESTAMP(nominal_at) DIV 1, COUNT(DISTINCT id), GROUP_CONCAT(DISTINCT status)
          FROM task_record WHERE origin = 'cron' AND origin_id = '$CRON_ID'
          AND nominal_at >= FROM_UNIXTIME($lo) AND nominal_at <= FROM_UNIXTIME($hi)
          GROUP BY 1" >"$out-cron.tsv" 2>"$out-cron.err"
    # fired marks: one hash per nominal second, field = the job (INTERNALS)
    local fired_keys=0 slot
    for ((slot = lo; slot <= hi; slot++)); do
        [ "$(rcli HEXISTS "tandem:fired:$slot" "$CRON_ID")" = 1 ] && fired_keys=$((fired_keys + 1))
    done

    local p1 stacks e1 sv_e
    p1=$(vip_holders) stacks=$(stack_nodes) e1=$(rcli GET tandem:epoch)
    case "$p1" in a | b) sv_e=$(sv_status "$p1" | jget epoch) ;; *) sv_e="" ;; esac
    # the standby must be ready to take over again: role backup, not in
    # maintenance, within 15 s (a node coming back from FAULT holds 3-10 s)
    local standby="" sb_role="none" i
    case "$p1" in a | b) standby=$(other "$p1") ;; esac
    if [ -n "$standby" ]; then
        for ((i = 0; i < 75; i++)); do
            sb_role=$(sv_status "$standby" | jget role)
            [ "$sb_role" = backup ] && [ "$(sv_status "$standby" | jget maintenance)" != True ] && break
            sleep 0.2
        done
    fi

    /usr/bin/python3 - "$name" "$out" "$lo" "$hi" "$P0" "$p1" "$stacks" "$e0" "$e1" "$sv_e" \
        "$EXPECT_PRIMARY" "$EXPECT_EPOCH" "${OUTAGE_TARGET_MS:-}" "$FIG_FAIL" "$fired_keys" "$FIGURES" \
        "$NO_FAILED" "$EPOCH_FLOOR" "$standby" "$sb_role" <<'PY'
import json, sys
(name, out, lo, hi, p0, p1, stacks, e0, e1, sv_e, exp_p, exp_e, target, fig_fail, fired_keys,
 figures, no_failed, epoch_floor, standby, sb_role) = sys.argv[1:21]
lo, hi = int(lo), int(hi)
c = json.load(open(out + "-client.json"))
slots = {}
for line in open(out + "-cron.tsv"):
    f = line.rstrip("\n").split("\t")
    if len(f) >= 2:
        slots[int(f[0])] = (int(f[1]), f[2] if len(f) > 2 else "")
missing = [s for s in range(lo, hi + 1) if s not in slots]
double = [s for s, (n, _) in slots.items() if n >= 2]
missed_status = [s for s, (_, st) in slots.items() if "missed" in st]
e0i = int(e0 or 0); e1i = int(e1 or 0)
broken = []
figs = dict(l.split("=", 1) for l in figures.splitlines() if "=" in l)
if c["async_accepted"] == 0 or c["sync_ok"] == 0:
    broken.append("nothing accepted (%d async, %d sync calls answered): the drill measured nothing"
                  % (c["async_accepted"], c["sync_ok"]))
if c["async_lost"] or c["async_failed"]:
    broken.append("accepted async tasks not completed: %d lost, %d failed" % (len(c["async_lost"]), len(c["async_failed"])))
if c["sync_codes"].get("-1"):
    broken.append("%d calls refused the server's certificate (TLS verification)" % c["sync_codes"]["-1"])
if no_failed == "1" and (c["sync_failed"] or c["async_refused"]):
    broken.append("planned handover: %d sync calls failed %s, %d async calls refused (want 0)"
                  % (c["sync_failed"], c["sync_codes"], c["async_refused"]))
if target and c["outage_ms"] > int(target):
    broken.append("client-visible outage %d ms > target %s ms" % (c["outage_ms"], target))
if standby and sb_role != "backup":
    broken.append("standby node %s is not ready to take over (role %s, want backup)" % (standby, sb_role or "?"))
if epoch_floor and e1i <= int(epoch_floor):
    broken.append("epoch went back: %d now, %s was already used before Redis was restored" % (e1i, epoch_floor))
if double:
    broken.append("cron slots fired twice: %s" % double[:10])
if missing or missed_status:
    broken.append("cron slots not fired in the window: %d missing %s, %d recorded missed" % (len(missing), missing[:10], len(missed_status)))
if stacks not in ("a", "b"):
    broken.append("stack running on: %s (want exactly one node)" % stacks)
elif p1 != stacks:
    broken.append("the VIP is on %s but the stack runs on %s" % (p1, stacks))
if sv_e and str(sv_e) != str(e1):
    broken.append("primary's epoch %s is not the newest in Redis (%s)" % (sv_e, e1))
other = "b" if p0 == "a" else "a"
want = {"same": p0, "other": other}.get(exp_p)
if want and p1 != want:
    broken.append("expected node %s to end primary, got %s" % (want, p1))
if exp_e == "same" and e1i != e0i:
    broken.append("epoch moved %d -> %d (expected no failover)" % (e0i, e1i))
if exp_e == "newer" and e1i <= e0i:
    broken.append("epoch did not move (%d)" % e1i)
if fig_fail:
    broken.append(fig_fail)
rep = {"drill": name, "pass": not broken, "broken": broken,
       "primary_before": p0, "primary_after": p1, "epoch_before": e0i, "epoch_after": e1i,
       "outage_ms": c["outage_ms"], "outage_target_ms": int(target) if target else None,
       "sync_calls": c["sync_calls"], "sync_failed": c["sync_failed"], "sync_codes": c["sync_codes"],
       "async_accepted": c["async_accepted"], "async_completed": c["async_completed"],
       "async_refused_during_outage": c["async_refused"],
       "cron_window": [lo, hi], "cron_slots_fired": len(slots), "cron_slots_missing": len(missing),
       "cron_slots_double": len(double), "fired_keys": int(fired_keys), "figures": figs,
       "standby": standby, "standby_role": sb_role}
json.dump(rep, open(out + ".json", "w"), indent=1)
print("---- drill %s: %s" % (name, "PASS" if not broken else "FAIL"))
print("  client-visible outage: %d ms%s (longest gap between successful sync calls)" % (
    c["outage_ms"], " (target <= %s ms: %s)" % (target, "met" if c["outage_ms"] <= int(target) else "NOT met") if target else ""))
print("  sync calls: %d, failed %d %s" % (c["sync_calls"], c["sync_failed"], c["sync_codes"]))
if c.get("sync_failures"):
    import datetime
    ts = lambda t: datetime.datetime.utcfromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]
    print("  failed calls (start-end UTC): " + ", ".join("%s-%s %s" % (ts(a), ts(b), st) for a, b, st in c["sync_failures"][:10]))
print("  async: accepted %d, completed %d, refused during outage %d" % (c["async_accepted"], c["async_completed"], c["async_refused"]))
print("  cron slots %d..%d: fired %d, missing %d, fired twice %d" % (lo, hi, len(slots), len(missing), len(double)))
print("  primary: %s -> %s; epoch %d -> %d; stack running on: %s; standby %s: %s" % (p0, p1, e0i, e1i, stacks, standby or "-", sb_role))
for k, v in figs.items():
    print("  %s: %s" % (k, v))
for b in broken:
    print("  BROKEN: " + b)
sys.exit(0 if not broken else 1)
PY
}
