-- Totals per owner, status and job type, kept by the store in the same transaction as every
-- job change: stats and list counts read these few rows, never every job.
CREATE TABLE job_totals (
    owner_id            TEXT NOT NULL,
    status              TEXT NOT NULL,
    job_type            TEXT NOT NULL,
    jobs                INTEGER NOT NULL DEFAULT 0,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cost_nanos          INTEGER NOT NULL DEFAULT 0,
    standard_cost_nanos INTEGER NOT NULL DEFAULT 0,
    -- Sum of completed_at - created_at over the cell's completed jobs, in microseconds.
    completion_micros   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner_id, status, job_type)
) WITHOUT ROWID;
INSERT INTO job_totals (owner_id, status, job_type, jobs, input_tokens, output_tokens, cost_nanos,
                        standard_cost_nanos, completion_micros)
    SELECT owner_id, status, job_type, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_nanos),
           SUM(standard_cost_nanos),
           SUM(CASE WHEN status = 'completed' AND completed_at IS NOT NULL THEN completed_at - created_at ELSE 0 END)
    FROM jobs GROUP BY owner_id, status, job_type;
-- Stats and counts no longer scan jobs: their covering index only slowed every write.
DROP INDEX jobs_stats;

-- Search by payload text (a ticker, any three characters or more): a trigram index of each
-- payload, kept in step by SQLite's own external-content triggers.
CREATE VIRTUAL TABLE jobs_search USING fts5(payload, content = 'jobs', content_rowid = 'rowid', tokenize = 'trigram');
INSERT INTO jobs_search (rowid, payload) SELECT rowid, payload FROM jobs;
CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO jobs_search (rowid, payload) VALUES (new.rowid, new.payload);
END;
