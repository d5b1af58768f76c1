#!/usr/bin/env bash
# What a PostgreSQL flush's writes cost, index by index (issue 22, BENCHMARKS.md): a template
# database with this tree's migrations and 100,000 pending jobs, then for each variant a copy
# of it with one change, and ten rounds of a flush's three writes of 10,000 jobs (the claim's
# update, the batch's members, the "submitted" events), each round committed, as the flush does,
# then the round's results written as the ingest writes them. Prints per variant the seconds of
# the ten rounds, step by step; the variants run in turns, PASSES times (two by default). Plain
# SQL in psql: no server, no build.
#   ./scripts/bench/claim-writes.sh                 every variant
#   VARIANTS="shipped words_apart" PASSES=3 ./scripts/bench/claim-writes.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
TEMPLATE="aib_claims_$(date +%s)_$RANDOM"
psql_in() { psql "${PG%/*}/$1" -qAt -v ON_ERROR_STOP=1 "${@:2}"; }
# The variant's copy too, so an interrupted run leaves no database behind.
VARIANT_DB=""
drop_db() { psql "$PG" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1 || true; }
cleanup() { [[ -n $VARIANT_DB ]] && drop_db "$VARIANT_DB"; drop_db "$TEMPLATE"; }
trap cleanup EXIT

# The words column and its index rebuilt (the table rewritten, the index built fresh) from
# the generation expression that $1, a PL/pgSQL statement, puts in `words`.
words_as() {
  echo "DO \$\$ DECLARE words text; BEGIN
      $1;
      ALTER TABLE jobs DROP COLUMN payload_words CASCADE;
      EXECUTE format('ALTER TABLE jobs ADD COLUMN payload_words tsvector GENERATED ALWAYS AS (%s) STORED', words);
      CREATE INDEX jobs_words_type ON jobs USING gin (payload_words, job_type);
    END \$\$; ANALYZE jobs"
}

declare -A CHANGE=(
  [shipped]=""
  # The word index off `jobs` (in a table of its own, written once at enqueue): each claimed
  # job's row then no longer takes a new entry for every word it carries.
  [words_apart]="DROP INDEX jobs_words_type"
  # The word index kept, its pending list 16× the default: fewer, larger merges into the tree.
  [words_pending_64mb]="ALTER INDEX jobs_words_type SET (gin_pending_list_limit = 65536)"
  # No checks that the rows a flush writes name what exists: the claim's, the members' and the
  # events' triggers (once a statement, migrations 19 and 20).
  [no_key_checks]="DROP TRIGGER jobs_updated_name_batches ON jobs;
    DROP TRIGGER batch_jobs_name_jobs ON batch_jobs;
    DROP TRIGGER batch_jobs_name_batches ON batch_jobs;
    DROP TRIGGER job_events_name_jobs ON job_events"
  # The words column and index built again from the shipped column's own expression (read
  # from the catalogue, so it follows the migrations): the control for words_with_keys, whose
  # table and index are rewritten fresh too.
  [words_rebuilt]="$(words_as "SELECT pg_get_expr(d.adbin, d.adrelid) INTO STRICT words
      FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
      WHERE d.adrelid = 'jobs'::regclass AND a.attname = 'payload_words'")"
  # The payload's JSON field names among its words too, as before migration 21 (a third of
  # the seeded job's 39): a GIN entry more for each, for every claimed and completed job.
  [words_with_keys]="$(words_as "words := \$e\$to_tsvector('simple',
      regexp_replace(payload::text, '[^[:alnum:]]+', ' ', 'g'))\$e\$")"
  # The claim's batch checked row by row by a foreign key, as before migration 20.
  [row_claim_key]="DROP TRIGGER jobs_updated_name_batches ON jobs;
    DROP TRIGGER jobs_inserted_name_batches ON jobs;
    ALTER TABLE jobs ADD FOREIGN KEY (local_batch_id) REFERENCES batches (id)"
  # The listing indexes by status (the claim changes it).
  [no_status_indexes]="DROP INDEX jobs_status_created, jobs_owner_status_created"
  # The members' and events' foreign keys as before migration 19, checked row by row, in place
  # of its checks once a statement.
  [row_key_checks]="DROP TRIGGER batch_jobs_name_jobs ON batch_jobs;
    DROP TRIGGER batch_jobs_name_batches ON batch_jobs;
    DROP TRIGGER job_events_name_jobs ON job_events;
    ALTER TABLE batch_jobs ADD FOREIGN KEY (batch_id) REFERENCES batches (id),
                           ADD FOREIGN KEY (job_id) REFERENCES jobs (id);
    ALTER TABLE job_events ADD FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE"
)

psql "$PG" -qc "CREATE DATABASE $TEMPLATE" >/dev/null
for migration in "$ROOT"/migrations/postgres/*.sql; do psql_in "$TEMPLATE" -f "$migration" >/dev/null; done
psql_in "$TEMPLATE" >/dev/null <<'SQL'
INSERT INTO users VALUES ('u1', 't1', 'trader', now()), ('u2', 't2', 'trader', now()),
                         ('u3', 't3', 'trader', now());
-- The dashboard's portfolio example, one number changed a job.
INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, request_hash, created_at, updated_at)
SELECT 'job_' || lpad(g::text, 8, '0'), 'u' || (1 + g % 3), 'portfolio_summary', 'pending', 0,
  jsonb_build_object('portfolio_id', 'PF-' || g, 'as_of', '2026-11-27', 'base_currency', 'USD',
    'cash', 15000.0 + g, 'positions', jsonb_build_array(
      jsonb_build_object('ticker', 'AAPL', 'quantity', 120, 'avg_cost', 182.5, 'price', 227.1),
      jsonb_build_object('ticker', 'NVDA', 'quantity', 80, 'avg_cost', 95.2, 'price', 141.8),
      jsonb_build_object('ticker', 'TLT', 'quantity', 150, 'avg_cost', 98.4, 'price', 91.3))),
  'h' || g, timestamptz '2026-12-01' + g * interval '1 ms', timestamptz '2026-12-01' + g * interval '1 ms'
FROM generate_series(1, 100000) g;
VACUUM ANALYZE;
SQL

# The ingest's writes for the round's batch: its 10,000 jobs completed 1,000 a transaction,
# each with a result and its tokens, as the ingest's guarded update writes them.
results_of_round() {
  for chunk in $(seq 0 9); do
    cat <<SQL
BEGIN;
-- Analysed, so the update joins by the key as the ingest's list of 1,000 rows does.
CREATE TEMP TABLE chunk ON COMMIT DROP AS
  SELECT job_id FROM batch_jobs WHERE batch_id = 'b$1' ORDER BY job_id OFFSET $((chunk * 1000)) LIMIT 1000;
ANALYZE chunk;
UPDATE jobs SET status = 'completed', result = jsonb_build_object('text', repeat('Exposure is concentrated in NVDA. ', 12)),
  input_tokens = 900, output_tokens = 350, cost_nanos = 4, completed_at = now(), updated_at = now()
FROM chunk WHERE jobs.id = chunk.job_id AND jobs.status = 'processing';
COMMIT;
SQL
  done
}

run_variant() {
  local name=$1 db="${TEMPLATE}_$1"
  VARIANT_DB=$db
  psql "$PG" -qc "CREATE DATABASE $db TEMPLATE $TEMPLATE" >/dev/null
  [[ -n ${CHANGE[$name]} ]] && psql_in "$db" -c "${CHANGE[$name]}" >/dev/null
  for round in $(seq 1 10); do
    psql_in "$db" <<SQL
SET jit = off;
BEGIN;
SELECT clock_timestamp() AS t0 \gset
INSERT INTO batches (id, provider, status, job_count, estimated_tokens, request_bytes, created_at)
VALUES ('b$round', 'anthropic', 'submitting', 0, 0, 0, now());
CREATE TEMP TABLE wanted ON COMMIT DROP AS
  SELECT id FROM jobs WHERE status = 'pending' ORDER BY priority DESC, created_at, id LIMIT 10000;
SELECT clock_timestamp() AS t1 \gset
UPDATE jobs SET status = 'processing', local_batch_id = 'b$round', model = 'm', provider = 'anthropic',
  cost_bound_nanos = 5, updated_at = now()
FROM wanted WHERE jobs.id = wanted.id AND jobs.status = 'pending';
SELECT clock_timestamp() AS t2 \gset
INSERT INTO batch_jobs (batch_id, job_id) SELECT 'b$round', id FROM wanted;
SELECT clock_timestamp() AS t3 \gset
INSERT INTO job_events (job_id, kind, at) SELECT id, 'submitted', now() FROM wanted;
SELECT clock_timestamp() AS t4 \gset
COMMIT;
SELECT extract(epoch FROM timestamptz :'t2' - :'t1') || ' ' || extract(epoch FROM timestamptz :'t3' - :'t2')
  || ' ' || extract(epoch FROM timestamptz :'t4' - :'t3') || ' ' || extract(epoch FROM clock_timestamp() - timestamptz :'t0');
SELECT clock_timestamp() AS t5 \gset
$(results_of_round "$round")
SELECT extract(epoch FROM clock_timestamp() - timestamptz :'t5');
SQL
  done | paste -d' ' - - | awk -v v="$name" '{u += $1; m += $2; e += $3; t += $4; r += $5}
    END {printf "%-24s claim %6.2f  members %5.2f  events %5.2f  flush %6.2f  results %6.2f\n", v, u, m, e, t, r}'
  psql "$PG" -qc "DROP DATABASE $db" >/dev/null
  VARIANT_DB=""
}

echo "# claim-writes.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores: ten rounds of 10,000 jobs, seconds"
for pass in $(seq 1 "${PASSES:-2}"); do
  for name in ${VARIANTS:-shipped words_apart words_pending_64mb no_key_checks no_status_indexes row_key_checks row_claim_key}; do run_variant "$name"; done
done
