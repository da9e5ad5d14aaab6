#!/usr/bin/env bash
# Regenerates assets/demo/ (the study `scripts/start.sh` serves) from real trainer outputs: runs the demo
# pipeline (scripts/pipeline.sh configs/demo.toml, resuming a finished or interrupted run) and copies its
# bundle. Deterministic up to libtorch's CPU kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/pipeline.sh configs/demo.toml --resume "$@"
SRC=runs/pipeline-demo/bundle
rm -rf assets/demo.new
cp -r "$SRC" assets/demo.new
cp assets/demo/README.md assets/demo.new/README.md 2>/dev/null || true
rm -rf assets/demo
mv assets/demo.new assets/demo
echo "assets/demo: $(ls assets/demo | wc -l) entries from $SRC"
