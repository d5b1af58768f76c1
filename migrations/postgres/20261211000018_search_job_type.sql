-- The word index holds each job's type too: one GIN index of the payload's words and the type
-- (btree_gin gives GIN a text column's equality). A search with a type filter then asks the
-- index for both at once, where it built a bitmap of every job carrying the word and read each
-- one to check its type: a common word and a type none of its jobs have took 200-250 ms at a
-- million jobs to find none, 9-10 ms this way. It replaces the index of the words alone, which
-- a search without a type still reads through the first column: one GIN index to write per job,
-- as before. A job's type never changes.
CREATE EXTENSION IF NOT EXISTS btree_gin;
DROP INDEX jobs_payload_words;
CREATE INDEX jobs_words_type ON jobs USING gin (payload_words, job_type);
