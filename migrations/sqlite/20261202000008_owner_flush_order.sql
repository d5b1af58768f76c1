-- A capped owner's first eligible job in flush order, read on every scheduler tick to tell
-- whether their budget blocks them (and so whether their jobs may trigger a flush).
CREATE INDEX jobs_owner_flush_order ON jobs (owner_id, priority DESC, created_at, id) WHERE status = 'pending';
