#!/usr/bin/env bash
# The batch loop of two builds side by side (issue 22, BENCHMARKS.md): each directory holds a
# release `ai-batch` and `examples/bench_batch_loop` (copied aside after `cargo build --release
# -p server --bin ai-batch --examples` at each commit). Rounds run both builds on SQLite and on
# PostgreSQL, the order swapped every round, each run with a fresh emulator and a fresh database,
# so neither side inherits the other's leftovers. Arguments after the two directories go to the
# bench (as in bench-loop.sh).
#   ./scripts/bench/loop-ab.sh /tmp/before-bin /tmp/after-bin
#   ROUNDS=5 ./scripts/bench/loop-ab.sh /tmp/before-bin /tmp/after-bin --flushes 5
#   STORES=sqlite ./scripts/bench/loop-ab.sh /tmp/before-bin /tmp/after-bin   (one store only)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/loop-lib.sh"
usage() {
  echo "usage: $0 BEFORE_DIR AFTER_DIR [bench args]: each with ai-batch and bench_batch_loop" >&2
  exit 2
}
[[ $# -ge 2 ]] || usage
for dir in "$1" "$2"; do [[ -x $dir/ai-batch && -x $dir/bench_batch_loop ]] || usage; done
BEFORE=$1 AFTER=$2
shift 2
PG_ADMIN="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
WORK="$(mktemp -d)"
EMULATOR="" DB=""
cleanup() {
  [[ -n $EMULATOR ]] && kill "$EMULATOR" 2>/dev/null
  [[ -n $DB ]] && psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

run() { # side-label dir store
  local url field
  start_emulator "$2/ai-batch" "$WORK/emulator.log"
  if [[ $3 == postgres ]]; then
    DB="aib_ab_$(date +%s)_$RANDOM"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
    url="${PG_ADMIN%/*}/$DB"
  else
    rm -f "$WORK"/loop.db*
    url="sqlite://$WORK/loop.db"
  fi
  batch_loop "$2/bench_batch_loop" "$url" "${BENCH_ARGS[@]}" >"$WORK/out.txt"
  printf '| %s | %s | %s |' "$ROUND" "$1" "$3"
  for field in flush_total_s flush_slowest_s ingest_lines_per_s totals_equal_recount; do
    printf ' %s |' "$(loop_figure "$WORK/out.txt" "$field")"
  done
  echo
  kill "$EMULATOR"; wait "$EMULATOR" 2>/dev/null || true; EMULATOR=""
  if [[ -n $DB ]]; then psql "$PG_ADMIN" -qc "DROP DATABASE $DB WITH (FORCE)" >/dev/null; DB=""; fi
}

BENCH_ARGS=("$@")
echo "# loop-ab.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores; before $BEFORE, after $AFTER"
echo "| round | build | store | flushes (s) | slowest flush (s) | ingest (lines/s) | totals = recount |"
echo "|---|---|---|---|---|---|---|"
for ROUND in $(seq 1 "${ROUNDS:-3}"); do
  sides=(before after)
  (( ROUND % 2 )) || sides=(after before)
  for side in "${sides[@]}"; do
    dir=$BEFORE; [[ $side == after ]] && dir=$AFTER
    for store in ${STORES:-sqlite postgres}; do run "$side" "$dir" "$store"; done
  done
done
