-- The word index holds each job's type too, as the hex of its name (one token, in a column of
-- its own that no search word reads, as the owner's since migration 16). A search with a type
-- filter is then narrowed by FTS5 intersecting the word's jobs with the type's, where it read
-- every match's job to check its type: a common word and a type none of its jobs have read
-- 250,000 jobs at a million (1.3 s) to find none. A job's type never changes. Rebuilt from the
-- jobs (about 10 s a million jobs at upgrade).
DROP TRIGGER jobs_search_insert;
DROP TABLE jobs_search;
CREATE VIRTUAL TABLE jobs_search USING fts5(payload, owner, job_type, content = '',
                                            tokenize = 'unicode61 remove_diacritics 0',
                                            prefix = '1 2 3 4 5 6');
INSERT INTO jobs_search (rowid, payload, owner, job_type)
SELECT rowid, payload, hex(owner_id), hex(job_type) FROM jobs;
CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO jobs_search (rowid, payload, owner, job_type)
    VALUES (new.rowid, new.payload, hex(new.owner_id), hex(new.job_type));
END;
