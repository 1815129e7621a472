# Drills on booted machines, sourced by `appliance/machines drill NAME`
# (which provides DIR, CHECKOUT, VIP, PORT, msh, power_cut, power_on,
# wait_booted, leader_pid, vip_holders).
#
# The lab's drill runner is reused as it is (tests/drills/drills.sh:
# client.py's load, the cron-slot and task checks, the report and its
# promises); this file maps its namespaces and backend access onto the
# machines and adds the faults only machines can have.
#
# Names: switchover stop kill power-cut reboot backend-reboot rolling-upgrade;
# on machines made by `up --ha`: redis-failover

# The lab runner names namespaces ${NS}client, ${NS}a...: with the lab's
# default prefix, nsx below maps them onto the machines' tm-* namespaces.
NS=tandem-
# The lab runner's URL and TLS settings (a lab sets them in `up`): plain
# HTTP on the VIP, or HTTPS verified with the test CA of `up --tls`.
tls_urls
. "$CHECKOUT/tests/drills/drills.sh"
DRILL_NAMES="switchover stop kill power-cut reboot backend-reboot rolling-upgrade redis-failover"
HA_DRILLS="redis-failover"
BACKEND_SECRET=$(cat "$DIR/secret")

# The lab runner calls `nsx tandem-client ...` for its client: here that is
# the tm-client namespace. With RETRY_CLIENT=1 the client retries a call
# refused or answered 503 for up to 5 s (tests/machines/retry_client.py):
# what "zero failed calls" means for a client that retries, as real ones do.
nsx() {
    local ns=${1/#tandem-/tm-}
    shift
    if [ "${RETRY_CLIENT:-0}" = 1 ] && [ "${2:-}" = "$CHECKOUT/tests/drills/client.py" ]; then
        set -- "$1" "$CHECKOUT/tests/machines/retry_client.py" "${@:3}"
    fi
    ip netns exec "$ns" "$@"
}
vip_holders() {
    local n out=""
    for n in a b; do
        ip -n "tm-$n" -o -4 addr show dev eth0 2>/dev/null | grep -q " $VIP/" && out="$out $n"
    done
    out=${out# }
    echo "${out:-none}"
}
# Redis from the host's redis-cli through the backend's network (the lab's
# way; one nsenter per call is slow), else inside the backend machine:
# rcli_at HOST PORT ARGS...; rcli: the Redis master (on `up --ha` machines
# the one the Sentinels name now).
if command -v redis-cli >/dev/null; then
    rcli_at() { ip netns exec tm-backend env REDISCLI_AUTH="$BACKEND_SECRET" redis-cli -h "$1" -p "$2" "${@:3}" 2>/dev/null; }
else
    rcli_at() { msh backend env REDISCLI_AUTH="$BACKEND_SECRET" redis-cli -h "$1" -p "$2" "${@:3}" 2>/dev/null; }
fi
rcli() { rcli_at "$(ha_redis_master_ip)" 6379 "$@"; }

# The backend pair of `up --ha` (the lab's names for it, which the lab's
# drill runner asks for): the master per the Sentinel on node a (the one
# on the backend machine goes down with it in a power cut).
ha_on() { [ -e "$DIR/ha" ]; }
SENTINEL_PORT=26379 HA_MASTER_NAME=tandem
ha_redis_master_ip() {
    local ip=""
    ha_on && ip=$(rcli_at "$A_IP" $SENTINEL_PORT SENTINEL get-master-addr-by-name $HA_MASTER_NAME | head -n 1)
    echo "${ip:-$BACKEND_IP}"
}
redis_role_at() { # HOST -> role and link status of that Redis ("slave up")
    local info
    info=$(rcli_at "$1" 6379 INFO replication | tr -d '\r')
    echo "$(echo "$info" | sed -n 's/^role://p') $(echo "$info" | sed -n 's/^master_link_status://p')"
}
old_master_role() { redis_role_at "$1"; } # IP -> "role link" (drills.sh's sentinel_takeover)
backend_machine() { [ "$1" = "$BACKEND2_IP" ] && echo backend2 || echo backend; }
sqlq() { msh backend mariadb -N -B tandem -e "$1"; }
sv_status() { msh "$1" tandemctl --json status 2>/dev/null; }
stack_nodes() {
    local n p c out=""
    for n in a b; do
        for p in $(ns_pids "tm-$n"); do
            c=$(cat "/proc/$p/comm" 2>/dev/null)
            case "$c" in tandem-server | tandem-worker | tandem-beat) out="$out $n"; break ;; esac
        done
    done
    out=${out# }
    echo "${out:-none}"
}

tandem_active() { [ "$(msh "$1" systemctl is-active tandem 2>/dev/null)" = active ]; }
wait_tandem() { # NODE S: tandem.service active (Type=notify: READY=1 sent)
    local i
    for ((i = 0; i < $2 * 5; i++)); do tandem_active "$1" && return 0; sleep 0.2; done
    return 1
}
role_of() { sv_status "$1" | jget role; }

# After a fault that took the primary P0 down and back: it must be running
# again, as BACKUP (nopreempt: no flap back).
check_rejoined() {
    local r
    if ! wait_tandem "$P0" 60; then
        FIG_FAIL="node $P0's tandem.service is not active again"
        return
    fi
    sleep 2
    r=$(role_of "$P0")
    FIGURES+="old_primary_rejoined_as=$r"$'\n'
    [ "${r,,}" = backup ] || FIG_FAIL="node $P0 rejoined as '$r', not BACKUP"
}

fault_switchover() {
    local out
    # machines up --tls: the certificate is renewed under load first (the
    # doc's renewal: node-tls.sh on both nodes), and after the switchover
    # the new primary must serve it and doctor must agree on both nodes
    [ "$TLS" = 1 ] && machines_tls_renew
    out=$(msh "$P0" tandemctl --json switchover --wait 10)
    echo "  tandemctl switchover: $out"
    FIGURES+="switchover_ctl_ms=$(echo "$out" | jget ms)"$'\n'
    [ "$TLS" = 1 ] && AFTER_LOAD=machines_tls_after
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=""
}

# A new certificate from the test CA, installed on both nodes by the doc's
# node-tls.sh (which runs systemctl reload tandem): the VIP must serve it
# within 5 s, with no failover (same holder, same epoch). Also checked: the
# key on the node is root-only and the server that serves it is not root
# and has no capabilities (it got the key from the supervisor).
machines_tls_renew() {
    local srv uid cap kst fp0 e0 i n
    srv=$(for i in $(ns_pids "tm-$P0"); do [ "$(cat "/proc/$i/comm" 2>/dev/null)" = tandem-server ] && echo "$i"; done | head -n 1)
    uid=$(awk '$1 == "Uid:" {print $2}' "/proc/$srv/status" 2>/dev/null)
    cap=$(awk '$1 == "CapEff:" {print $2}' "/proc/$srv/status" 2>/dev/null)
    kst=$(stat -c '%U %a' "$DIR/root-$P0/etc/tandem/tls/vip.key")
    FIGURES+="tls_server_uid=${uid:-?}"$'\n'"tls_key_owner_mode=${kst// /:}"$'\n'
    [ "$kst" = "root 600" ] || FIG_FAIL="the key on node $P0 is '$kst', want root-only (root 600)"
    [ -n "$uid" ] && [ "$uid" != 0 ] && [ "$cap" = 0000000000000000 ] ||
        FIG_FAIL="the server (pid ${srv:-?}) runs with uid ${uid:-?}, capabilities ${cap:-?}: it could read the key itself"
    fp0=$(served_cert) || { FIG_FAIL="the VIP's certificate: $fp0"; return; }
    e0=$(rcli GET tandem:epoch)
    tls_cert 45 || { FIG_FAIL="cannot make a new certificate ($DIR/log/tls.log)"; return; }
    echo "  renewal at $(date -u +%T.%3N): docs/two-servers/node-tls.sh on both nodes (systemctl reload tandem)"
    for n in a b; do tls_node "$n" || FIG_FAIL="node-tls.sh failed on node $n ($DIR/log/setup.log)"; done
    tls_reloaded "$fp0" "$e0"
}

# After the load: the new primary serves the renewed certificate; doctor's
# tls, tls-name and tls-peer checks pass on both nodes (each doctor run
# publishes its fingerprint for the peer's: a, b, then a again is judged).
machines_tls_after() {
    local fp i n runs=0 bad
    for ((i = 0; i < 30; i++)); do
        fp=$(served_cert 2>/dev/null) && break
        sleep 0.1
    done
    [ "$fp" = "$TLS_NEW_FP" ] || FIG_FAIL="after the switchover the VIP serves ${fp:0:16}..., not the renewed ${TLS_NEW_FP:0:16}..."
    for n in a b a; do
        runs=$((runs + 1))
        bad=$(msh "$n" tandemctl --json doctor 2>/dev/null | /usr/bin/python3 -c 'import json, sys
c = {x["check"]: x for x in json.load(sys.stdin)["checks"] if x["check"].startswith("tls")}
print("; ".join("%s %s: %s" % (k, c[k]["status"], c[k]["message"]) if k in c else k + " missing"
                for k in ("tls", "tls-name", "tls-peer") if k not in c or c[k]["status"] != "ok"))' 2>&1)
        [ $runs = 1 ] && continue
        echo "  doctor on node $n: ${bad:-tls, tls-name, tls-peer ok}"
        [ -z "$bad" ] || FIG_FAIL="doctor on node $n: $bad"
    done
}

fault_stop() {
    local t0
    t0=$(now_ms)
    echo "  systemctl stop tandem on node $P0"
    msh "$P0" systemctl stop tandem
    FIGURES+="systemctl_stop_ms=$(($(now_ms) - t0))"$'\n'
    sleep 3
    echo "  systemctl start tandem on node $P0"
    msh "$P0" systemctl start tandem
    check_rejoined
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=""
}

# `systemctl kill -s KILL`: systemd SIGKILLs the supervisor first, then the
# rest of the unit. keepalived mostly still says goodbye: the supervisor's
# death sends it SIGTERM (PDEATHSIG), so it sends a priority-0 advert and
# removes the VIP. One SIGKILLed before it finished leaves the VIP behind;
# the unit's ExecStopPost= (tandem-release-vip) removes it once the unit is
# empty, instead of the restarted supervisor RestartSec=2 later. Either way
# the VIP must be off the dead node within 2 s of systemctl's return.
fault_kill() {
    local t0 out gone=""
    echo "  systemctl kill -s KILL tandem on node $P0 (systemd restarts it: Restart=on-failure)"
    out=$(msh "$P0" systemctl kill -s KILL tandem 2>&1) || echo "  systemctl kill: $out"
    t0=$(now_ms)
    while [ $(($(now_ms) - t0)) -lt 2000 ]; do
        ip -n "tm-$P0" -o -4 addr show 2>/dev/null | grep -q " $VIP/" || { gone=$(($(now_ms) - t0)); break; }
        sleep 0.02
    done
    FIGURES+="vip_left_after_kill_returned_ms=${gone:-none}"$'\n'
    echo "  VIP off node $P0 ${gone:+${gone} ms after systemctl kill returned}${gone:-still there 2 s after systemctl kill returned}"
    [ -n "$gone" ] || FIG_FAIL="node $P0 kept the VIP for more than 2 s after systemctl kill returned (ExecStopPost)"
    sleep 3
    check_rejoined
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=""
}

fault_power-cut() {
    echo "  power cut on node $P0: every process SIGKILLed, link down"
    power_cut "$P0"
    sleep 5
    echo "  power back on node $P0: boot"
    local t0
    t0=$(now_ms)
    power_on "$P0"
    wait_booted "$P0" 120 || FIG_FAIL="node $P0 did not boot again"
    FIGURES+="boot_ms=$(($(now_ms) - t0))"$'\n'
    check_rejoined
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=""
}

fault_reboot() {
    local l0 l i t0
    l0=$(leader_pid "$P0")
    t0=$(now_ms)
    echo "  systemctl reboot on node $P0"
    msh "$P0" systemctl reboot
    for ((i = 0; i < 600; i++)); do
        l=$(leader_pid "$P0") && [ "$l" != "$l0" ] && break
        sleep 0.1
    done
    wait_booted "$P0" 120 || FIG_FAIL="node $P0 did not boot again"
    FIGURES+="reboot_ms=$(($(now_ms) - t0))"$'\n'
    check_rejoined
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=""
}

fault_backend-reboot() {
    local l0 l i t0
    l0=$(leader_pid backend)
    t0=$(now_ms)
    echo "  systemctl reboot on the backend"
    msh backend systemctl reboot
    for ((i = 0; i < 600; i++)); do
        l=$(leader_pid backend) && [ "$l" != "$l0" ] && break
        sleep 0.1
    done
    wait_booted backend 120 || FIG_FAIL="the backend did not boot again"
    FIGURES+="backend_reboot_ms=$(($(now_ms) - t0))"$'\n'
    # Either node may end primary: a primary whose stack stays unhealthy
    # longer than its health grace (10 s) hands over, and a backend reboot
    # takes about that long.
    EXPECT_PRIMARY=any EXPECT_EPOCH=any OUTAGE_TARGET_MS=""
}

# docs/packaging.md, "Upgrades": the backup first, then hand over, then the
# old primary. The package scripts must restart the backup and must not
# restart the primary. Unattended, as a configuration manager would run it:
# tandem.conf is a conffile the operator edited, and dpkg keeps it
# (--force-confold) instead of asking.
APT_UPGRADE=(apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
fault_rolling-upgrade() {
    local b deb pid0 pid1 v out
    b=$(other "$P0")
    deb=/root/$(basename "$NEW_DEB")
    cp "$NEW_DEB" "$DIR/root-a/root/" && cp "$NEW_DEB" "$DIR/root-b/root/"
    echo "  node $b (backup): apt-get install $deb"
    pid0=$(msh "$b" systemctl show -p MainPID --value tandem)
    msh "$b" env DEBIAN_FRONTEND=noninteractive "${APT_UPGRADE[@]}" "$deb" >"$DIR/log/upgrade-$b.log" 2>&1 ||
        { FIG_FAIL="apt-get install on the backup failed (log/upgrade-$b.log)"; }
    pid1=$(msh "$b" systemctl show -p MainPID --value tandem)
    [ "$pid0" != "$pid1" ] || FIG_FAIL="the backup's tandem.service was not restarted by the package"
    wait_tandem "$b" 30 || FIG_FAIL="the backup's tandem.service is not active after the upgrade"
    msh "$b" tandemctl db migrate >>"$DIR/log/upgrade-$b.log" 2>&1 || FIG_FAIL="tandemctl db migrate failed"
    echo "  node $P0 (primary): apt-get install $deb"
    pid0=$(msh "$P0" systemctl show -p MainPID --value tandem)
    msh "$P0" env DEBIAN_FRONTEND=noninteractive "${APT_UPGRADE[@]}" "$deb" >"$DIR/log/upgrade-$P0.log" 2>&1 ||
        { FIG_FAIL="apt-get install on the primary failed (log/upgrade-$P0.log)"; }
    pid1=$(msh "$P0" systemctl show -p MainPID --value tandem)
    [ "$pid0" = "$pid1" ] || FIG_FAIL="the package restarted the primary's tandem.service"
    sleep 2
    out=$(msh "$P0" tandemctl --json switchover --wait 10)
    echo "  node $P0: tandemctl switchover: $out"
    msh "$P0" systemctl restart tandem
    wait_tandem "$P0" 60 || FIG_FAIL="the old primary's tandem.service is not active after its restart"
    for v in a b; do
        FIGURES+="version_$v=$(msh "$v" dpkg-query -W -f '${Version}' tandem)"$'\n'
    done
    EXPECT_PRIMARY=other EXPECT_EPOCH=newer OUTAGE_TARGET_MS=""
}

# SIGKILL the Redis master under load, on `up --ha` machines (the lab's
# redis-failover on real systemd): the Sentinels promote the replica; the
# killed Redis comes back as the master it was (its own AOF, its own
# redis.conf) and the Sentinels must turn it into a replica. systemd would
# restart it 100 ms after the kill (Restart=always), before the Sentinels
# see it down (down-after 2 s): a runtime drop-in holds the restart off for
# the drill, and it is started once the replica is promoted, as a crashed
# machine that boots again would be. Every accepted task was on the
# replica (wait_replicas = 1, wait_refuse = true: the doc's defaults).
fault_redis-failover() {
    local old m t0 dropin=/run/systemd/system/redis-server.service.d
    old=$(ha_redis_master_ip) m=$(backend_machine "$(ha_redis_master_ip)")
    msh "$m" sh -c "mkdir -p $dropin && printf '[Service]\nRestartSec=600\n' >$dropin/tandem-drill.conf && systemctl daemon-reload"
    echo "  SIGKILL the Redis master $old (tm-$m: systemctl kill -s KILL redis-server)"
    t0=$(now_ms)
    msh "$m" systemctl kill -s KILL redis-server
    # restart, not start: a start job waits for the pending auto-restart
    sentinel_takeover "$old" "$t0" \
        msh "$m" sh -c "rm -rf $dropin && systemctl daemon-reload && systemctl restart redis-server"
}

# Seconds of client load per drill: the fault and the machine's return
# must fit in it (the lab's default is 22 s).
drill_load_s() {
    case "$1" in
    power-cut | reboot) echo 40 ;;
    backend-reboot) echo 45 ;;
    rolling-upgrade) echo 50 ;;
    *) echo 25 ;;
    esac
}

machines_drill() {
    local name=$1 rc
    case " $DRILL_NAMES " in *" $name "*) ;; *)
        echo "$PROG: unknown drill '$name' (one of: $DRILL_NAMES)" >&2; return 2 ;;
    esac
    LOAD_S=${DRILL_LOAD_S:-$(drill_load_s "$name")}
    RETRY_CLIENT=${RETRY_CLIENT:-0}
    if [ "$name" = rolling-upgrade ]; then
        # The handover is done by the OLD release's supervisor (the primary
        # is upgraded but not restarted). The previous release is now one
        # with the clean handover (appliance/machines' PREV_COMMIT), so zero
        # failed calls is promised to a plain client, as in the lab.
        # RETRY_CLIENT_UPGRADE=1: the retrying client (an older previous
        # release, e.g. TANDEM_PREV_COMMIT=03079de, drops ~0.7 s of calls).
        RETRY_CLIENT=${RETRY_CLIENT_UPGRADE:-0}
        NEW_DEB=${TANDEM_NEW_DEB:-$(current_deb)} || return 1
        [ "$(msh a dpkg-query -W -f '${Version}' tandem)" != "$(dpkg-deb -f "$NEW_DEB" Version)" ] ||
            { echo "drill rolling-upgrade: node a already runs $NEW_DEB ('up --prev' installs the previous release)" >&2; return 1; }
    fi
    drill_run "$name"
    rc=$?
    if [ "$name" = rolling-upgrade ] && [ -s "$DIR/drill-$name.json" ]; then
        # zero failed calls, for the plain client (or, with
        # RETRY_CLIENT_UPGRADE=1, for one that retries a refused/503 call
        # for up to 5 s)
        /usr/bin/python3 - "$DIR/drill-$name.json" <<'PY' || rc=1
import json, sys
r = json.load(open(sys.argv[1]))
bad = r["sync_failed"] + r["async_refused_during_outage"]
print("  calls that failed: %d sync, %d async" % (r["sync_failed"], r["async_refused_during_outage"]))
if bad:
    print("  BROKEN: the rolling upgrade failed %d calls" % bad)
    sys.exit(1)
PY
    fi
    [ $rc = 0 ] && echo "---- drill $name on machines: PASS" || echo "---- drill $name on machines: FAIL"
    return $rc
}
