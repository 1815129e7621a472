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
LAB_WHAT="drill $NAME"
# shellcheck source=lab_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lab_common.sh"

lab_preflight
if [ "$NAME" = clock-step ]; then
    compgen -G '/usr/lib/*/faketime/libfaketimeMT.so.1' >/dev/null || lab_missing "libfaketime is not installed"
fi
lab_dir

UP=("${UP_OPTS[@]}")
case "$NAME" in
redis-failover | mariadb-switch) UP+=(--ha-backend) ;;
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
[ $rc != 0 ] && lab_sv_logs
[ $rc = 124 ] && echo "FAIL drill $NAME: timed out"
exit $((rc == 0 ? 0 : 1))
