#!/usr/bin/env bash
# Vagrant node-b (AlmaLinux/Rocky 9): installs the tandem .rpm (what
# docs/two-servers/node-install.sh does for a .deb), from
# /vagrant/dist if one built for EL9 is there, else built here from the
# checkout with EL9's own rpm-build (hiredis and libcmocka come from EPEL,
# the -devel packages partly from CRB).
set -euo pipefail
rpm=$(ls /vagrant/dist/tandem-*.el9.*.rpm 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$rpm" ]; then
  dnf install -y -q epel-release dnf-plugins-core
  dnf config-manager --set-enabled crb
  dnf install -y -q rpm-build systemd-rpm-macros cmake gcc make pkgconf-pkg-config git \
    hiredis-devel mariadb-connector-c-devel libmicrohttpd-devel libconfig-devel jansson-devel gnutls-devel \
    python3.11-devel systemd-devel libcmocka-devel
  TANDEM_RPM_NOCHECK=1 /vagrant/packaging/rpm/build /root/dist
  rpm=$(ls /root/dist/tandem-*.rpm | sort -V | tail -n 1)
fi
dnf install -y -q "$rpm"
# as docs/two-servers/node-install.sh does on Debian: Tandem runs its own
# keepalived, the distribution's unit stays off
systemctl disable --now keepalived
