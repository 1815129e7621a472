#!/usr/bin/env bash
# The console against the two-node lab (root, network namespaces, real
# supervisors and keepalived): headless Chromium in the lab's client
# namespace, talking to the VIP only, presses "Switch over" (node-b becomes
# primary), then "Maintenance…" on node-b (the VIP goes back to node-a,
# node-b stands out of the pair), then "End maintenance" (node-b rejoins
# as backup); tests/ui/lab_console.py checks each step on the page and on
# the nodes themselves. ctest label drills-extra (not in the default run):
# about 2-3 min. TANDEM_LAB_ID picks the lab (appliance/lab-id.sh).
# Exit 0 pass, 1 fail, 77 skip (TANDEM_DRILLS_MAY_SKIP=1 and a part missing).
set -u
LAB_WHAT="console lab"
# shellcheck source=../drills/lab_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../drills/lab_common.sh"

lab_preflight chromium chromedriver
/usr/bin/python3 -c 'import selenium' 2>/dev/null || lab_missing "python3-selenium is not installed"
lab_dir

out=$(timeout 180 "$LAB" up --dir "$DIR" 2>&1) || { echo "$out" | tail -20; echo "FAIL $LAB_WHAT: lab up"; exit 1; }
URL=$(printf '%s\n' "$out" | sed -n 's/^URL=//p' | head -n1)
KEY=$(printf '%s\n' "$out" | sed -n 's/^KEY=//p' | head -n1)
PW=ui-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')
code=$(ip netns exec "${NS}client" curl -s -o /dev/null -w '%{http_code}' -XPOST "$URL/api/v1/users/do/add" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"data\":{\"username\":\"ops\",\"password\":\"$PW\",\"roles\":[\"admin\"]}}")
[ "$code" = 200 ] || { echo "FAIL $LAB_WHAT: creating the console user answered HTTP $code"; exit 1; }
# the browser lives in the client namespace; the checks on the nodes
# (tandemctl status over each supervisor's socket, where the VIP is) go
# through appliance/lab, which enters the nodes' namespaces itself
ip netns exec "${NS}client" env HOME="$DIR" LAB="$LAB" LAB_DIR="$DIR" NS_PREFIX="$NS" TANDEM_LAB_ID="$LAB_ID" \
    /usr/bin/python3 "$SRC/tests/ui/lab_console.py" "$URL" ops "$PW" "$TANDEM_BUILD/ui-screenshots"
rc=$?
[ $rc != 0 ] && lab_sv_logs
exit $((rc == 0 ? 0 : 1))
