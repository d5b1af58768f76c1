-- Every word the jobs' payloads carry (store/search.rs). A search word is read as the start of
-- a word; GIN answers a prefix (`nvda:*`) with a bitmap of every match of every word it
-- covers, which a capped count of a common word paid in full (about 60 ms at a million jobs).
-- The vocabulary turns the prefix into the few exact words it begins, each read from its own
-- posting list (about 10 ms). Byte order ("C"), so the words a prefix begins are one range
-- of the key. It only grows, so it holds every stored job's words and perhaps some more.
CREATE TABLE search_words (
    word TEXT COLLATE "C" PRIMARY KEY
);

-- Kept by the database, like SQLite's word index: any insert of jobs, from any instance of
-- any version, adds its words before it commits. Once per statement, in the key's order, so
-- two enqueues adding the same new words wait for each other in one order, never in a cycle.
CREATE FUNCTION jobs_search_words() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_words (word)
    SELECT DISTINCT w.word COLLATE "C"
    FROM inserted j CROSS JOIN unnest(tsvector_to_array(j.payload_words)) AS w(word)
    ORDER BY 1
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
-- Created before the words already stored are read: its lock on `jobs` holds other inserts
-- until this migration commits, so none falls between the two.
CREATE TRIGGER jobs_search_words AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION jobs_search_words();
INSERT INTO search_words (word)
SELECT DISTINCT w.word FROM jobs j CROSS JOIN unnest(tsvector_to_array(j.payload_words)) AS w(word);
