#!/usr/bin/env bash
# Builds the jndlab study platform without cargo-leptos (see ../shared/notes/build-offline.md):
#   1. the browser part (wasm32, feature hydrate) -> wasm-bindgen -> $SITE/pkg/app.{js,wasm}
#   2. the CSS -> $SITE/pkg/app.css
#   3. the server binary jndlab-app (feature ssr)
# Idempotent: installs the wasm32 target and wasm-bindgen-cli 0.2.130 (must equal the wasm-bindgen crate) if missing.
# Env: CARGO_TARGET_DIR (default target), PROFILE=dev|release (default dev).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
PROFILE="${PROFILE:-dev}"
SITE="$TARGET_DIR/site"
WBG_VERSION=0.2.130
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "== installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$WBG_VERSION" ]; then
  echo "== installing wasm-bindgen-cli $WBG_VERSION (a few minutes, once)"
  # Without --locked on purpose: its lockfile names a crate version this registry lacks.
  # Without the clippy wrapper scripts/test.sh sets: a tool install is not our code to lint.
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo install wasm-bindgen-cli --version "$WBG_VERSION"
fi

if [ "$PROFILE" = release ]; then PFLAG=(--release); PDIR=release; else PFLAG=(); PDIR=debug; fi

echo "== building the browser code (wasm32, hydrate)"
cargo build -p app --lib --target wasm32-unknown-unknown --no-default-features --features hydrate "${PFLAG[@]}"
mkdir -p "$SITE/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$SITE/pkg" --out-name app \
  "$TARGET_DIR/wasm32-unknown-unknown/$PDIR/app.wasm"
mv -f "$SITE/pkg/app_bg.wasm" "$SITE/pkg/app.wasm"
cp app/style/app.css "$SITE/pkg/app.css"

echo "== building the server (ssr)"
cargo build -p app --bin jndlab-app "${PFLAG[@]}"
echo "== built: $TARGET_DIR/$PDIR/jndlab-app, site in $SITE"
