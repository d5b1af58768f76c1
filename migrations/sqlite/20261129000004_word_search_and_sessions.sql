-- Search by the payload's words (store/search.rs) instead of trigrams: a trigram index cost
-- 3-4 times as much per enqueue, and traders search by ticker and word, not by fragment.
-- Kept in step by an insert trigger (payloads never change).
DROP TRIGGER jobs_search_insert;
DROP TABLE jobs_search;
CREATE VIRTUAL TABLE jobs_search USING fts5(payload, content = 'jobs', content_rowid = 'rowid',
                                            tokenize = 'unicode61 remove_diacritics 0');
INSERT INTO jobs_search (rowid, payload) SELECT rowid, payload FROM jobs;
CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO jobs_search (rowid, payload) VALUES (new.rowid, new.payload);
END;
-- An admin's search by idempotency key, across owners.
CREATE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The token a dashboard session was opened with: revoking the token ends the session.
ALTER TABLE credentials ADD COLUMN opened_with TEXT;
CREATE INDEX credentials_opened_with ON credentials (opened_with) WHERE opened_with IS NOT NULL;
