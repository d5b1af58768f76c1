-- Times are Unix microseconds (INTEGER): they sort, compare and index the same on every engine.
-- Money is integer nano-dollars: totals are exact sums.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('trader', 'admin')),
    created_at  INTEGER NOT NULL
);

-- Bearer tokens and dashboard sessions: a public id to look up, a SHA-256 of the secret to compare.
CREATE TABLE credentials (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('token', 'session')),
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX credentials_user ON credentials (user_id, kind);

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    owner_id            TEXT NOT NULL REFERENCES users (id),
    job_type            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    priority            INTEGER NOT NULL,
    payload             TEXT NOT NULL,
    run_after           INTEGER,
    idempotency_key     TEXT,
    request_hash        TEXT NOT NULL,
    batch_id            TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    model               TEXT,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cost_nanos          INTEGER NOT NULL DEFAULT 0,
    standard_cost_nanos INTEGER NOT NULL DEFAULT 0,
    price_version       TEXT,
    result              TEXT,
    error_message       TEXT,
    cancel_requested    INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    completed_at        INTEGER
);
-- Idempotency is the database's job: NULL keys never collide.
CREATE UNIQUE INDEX jobs_owner_idempotency_key ON jobs (owner_id, idempotency_key);
-- Lists (newest first), per owner and per status, and the flush order.
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_owner_created ON jobs (owner_id, created_at DESC, id DESC);
CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, id DESC);
CREATE INDEX jobs_owner_status_created ON jobs (owner_id, status, created_at DESC, id DESC);
CREATE INDEX jobs_flush_order ON jobs (status, priority DESC, created_at, id) WHERE status = 'pending';
CREATE INDEX jobs_batch ON jobs (batch_id) WHERE batch_id IS NOT NULL;

-- Each job's history, for the dashboard's timeline.
CREATE TABLE job_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    detail      TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, id);
