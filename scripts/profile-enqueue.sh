#!/usr/bin/env bash
# Where a single enqueue's time goes: the release server on a fresh SQLite file, limits off,
# under `wrk -t2 -c16` single-job enqueues, sampled by `perf record` (CPU clock, 999 Hz) for
# 15 s; prints the throughput and the functions and libraries that took the most CPU. The release binary keeps its symbols, so the profile names our functions,
# SQLite's, tokio's and the kernel's. BENCHMARKS.md has a run (issue 22, item 5).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
for tool in wrk perf; do
  if ! command -v "$tool" >/dev/null; then
    step "installing $tool from Debian"
    package="$tool"; [[ $tool == perf ]] && package=linux-perf
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
  fi
done
step "building the release server"
cargo leptos build --release --server-only >&2
BIN="$(ai_batch_bin release)"
WORK="$(mktemp -d)"
PORT=$((20000 + RANDOM % 20000))
trap 'kill "${SERVER:-}" 2>/dev/null; rm -rf "$WORK"' EXIT
DATABASE_URL="sqlite://$WORK/profile.db"
export DATABASE_URL RUST_LOG=warn AI_BATCH_SCHEDULER=false AI_BATCH_DB_MAX_CONNECTIONS=16 \
  AI_BATCH_ENQUEUE_PER_SEC=0 AI_BATCH_READS_PER_SEC=0
AI_BATCH_ADDR="127.0.0.1:$PORT" "$BIN" serve >"$WORK/server.log" 2>&1 & SERVER=$!
for _ in $(seq 200); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN="$("$BIN" token create --user profile-trader --role trader | tail -n 1)"
echo "# profile-enqueue.sh sqlite, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
TOKEN="$TOKEN" wrk -t2 -c16 -d20s --latency -s scripts/bench/enqueue.lua "http://127.0.0.1:$PORT/api/v1/batch/enqueue" >"$WORK/wrk.txt" &
WRK=$!
sleep 3
perf record -q -F 999 -g -p "$SERVER" -o "$WORK/perf.data" -- sleep 15 2>/dev/null
wait "$WRK"
grep -E 'Requests/sec|^ +99%|^ +50%' "$WORK/wrk.txt"
echo "## CPU by library"
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20
echo "## CPU by function (self), the top 40"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none --percent-limit 0.5 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
