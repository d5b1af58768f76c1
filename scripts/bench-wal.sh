#!/usr/bin/env bash
# SQLite's WAL under a steady load, a commit against this checkout in one run (release builds,
# each on a fresh database, measured in turns): 20 s of single enqueues (wrk -t2 -c16) with a
# dashboard reading beside them (wrk -t1 -c2 on the jobs list); the enqueues' req/s, p50 and
# p99, and the largest size of the `-wal` file. (Once the load stops no write comes to cut the
# file back, so its size at the end says little.)
#   ./scripts/bench-wal.sh [COMMIT]     (default ad67722, before the WAL was started over)
#   BEFORE_BIN=path skips building COMMIT
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench/sides.sh"
BEFORE="${1:-ad67722}"
DURATION="${DURATION:-20s}"
install_build_tools
if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
build_sides "$BEFORE"

# wal_round NAME BIN: "req/s | p50 | p99 | largest WAL MiB".
wal_round() {
  start "$1" "$2"
  local wal="$WORK/$1.db-wal" largest=0 size
  TOKEN="$TOKEN" wrk -t1 -c2 -d"$DURATION" -s scripts/bench/get.lua "$URL/api/v1/jobs?limit=20" >/dev/null &
  local reader=$!
  TOKEN="$TOKEN" wrk -t2 -c16 -d"$DURATION" --latency -s scripts/bench/enqueue.lua \
    "$URL/api/v1/batch/enqueue" >"$WORK/$1.wrk" &
  local writer=$!
  while kill -0 "$writer" 2>/dev/null; do
    size=$(file_bytes "$wal")
    ((size > largest)) && largest=$size
    sleep 0.5
  done
  wait "$reader"
  kill "$PID"
  awk -v big="$largest" '
    /Requests\/sec/ {rps = $2} $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
    END {printf "%s | %s | %s | %.0f", rps, p50, p99, big / 1048576}' "$WORK/$1.wrk"
}

step "single enqueues with a dashboard reading beside them, $DURATION a round, in turns"
echo "# bench-wal.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $BEFORE against this checkout"
echo "| round | build | enqueues/s | p50 | p99 | largest WAL (MiB) |"
echo "|---|---|---|---|---|---|"
for r in 1 2; do
  echo "| $r | $BEFORE | $(wal_round "before-$r" "$BEFORE_BIN") |"
  echo "| $r | this checkout | $(wal_round "after-$r" "$AFTER_BIN") |"
done
