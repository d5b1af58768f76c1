-- Prefix indexes for the payload's words (store/search.rs): a search is each word as the start
-- of one ("nvd" finds NVDA); without them FTS5 merges the lists of every word with that start
-- before it returns the first, about 15 ms for a ticker a quarter of a million jobs carry.
-- With them a prefix of up to six characters is read like a word. Rebuilt from the jobs
-- (about 10 s a million jobs at upgrade).
DROP TRIGGER jobs_search_insert;
DROP TABLE jobs_search;
CREATE VIRTUAL TABLE jobs_search USING fts5(payload, content = 'jobs', content_rowid = 'rowid',
                                            tokenize = 'unicode61 remove_diacritics 0',
                                            prefix = '1 2 3 4 5 6');
INSERT INTO jobs_search (jobs_search) VALUES ('rebuild');
CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO jobs_search (rowid, payload) VALUES (new.rowid, new.payload);
END;
