-- The batch loop's money rules: leases on batches, create windows, duplicates, members and
-- the charges ledger (what Anthropic billed, once per job and provider batch).

-- Who is submitting, reconciling or polling a batch, until when.
ALTER TABLE batches ADD COLUMN lease_owner TEXT;
ALTER TABLE batches ADD COLUMN lease_expires_at INTEGER;
-- The last create call's window: a provider batch made by it was created inside it.
ALTER TABLE batches ADD COLUMN submit_started_at INTEGER;
ALTER TABLE batches ADD COLUMN submit_ended_at INTEGER;
-- The provider's created_at (its clock); with an answered create's window it is a sample of
-- the offset between our clock and the provider's (clock_sample = 1).
ALTER TABLE batches ADD COLUMN provider_created_at INTEGER;
ALTER TABLE batches ADD COLUMN clock_sample INTEGER NOT NULL DEFAULT 0;
-- A provider batch that ran the jobs of another local batch again.
ALTER TABLE batches ADD COLUMN duplicate_of TEXT REFERENCES batches (id);
-- When the create window was searched for other provider batches holding these jobs.
ALTER TABLE batches ADD COLUMN swept_at INTEGER;
ALTER TABLE batches ADD COLUMN short_reads INTEGER NOT NULL DEFAULT 0;
-- Succeeded results Anthropic billed that could not be read.
ALTER TABLE batches ADD COLUMN unaccounted_results INTEGER NOT NULL DEFAULT 0;
UPDATE batches SET submit_started_at = created_at, submit_ended_at = COALESCE(submitted_at, created_at),
    swept_at = submitted_at;
CREATE INDEX batches_unsettled ON batches (status, lease_expires_at) WHERE status = 'submitting';
CREATE INDEX batches_unswept ON batches (submit_ended_at) WHERE swept_at IS NULL;

-- Every job a batch was ever asked to run: proves a provider batch ours by its custom_ids.
CREATE TABLE batch_jobs (
    batch_id TEXT NOT NULL REFERENCES batches (id),
    job_id   TEXT NOT NULL REFERENCES jobs (id),
    PRIMARY KEY (batch_id, job_id)
) WITHOUT ROWID;
INSERT INTO batch_jobs (batch_id, job_id) SELECT local_batch_id, id FROM jobs WHERE local_batch_id IS NOT NULL;

-- What Anthropic billed: one row per job and provider batch. A job's token and cost columns
-- are the sums of its charges; `duplicate_*` is the part that duplicate batches ran up.
CREATE TABLE charges (
    job_id              TEXT NOT NULL REFERENCES jobs (id),
    provider_batch_id   TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('result', 'discarded', 'duplicate')),
    input_tokens        INTEGER NOT NULL,
    output_tokens       INTEGER NOT NULL,
    cost_nanos          INTEGER NOT NULL,
    standard_cost_nanos INTEGER NOT NULL,
    price_version       TEXT NOT NULL,
    at                  INTEGER NOT NULL,
    PRIMARY KEY (job_id, provider_batch_id)
) WITHOUT ROWID;
CREATE INDEX charges_batch ON charges (provider_batch_id);
CREATE INDEX charges_at ON charges (at);
INSERT INTO charges (job_id, provider_batch_id, kind, input_tokens, output_tokens, cost_nanos,
                     standard_cost_nanos, price_version, at)
    SELECT id, batch_id, CASE WHEN status = 'completed' THEN 'result' ELSE 'discarded' END,
           input_tokens, output_tokens, cost_nanos, standard_cost_nanos, COALESCE(price_version, ''),
           usage_recorded_at
    FROM jobs WHERE usage_recorded_at IS NOT NULL AND batch_id IS NOT NULL;
ALTER TABLE jobs ADD COLUMN duplicate_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN duplicate_cost_nanos INTEGER NOT NULL DEFAULT 0;
-- Replaced by the charges.
ALTER TABLE jobs DROP COLUMN usage_recorded_at;
