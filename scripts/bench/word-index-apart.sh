#!/usr/bin/env bash
# Searches with other filters, with PostgreSQL's word index on `jobs` (as shipped) and in a table
# of its own (`job_words`, the move tried in the fifteenth and sixteenth sessions, issue 22,
# BENCHMARKS.md), read either as one set of matching ids or probed by key for each job the
# other filters let through. Plain SQL in psql, no server: this tree's migrations, JOBS jobs of
# one trader (a quarter carry NVDA, one in 5,000 "restatement", one in 1,000 failed), then each
# statement shape the store writes (a capped count, a sorted page), run seven times in each
# layout. Prints the median milliseconds of each.
#   ./scripts/bench/word-index-apart.sh              a million jobs
#   JOBS=200000 ./scripts/bench/word-index-apart.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
JOBS="${JOBS:-1000000}"
DB="aib_words_$(date +%s)_$RANDOM"
cleanup() { psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT
psql_db() { psql "${PG%/*}/$DB" -qAt -v ON_ERROR_STOP=1 "$@"; }

psql "$PG" -qc "CREATE DATABASE $DB" >/dev/null
for migration in "$ROOT"/migrations/postgres/*.sql; do psql_db -f "$migration" >/dev/null; done
psql_db >/dev/null <<SQL
INSERT INTO users VALUES ('u1', 't1', 'trader', now());
DO \$\$ BEGIN FOR c IN 0..($JOBS / 100000) LOOP
INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, request_hash, created_at, updated_at)
SELECT 'job_' || lpad(g::text, 8, '0'), 'u1', 'portfolio_summary',
  CASE WHEN g % 1000 = 7 THEN 'failed' ELSE 'pending' END, 0,
  jsonb_build_object('portfolio_id', 'PF-' || g, 'as_of', '2026-11-27',
    'ticker', CASE WHEN g % 4 = 0 THEN 'NVDA' ELSE 'AAPL' END,
    'note', CASE WHEN g % 5000 = 3 THEN 'restatement' ELSE 'steady' END),
  'h' || g, timestamptz '2026-12-01' + g * interval '1 ms', timestamptz '2026-12-01' + g * interval '1 ms'
FROM generate_series(c * 100000 + 1, least((c + 1) * 100000, $JOBS)) g;
END LOOP; END \$\$;
VACUUM ANALYZE jobs;
SQL

# A search's condition on `jobs j` for one word, in each layout (`Dialect::push_search`): the
# job, key or provider batch the word names, tested on each row or read as one set of ids.
named_or() { echo "j.id = '$1' OR j.idempotency_key = '$1' OR j.local_batch_id = (SELECT lb.id FROM batches lb WHERE lb.provider_batch_id = '$1') OR"; }
named() { echo "SELECT id FROM jobs WHERE id = '$1' UNION ALL SELECT id FROM jobs WHERE idempotency_key = '$1' UNION ALL SELECT id FROM jobs WHERE local_batch_id = (SELECT lb.id FROM batches lb WHERE lb.provider_batch_id = '$1')"; }
matches() {
  case $LAYOUT in
    on_jobs) echo "($(named_or "$1") j.payload_words @@ CAST('''$1''' AS tsquery))" ;;
    probe) echo "($(named_or "$1") EXISTS (SELECT 1 FROM job_words w WHERE w.job_id = j.id AND w.words @@ CAST('''$1''' AS tsquery) OFFSET 0))" ;;
    apart) echo "j.id IN ($(named "$1") UNION ALL SELECT job_id FROM job_words WHERE words @@ CAST('''$1''' AS tsquery))" ;;
  esac
}
count() { echo "SELECT COUNT(*) FROM (SELECT 1 FROM jobs j WHERE $1 AND $(matches "$2") LIMIT 10001) m"; }
sorted() { echo "WITH matching AS MATERIALIZED (SELECT j.id FROM jobs j WHERE $1 AND $(matches "$2")) SELECT j.id, (SELECT COUNT(*) FROM matching) FROM jobs j WHERE j.id IN (SELECT id FROM matching) ORDER BY j.created_at DESC, j.id DESC LIMIT 51"; }
median_ms() { (echo '\timing on'; for _ in $(seq 7); do echo "$1;"; done) | psql_db | awk '/^Time/ {print $2}' | sort -n | sed -n 4p; }

declare -A RESULT
LABELS=()
measure() {
  local label
  for label in "count, status failed, NVDA|count \"j.owner_id = 'u1' AND j.status = 'failed'\" nvda" \
      "count, status pending, NVDA|count \"j.owner_id = 'u1' AND j.status = 'pending'\" nvda" \
      "count, a job type (admin), NVDA|count \"j.job_type = 'portfolio_summary'\" nvda" \
      "count, no filter (admin), restatement|count \"1 = 1\" restatement" \
      "sorted page, status failed, NVDA|sorted \"j.owner_id = 'u1' AND j.status = 'failed'\" nvda" \
      "sorted page, status pending, restatement|sorted \"j.owner_id = 'u1' AND j.status = 'pending'\" restatement" \
      "sorted page, no filter (admin), restatement|sorted \"1 = 1\" restatement"; do
    local name=${label%%|*}
    [[ $LAYOUT == on_jobs ]] && LABELS+=("$name")
    RESULT[$LAYOUT,$name]=$(median_ms "$(eval "${label#*|}")")
  done
}
LAYOUT=on_jobs measure
# The move, as the migration tried would make it (its trigger aside: nothing is enqueued here).
psql_db >/dev/null <<'SQL'
CREATE TABLE job_words (job_id TEXT PRIMARY KEY, words tsvector NOT NULL);
INSERT INTO job_words (job_id, words) SELECT id, payload_words FROM jobs;
CREATE INDEX job_words_words ON job_words USING gin (words);
ANALYZE job_words;
DROP INDEX jobs_words_type;
SQL
LAYOUT=apart measure
LAYOUT=probe measure

echo "# word-index-apart.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $JOBS jobs: median of seven runs, ms"
echo "| statement | word index on jobs | in job_words | probed per job |"
echo "|---|---|---|---|"
for name in "${LABELS[@]}"; do echo "| $name | ${RESULT[on_jobs,$name]} | ${RESULT[apart,$name]} | ${RESULT[probe,$name]} |"; done
