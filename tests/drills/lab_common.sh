# Sourced by tests/drills/run_drill.sh and tests/ui/test_console_lab.sh:
# what a test in a lab of its own does around its work (root and tools,
# a fresh lab directory, tearing the lab down however the test ends).
# The sourcing script sets LAB_WHAT first: how its messages start ("drill
# NAME", "console lab"). Sets SRC, TANDEM_BUILD, LAB and, through
# appliance/lab-id.sh (TANDEM_LAB_ID), NS and LABNET.
SRC=${TANDEM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export TANDEM_BUILD=${TANDEM_BUILD:-$SRC/build}
LAB=$SRC/appliance/lab
# shellcheck source=../../appliance/lab-id.sh
. "$SRC/appliance/lab-id.sh"

# A missing part FAILs the test: a skip reads as a pass in CI and hides a
# host that cannot run them. TANDEM_DRILLS_MAY_SKIP=1 (a developer's
# machine without root) turns that into ctest's skip.
lab_missing() {
    if [ -n "${TANDEM_DRILLS_MAY_SKIP:-}" ]; then echo "SKIP $LAB_WHAT: $*"; exit 77; fi
    echo "FAIL $LAB_WHAT: $* (TANDEM_DRILLS_MAY_SKIP=1 skips instead)"
    exit 1
}

# lab_preflight [COMMAND...]: root, the lab's commands and the given ones,
# network namespaces, no other lab up under these names, a built supervisor.
lab_preflight() {
    [ "$(id -u)" = 0 ] || lab_missing "needs root (network namespaces, keepalived)"
    local b n probe=tandem-drill-probe-$$
    for b in ip keepalived redis-server redis-cli mariadbd mariadb curl "$@"; do
        command -v "$b" >/dev/null || lab_missing "$b is not installed"
    done
    ip netns add "$probe" 2>/dev/null || lab_missing "no network namespace support here"
    ip netns del "$probe"
    for n in ${NS}br ${NS}backend ${NS}a ${NS}b ${NS}client; do
        ip netns list | grep -qw "^$n" && { echo "FAIL $LAB_WHAT: namespace $n exists (another lab is up)"; exit 1; }
    done
    [ -x "$TANDEM_BUILD/bin/tandem-supervisor" ] || { echo "FAIL $LAB_WHAT: $TANDEM_BUILD/bin/tandem-supervisor not built"; exit 1; }
}

# lab_dir: DIR, a new lab directory; the lab goes down (and DIR with it,
# unless DRILL_KEEP is set) when the script exits, however it exits.
lab_dir() {
    DIR=$(mktemp -d /tmp/tandem-drill-XXXXXX)
    trap lab_cleanup EXIT
    trap 'exit 1' INT TERM
}
lab_cleanup() {
    timeout 120 "$LAB" down --dir "$DIR" >/dev/null 2>&1
    # the lab's data (MariaDB datadir, logs) goes too, unless asked to keep it
    case "$DIR" in /tmp/tandem-drill-??????) [ -n "${DRILL_KEEP:-}" ] || rm -rf -- "$DIR" ;; esac
    [ -n "${DRILL_KEEP:-}" ] && echo "lab data kept in $DIR (namespaces and processes are gone)"
}

# The supervisors' last log lines, for a failed test's output.
lab_sv_logs() {
    echo "--- supervisor logs (last lines)"
    tail -n 40 "$DIR/log/sv-a.log" "$DIR/log/sv-b.log" | grep -v '^[A-Z][a-z][a-z] [A-Z][a-z][a-z] '
}
