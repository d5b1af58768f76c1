-- Shared contexts (large inputs many jobs share, cached at the provider) and what caching
-- did to each job's bill. A context is immutable and content-addressed per owner. Deleting
-- one that finished jobs name keeps its row (and their history) but drops its text.
CREATE TABLE contexts (
    id              TEXT PRIMARY KEY,
    owner_id        TEXT NOT NULL REFERENCES users (id),
    name            TEXT NOT NULL,
    text            TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    bytes           BIGINT NOT NULL,
    tokens_estimate BIGINT NOT NULL,
    shared          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ
);
CREATE UNIQUE INDEX contexts_owner_sha256 ON contexts (owner_id, sha256) WHERE deleted_at IS NULL;
CREATE INDEX contexts_shared ON contexts (shared) WHERE shared AND deleted_at IS NULL;

ALTER TABLE jobs ADD COLUMN context_id TEXT REFERENCES contexts (id);
CREATE INDEX jobs_context ON jobs (context_id, status) WHERE context_id IS NOT NULL;

-- Tokens read from and written to the provider's cache, and what the same requests would
-- have cost in a batch without caching (so savings split into batching and caching).
ALTER TABLE jobs ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN uncached_cost_nanos BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET uncached_cost_nanos = cost_nanos;

ALTER TABLE charges ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN uncached_cost_nanos BIGINT NOT NULL DEFAULT 0;
UPDATE charges SET uncached_cost_nanos = cost_nanos;

ALTER TABLE job_totals ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE job_totals ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE job_totals ADD COLUMN uncached_cost_nanos BIGINT NOT NULL DEFAULT 0;
UPDATE job_totals SET uncached_cost_nanos = cost_nanos;
