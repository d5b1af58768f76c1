-- A second provider: each batch goes to one (Anthropic or OpenAI), and each job records the
-- provider its model ran on once a flush claims it.
ALTER TABLE batches ADD COLUMN provider TEXT NOT NULL DEFAULT 'anthropic';
ALTER TABLE jobs ADD COLUMN provider TEXT;
UPDATE jobs SET provider = 'anthropic' WHERE model IS NOT NULL;
CREATE INDEX jobs_provider ON jobs (provider, created_at) WHERE provider IS NOT NULL;
