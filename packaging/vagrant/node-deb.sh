#!/usr/bin/env bash
# Vagrant node-a (Debian 12): installs the tandem .deb, from /vagrant/dist
# if one is there, else built here from the checkout.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
deb=$(ls /vagrant/dist/tandem_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$deb" ]; then
  apt-get install -y -q --no-install-recommends build-essential debhelper dpkg-dev fakeroot cmake \
    pkg-config libhiredis-dev libmariadb-dev libmicrohttpd-dev libconfig-dev libjansson-dev \
    python3-dev libsystemd-dev libcmocka-dev git
  DEB_BUILD_OPTIONS=nocheck /vagrant/packaging/deb/build /root/dist
  deb=$(ls /root/dist/tandem_*.deb | sort -V | tail -n 1)
fi
apt-get install -y -q "$deb" mariadb-client redis-tools
