#!/usr/bin/env bash
# The console against the two-node lab (root, network namespaces): the
# overview shows node-b primary after a switchover pressed on the page.
# Runs headless Chromium inside the lab's client namespace, talking to the
# VIP only. ctest label drills-extra (not in the default run): about 2-3 min.
# TANDEM_LAB_ID picks the lab (appliance/lab-id.sh). Exit 0 pass, 1 fail, 77 skip.
set -u
SRC=${TANDEM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export TANDEM_BUILD=${TANDEM_BUILD:-$SRC/build}
LAB=$SRC/appliance/lab
. "$SRC/appliance/lab-id.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for b in chromium chromedriver keepalived; do
    command -v "$b" >/dev/null || { echo "SKIP: $b is not installed"; exit 77; }
done
/usr/bin/python3 -c 'import selenium' 2>/dev/null || { echo "SKIP: python3-selenium is not installed"; exit 77; }

DIR=$(mktemp -d /tmp/tandem-uilab-XXXXXX)
cleanup() {
    timeout 120 "$LAB" down --dir "$DIR" >/dev/null 2>&1
    case "$DIR" in /tmp/tandem-uilab-??????) [ -n "${DRILL_KEEP:-}" ] || rm -rf -- "$DIR" ;; esac
}
trap cleanup EXIT
trap 'exit 1' INT TERM

out=$("$LAB" up --dir "$DIR" 2>&1) || { echo "$out" | tail -20; echo "FAIL: lab up"; exit 1; }
URL=$(printf '%s\n' "$out" | sed -n 's/^URL=//p' | head -n1)
KEY=$(printf '%s\n' "$out" | sed -n 's/^KEY=//p' | head -n1)
PW=ui-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')
code=$(ip netns exec "${NS}client" curl -s -o /dev/null -w '%{http_code}' -XPOST "$URL/api/v1/users/do/add" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"data\":{\"username\":\"ops\",\"password\":\"$PW\",\"roles\":[\"admin\"]}}")
[ "$code" = 200 ] || { echo "FAIL: creating the console user answered HTTP $code"; exit 1; }
ip netns exec "${NS}client" env HOME="$DIR" /usr/bin/python3 "$SRC/tests/ui/lab_switchover.py" \
    "$URL" ops "$PW" "$TANDEM_BUILD/ui-screenshots"
