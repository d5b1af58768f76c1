-- Search by the payload's words (store/search.rs) instead of trigrams, as on SQLite.
-- Punctuation becomes space, so PostgreSQL's parser splits a payload where SQLite's FTS5
-- tokenizer does; the store's query repeats this expression exactly, or the index is not used.
DROP INDEX jobs_payload_trgm;
CREATE INDEX jobs_payload_words ON jobs
    USING gin (to_tsvector('simple', regexp_replace(payload::text, '[^[:alnum:]]+', ' ', 'g')));
-- An admin's search by idempotency key, across owners.
CREATE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The token a dashboard session was opened with: revoking the token ends the session.
ALTER TABLE credentials ADD COLUMN opened_with TEXT;
CREATE INDEX credentials_opened_with ON credentials (opened_with) WHERE opened_with IS NOT NULL;
