-- Which instance runs the background work (auto-flush, rescuer) while several share the
-- database: a lease its holder renews, that another takes once it lapses.
CREATE TABLE leadership (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
