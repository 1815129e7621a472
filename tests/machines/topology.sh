# tests/machines/topology.sh: on machines made by `up --ha` (DIR set), what
# each node's tandemctl says about the backend pair agrees with what the
# backend machines themselves say (issue 13, point 6):
#   - doctor's redis-topo and mysql-topo checks are ok;
#   - status --json: Redis through the Sentinels, its master the one the
#     three Sentinels name (all reachable, agreeing), the other backend an
#     online replica, lag <= 2 s; MariaDB: exactly the writable server is
#     the primary, the other read_only;
#   - the plain status prints those lines.
# Run by tests/machines/run.sh as step "topology" (before and after the
# redis-failover drill, when the master has moved).
set -u
SRC=${TANDEM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
M() { "$SRC/appliance/machines" --dir "$DIR" "$@"; }
fails=0
bad() { echo "  FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "  ok: $*"; }

echo "---- backend topology (doctor, status)"
[ -e "$DIR/ha" ] || { bad "the machines in $DIR were not made by 'up --ha'"; exit 1; }
secret=$(cat "$DIR/secret")
# the truth, from the backend machines: who is master (Redis's own ROLE),
# which MariaDB is writable
master="" replica=""
for ip in 198.19.0.2 198.19.0.3; do
    m=backend; [ $ip = 198.19.0.3 ] && m=backend2
    role=$(M sh $m "REDISCLI_AUTH=$secret redis-cli -h $ip ROLE" 2>/dev/null | head -n 1)
    ro=$(M sh $m "mariadb -N -B -e 'SELECT @@read_only'" 2>/dev/null)
    echo "  tm-$m ($ip): redis ${role:-down}, mariadb read_only=${ro:-down}"
    [ "$role" = master ] && master="$master $ip" || replica="$replica $ip"
    [ "$ro" = 0 ] && writable="${writable:-} $ip"
done
master=${master# } replica=${replica# } writable=${writable# }
[ "$(echo $master | wc -w)" = 1 ] || bad "the backend machines have ${master:-no} Redis master(s), want one"
[ "$(echo ${writable:-} | wc -w)" = 1 ] || bad "writable MariaDB servers: '${writable:-}', want one"

for n in a b; do
    doc=$(M sh $n tandemctl --json doctor 2>/dev/null)
    for c in redis-topo mysql-topo; do
        line=$(echo "$doc" | /usr/bin/python3 -c 'import json, sys
c = {x["check"]: x for x in json.load(sys.stdin)["checks"]}.get(sys.argv[1])
print("%s: %s" % (c["status"], c["message"]) if c else "missing")' $c 2>&1)
        case "$line" in ok:*) ok "node $n doctor $c $line" ;; *) bad "node $n doctor $c: $line" ;; esac
    done
    st=$(M sh $n tandemctl --json status 2>/dev/null)
    why=$(echo "$st" | /usr/bin/python3 -c 'import json, sys
master, replica, writable = sys.argv[1:4]
t = json.load(sys.stdin).get("topology") or {}
r, m = t.get("redis", {}), t.get("mysql", {})
bad = []
if r.get("mode") != "sentinel": bad.append("redis mode %r, want sentinel" % r.get("mode"))
if r.get("master") != master + ":6379": bad.append("redis master %r, want %s:6379" % (r.get("master"), master))
s = r.get("sentinels") or []
if len(s) != 3 or r.get("sentinels_reachable") != 3 or r.get("sentinels_agree") is not True:
    bad.append("sentinels %s (reachable %s, agree %s), want 3 reachable, agreeing" % (s, r.get("sentinels_reachable"), r.get("sentinels_agree")))
if any(x.get("master") != master + ":6379" for x in s): bad.append("a Sentinel names another master: %s" % s)
reps = {x["addr"]: x for x in r.get("replicas") or []}
rr = reps.get(replica + ":6379")
if not rr or rr.get("state") != "online" or rr.get("lag_s", 99) > 2:
    bad.append("replica %s:6379 not online with lag <= 2 s: %s" % (replica, r.get("replicas")))
if m.get("primary") != writable + ":3306" or m.get("writable") != 1:
    bad.append("mariadb primary %r (%s writable), want %s:3306" % (m.get("primary"), m.get("writable"), writable))
for h in m.get("hosts") or []:
    if h.get("error") or h.get("read_only") != (h["addr"] != writable + ":3306"):
        bad.append("mariadb %s: %s" % (h.get("addr"), h))
print("; ".join(bad))' "$master" "$replica" "${writable:-}" 2>&1)
        [ -z "$why" ] && ok "node $n status --json: redis master $master (3 Sentinels agreeing), replica $replica online; mariadb primary ${writable:-?}" ||
            bad "node $n status --json: $why"
    txt=$(M sh $n tandemctl status 2>/dev/null)
    for want in "redis:       master $master:6379, 1 replica(s)" "sentinels:   3 of 3 reachable, agreeing" \
        "mariadb:     primary ${writable:-?}:3306 (1 writable)"; do
        echo "$txt" | grep -qF "$want" || bad "node $n: tandemctl status lacks '$want'"
    done
done
echo "  node a's tandemctl status, backend part:"
M sh a tandemctl status 2>/dev/null | sed -n '/^redis:/,$p' | sed 's/^/    /'
[ $fails = 0 ] && echo "---- backend topology: PASS" || echo "---- backend topology: FAIL ($fails)"
[ $fails = 0 ]
