-- How many of each owner's jobs carry each word, counted up to 10,001: one past the cap of a
-- search's count (`SEARCH_COUNT_CAP`, store/search.rs). A search for one word whose count
-- would read 10,001 matches from the heap (30–40 ms at a million jobs, however they are
-- found) is known to be capped from these rows instead. Sound because jobs are never deleted
-- and their payloads never change: a count only grows. Code that deletes jobs or rewrites a
-- payload must lower these rows first.
--
-- A lower bound, never more: an insert skips a row another enqueue holds rather than wait
-- for it (and a row two enqueues create at once keeps one's count). A word stays unknown a
-- little longer; its search then counts as before.
CREATE TABLE search_word_jobs (
    word     TEXT COLLATE "C" NOT NULL,
    owner_id TEXT NOT NULL,
    jobs     BIGINT NOT NULL,
    PRIMARY KEY (word, owner_id)
);

-- Migration 14's trigger, counting too, in one statement (one snapshot). Counted rows below the
-- cap that no other enqueue holds count on; a held one is skipped. Pairs with no row yet get
-- one, in the key's order, as the vocabulary's words do. An insert never meets a row that
-- exists (one another enqueue is updating would make it wait, and that one might be waiting
-- for a row this one added): no enqueue waits for another in a cycle.
--
-- Each pair is looked up by the key, never by reading the table whole: a function's plans are
-- kept for its connection's life, and one made while the table was small (a hash of all of it)
-- would read a million rows an enqueue once it is not. Hence the settings.
CREATE OR REPLACE FUNCTION jobs_search_words() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    INSERT INTO search_words (word)
    SELECT DISTINCT w.word COLLATE "C"
    FROM inserted j CROSS JOIN unnest(tsvector_to_array(j.payload_words)) AS w(word)
    ORDER BY 1
    ON CONFLICT DO NOTHING;

    WITH added AS MATERIALIZED (
        SELECT w.word COLLATE "C" AS word, j.owner_id, count(*) AS jobs
        FROM inserted j CROSS JOIN unnest(tsvector_to_array(j.payload_words)) AS w(word)
        GROUP BY 1, 2
    ), open AS (
        SELECT c.word, c.owner_id, a.jobs
        FROM search_word_jobs c JOIN added a ON a.word = c.word AND a.owner_id = c.owner_id
        WHERE c.jobs < 10001
        FOR UPDATE OF c SKIP LOCKED
    ), counted AS (
        UPDATE search_word_jobs c SET jobs = least(c.jobs + o.jobs, 10001)
        FROM open o WHERE c.word = o.word AND c.owner_id = o.owner_id
    )
    INSERT INTO search_word_jobs (word, owner_id, jobs)
    SELECT a.word, a.owner_id, least(a.jobs, 10001)
    FROM added a
    WHERE NOT EXISTS (
        SELECT 1 FROM search_word_jobs c WHERE c.word = a.word AND c.owner_id = a.owner_id
    )
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- The jobs stored so far. No lock: a job committed meanwhile by an instance still on the old
-- trigger may be counted by neither, never by both, and a count may fall short.
INSERT INTO search_word_jobs (word, owner_id, jobs)
SELECT w.word, j.owner_id, least(count(*), 10001)
FROM jobs j CROSS JOIN unnest(tsvector_to_array(j.payload_words)) AS w(word)
GROUP BY 1, 2;
