#!/usr/bin/env bash
# Builds (scripts/build-app.sh) and starts the study platform on SQLite with the demo study loaded (assets/demo: real outputs of the demo pipeline).
# Prints the participant URL and the admin login. Extra arguments go to `jndlab-app serve`.
# Env: CARGO_TARGET_DIR (default target), JNDLAB_ADDR (default 127.0.0.1:3000), JNDLAB_DB, JNDLAB_DATA_DIR,
# PROFILE=release|dev (default release: the server participants meet is the optimised one; dev reuses the
# test suite's debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
export PROFILE="${PROFILE:-release}"
bash scripts/build-app.sh
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
if [ "$PROFILE" = release ]; then PDIR=release; else PDIR=debug; fi
exec "$TARGET_DIR/$PDIR/jndlab-app" serve --demo --site-root "$TARGET_DIR/site" "$@"
