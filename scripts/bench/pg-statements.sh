#!/usr/bin/env bash
# Where PostgreSQL's time goes in the batch loop, statement by statement (BENCHMARKS.md): a
# private cluster (initdb into a temporary directory, a free port, the machine's settings that
# matter here: 128 MB of shared buffers, no autovacuum) with pg_stat_statements loaded, the
# release bench against a standalone emulator, and the statements of each phase: the flushes
# (with the bulk enqueues between them) and the ingest. The machine's own cluster is not touched.
#   ./scripts/bench/pg-statements.sh BIN_DIR [bench args]
# BIN_DIR holds a release `ai-batch` and `bench_batch_loop` (as for loop-ab.sh).
# FAULTS='{"mirrored_results": {}}' sets the emulator's faults before the bench.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/loop-lib.sh"
[[ $# -ge 1 && -x $1/ai-batch && -x $1/bench_batch_loop ]] || {
  echo "usage: $0 BIN_DIR [bench args]: BIN_DIR with ai-batch and bench_batch_loop" >&2
  exit 2
}
BIN=$1
shift
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
WORK="$(mktemp -d)"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
EMULATOR="" BENCH=""
as_postgres() { if [[ $(id -u) == 0 ]]; then su postgres -c "$*"; else bash -c "$*"; fi; }
cleanup() {
  [[ -n $BENCH ]] && kill "$BENCH" 2>/dev/null
  [[ -n $EMULATOR ]] && kill "$EMULATOR" 2>/dev/null
  as_postgres "$PG_BIN/pg_ctl -D $WORK/data -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[[ $(id -u) == 0 ]] && chown postgres:postgres "$WORK"
as_postgres "$PG_BIN/initdb -D $WORK/data -A trust -U postgres --no-sync" >/dev/null
as_postgres "$PG_BIN/pg_ctl -D $WORK/data -l $WORK/server.log -w start -o '-p $PORT \
  -c listen_addresses=127.0.0.1 -k $WORK -c shared_buffers=128MB -c autovacuum=off \
  -c max_wal_size=1GB -c shared_preload_libraries=pg_stat_statements \
  -c pg_stat_statements.track_planning=on -c pg_stat_statements.max=1000'" >/dev/null
SQL=(psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qAt -F ' | ')
"${SQL[@]}" -c "CREATE EXTENSION pg_stat_statements" -c "CREATE DATABASE bench"

# phase TITLE: the statements since the last reset, most time first, then a reset.
phase() {
  echo "### $1"
  echo "| calls | plan (ms) | execute (ms) | rows | WAL (bytes) | statement |"
  echo "|---|---|---|---|---|---|"
  "${SQL[@]}" -c "SELECT '', calls, round(total_plan_time), round(total_exec_time), rows, wal_bytes,
      regexp_replace(left(query, 100), '\s+', ' ', 'g') || ' |'
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench')
    ORDER BY total_exec_time DESC LIMIT ${TOP:-12}" | sed 's/^ | /| /'
  "${SQL[@]}" -c "SELECT 'in all: ' || sum(calls) || ' calls, plan ' || round(sum(total_plan_time)) ||
      ' ms, execute ' || round(sum(total_exec_time)) || ' ms, WAL ' || sum(wal_bytes) || ' bytes'
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench')"
  "${SQL[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null
  echo
}

start_emulator "$BIN/ai-batch" "$WORK/emulator.log"
if [[ -n ${FAULTS:-} ]]; then
  curl -fsS -X PUT -H 'content-type: application/json' -d "$FAULTS" \
    "http://127.0.0.1:$EMULATOR_PORT/_emulator/faults" >/dev/null
fi
"${SQL[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null
batch_loop "$BIN/bench_batch_loop" "postgres://postgres@127.0.0.1:$PORT/bench" "$@" >"$WORK/bench.txt" 2>&1 &
BENCH=$!
# wait_for PATTERN: until the bench prints it (or stops).
wait_for() {
  until grep -q "$1" "$WORK/bench.txt"; do
    kill -0 "$BENCH" 2>/dev/null || { cat "$WORK/bench.txt" >&2; exit 1; }
    sleep 0.05
  done
}
wait_for '^summary: flush_total'
phase "the flushes, with the bulk enqueues between them"
wait_for '^ingest:'
phase "the ingest"
wait "$BENCH"
BENCH=""
grep -E '^(summary|ingest):' "$WORK/bench.txt"
echo "deadlocks: $("${SQL[@]}" -c "SELECT deadlocks FROM pg_stat_database WHERE datname = 'bench'")"
