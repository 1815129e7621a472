#!/bin/sh
# docs/two-servers.md, section 4: schema and the first admin key, once, on
# one node, as root. Copy /etc/tandem/admin.key (0600) to the other node.
set -eu
tandemctl db migrate
if [ ! -s /etc/tandem/admin.key ]; then
  umask 077     # the secret is shown only once: keep it in a root-only file
  tandemctl key create admin --bootstrap | sed -n 's/^KEY=//p' >/etc/tandem/admin.key
fi
