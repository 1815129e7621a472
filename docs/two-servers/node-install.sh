#!/bin/sh
# docs/two-servers.md, section 2: the package on a Debian 12 node, as root.
#   sh node-install.sh ./tandem_0.1.0_amd64.deb
set -eu
deb=${1:?the tandem .deb to install}
export DEBIAN_FRONTEND=noninteractive
apt-get install -y "$deb"          # pulls in keepalived
# Tandem runs its own keepalived: the distribution's unit stays off.
systemctl disable --now keepalived
