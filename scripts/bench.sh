#!/usr/bin/env bash
# Measures the release build, everything side by side in one run, and ends with a table of
# the goals (issue 10) and what was measured. BENCHMARKS.md records a run per engine.
#   ./scripts/bench.sh            on SQLite (and the dashboard's WASM size, time to interactive,
#                                 and the server's CPU under an idle open jobs page)
#   ./scripts/bench.sh postgres   on PostgreSQL, a database of its own (and two instances, and
#                                 pg-boss send() on the same database as the peer)
# What it measures, in order: the ceiling (a bare axum handler parsing the same body, built
# here as examples/ceiling); single-job enqueue over HTTP (wrk, 16 connections); bulk enqueue
# of 100,000 jobs; seeding to 1,000,000 jobs through the enqueue use case; list, stats and
# search latency at 1,000,000 jobs; then the batch loop against a standalone emulator
# (ten flushes of 10,000 jobs, the ingest of their 100,000 results).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ENGINE="${1:-sqlite}"
DURATION="${DURATION:-20s}"
JOBS="${JOBS:-1000000}"

install_build_tools
if ! command -v wrk >/dev/null; then
  step "installing wrk from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
step "building the release"
leptos_build --release --precompress >&2
cargo build --release --locked -p server --examples >&2

BIN="$(ai_batch_bin release)"
EXAMPLES="$CARGO_TARGET_DIR/release/examples"
WORK="$(mktemp -d)"
PORT=$((20000 + RANDOM % 20000))
PIDS=()
SUMMARY="$WORK/summary.txt"
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  sleep 1
  if [[ $ENGINE == postgres ]]; then
    for db in ${DBNAME:-} ${LOOPDB:-} ${HARD_ON_DB:-} ${HARD_OFF_DB:-}; do
      psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A database of the engine measured: a SQLite file, or a PostgreSQL database of its own.
new_database() {
  if [[ $ENGINE == postgres ]]; then
    local name="aib_bench_$(date +%s)_$RANDOM"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $name" >&2
    echo "$name"
  else
    echo "$WORK/$1.db"
  fi
}
database_url() {
  if [[ $ENGINE == postgres ]]; then echo "${PG_ADMIN%/*}/$1"; else echo "sqlite://$1"; fi
}

wait_up() { for _ in $(seq 200); do curl -fs "$1" >/dev/null 2>&1 && return; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }

# wrk's requests/s and a latency percentile in ms, from its --latency output.
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
pct() {
  awk -v p="$2%" '$1 == p {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; printf "%.2f", v}' "$1"
}
# One row of the closing table: measure, goal, result, met?
goal() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" >>"$SUMMARY"; }
met() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { ok = (op == "<=") ? (a <= b) : (a >= b); print ok ? "yes" : "**no**" }'; }

measure_get() { # who path label
  local token="$ADMIN"; [[ $1 == trader ]] && token="$TRADER"
  echo "## $1 GET $2: wrk -t1 -c4 -d10s --timeout 10s --latency"
  TOKEN="$token" wrk -t1 -c4 -d10s --timeout 10s --latency -s scripts/bench/get.lua "$URL$2" | tee "$WORK/get.txt"
  READ_P99="$(pct "$WORK/get.txt" 99)"
  local p50; p50="$(pct "$WORK/get.txt" 50)"
  # Requests past wrk's timeout leave no latency behind: report them, never a 0 ms p99.
  local timeouts; timeouts="$(awk '/Socket errors/ {for (i = 1; i <= NF; i++) if ($i == "timeout") print $(i + 1)}' "$WORK/get.txt")"
  if [[ -n $timeouts && $timeouts != 0 ]]; then
    READ_P99=10000; p50="$p50 ($timeouts timed out)"
  fi
  printf '| %s %s | %s | %s | %s |\n' "$1" "$3" "$(rps "$WORK/get.txt")" "$p50" "$READ_P99" >>"$WORK/reads.txt"
}

if [[ $ENGINE == postgres ]]; then
  PG_ADMIN="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
fi
DBNAME="$(new_database main)"
# Rate limits on but far above what wrk sends with one token: the run measures their cost,
# not a refusal. (Their defaults would hold one token to 500 enqueues/s.)
export DATABASE_URL="$(database_url "$DBNAME")" RUST_LOG=warn AI_BATCH_SCHEDULER=false AI_BATCH_DB_MAX_CONNECTIONS=16 \
  AI_BATCH_ENQUEUE_PER_SEC=10000000 AI_BATCH_ENQUEUE_BURST=10000000 AI_BATCH_READS_PER_SEC=10000000 \
  AI_BATCH_READS_BURST=10000000
echo "# bench.sh $ENGINE, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"

step "the ceiling: a bare axum handler parsing the same body"
"$EXAMPLES/ceiling" "127.0.0.1:$((PORT + 9))" & PIDS+=($!)
sleep 0.5
echo "## ceiling: wrk -t2 -c16 -d$DURATION --latency"
TOKEN=x wrk -t2 -c16 -d"$DURATION" --latency -s scripts/bench/enqueue.lua "http://127.0.0.1:$((PORT + 9))/api/v1/batch/enqueue" | tee "$WORK/ceiling.txt"
kill "${PIDS[-1]}"
CEILING="$(rps "$WORK/ceiling.txt")"

step "single-job enqueue over HTTP"
A="127.0.0.1:$PORT"; URL="http://$A"
AI_BATCH_ADDR="$A" "$BIN" serve >"$WORK/a.log" 2>&1 & PIDS+=($!); SERVER_A=$!
wait_up "$URL/healthz"
ADMIN="$("$BIN" token create --user bench-admin --role admin | tail -n 1)"
TRADER="$("$BIN" token create --user bench-trader --role trader | tail -n 1)"
echo "## enqueue, one instance: wrk -t2 -c16 -d$DURATION --latency"
TOKEN="$TRADER" wrk -t2 -c16 -d"$DURATION" --latency -s scripts/bench/enqueue.lua "$URL/api/v1/batch/enqueue" | tee "$WORK/enqueue.txt"
ENQUEUE="$(rps "$WORK/enqueue.txt")"; ENQUEUE_P99="$(pct "$WORK/enqueue.txt" 99)"
RATIO="$(awk -v a="$ENQUEUE" -v b="$CEILING" 'BEGIN {printf "%.1f", 100 * a / b}')"
goal "enqueue / ceiling (bare handler $CEILING req/s)" "≥ 25%" "$RATIO% ($ENQUEUE req/s)" "$(met "$RATIO" '>=' 25)"
goal "enqueue p99, 16 connections" "≤ 10 ms" "$ENQUEUE_P99 ms" "$(met "$ENQUEUE_P99" '<=' 10)"

step "the cost of the hardening: enqueue with rate limiting and metrics on, then off, alternating"
# Two more servers on fresh databases, one with the hardening on (as A) and one with it off,
# measured in turns (on, off, on, off) so the machine's drift falls on both alike.
HARD_ON_DB="$(new_database hardening_on)"; HARD_OFF_DB="$(new_database hardening_off)"
ON="127.0.0.1:$((PORT + 3))"; OFF="127.0.0.1:$((PORT + 4))"
DATABASE_URL="$(database_url "$HARD_ON_DB")" AI_BATCH_ADDR="$ON" "$BIN" serve >"$WORK/on.log" 2>&1 & PIDS+=($!); SERVER_ON=$!
DATABASE_URL="$(database_url "$HARD_OFF_DB")" AI_BATCH_ADDR="$OFF" AI_BATCH_ENQUEUE_PER_SEC=0 AI_BATCH_READS_PER_SEC=0 \
  AI_BATCH_METRICS=false "$BIN" serve >"$WORK/off.log" 2>&1 & PIDS+=($!); SERVER_OFF=$!
wait_up "http://$ON/healthz"; wait_up "http://$OFF/healthz"
ON_TOKEN="$(DATABASE_URL="$(database_url "$HARD_ON_DB")" "$BIN" token create --user bench-trader --role trader | tail -n 1)"
OFF_TOKEN="$(DATABASE_URL="$(database_url "$HARD_OFF_DB")" "$BIN" token create --user bench-trader --role trader | tail -n 1)"
for round in 1 2; do
  for side in on off; do
    if [[ $side == on ]]; then addr="$ON"; token="$ON_TOKEN"; else addr="$OFF"; token="$OFF_TOKEN"; fi
    echo "## enqueue, hardening $side (round $round): wrk -t2 -c16 -d10s --latency"
    TOKEN="$token" wrk -t2 -c16 -d10s --latency -s scripts/bench/enqueue.lua "http://$addr/api/v1/batch/enqueue" | tee "$WORK/hard-$side-$round.txt"
  done
done
kill "$SERVER_ON" "$SERVER_OFF"
mean_rps() { awk -v a="$(rps "$WORK/hard-$1-1.txt")" -v b="$(rps "$WORK/hard-$1-2.txt")" 'BEGIN {printf "%.0f", (a + b) / 2}'; }
HARD_ON="$(mean_rps on)"; HARD_OFF="$(mean_rps off)"
COST="$(awk -v on="$HARD_ON" -v off="$HARD_OFF" 'BEGIN {printf "%.1f", 100 * (off - on) / off}')"
goal "enqueue, hardening on ($HARD_ON req/s; rounds $(rps "$WORK/hard-on-1.txt"), $(rps "$WORK/hard-on-2.txt")) vs off ($HARD_OFF req/s; $(rps "$WORK/hard-off-1.txt"), $(rps "$WORK/hard-off-2.txt"))" "small" "$COST% slower with it on" "—"

if [[ $ENGINE == postgres ]]; then
  B="127.0.0.1:$((PORT + 1))"
  AI_BATCH_ADDR="$B" "$BIN" serve >"$WORK/b.log" 2>&1 & PIDS+=($!); SERVER_B=$!
  wait_up "http://$B/healthz"
  echo "## enqueue, two instances: wrk -t1 -c8 -d$DURATION --latency against each, at once"
  TOKEN="$TRADER" wrk -t1 -c8 -d"$DURATION" --latency -s scripts/bench/enqueue.lua "$URL/api/v1/batch/enqueue" >"$WORK/wrk-a.txt" &
  WRK_A=$!
  TOKEN="$TRADER" wrk -t1 -c8 -d"$DURATION" --latency -s scripts/bench/enqueue.lua "http://$B/api/v1/batch/enqueue" >"$WORK/wrk-b.txt"
  wait "$WRK_A"
  echo "# instance A"; cat "$WORK/wrk-a.txt"; echo "# instance B"; cat "$WORK/wrk-b.txt"
  TWO="$(awk -v a="$(rps "$WORK/wrk-a.txt")" -v b="$(rps "$WORK/wrk-b.txt")" 'BEGIN {printf "%.0f", a + b}')"
  kill "$SERVER_B"
  step "pg-boss send() on the same database (the peer)"
  if [[ ! -d scripts/bench/pgboss/node_modules/pg-boss ]]; then
    (cd scripts/bench/pgboss && npm ci --no-audit --no-fund >&2)
  fi
  node scripts/bench/pgboss/send.mjs "$DATABASE_URL" "${DURATION%s}" 16 | tee "$WORK/pgboss.txt"
  PGBOSS="$(awk '{for (i = 1; i <= NF; i++) if ($i == "jobs/s,") print $(i - 1)}' "$WORK/pgboss.txt")"
  BEST="$(awk -v a="$ENQUEUE" -v b="$TWO" 'BEGIN {print (a > b) ? a : b}')"
  TIMES="$(awk -v a="$BEST" -v b="$PGBOSS" 'BEGIN {printf "%.1f", a / b}')"
  goal "enqueue / pg-boss send() ($PGBOSS jobs/s); one instance $ENQUEUE, two $TWO req/s" "≥ 2×" "$TIMES×" "$(met "$TIMES" '>=' 2)"
fi

step "bulk enqueue: 100,000 jobs in ten requests of 10,000"
python3 - "$WORK/bulk.json" <<'PY'
import json, sys
tickers = ["AAPL", "MSFT", "NVDA", "TSLA"]
jobs = [{"job_type": "risk_report", "payload": {"ticker": tickers[i % 4], "positions": [{"symbol": tickers[i % 4], "qty": i % 500}]}, "priority": i % 101} for i in range(10000)]
json.dump({"jobs": jobs}, open(sys.argv[1], "w"))
PY
START=$(date +%s.%N)
for _ in $(seq 10); do
  curl -fsS -o /dev/null -X POST "$URL/api/v1/batch/enqueue/bulk" -H "Authorization: Bearer $TRADER" \
    -H 'Content-Type: application/json' --data-binary @"$WORK/bulk.json"
done
BULK_S="$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')"
echo "bulk: 100000 jobs in $BULK_S s"
goal "bulk enqueue of 100,000 jobs (10 × 10,000)" "≤ 3 s" "$BULK_S s" "$(met "$BULK_S" '<=' 3)"

step "seeding to $JOBS jobs through the enqueue use case (no HTTP)"
"$EXAMPLES/seed_jobs" --total "$JOBS" --owners 10 --concurrency 64 2>&1 | tee "$WORK/seed.txt"

step "reads at $JOBS jobs"
echo "| who and request | requests/s | p50 (ms) | p99 (ms) |" >"$WORK/reads.txt"
echo "|---|---|---|---|" >>"$WORK/reads.txt"
measure_get admin /api/v1/batch/stats "stats"; goal "admin stats p99" "≤ 10 ms" "$READ_P99 ms" "$(met "$READ_P99" '<=' 10)"
measure_get trader /api/v1/batch/stats "stats"; goal "trader stats p99" "≤ 10 ms" "$READ_P99 ms" "$(met "$READ_P99" '<=' 10)"
measure_get admin /api/v1/batch/jobs "list, first page (50) with counts"; goal "admin list first page p99" "≤ 10 ms" "$READ_P99 ms" "$(met "$READ_P99" '<=' 10)"
measure_get trader /api/v1/batch/jobs "list, first page (50) with counts"; goal "trader list first page p99" "≤ 10 ms" "$READ_P99 ms" "$(met "$READ_P99" '<=' 10)"
measure_get admin "/api/v1/batch/jobs?status_filter=pending" "list, status filter"; goal "admin status filter p99" "≤ 10 ms" "$READ_P99 ms" "$(met "$READ_P99" '<=' 10)"
CURSOR="$(curl -fs -H "Authorization: Bearer $ADMIN" "$URL/api/v1/batch/jobs?limit=50" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')"
measure_get admin "/api/v1/batch/jobs?cursor=$CURSOR" "list, next page by cursor"
measure_get admin "/api/v1/batch/jobs?offset=500000" "list, offset 500,000"
measure_get admin "/api/v1/batch/jobs?q=NVDA" "search a ticker (a quarter of the jobs)"; goal "admin search p99" "≤ 50 ms" "$READ_P99 ms" "$(met "$READ_P99" '<=' 50)"
measure_get trader "/api/v1/batch/jobs?q=NVDA" "search a ticker"; goal "trader search p99" "≤ 50 ms" "$READ_P99 ms" "$(met "$READ_P99" '<=' 50)"
measure_get admin "/api/v1/batch/jobs?q=n%22%3A%2012345" "search a rare text"
cat "$WORK/reads.txt"

if [[ $ENGINE == sqlite ]]; then
  step "dashboard: release WASM size, and the jobs page's time to interactive ($JOBS jobs stored)"
  WASM="$(ls "$ROOT"/target/site/pkg/ai-batch*.wasm)"
  echo "ai-batch.wasm: $(stat -c %s "$WASM") bytes raw, $(gzip -9 -c "$WASM" | wc -c) bytes gzip -9"
  node end2end/bench/tti.mjs "$URL" "$ADMIN" 15
  step "server CPU while an admin's jobs page is open and nothing changes (60 s each)"
  node end2end/bench/idle_cpu.mjs "$URL" "$ADMIN" "$SERVER_A" 60
fi
kill "$SERVER_A"

step "the batch loop: 10 flushes of 10,000 jobs, then the ingest of 100,000 results"
EMULATOR_PORT=$((PORT + 2))
"$BIN" emulator --addr "127.0.0.1:$EMULATOR_PORT" --emulator-delay-secs 0 >"$WORK/emulator.log" 2>&1 & PIDS+=($!)
wait_up "http://127.0.0.1:$EMULATOR_PORT/_emulator/health"
LOOPDB="$(new_database loop)"
"$EXAMPLES/bench_batch_loop" --database-url "$(database_url "$LOOPDB")" \
  --provider anthropic --anthropic-base-url "http://127.0.0.1:$EMULATOR_PORT" --anthropic-api-key bench \
  --anthropic-request-timeout-secs 300 | tee "$WORK/loop.txt"
summary() { grep -o "$1=[^ ]*" "$WORK/loop.txt" | head -1 | cut -d= -f2; }
goal "flush of 100,000 jobs (10 × 10,000)" "≤ 10 s" "$(summary flush_total_s) s" "$(met "$(summary flush_total_s)" '<=' 10)"
goal "slowest single flush of 10,000 jobs" "≤ 1 s" "$(summary flush_slowest_s) s" "$(met "$(summary flush_slowest_s)" '<=' 1)"
goal "peak RSS during a flush" "≤ 200 MiB" "$(summary flush_peak_rss_mib) MiB" "$(met "$(summary flush_peak_rss_mib)" '<=' 200)"
goal "ingest" "≥ 20,000 lines/s" "$(summary ingest_lines_per_s) lines/s" "$(met "$(summary ingest_lines_per_s)" '>=' 20000)"
goal "RSS growth during the ingest" "≤ 64 MiB" "$(summary ingest_rss_growth_mib) MiB" "$(met "$(summary ingest_rss_growth_mib)" '<=' 64)"
goal "totals equal a recount after the loop" "yes" "$(summary totals_equal_recount)" "$([[ $(summary totals_equal_recount) == true ]] && echo yes || echo '**no**')"

echo
echo "# goals, $ENGINE"
echo "| measure | goal | result | met |"
echo "|---|---|---|---|"
cat "$SUMMARY"
