#!/bin/sh
# docs/two-servers.md, section 5: check and start one node (node-a first), as root.
set -eu
tandemctl doctor
systemctl enable --now tandem
tandemctl status
