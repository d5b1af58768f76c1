-- Stats and per-status counts read only these columns: a covering index lets SQLite answer
-- them from the index, without reading each job's payload and result.
CREATE INDEX jobs_stats ON jobs (owner_id, status, input_tokens, output_tokens, cost_nanos, standard_cost_nanos, created_at, completed_at);
