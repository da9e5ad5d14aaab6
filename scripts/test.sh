#!/usr/bin/env bash
# The whole test suite, with all set-up (toolchain components, the torch venv, pretrained weights,
# the WASM build, Chromium). Idempotent: a second run reuses target/, .venv and installed tools.
#   bash scripts/test.sh             # everything: fmt, clippy, every crate's tests
#   bash scripts/test.sh -p scaling  # extra arguments go to `cargo test` (then only those tests)
# Tests that need ../shared skip when it is absent, except under CI=true where they must run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
LOG_DIR="${CARGO_TARGET_DIR:-target}/test-logs"
mkdir -p "$LOG_DIR"
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

step "toolchain components"
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

if [ -d trainer ]; then
  step "libtorch (PyPI torch in .venv)"
  bash scripts/setup-torch.sh
  # shellcheck source=/dev/null
  source scripts/torch-env.sh
fi

if [ -d app ]; then
  step "PostgreSQL (the app's tests run on SQLite and on PostgreSQL) and nginx"
  bash scripts/setup-postgres.sh
  step "browser and WASM build of the app"
  bash scripts/setup-browser.sh
  bash scripts/build-app.sh
fi

step "formatting"
cargo fmt --all --check

step "clippy (-D warnings)"
cargo clippy --workspace --all-targets -- -D warnings
if [ -d app ]; then
  cargo clippy -p app --lib --target wasm32-unknown-unknown --no-default-features --features hydrate -- -D warnings
fi

if [ -d trainer ]; then
  step "pretrained weights for the trainer"
  cargo build -p trainer --bins
  "${CARGO_TARGET_DIR:-target}/debug/jndlab-train" fetch-weights
fi

step "tests"
set +e
cargo test --workspace "$@" 2>&1 | tee "$LOG_DIR/cargo-test.log"
status=${PIPESTATUS[0]}
set -e

# One closing line for the whole run, summed over every test binary.
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$LOG_DIR/cargo-test.log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$LOG_DIR/cargo-test.log" | awk '{s+=$1} END {print s+0}')
ignored=$(grep -Eo '[0-9]+ ignored;' "$LOG_DIR/cargo-test.log" | awk '{s+=$1} END {print s+0}')
echo
echo "$passed passed, $failed failed, $ignored skipped"
exit "$status"
