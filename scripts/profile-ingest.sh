#!/usr/bin/env bash
# Where the ingest's time goes (issue 22, item 4): the batch loop's bench (ten flushes of 10,000
# jobs, then the ingest of their results) against the standalone emulator, the whole machine
# sampled by `perf record` (CPU clock, 999 Hz, call graphs) from the moment the ingest starts
# (the emulator has every batch's results ready by then) until the bench ends or INGEST_SECS (12)
# pass. Prints the ingest's rate, the CPU by thread and library (the bench runs the use cases and
# the store in its own process; PostgreSQL's backends and the emulator are others; `swapper` is
# idle time), and the bench process's functions that took the most.
#   ./scripts/profile-ingest.sh             on a SQLite file
#   ./scripts/profile-ingest.sh postgres    on a PostgreSQL database of its own
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$ROOT/scripts/bench/loop-lib.sh"
ENGINE="${1:-sqlite}"
if ! command -v perf >/dev/null; then
  step "installing perf from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
install_build_tools
step "building the release server and its examples"
cargo build --release --locked -p server --bin ai-batch --examples >&2

BIN="$CARGO_TARGET_DIR/release/ai-batch"
LOOP="$CARGO_TARGET_DIR/release/examples/bench_batch_loop"
PG_ADMIN="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
WORK="$(mktemp -d)"
DB=""
cleanup() {
  kill "${RUNNER:-}" "${EMULATOR:-}" 2>/dev/null || true
  [[ -n $DB ]] && psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

URL="sqlite://$WORK/ingest.db"
if [[ $ENGINE == postgres ]]; then
  DB="aib_ingest_$(date +%s)_$RANDOM"
  psql "$PG_ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
  URL="${PG_ADMIN%/*}/$DB"
fi
start_emulator "$BIN" "$WORK/emulator.log"
batch_loop "$LOOP" "$URL" >"$WORK/loop.txt" 2>&1 &
RUNNER=$!
BENCH=""
for _ in $(seq 100); do
  BENCH="$(pgrep -P "$RUNNER" -f bench_batch_loop || true)"
  [[ -n $BENCH ]] && break
  sleep 0.1
done
[[ -n $BENCH ]] || { echo "the bench did not start" >&2; exit 1; }
until grep -q '^provider: every batch ended' "$WORK/loop.txt"; do
  kill -0 "$RUNNER" 2>/dev/null || { cat "$WORK/loop.txt" >&2; exit 1; }
  sleep 0.2
done
echo "# profile-ingest.sh $ENGINE, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, up to ${INGEST_SECS:-12} s of the ingest"
# Two recordings at once: the whole machine (who is busy, who idles), and the bench's threads
# with call graphs.
WINDOW=(timeout "${INGEST_SECS:-12}" tail --pid="$BENCH" -f /dev/null)
perf record -q -a -F 499 -o "$WORK/machine.data" -- "${WINDOW[@]}" 2>/dev/null &
MACHINE=$!
# perf exits 143 when the process it samples ends before the window does; any other failure stops.
perf record -q -F 999 -g -p "$BENCH" -o "$WORK/bench.data" -- "${WINDOW[@]}" 2>/dev/null || (($? == 143))
wait "$MACHINE" "$RUNNER"
RUNNER=""
grep '^ingest:' "$WORK/loop.txt"
echo "## the machine's CPU by thread and library (swapper: idle), both cores together"
perf report -i "$WORK/machine.data" --no-children --sort pid,dso --stdio --percent-limit 1 2>/dev/null \
  | grep -v "^#" | grep -v "^$" | head -25 || true
echo "## the bench process's functions (self), the top 40"
perf report -i "$WORK/bench.data" --no-children --sort symbol --stdio -g none \
  --percent-limit 0.4 2>/dev/null | grep -v "^#" | grep -v "^$" | head -40 || true
