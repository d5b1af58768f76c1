-- Completion webhooks: one row per job that asked for one. A job that ends becomes due (the
-- trigger stamps the time of its last change, which the store set); the deliverer claims due
-- rows by moving next_attempt_at forward, so two instances never send the same attempt.
CREATE TABLE webhooks (
    job_id          TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    delivered_at    INTEGER,
    gave_up_at      INTEGER,
    last_error      TEXT
);
CREATE INDEX webhooks_due ON webhooks (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL AND delivered_at IS NULL AND gave_up_at IS NULL;
CREATE TRIGGER webhooks_job_ended AFTER UPDATE OF status ON jobs
    WHEN new.status IN ('completed', 'failed', 'cancelled') AND old.status <> new.status
BEGIN
    UPDATE webhooks SET next_attempt_at = new.updated_at
        WHERE job_id = new.id AND next_attempt_at IS NULL;
END;

-- The secret a user's webhooks are signed with (HMAC-SHA256); shown to its owner once.
ALTER TABLE users ADD COLUMN webhook_secret TEXT;
