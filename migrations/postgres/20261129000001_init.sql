-- The same schema as SQLite's, in PostgreSQL's own types: times are timestamptz, money is
-- bigint nano-dollars, payloads and results jsonb, enums text with a CHECK. Integers are all
-- bigint: the service reads every count and amount as a 64-bit integer.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('trader', 'admin')),
    created_at  TIMESTAMPTZ NOT NULL
);

-- Bearer tokens and dashboard sessions: a public id to look up, a SHA-256 of the secret to compare.
CREATE TABLE credentials (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('token', 'session')),
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX credentials_user ON credentials (user_id, kind);

-- Batches as we sent them, and provider batches that ran them again (duplicates).
CREATE TABLE batches (
    id                  TEXT PRIMARY KEY,
    provider_batch_id   TEXT UNIQUE,
    status              TEXT NOT NULL CHECK (status IN ('submitting', 'in_progress', 'canceling', 'ended', 'failed', 'lost')),
    job_count           BIGINT NOT NULL,
    estimated_tokens    BIGINT NOT NULL,
    request_bytes       BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    submitted_at        TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ,
    expires_at          TIMESTAMPTZ,
    next_poll_at        TIMESTAMPTZ,
    poll_failures       BIGINT NOT NULL DEFAULT 0,
    request_counts      JSONB,
    results_collected   BOOLEAN NOT NULL DEFAULT FALSE,
    error               TEXT,
    lease_owner         TEXT,
    lease_expires_at    TIMESTAMPTZ,
    submit_started_at   TIMESTAMPTZ,
    submit_ended_at     TIMESTAMPTZ,
    provider_created_at TIMESTAMPTZ,
    clock_sample        BOOLEAN NOT NULL DEFAULT FALSE,
    duplicate_of        TEXT REFERENCES batches (id),
    swept_at            TIMESTAMPTZ,
    short_reads         BIGINT NOT NULL DEFAULT 0,
    unaccounted_results BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX batches_status ON batches (status, next_poll_at);
CREATE INDEX batches_created ON batches (created_at DESC);
CREATE INDEX batches_unsettled ON batches (status, lease_expires_at) WHERE status = 'submitting';
CREATE INDEX batches_unswept ON batches (submit_ended_at) WHERE swept_at IS NULL;

CREATE TABLE jobs (
    id                   TEXT PRIMARY KEY,
    owner_id             TEXT NOT NULL REFERENCES users (id),
    job_type             TEXT NOT NULL CHECK (job_type IN ('portfolio_summary', 'risk_report', 'strategy_backtest',
                                                           'sentiment_analysis', 'model_evaluation', 'trading_analytics')),
    status               TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    priority             BIGINT NOT NULL,
    payload              JSONB NOT NULL,
    run_after            TIMESTAMPTZ,
    idempotency_key      TEXT,
    request_hash         TEXT NOT NULL,
    batch_id             TEXT,
    local_batch_id       TEXT REFERENCES batches (id),
    attempts             BIGINT NOT NULL DEFAULT 0,
    model                TEXT,
    input_tokens         BIGINT NOT NULL DEFAULT 0,
    output_tokens        BIGINT NOT NULL DEFAULT 0,
    cost_nanos           BIGINT NOT NULL DEFAULT 0,
    standard_cost_nanos  BIGINT NOT NULL DEFAULT 0,
    duplicate_tokens     BIGINT NOT NULL DEFAULT 0,
    duplicate_cost_nanos BIGINT NOT NULL DEFAULT 0,
    price_version        TEXT,
    result               JSONB,
    error_message        TEXT,
    cancel_requested     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    completed_at         TIMESTAMPTZ
);
-- Idempotency is the database's job: NULL keys never collide.
CREATE UNIQUE INDEX jobs_owner_idempotency_key ON jobs (owner_id, idempotency_key);
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_owner_created ON jobs (owner_id, created_at DESC, id DESC);
CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, id DESC);
CREATE INDEX jobs_owner_status_created ON jobs (owner_id, status, created_at DESC, id DESC);
CREATE INDEX jobs_flush_order ON jobs (priority DESC, created_at, id) WHERE status = 'pending';
CREATE INDEX jobs_batch ON jobs (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_local_batch ON jobs (local_batch_id) WHERE local_batch_id IS NOT NULL;

-- Each job's history, for the dashboard's timeline.
CREATE TABLE job_events (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    detail  TEXT,
    at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, id);

-- Every job a batch was ever asked to run: proves a provider batch ours by its custom_ids.
CREATE TABLE batch_jobs (
    batch_id TEXT NOT NULL REFERENCES batches (id),
    job_id   TEXT NOT NULL REFERENCES jobs (id),
    PRIMARY KEY (batch_id, job_id)
);

-- What Anthropic billed: one row per job and provider batch.
CREATE TABLE charges (
    job_id              TEXT NOT NULL REFERENCES jobs (id),
    provider_batch_id   TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('result', 'discarded', 'duplicate')),
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cost_nanos          BIGINT NOT NULL,
    standard_cost_nanos BIGINT NOT NULL,
    price_version       TEXT NOT NULL,
    at                  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, provider_batch_id)
);
CREATE INDEX charges_batch ON charges (provider_batch_id);
CREATE INDEX charges_at ON charges (at);
