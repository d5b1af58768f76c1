-- Completion webhooks, as on SQLite: a row per job that asked for one, due once the job ends.
CREATE TABLE webhooks (
    job_id          TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    gave_up_at      TIMESTAMPTZ,
    last_error      TEXT
);
CREATE INDEX webhooks_due ON webhooks (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL AND delivered_at IS NULL AND gave_up_at IS NULL;
CREATE FUNCTION webhooks_job_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE webhooks SET next_attempt_at = NEW.updated_at
        WHERE job_id = NEW.id AND next_attempt_at IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER webhooks_job_ended AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status <> NEW.status)
    EXECUTE FUNCTION webhooks_job_ended();

ALTER TABLE users ADD COLUMN webhook_secret TEXT;
