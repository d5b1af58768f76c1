-- Totals per owner, status and job type, kept by the store in the same transaction as every
-- job change: stats and list counts read these few rows, never every job.
CREATE TABLE job_totals (
    owner_id            TEXT NOT NULL,
    status              TEXT NOT NULL,
    job_type            TEXT NOT NULL,
    jobs                BIGINT NOT NULL DEFAULT 0,
    input_tokens        BIGINT NOT NULL DEFAULT 0,
    output_tokens       BIGINT NOT NULL DEFAULT 0,
    cost_nanos          BIGINT NOT NULL DEFAULT 0,
    standard_cost_nanos BIGINT NOT NULL DEFAULT 0,
    -- Sum of completed_at - created_at over the cell's completed jobs, in microseconds.
    completion_micros   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (owner_id, status, job_type)
);
INSERT INTO job_totals (owner_id, status, job_type, jobs, input_tokens, output_tokens, cost_nanos,
                        standard_cost_nanos, completion_micros)
    SELECT owner_id, status, job_type, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_nanos),
           SUM(standard_cost_nanos),
           SUM(CASE WHEN status = 'completed' AND completed_at IS NOT NULL
                    THEN (EXTRACT(EPOCH FROM completed_at - created_at) * 1000000)::BIGINT ELSE 0 END)
    FROM jobs GROUP BY owner_id, status, job_type;

-- Search by payload text (a ticker, any three characters or more), case-insensitive like
-- SQLite's: a trigram index of each payload's text.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX jobs_payload_trgm ON jobs USING gin ((payload::text) gin_trgm_ops);
