#!/usr/bin/env bash
# Enqueue and flush throughput of a commit against this checkout, side by side in one run,
# each on fresh SQLite (release builds; the two measured in turns):
#   ./scripts/bench-compare.sh [COMMIT]     (default f21c73a, before issue 18's refactor)
# 1. Single enqueue over HTTP (wrk -t2 -c16), after a warm-up round each: req/s, the
#    server's CPU per request, p99.
# 2. Bulk enqueue over HTTP: 20 bodies of 1,000 jobs each, one after another: jobs/s.
# 3. The batch loop (examples/bench_batch_loop) against one standalone emulator: 5 flushes of
#    10,000 jobs, then the ingest of their 50,000 results; on SQLite, then on PostgreSQL (a
#    database of its own per round on the local server, dropped after).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench/sides.sh"
BEFORE="${1:-${BEFORE:-f21c73a}}"
export DURATION="${DURATION:-10s}"
install_build_tools
if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
build_sides "$BEFORE" --examples

step "single enqueue over HTTP (wrk -t2 -c16 -d$DURATION), in turns"
start "enq-before" "$BEFORE_BIN"; B_URL=$URL; B_TOKEN=$TOKEN; B_PID=$PID
start "enq-after" "$AFTER_BIN"; A_URL=$URL; A_TOKEN=$TOKEN; A_PID=$PID
enqueue_round "$B_URL" "$B_TOKEN" "$B_PID" >/dev/null; enqueue_round "$A_URL" "$A_TOKEN" "$A_PID" >/dev/null
echo "| round | before req/s | before CPU µs/req | before p99 | after req/s | after CPU µs/req | after p99 |"
echo "|---|---|---|---|---|---|---|"
for r in 1 2 3 4; do
  echo "| $r | $(enqueue_round "$B_URL" "$B_TOKEN" "$B_PID") | $(enqueue_round "$A_URL" "$A_TOKEN" "$A_PID") |"
done

step "bulk enqueue over HTTP: 20 bodies of 1,000 jobs, in turns"
python3 - "$WORK/bulk.json" <<'PY'
import json, sys
jobs = [{"job_type": "risk_report", "payload": {"ticker": f"T{i}", "positions": [{"symbol": "AAPL", "qty": i}]}, "priority": i % 100} for i in range(1000)]
open(sys.argv[1], "w").write(json.dumps({"jobs": jobs}))
PY
# bulk_round URL TOKEN: jobs per second over 20 bodies.
bulk_round() {
  local started ended
  started=$(date +%s.%N)
  for _ in $(seq 20); do
    curl -fs -o /dev/null -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
      --data-binary @"$WORK/bulk.json" "$1/api/v1/batch/enqueue/bulk"
  done
  ended=$(date +%s.%N)
  awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.0f", 20000 / (b - a)}'
}
echo "| round | before jobs/s | after jobs/s |"
echo "|---|---|---|"
for r in 1 2 3; do
  echo "| $r | $(bulk_round "$B_URL" "$B_TOKEN") | $(bulk_round "$A_URL" "$A_TOKEN") |"
done
kill "$B_PID" "$A_PID"

step "the batch loop: 5 flushes of 10,000 jobs, then the ingest of 50,000 results, in turns"
EMULATOR_PORT=$((20000 + RANDOM % 20000))
"$AFTER_BIN" emulator --addr "127.0.0.1:$EMULATOR_PORT" --emulator-delay-secs 0 >"$WORK/emulator.log" 2>&1 & PIDS+=($!)
for _ in $(seq 200); do curl -fs "http://127.0.0.1:$EMULATOR_PORT/_emulator/health" >/dev/null 2>&1 && break; sleep 0.1; done
PG_ADMIN="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# loop_round EXAMPLES NAME [postgres]: "flush s | slowest flush s | ingest lines/s"
loop_round() {
  local url="sqlite://$WORK/$2.db"
  if [[ ${3:-} == postgres ]]; then
    local db="aib_bench_${2//-/_}_$$"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
    url="${PG_ADMIN%/*}/$db"
  fi
  "$1/bench_batch_loop" --database-url "$url" --flushes 5 --jobs-per-flush 10000 \
    --provider anthropic --anthropic-base-url "http://127.0.0.1:$EMULATOR_PORT" --anthropic-api-key bench \
    --anthropic-request-timeout-secs 300 >"$WORK/$2.txt"
  if [[ ${3:-} == postgres ]]; then psql "$PG_ADMIN" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null; fi
  local s; s() { grep -o "$1=[^ ]*" "$WORK/$2.txt" | head -1 | cut -d= -f2; }
  echo "$(s flush_total_s "$2") | $(s flush_slowest_s "$2") | $(s ingest_lines_per_s "$2")"
}
echo "| round | before: 5 flushes (s) | slowest (s) | ingest lines/s | after: 5 flushes (s) | slowest (s) | ingest lines/s |"
echo "|---|---|---|---|---|---|---|"
for r in 1 2; do
  echo "| $r | $(loop_round "$BEFORE_EXAMPLES" "loop-before-$r") | $(loop_round "$AFTER_EXAMPLES" "loop-after-$r") |"
done
echo
echo "| PostgreSQL round | before: 5 flushes (s) | slowest (s) | ingest lines/s | after: 5 flushes (s) | slowest (s) | ingest lines/s |"
echo "|---|---|---|---|---|---|---|"
for r in 1 2; do
  echo "| $r | $(loop_round "$BEFORE_EXAMPLES" "pg-before-$r" postgres) | $(loop_round "$AFTER_EXAMPLES" "pg-after-$r" postgres) |"
done
