#!/usr/bin/env bash
# Table 1 on this machine: every loss (ours, jndlab-train's trainer-bench) and the official MDF +
# torchvision VGG16 in PyTorch from the same weights (trainer/bench/mdf_official.py), same threads.
#   bash scripts/trainer-bench.sh [THREADS] [ITERS]     -> prints markdown rows and JSON lines
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
THREADS="${1:-2}"
ITERS="${2:-3}"
# shellcheck source=/dev/null
source scripts/torch-env.sh
cargo build -q -p trainer --bin trainer-bench
"${CARGO_TARGET_DIR:-target}/debug/trainer-bench" --threads "$THREADS" --iters "$ITERS"
python trainer/bench/mdf_official.py --threads "$THREADS" --iters "$ITERS"
python trainer/bench/mdf_official.py --threads "$THREADS" --iters "$ITERS" --variant frozen --no-vgg
