#!/usr/bin/env bash
# Vagrant node (Debian 12): puts the tandem .deb at /root/tandem.deb for
# docs/two-servers/node-install.sh — the newest from /vagrant/dist if there
# is one, else built here from the checkout.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
deb=$(ls /vagrant/dist/tandem_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$deb" ]; then
  apt-get install -y -q --no-install-recommends build-essential debhelper dpkg-dev fakeroot cmake \
    pkg-config libhiredis-dev libmariadb-dev libmicrohttpd-dev libconfig-dev libjansson-dev \
    python3-dev libsystemd-dev libcmocka-dev libgnutls28-dev git
  DEB_BUILD_OPTIONS=nocheck /vagrant/packaging/deb/build /root/dist
  deb=$(ls /root/dist/tandem_*.deb | sort -V | tail -n 1)
fi
cp "$deb" /root/tandem.deb
echo "node: $(basename "$deb") ready as /root/tandem.deb"
