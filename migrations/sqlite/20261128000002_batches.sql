-- Batches as we sent them. `submitting` is written with its claimed jobs in one transaction
-- before the provider is called; the provider's id (`msgbatch_…`) is recorded after it.
CREATE TABLE batches (
    id                TEXT PRIMARY KEY,
    provider_batch_id TEXT UNIQUE,
    status            TEXT NOT NULL CHECK (status IN ('submitting', 'in_progress', 'canceling', 'ended', 'failed', 'lost')),
    job_count         INTEGER NOT NULL,
    estimated_tokens  INTEGER NOT NULL,
    request_bytes     INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    submitted_at      INTEGER,
    ended_at          INTEGER,
    expires_at        INTEGER,
    next_poll_at      INTEGER,
    poll_failures     INTEGER NOT NULL DEFAULT 0,
    -- The provider's settled counts, once the batch has ended (JSON).
    request_counts    TEXT,
    results_collected INTEGER NOT NULL DEFAULT 0,
    error             TEXT
);
CREATE INDEX batches_status ON batches (status, next_poll_at);
CREATE INDEX batches_created ON batches (created_at DESC);

-- The local batch a job was claimed into (known before the provider's id is).
ALTER TABLE jobs ADD COLUMN local_batch_id TEXT REFERENCES batches (id);
-- Set once a result's usage has been counted, so a re-poll never counts it twice.
ALTER TABLE jobs ADD COLUMN usage_recorded_at INTEGER;
CREATE INDEX jobs_local_batch ON jobs (local_batch_id) WHERE local_batch_id IS NOT NULL;
