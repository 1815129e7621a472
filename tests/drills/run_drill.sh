#!/usr/bin/env bash
# One failover drill in a lab of its own: up, drill, down. Used by every
# tests/drills/test_<name>.sh; ctest runs them as root (RESOURCE_LOCK lab).
# Exit 0 pass, 1 a broken promise (or the lab failed), 77 skipped.
# run_drill.sh NAME [--tls]: --tls makes the lab's VIP speak HTTPS (test CA;
# the client verifies), as the switchover drill does in CI.
set -u
NAME=${1:?drill name}
UP_OPTS=()
[ "${2:-}" = --tls ] && UP_OPTS=(--tls)
SRC=${TANDEM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export TANDEM_BUILD=${TANDEM_BUILD:-$SRC/build}
LAB=$SRC/appliance/lab
# shellcheck source=../../appliance/lab-id.sh
. "$SRC/appliance/lab-id.sh"

# A missing part FAILs the drill: a skip reads as a pass in CI and hides a
# host that cannot run them. TANDEM_DRILLS_MAY_SKIP=1 (a developer's
# machine without root) turns that into ctest's skip.
missing() {
    if [ -n "${TANDEM_DRILLS_MAY_SKIP:-}" ]; then echo "SKIP drill $NAME: $*"; exit 77; fi
    echo "FAIL drill $NAME: $* (TANDEM_DRILLS_MAY_SKIP=1 skips instead)"
    exit 1
}
[ "$(id -u)" = 0 ] || missing "needs root (network namespaces, keepalived)"
for b in ip keepalived redis-server redis-cli mariadbd mariadb curl; do
    command -v "$b" >/dev/null || missing "$b is not installed"
done
probe=tandem-drill-probe-$$
ip netns add "$probe" 2>/dev/null || missing "no network namespace support here"
ip netns del "$probe"
for n in ${NS}br ${NS}backend ${NS}a ${NS}b ${NS}client; do
    ip netns list | grep -qw "^$n" && { echo "FAIL drill $NAME: namespace $n exists (another lab is up)"; exit 1; }
done
if [ "$NAME" = clock-step ]; then
    compgen -G '/usr/lib/*/faketime/libfaketimeMT.so.1' >/dev/null || missing "libfaketime is not installed"
fi
[ -x "$TANDEM_BUILD/bin/tandem-supervisor" ] || { echo "FAIL drill $NAME: $TANDEM_BUILD/bin/tandem-supervisor not built"; exit 1; }

DIR=$(mktemp -d /tmp/tandem-drill-XXXXXX)
cleanup() {
    timeout 120 "$LAB" down --dir "$DIR" >/dev/null 2>&1
    # the lab's data (MariaDB datadir, logs) goes too, unless asked to keep it
    case "$DIR" in /tmp/tandem-drill-??????) [ -n "${DRILL_KEEP:-}" ] || rm -rf -- "$DIR" ;; esac
}
trap cleanup EXIT
trap 'exit 1' INT TERM

UP=("${UP_OPTS[@]}")
case "$NAME" in
redis-failover | mariadb-switch | add-replica) UP+=(--ha-backend) ;;
clock-step) UP+=(--faketime) ;; # each node's wall clock under the drill's control
esac
# the partition drill checks the documented default: an enqueue that no
# replica acknowledged is refused, so a write left on a demoted master was
# never accepted
[ "$NAME" = redis-partition ] && UP+=(--ha-backend) && export LAB_WAIT_REFUSE=${LAB_WAIT_REFUSE:-true}
if ! timeout 180 "$LAB" up --dir "$DIR" "${UP[@]}"; then
    echo "FAIL drill $NAME: the lab did not come up"
    exit 1
fi
timeout 300 "$LAB" drill "$NAME" --dir "$DIR"
rc=$?
if [ $rc != 0 ]; then
    echo "--- supervisor logs (last lines)"
    tail -n 40 "$DIR/log/sv-a.log" "$DIR/log/sv-b.log" | grep -v '^[A-Z][a-z][a-z] [A-Z][a-z][a-z] '
fi
[ -n "${DRILL_KEEP:-}" ] && echo "lab data kept in $DIR (namespaces and processes are gone)"
[ $rc = 124 ] && echo "FAIL drill $NAME: timed out"
exit $((rc == 0 ? 0 : 1))
