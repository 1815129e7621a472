# tests/machines/systemd.sh: systemd drives the packaged supervisor for real.
# Run by tests/machines/run.sh on machines that are up (DIR set):
#   - Type=notify: tandem.service is active only after READY=1, and its
#     StatusText (STATUS=) names the role: MASTER on the VIP's node, BACKUP
#     on the other;
#   - systemd received READY=1, STATUS= and STOPPING=1 (its own debug log,
#     around a restart of the backup);
#   - journalctl -u tandem shows each role change with its cause;
#   - under the unit's hardening keepalived holds the VIP, the worker runs
#     functions and a function can use ctypes.
set -u
SRC=${TANDEM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
M() { "$SRC/appliance/machines" --dir "$DIR" "$@"; }
VIP=198.19.0.100
fails=0
bad() { echo "  FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "  ok: $*"; }

echo "---- systemd checks"
prim="" back=""
for n in a b; do
    ip -n "tm-$n" -o -4 addr show dev eth0 | grep -q " $VIP/" && prim=$n || back=$n
done
[ -n "$prim" ] && [ -n "$back" ] || { bad "VIP on neither or both nodes"; exit 1; }

for n in a b; do
    props=$(M sh $n systemctl show -p Type -p ActiveState -p SubState -p StatusText -p NRestarts tandem)
    want=BACKUP; [ $n = "$prim" ] && want=MASTER
    echo "  node $n: $(echo $props)"
    echo "$props" | grep -qx 'Type=notify' || bad "node $n: tandem.service is not Type=notify"
    echo "$props" | grep -qx 'ActiveState=active' || bad "node $n: tandem.service not active (READY=1 not seen)"
    echo "$props" | grep -qi "^StatusText=$want, epoch [0-9]" && ok "node $n: StatusText says $want" ||
        bad "node $n: StatusText does not say $want"
done

# systemd logs each notification it accepts at debug level
M sh $back systemd-analyze log-level debug
since=$(($(date +%s) - 1))
M sh $back systemctl restart tandem
M sh $back systemd-analyze log-level info
notes=$(M sh $back journalctl --no-pager -o cat --since "@$since" | grep 'Got notification message')
for msg in STOPPING=1 READY=1 STATUS=BACKUP; do
    echo "$notes" | grep -qi "$msg" && ok "node $back: systemd got $msg" || bad "node $back: systemd never got $msg"
done

# role changes and their causes in the journal
for n in a b; do
    want=BACKUP; [ $n = "$prim" ] && want=MASTER
    line=$(M sh $n journalctl -u tandem --no-pager -o cat | grep -iE "transition .* -> $want \(epoch [0-9]+\): ." | tail -n 1)
    [ -n "$line" ] && ok "node $n journal: $line" || bad "node $n: no 'transition ... -> $want (epoch N): cause' in journalctl -u tandem"
done

# hardening: keepalived (VIP, status), the worker and ctypes in a function
ka=$(M sh $prim tandemctl --json status | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["keepalived"]["pid"])' 2>/dev/null)
[ "${ka:-0}" -gt 0 ] && ok "keepalived runs under the unit (pid $ka) and holds the VIP" || bad "no keepalived pid in tandemctl status"
# machines up --tls: tandemctl calls https://VIP (ctl.url) and verifies the
# test CA's certificate
ca=""
[ -s "$DIR/ca.crt" ] && install -m 0644 "$DIR/ca.crt" "$DIR/root-$prim/root/ca.crt" && ca="--cacert /root/ca.crt"
M sh $prim 'cat >/tmp/tm_ctypes.py <<PY
import ctypes

@DFF.API("ctypes under systemd")
def pid():
    return ctypes.CDLL(None).getpid()
PY
tandemctl '"$ca"' script push /tmp/tm_ctypes.py --id tm__ctypes >/dev/null &&
tandemctl '"$ca"' script publish tm__ctypes >/dev/null &&
tandemctl '"$ca"' --json call tm__ctypes.pid' >"$DIR/log/ctypes.out" 2>&1
grep -Eq '[0-9]' "$DIR/log/ctypes.out" && ! grep -qi 'error\|fail' "$DIR/log/ctypes.out" &&
    ok "a function using ctypes ran in the worker: $(tr -d '\n' <"$DIR/log/ctypes.out" | cut -c1-100)" ||
    bad "the ctypes function failed: $(tr -d '\n' <"$DIR/log/ctypes.out" | cut -c1-300)"

echo "  systemd-analyze security tandem: $(M sh $prim systemd-analyze security tandem --no-pager | tail -n 1)"
[ $fails = 0 ] && echo "---- systemd checks: PASS" || echo "---- systemd checks: FAIL ($fails)"
[ $fails = 0 ]
