-- The payload's words, stored with the row: a search filtered by owner or status reads this
-- column instead of parsing the payload again for every row it looks at (a trader's search
-- over a million jobs took over two seconds that way). Computed exactly as before.
ALTER TABLE jobs ADD COLUMN payload_words tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', regexp_replace(payload::text, '[^[:alnum:]]+', ' ', 'g'))) STORED;
DROP INDEX jobs_payload_words;
CREATE INDEX jobs_payload_words ON jobs USING gin (payload_words);
