# Sourced by appliance/lab and its users: the names and subnet of one lab.
# TANDEM_LAB_ID=N (1-9) gives a lab its own namespaces (tandemN-*), subnet
# (198.18.N.0/24) and default directory, so several labs can run side by
# side on one host (a soak in one, a drill in another). 0 (the default) is
# the lab the docs describe: tandem-*, 198.18.0.0/24, /tmp/tandem-lab.
LAB_ID=${TANDEM_LAB_ID:-0}
if ! [[ "$LAB_ID" =~ ^[0-9]$ ]]; then
    echo "TANDEM_LAB_ID='$LAB_ID': a digit 0-9" >&2
    exit 2
fi
if [ "$LAB_ID" = 0 ]; then NS=tandem- LAB_DIR=/tmp/tandem-lab; else NS=tandem$LAB_ID- LAB_DIR=/tmp/tandem-lab$LAB_ID; fi
LABNET=$LAB_ID
