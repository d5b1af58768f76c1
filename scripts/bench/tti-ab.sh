#!/usr/bin/env bash
# A page's time to interactive of two release builds side by side (issue 22): one SQLite
# database of JOBS jobs (1,000,000 unless set) seeded once, the two servers on it in turns,
# ROUNDS rounds (2 unless set) of 15 loads of PAGE (/jobs unless set) as an admin
# (`end2end/bench/tti.mjs`), with the server's CPU a load, the reads each load's live stream
# asks for included (each load stays open SETTLE_MS, 1,500 unless set, once interactive). Each
# directory holds a release `ai-batch` with the hash files beside it (`hash.txt`, and each
# islands bundle's `<bundle>-hash.txt` where the build has islands) and its `site/`, copied
# aside after `leptos_build --release --precompress` (two checkouts sharing one target
# directory: touch each one's `*.rs` before its build, or cargo takes the other checkout's
# artifacts for fresh); SEED is a release `examples/seed_jobs`.
#   SEED=/tmp/seed_jobs ./scripts/bench/tti-ab.sh /tmp/before /tmp/after
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../setup.sh"
[[ $# -eq 2 && -x ${SEED:-} ]] || { echo "usage: SEED=seed_jobs $0 BEFORE_DIR AFTER_DIR" >&2; exit 2; }
WORK="$(mktemp -d)"
PID=""
trap '[[ -n $PID ]] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
export DATABASE_URL="sqlite://$WORK/jobs.db" RUST_LOG=warn AI_BATCH_SCHEDULER=false AI_BATCH_READS_PER_SEC=0
"$SEED" --total "${JOBS:-1000000}" --owners 10 --concurrency 64 | tail -n 1
ADMIN="$("$2/ai-batch" token create --user tti-admin --role admin | tail -n 1)"
echo "# tti-ab.sh, $(date -u +%Y-%m-%dT%H:%MZ); before $1, after $2"
for round in $(seq "${ROUNDS:-2}"); do
  sides=("$1" "$2")
  (( round % 2 )) || sides=("$2" "$1")
  for dir in "${sides[@]}"; do
    port=$((20000 + RANDOM % 20000))
    AI_BATCH_SITE_ROOT="$dir/site" AI_BATCH_ADDR="127.0.0.1:$port" "$dir/ai-batch" serve >"$WORK/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    echo -n "round $round, $dir: "
    SERVER_PID=$PID node end2end/bench/tti.mjs "http://127.0.0.1:$port" "$ADMIN" 15 "${PAGE:-/jobs}"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  done
done
