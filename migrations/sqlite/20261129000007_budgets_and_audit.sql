-- What a job may cost at most (its prompt and whole max_tokens at batch prices), fixed when it
-- is enqueued: what a budget counts for pending and in-flight work. Older jobs count 0.
ALTER TABLE jobs ADD COLUMN cost_bound_nanos INTEGER NOT NULL DEFAULT 0;

-- A user's monthly spend cap (UTC calendar months), in nano-dollars. No row: no cap.
CREATE TABLE budgets (
    user_id           TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    monthly_cap_nanos INTEGER NOT NULL CHECK (monthly_cap_nanos >= 0),
    updated_at        INTEGER NOT NULL,
    updated_by        TEXT NOT NULL
);

-- What admins did, written in the transaction of the action itself.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor_id   TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    detail     TEXT
);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_name, id DESC);
