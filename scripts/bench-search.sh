#!/usr/bin/env bash
# Search latency at a million jobs, as an admin and as the trader who owns them all, for a
# word a quarter of the jobs carry (NVDA), one 200 carry (restatement), one none carries,
# and a job's id, alone and with a status or job type filter; then the next page by cursor
# (issue 22, BENCHMARKS.md).
#   ./scripts/bench-search.sh            on SQLite
#   ./scripts/bench-search.sh postgres   on PostgreSQL, a database of its own
# SEARCH_DB=name keeps the seeded database for another run; AI_BATCH_BIN=path measures that
# server instead of this tree's (an earlier commit's, for a before and after on one database),
# and AI_BATCH_SEEDER=path seeds with that commit's seeder (the database takes its migrations).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ENGINE="${1:-sqlite}"
JOBS="${JOBS:-1000000}"

if ! command -v wrk >/dev/null; then
  step "installing wrk from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
step "building the release server and the seeder"
[[ -z ${AI_BATCH_BIN:-} ]] && cargo leptos build --release --server-only >&2
[[ -z ${AI_BATCH_SEEDER:-} ]] && cargo build --release --locked -p server --example seed_jobs >&2
SEEDER="${AI_BATCH_SEEDER:-$CARGO_TARGET_DIR/release/examples/seed_jobs}"
BIN="${AI_BATCH_BIN:-$(ai_batch_bin release)}"
WORK="$(mktemp -d)"
PORT=$((20000 + RANDOM % 20000))
PG_ADMIN="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DBNAME=""
cleanup() {
  [[ -n ${SERVER:-} ]] && kill "$SERVER" 2>/dev/null
  sleep 0.5
  [[ -n $DBNAME ]] && psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
if [[ $ENGINE == postgres && -n ${SEARCH_DB:-} ]]; then
  # SEARCH_DB names a database kept for another run (the seeder only tops it up).
  psql "$PG_ADMIN" -qc "CREATE DATABASE $SEARCH_DB" >/dev/null 2>&1 || true
  DATABASE_URL="${PG_ADMIN%/*}/$SEARCH_DB"
elif [[ $ENGINE == postgres ]]; then
  DBNAME="aib_search_$(date +%s)_$RANDOM"
  psql "$PG_ADMIN" -qc "CREATE DATABASE $DBNAME" >&2
  DATABASE_URL="${PG_ADMIN%/*}/$DBNAME"
else
  # SEARCH_DB keeps the seeded file for another run (the seeder only tops it up).
  DATABASE_URL="sqlite://${SEARCH_DB:-$WORK/search.db}"
fi
export DATABASE_URL RUST_LOG=warn AI_BATCH_SCHEDULER=false AI_BATCH_ENQUEUE_PER_SEC=0 AI_BATCH_READS_PER_SEC=0
echo "# bench-search.sh $ENGINE, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $JOBS jobs"

step "seeding $JOBS jobs, all one trader's, through the enqueue use case"
"$SEEDER" --total "$JOBS" --owners 1 --concurrency 64 >&2
if [[ $ENGINE == postgres ]]; then psql "$DATABASE_URL" -qc "VACUUM ANALYZE jobs" >&2; fi

A="127.0.0.1:$PORT"; URL="http://$A"
AI_BATCH_ADDR="$A" "$BIN" serve >"$WORK/server.log" 2>&1 & SERVER=$!
for _ in $(seq 200); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
ADMIN="$("$BIN" token create --user search-admin --role admin | tail -n 1)"
TRADER="$("$BIN" token create --user trader-0 --role trader | tail -n 1)"

# wrk's p50 and p99 in ms from its --latency output; requests past its timeout count as 10 s.
pct() {
  awk -v p="$2%" '$1 == p {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; printf "%.2f", v}' "$1"
}
echo "| who | request | matches (count shown) | requests/s | p50 (ms) | p99 (ms) | p99 ≤ 50 ms |"
echo "|---|---|---|---|---|---|---|"
measure() { # who label path
  local token="$ADMIN"; [[ $1 == trader ]] && token="$TRADER"
  local count; count="$(curl -fs -H "Authorization: Bearer $token" "$URL$3" | python3 -c '
import json, sys
page = json.load(sys.stdin)
capped = "+" if page.get("total_count_capped") else ""
print("%d shown of %d%s" % (len(page["jobs"]), page["total_count"], capped))')"
  TOKEN="$token" wrk -t1 -c4 -d10s --timeout 10s --latency -s scripts/bench/get.lua "$URL$3" >"$WORK/get.txt"
  local p99; p99="$(pct "$WORK/get.txt" 99)"
  local timeouts; timeouts="$(awk '/Socket errors/ {for (i = 1; i <= NF; i++) if ($i == "timeout") print $(i + 1)}' "$WORK/get.txt")"
  [[ -n $timeouts && $timeouts != 0 ]] && p99="10000 ($timeouts timed out)"
  local ok; ok="$(awk -v a="${p99%% *}" 'BEGIN {print (a <= 50) ? "yes" : "**no**"}')"
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$count" \
    "$(awk '/Requests\/sec/ {print $2}' "$WORK/get.txt")" "$(pct "$WORK/get.txt" 50)" "$p99" "$ok"
}
ID="$(curl -fs -H "Authorization: Bearer $ADMIN" "$URL/api/v1/batch/jobs?limit=1&offset=777" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["id"])')"
for who in admin trader; do
  measure "$who" "q=NVDA (a quarter of the jobs)" "/api/v1/batch/jobs?q=NVDA"
  measure "$who" "q=restatement (200 jobs)" "/api/v1/batch/jobs?q=restatement"
  measure "$who" "q=zyzzyva (no job)" "/api/v1/batch/jobs?q=zyzzyva"
  measure "$who" "q=AAPL restatement (200 jobs, two words)" "/api/v1/batch/jobs?q=AAPL%20restatement"
  measure "$who" "q=<a job's id>" "/api/v1/batch/jobs?q=$ID"
  # The word with other filters: the store must combine them, not list every match first.
  measure "$who" "q=NVDA, status pending (a quarter)" "/api/v1/batch/jobs?q=NVDA&status_filter=pending"
  measure "$who" "q=NVDA, type strategy_backtest (1 in 12)" "/api/v1/batch/jobs?q=NVDA&job_type=strategy_backtest"
  measure "$who" "q=NVDA, type risk_report (no job)" "/api/v1/batch/jobs?q=NVDA&job_type=risk_report"
  measure "$who" "q=restatement, type portfolio_summary (~67)" "/api/v1/batch/jobs?q=restatement&job_type=portfolio_summary"
done
NEXT="$(curl -fs -H "Authorization: Bearer $ADMIN" "$URL/api/v1/batch/jobs?q=NVDA" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')"
measure admin "q=NVDA, the next page by cursor" "/api/v1/batch/jobs?q=NVDA&cursor=$NEXT"
