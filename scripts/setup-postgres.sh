#!/usr/bin/env bash
# Installs PostgreSQL's server binaries (initdb, pg_ctl, postgres) and nginx from Debian's packages for the
# app's tests and load benchmarks. Idempotent. The tests start their own private cluster on loopback (see
# app/tests/common/pg.rs); nothing here starts a server, and Debian's default cluster is left stopped.
set -euo pipefail
have_pg() { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if have_pg && command -v nginx >/dev/null; then
  echo "PostgreSQL and nginx present: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)"
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update
# policy-rc.d 101: do not start the packaged services during installation.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends postgresql nginx
ls -d /usr/lib/postgresql/*/bin
