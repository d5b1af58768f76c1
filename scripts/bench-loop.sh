#!/usr/bin/env bash
# The batch loop on both stores in one run, side by side (issue 22, item 4): ten flushes of
# 10,000 jobs, then the ingest of their 100,000 results, first on a SQLite file, then on a
# PostgreSQL database of its own, against one standalone emulator. Ends with the ratio.
#   ./scripts/bench-loop.sh              both stores
#   ./scripts/bench-loop.sh --flushes 1 --jobs-per-flush 100000 --priority 0
#                                        other shapes: the arguments go to the bench itself
#   SLOW_MS=200 ./scripts/bench-loop.sh  also logs PostgreSQL statements slower than that, with
#                                        their plans (auto_explain), and prints them at the end
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$ROOT/scripts/bench/loop-lib.sh"
install_build_tools
step "building the release server and its examples"
cargo build --release --locked -p server --bin ai-batch --examples >&2

LOOP_ARGS=("$@")
BIN="$CARGO_TARGET_DIR/release/ai-batch"
LOOP="$CARGO_TARGET_DIR/release/examples/bench_batch_loop"
PG_ADMIN="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_LOG="${PG_LOG:-/var/log/postgresql/postgresql-15-main.log}"
WORK="$(mktemp -d)"
DB="aib_loop_$(date +%s)_$RANDOM"
cleanup() {
  kill "${EMULATOR:-}" 2>/dev/null || true
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start_emulator "$BIN" "$WORK/emulator.log"

run_loop() { # database-url label
  step "the batch loop on $2"
  batch_loop "$LOOP" "$1" "${LOOP_ARGS[@]}" | tee "$WORK/$2.txt"
}
summary() { loop_figure "$WORK/$1.txt" "$2"; }

echo "# bench-loop.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
run_loop "sqlite://$WORK/loop.db" sqlite
psql "$PG_ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
if [[ -n ${SLOW_MS:-} ]]; then
  psql "$PG_ADMIN" -qc "ALTER DATABASE $DB SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER DATABASE $DB SET auto_explain.log_min_duration = $SLOW_MS" \
    -c "ALTER DATABASE $DB SET auto_explain.log_analyze = on" >/dev/null
  LOG_FROM=$(($(stat -c %s "$PG_LOG" 2>/dev/null || echo 0) + 1))
fi
run_loop "${PG_ADMIN%/*}/$DB" postgres
# When PostgreSQL's own upkeep last ran on the busiest tables, to set beside the slowest flush.
psql "${PG_ADMIN%/*}/$DB" -c "SELECT relname, n_live_tup, n_dead_tup, last_autovacuum, last_autoanalyze, \
  autovacuum_count, autoanalyze_count FROM pg_stat_user_tables WHERE relname IN ('jobs', 'job_events', 'batch_jobs', 'charges', 'job_totals')" >"$WORK/upkeep.txt"

echo
echo "| store | flush of 100,000 (s) | slowest flush (s) | ingest (lines/s) | ingest RSS growth (MiB) | totals = recount |"
echo "|---|---|---|---|---|---|"
for store in sqlite postgres; do
  echo "| $store | $(summary $store flush_total_s) | $(summary $store flush_slowest_s) | $(summary $store ingest_lines_per_s) | $(summary $store ingest_rss_growth_mib) | $(summary $store totals_equal_recount) |"
done
awk -v s="$(summary sqlite flush_total_s)" -v p="$(summary postgres flush_total_s)" \
  'BEGIN { printf "PostgreSQL flush / SQLite flush: %.2f×\n", p / s }'
if [[ -n ${SLOW_MS:-} ]]; then
  echo
  echo "## PostgreSQL log from this run (statements over $SLOW_MS ms, autovacuum)"
  tail -c "+$LOG_FROM" "$PG_LOG" | grep -v "^\s*$" | cut -c1-400
fi
echo
echo "## PostgreSQL upkeep on the loop's tables (times are UTC)"
cat "$WORK/upkeep.txt"
