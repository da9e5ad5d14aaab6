#!/usr/bin/env bash
# The app's load benchmark (BENCHMARKS.md "app II: load"): the demo study served by `jndlab-app serve` on
# SQLite and on PostgreSQL (a private cluster started here), and a static file from nginx as the ceiling;
# `jndlab-load` runs 50, 200 and 1000 concurrent participants against each. Everything runs on this machine
# and is torn down at the end.   [THINK_MS=1000] bash scripts/load-bench.sh [PARTICIPANTS...]
# THINK_MS: each participant's pause between answers (default 0: back to back, the hardest case).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
bash scripts/setup-postgres.sh >/dev/null
[ -f target/site/pkg/app.wasm ] || bash scripts/build-app.sh
cargo build -p app --bins
BIN="$CARGO_TARGET_DIR/debug"
COUNTS=("${@:-50 200 1000}")
read -r -a COUNTS <<<"${COUNTS[*]}"
ulimit -n 65536 || true
W=$(mktemp -d /tmp/jndlab-load.XXXXXX); chmod 755 "$W"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
AS_PG=(); [ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -d "$W/pg" ] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$W/pg" -m fast stop >/dev/null 2>&1 || true
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
  sleep 1; rm -rf "$W"
}
trap cleanup EXIT
wait_up() { for _ in $(seq 600); do curl -sf "$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server $1 did not start" >&2; exit 1; }

run_app() { # label port extra-args...
  local label=$1 port=$2; shift 2
  RUST_LOG=warn "$BIN/jndlab-app" --data-dir "$W/data-$label" "$@" serve --demo --addr "127.0.0.1:$port" \
    --site-root target/site >"$W/$label.log" 2>&1 &
  PIDS+=($!)
  wait_up "http://127.0.0.1:$port"
}

# SQLite
run_app sqlite 3101 --db "$W/sqlite.db"
for n in "${COUNTS[@]}"; do
  echo "== SQLite, $n participants"
  "$BIN/jndlab-load" --url http://127.0.0.1:3101 --study demo -n "$n" --think-ms "${THINK_MS:-0}" --run "sq$n" --db "$W/sqlite.db"
done

# PostgreSQL (private cluster on loopback)
mkdir -p "$W/pg"; [ "$(id -u)" -eq 0 ] && chown postgres: "$W/pg"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$W/pg" -A trust -U postgres -E UTF8 --locale=C >/dev/null
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg/log" -w \
  -o "-p 3199 -k $W/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
PGURL=postgres://postgres@127.0.0.1:3199/postgres
run_app pg 3102 --database-url "$PGURL"
for n in "${COUNTS[@]}"; do
  echo "== PostgreSQL, $n participants"
  "$BIN/jndlab-load" --url http://127.0.0.1:3102 --study demo -n "$n" --think-ms "${THINK_MS:-0}" --run "pg$n" --database-url "$PGURL"
done

# nginx static file: the ceiling (a file the size of the study page).
mkdir -p "$W/static"
curl -sf "http://127.0.0.1:3101/s/demo?pid=ceiling" >"$W/static/page.html"
cat >"$W/nginx.conf" <<CONF
worker_processes 2;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:3103; root $W/static; keepalive_requests 100000; }
}
CONF
nginx -c "$W/nginx.conf"
wait_static() { for _ in $(seq 100); do curl -sf http://127.0.0.1:3103/page.html >/dev/null && return 0; sleep 0.1; done; }
wait_static
for n in "${COUNTS[@]}"; do
  echo "== nginx static file, $n clients"
  "$BIN/jndlab-load" --url http://127.0.0.1:3103 -n "$n" --static-path /page.html --requests-per-client 12
done
