-- A search finds the words of the payload's values, not of its field names: "ticker" or
-- "price" matched every job whose payload has such a field, which says nothing about the job
-- (SQLite changes the same way in its migration 21). Fewer words a job, too: a third of a
-- typical payload's were field names, and each is a GIN entry written again whenever the job's
-- row is (a claim of 10,000 jobs 15% less, an ingest's updates 8%; BENCHMARKS.md). The values
-- are the payload's scalars at every depth, as a JSON array's text, split as before.
ALTER TABLE jobs DROP COLUMN payload_words;
ALTER TABLE jobs ADD COLUMN payload_words tsvector GENERATED ALWAYS AS (to_tsvector('simple',
    regexp_replace(jsonb_path_query_array(payload, 'strict $.** ? (@.type() != "object" && @.type() != "array")')::text,
                   '[^[:alnum:]]+', ' ', 'g'))) STORED;
CREATE INDEX jobs_words_type ON jobs USING gin (payload_words, job_type);

-- The vocabulary and the counts (migrations 14 and 15) read again from the new words: a
-- count of a field name's jobs would otherwise say a search is capped that finds none. The
-- lock `ALTER TABLE` took on `jobs` holds every insert until this commits.
TRUNCATE search_words, search_word_jobs;
INSERT INTO search_words (word)
SELECT DISTINCT w.word FROM jobs j CROSS JOIN unnest(tsvector_to_array(j.payload_words)) AS w(word);
INSERT INTO search_word_jobs (word, owner_id, jobs)
SELECT w.word, j.owner_id, least(count(*), 10001)
FROM jobs j CROSS JOIN unnest(tsvector_to_array(j.payload_words)) AS w(word)
GROUP BY 1, 2;
ANALYZE jobs;
