-- A search finds the words of the payload's values, not of its field names: "ticker" or
-- "price" matched every job whose payload has such a field, which says nothing about the job
-- (PostgreSQL changes the same way in its migration 21). The values are read with `json_tree`,
-- `true`, `false` and `null` spelled as in the JSON. Rebuilt from the jobs, as migration 18.
DROP TRIGGER jobs_search_insert;
DROP TABLE jobs_search;
CREATE VIRTUAL TABLE jobs_search USING fts5(payload, owner, job_type, content = '',
                                            tokenize = 'unicode61 remove_diacritics 0',
                                            prefix = '1 2 3 4 5 6');
INSERT INTO jobs_search (rowid, payload, owner, job_type)
SELECT j.rowid,
       (SELECT group_concat(CASE WHEN v.type IN ('true', 'false', 'null') THEN v.type ELSE v.atom END, ' ')
        FROM json_tree(j.payload) v WHERE v.type NOT IN ('object', 'array')),
       hex(j.owner_id), hex(j.job_type)
FROM jobs j;
CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO jobs_search (rowid, payload, owner, job_type)
    VALUES (new.rowid,
            (SELECT group_concat(CASE WHEN v.type IN ('true', 'false', 'null') THEN v.type ELSE v.atom END, ' ')
             FROM json_tree(new.payload) v WHERE v.type NOT IN ('object', 'array')),
            hex(new.owner_id), hex(new.job_type));
END;
