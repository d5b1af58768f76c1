#!/usr/bin/env bash
# Measures the release build. Results go to stdout; BENCHMARKS.md records them with the command.
#   ./scripts/bench.sh            SQLite: single-job enqueue over HTTP (wrk, 16 connections), list
#                                 and stats latency with 100,000 stored jobs, the dashboard's WASM
#                                 size and time to interactive, then the batch loop (flushes of
#                                 10,000 jobs, the ingest of their 100,000 results) against a
#                                 standalone emulator.
#   ./scripts/bench.sh postgres   PostgreSQL, on a database of its own: single-job enqueue over
#                                 HTTP with one instance and with two, and pg-boss send() on the
#                                 same database as the peer; then list and stats latency with
#                                 1,000,000 stored jobs.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ENGINE="${1:-sqlite}"
DURATION="${DURATION:-20s}"

install_build_tools
if ! command -v wrk >/dev/null; then
  step "installing wrk from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
step "building the release"
cargo leptos build --release >&2
cargo build --release --locked -p server --examples >&2

BIN="$(ai_batch_bin release)"
WORK="$(mktemp -d)"
PORT=$((20000 + RANDOM % 20000))
SEED="$CARGO_TARGET_DIR/release/examples/seed_jobs"

# wrk against each path as an admin or a trader: "who /path" per line.
read_latency() {
  while read -r who path; do
    [[ -z $who ]] && continue
    local token="$ADMIN"; [[ $who == trader ]] && token="$TRADER"
    echo "## $who GET $path: wrk -t1 -c4 -d10s --latency"
    TOKEN="$token" wrk -t1 -c4 -d10s --latency -s scripts/bench/get.lua "$URL$path"
  done
}

if [[ $ENGINE == postgres ]]; then
  step "PostgreSQL: a database of its own"
  PG_ADMIN="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  DBNAME="aib_bench_$(date +%s)_$RANDOM"
  psql "$PG_ADMIN" -qc "CREATE DATABASE $DBNAME"
  export DATABASE_URL="${PG_ADMIN%/*}/$DBNAME" RUST_LOG=warn AI_BATCH_SCHEDULER=false AI_BATCH_DB_MAX_CONNECTIONS=16
  PIDS=()
  trap 'kill "${PIDS[@]}" 2>/dev/null; sleep 1; psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)"; rm -rf "$WORK"' EXIT
  A="127.0.0.1:$PORT"; B="127.0.0.1:$((PORT + 1))"
  AI_BATCH_ADDR="$A" "$BIN" serve >"$WORK/a.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do curl -fs "http://$A/healthz" >/dev/null && break; sleep 0.1; done
  AI_BATCH_ADDR="$B" "$BIN" serve >"$WORK/b.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do curl -fs "http://$B/healthz" >/dev/null && break; sleep 0.1; done
  ADMIN="$("$BIN" token create --user bench-admin --role admin | tail -n 1)"
  TRADER="$("$BIN" token create --user bench-trader --role trader | tail -n 1)"

  echo "## enqueue, one instance: wrk -t2 -c16 -d$DURATION --latency"
  TOKEN="$TRADER" wrk -t2 -c16 -d"$DURATION" --latency -s scripts/bench/enqueue.lua "http://$A/api/v1/batch/enqueue"
  echo "## enqueue, two instances: wrk -t1 -c8 -d$DURATION --latency against each, at once"
  TOKEN="$TRADER" wrk -t1 -c8 -d"$DURATION" --latency -s scripts/bench/enqueue.lua "http://$A/api/v1/batch/enqueue" >"$WORK/wrk-a.txt" &
  WRK_A=$!
  TOKEN="$TRADER" wrk -t1 -c8 -d"$DURATION" --latency -s scripts/bench/enqueue.lua "http://$B/api/v1/batch/enqueue" >"$WORK/wrk-b.txt"
  wait "$WRK_A"
  echo "# instance A"; cat "$WORK/wrk-a.txt"; echo "# instance B"; cat "$WORK/wrk-b.txt"
  kill "${PIDS[1]}"

  step "pg-boss send() on the same database (the peer)"
  if [[ ! -d scripts/bench/pgboss/node_modules/pg-boss ]]; then
    (cd scripts/bench/pgboss && npm ci --no-audit --no-fund >&2)
  fi
  node scripts/bench/pgboss/send.mjs "$DATABASE_URL" "${DURATION%s}" 16

  step "topping the database up to 1,000,000 jobs through the enqueue use case"
  "$SEED" --total 1000000 --owners 10 --concurrency 16
  URL="http://$A"
  read_latency <<'PATHS'
admin  /api/v1/batch/jobs
admin  /api/v1/batch/jobs?status_filter=pending
admin  /api/v1/batch/stats
admin  /api/v1/batch/jobs?q=NVDA
trader /api/v1/batch/jobs
trader /api/v1/batch/stats
PATHS
  exit 0
fi
# The scheduler is off: background flushes would otherwise share the cores with the load.
export DATABASE_URL="sqlite://$WORK/bench.db" AI_BATCH_ADDR="127.0.0.1:$PORT" RUST_LOG=warn AI_BATCH_SCHEDULER=false
URL="http://$AI_BATCH_ADDR"
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -fs "$URL/healthz" >/dev/null && break; sleep 0.1; done

ADMIN="$("$BIN" token create --user bench-admin --role admin | tail -n 1)"
TRADER="$("$BIN" token create --user bench-trader --role trader | tail -n 1)"

echo "## enqueue: wrk -t2 -c16 -d$DURATION --latency (server and wrk share the 2 cores)"
TOKEN="$TRADER" wrk -t2 -c16 -d"$DURATION" --latency -s scripts/bench/enqueue.lua "$URL/api/v1/batch/enqueue"

step "topping the database up to 100,000 jobs through the enqueue use case"
"$SEED" --total 100000 --owners 10
read_latency <<'PATHS'
admin  /api/v1/batch/jobs
admin  /api/v1/batch/jobs?limit=1000
admin  /api/v1/batch/jobs?status_filter=cancelled
admin  /api/v1/batch/stats
trader /api/v1/batch/jobs
trader /api/v1/batch/stats
PATHS

echo "## dashboard: release WASM size, and the jobs page's time to interactive (admin, 100,000 jobs stored)"
WASM="$ROOT/target/site/pkg/ai-batch.wasm"
echo "ai-batch.wasm: $(stat -c %s "$WASM") bytes raw, $(gzip -9 -c "$WASM" | wc -c) bytes gzip -9"
node end2end/bench/tti.mjs "$URL" "$ADMIN" 15

step "the batch loop: 10 flushes of 10,000 jobs, then the ingest of 100,000 results"
kill $SERVER 2>/dev/null || true
EMULATOR_PORT=$((20000 + RANDOM % 20000))
"$BIN" emulator --addr "127.0.0.1:$EMULATOR_PORT" --emulator-delay-secs 0 >"$WORK/emulator.log" 2>&1 &
EMULATOR=$!
trap 'kill $SERVER $EMULATOR 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$EMULATOR_PORT/_emulator/health" >/dev/null && break; sleep 0.1; done
"$CARGO_TARGET_DIR/release/examples/bench_batch_loop" --database-url "sqlite://$WORK/loop.db" \
  --provider anthropic --anthropic-base-url "http://127.0.0.1:$EMULATOR_PORT" --anthropic-api-key bench \
  --anthropic-request-timeout-secs 300
