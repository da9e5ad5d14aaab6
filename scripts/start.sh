#!/usr/bin/env bash
# The main job: builds and starts the study platform (SQLite, WAL) with the demo study loaded and prints
# the participant and admin URLs. Installs what it needs (wasm32 target, wasm-bindgen-cli) on first run.
# Extra arguments go to `jndlab-app serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ -f app/Cargo.toml ]; then
  exec bash scripts/start-app.sh "$@"
fi
# Without the app: scale the shipped example study.
cargo run --release -q -p scaling --bin jnd-scale -- --comparisons assets/examples/study.csv --bootstrap 500 --plot target/example-jnd.svg "$@"
echo "plot: target/example-jnd.svg" >&2
