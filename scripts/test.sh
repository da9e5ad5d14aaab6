#!/usr/bin/env bash
# The whole test suite, with all set-up (toolchain components, the torch venv, pretrained weights,
# the WASM build, Chromium). Idempotent: a second run reuses target/, .venv and installed tools.
#   bash scripts/test.sh             # everything: fmt, clippy, every crate's tests
#   bash scripts/test.sh -p scaling  # extra arguments go to `cargo test` (then only those tests)
# Tests that need ../shared, the fetched weights, Chromium or PostgreSQL are #[ignore = "needs ..."]. This
# script installs all but ../shared, so it runs them (--include-ignored) whenever ../shared is there and
# always under CI=true; otherwise they are reported as skipped, with their reason, in the closing lines.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
LOG_DIR="${CARGO_TARGET_DIR:-target}/test-logs"
mkdir -p "$LOG_DIR"
step() { printf '\n== %s (%s, %ss since start)\n' "$1" "$(date +%T)" "$SECONDS"; }
# A fresh CI machine builds everything once: incremental compilation only costs time there.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

step "toolchain components"
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

# Downloads (pip's torch wheel, Debian packages) run in the background while the CPU compiles the app.
declare -A BG_PIDS=()
bg() { # bg NAME COMMAND...: run a set-up step in the background, its output in $LOG_DIR/NAME.log
  local name=$1; shift
  "$@" >"$LOG_DIR/$name.log" 2>&1 &
  BG_PIDS[$name]=$!
}
wait_bg() { # wait_bg NAME: wait for a background step; on failure show its log and stop
  local name=$1
  [ -n "${BG_PIDS[$name]:-}" ] || return 0
  if ! wait "${BG_PIDS[$name]}"; then
    echo "set-up step '$name' failed; its log ($LOG_DIR/$name.log):" >&2
    cat "$LOG_DIR/$name.log" >&2
    exit 1
  fi
  unset "BG_PIDS[$name]"
  step "$name done (log: $LOG_DIR/$name.log)"
}
step "set-up in the background"
if [ -d trainer ]; then bg torch-venv bash scripts/setup-torch.sh; fi
# One apt job at a time: Chromium for the browser tests, PostgreSQL (the app's tests run on both databases), nginx.
if [ -d app ]; then bg system-packages bash -c 'bash scripts/setup-browser.sh && bash scripts/setup-postgres.sh'; fi

step "formatting"
cargo fmt --all --check

# Clippy runs *inside* the real builds: clippy-driver as the workspace rustc wrapper compiles our crates fully and
# lints them (what `cargo clippy` does in check mode), so the dependency tree is compiled once, not once for
# clippy and again for the tests. The lint levels are the workspace's [workspace.lints] (warnings and
# clippy::all denied), so every build below (WASM, server, tests, benches) fails on a lint.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"

if [ -d app ]; then
  step "WASM and server build of the app (linted)"
  bash scripts/build-app.sh
fi

wait_bg system-packages
if [ -d trainer ]; then
  wait_bg torch-venv
  # shellcheck source=/dev/null
  source scripts/torch-env.sh
  step "pretrained weights for the trainer"
  cargo build -p trainer --bins
  "${CARGO_TARGET_DIR:-target}/debug/jndlab-train" fetch-weights
fi

step "building every target (linted)"
cargo test --workspace --all-targets --no-run

step "tests"
include=()
if [ "${CI:-}" = true ] || [ -f ../shared/reference/mdf/dev_mdf_golden.json ]; then
  include=(--include-ignored)
fi
set +e
# --no-fail-fast: one failing test binary does not stop the others, so the closing line counts every suite.
cargo test --workspace --no-fail-fast "$@" -- "${include[@]}" 2>&1 | tee "$LOG_DIR/cargo-test.log"
status=${PIPESTATUS[0]}
set -e

# One closing line for the whole run, summed over every test binary.
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$LOG_DIR/cargo-test.log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$LOG_DIR/cargo-test.log" | awk '{s+=$1} END {print s+0}')
ignored=$(grep -Eo '[0-9]+ ignored;' "$LOG_DIR/cargo-test.log" | awk '{s+=$1} END {print s+0}')
echo
if [ "$ignored" -gt 0 ]; then
  echo "skipped (test ... ignored, reason):"
  grep -E '^test .* \.\.\. ignored' "$LOG_DIR/cargo-test.log" | sed 's/^/  /' || true
fi
# A test binary that crashed prints no result line: cargo's own list of failed targets names it.
if [ "$status" -ne 0 ]; then
  grep -E '^error: .*target(s)? failed|^    `cargo test' "$LOG_DIR/cargo-test.log" || true
fi
echo "$passed passed, $failed failed, $ignored skipped"
exit "$status"
