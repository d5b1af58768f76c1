-- Provider batches the stray search read and proved not ours (their results name jobs we
-- never sent): each is read once, not at every search.
CREATE TABLE foreign_batches (
    provider_batch_id TEXT PRIMARY KEY,
    provider          TEXT NOT NULL,
    checked_at        INTEGER NOT NULL
);
