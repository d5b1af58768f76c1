-- An ended batch whose copy at the provider (OpenAI's input, output and error files) is still
-- to be deleted: set with the batch's results, cleared once the provider confirms, so a
-- refused delete or a kill in between is retried instead of leaving the files for good.
-- Batches ended before this migration were released by the code of their time.
ALTER TABLE batches ADD COLUMN release_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX batches_release_pending ON batches (ended_at) WHERE release_pending;
-- An upload left at the provider is deleted once its batch and every copy of it have settled:
-- the copies are found by this.
CREATE INDEX batches_duplicate_of ON batches (duplicate_of) WHERE duplicate_of IS NOT NULL;
