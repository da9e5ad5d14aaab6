#!/usr/bin/env bash
# Regenerates assets/demo/ (the study `scripts/start.sh` serves) from real trainer outputs: runs the demo
# pipeline (scripts/pipeline.sh configs/demo.toml; by default resuming a finished or interrupted run, or
# with the arguments given, e.g. --force) and copies its bundle. Deterministic up to libtorch's CPU kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then set -- --resume; fi
bash scripts/pipeline.sh configs/demo.toml "$@"
SRC=runs/pipeline-demo/bundle
rm -rf assets/demo.new
cp -r "$SRC" assets/demo.new
cat > assets/demo.new/README.md <<'README'
# Demo bundle: real outputs of the trainer

Made by `bash scripts/make-demo-bundle.sh`, which runs the demo pipeline (`configs/demo.toml`) and copies
its study bundle here. Four scenes: 192x144 tiles of public-domain/CC0 photographs (`assets/images/`,
see its README for sources and licences), with Gaussian noise sigma 25 added. Five conditions: the noisy
input and a small DnCNN (8 layers x 32 channels) trained briefly on CPU with each of four losses: MDF
(discriminators from the pipeline's own shortened Phase 1), L1, L2 and SSIM. The networks are far from
converged (minutes of CPU training), so the images show the method working, not the paper's results.
README
rm -rf assets/demo
mv assets/demo.new assets/demo
echo "assets/demo: $(find assets/demo -type f | wc -l) files from $SRC"
