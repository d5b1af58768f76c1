-- A flush inserts a batch member and a "submitted" event for each of its jobs, an ingest a
-- charge and an event for each result: 10,000 rows and more in one statement. Their foreign
-- keys checked each row on its own (a query and a row lock apiece): half or more of those
-- inserts' time, a quarter of a flush's writes. The same rule is checked here once a statement,
-- over the rows it inserted: each names a job (and a member its batch) that exists. Each row is
-- looked up by its key, whatever the planner guessed of the tables when a connection first
-- planned the check (one made while `jobs` was nearly empty scanned all of it at every
-- enqueue after): `OFFSET 0` keeps the lookup a subquery run per row, not a join the planner
-- may turn into a scan, and sequential scans are off inside the check.
-- What the keys did on deletion is not needed: jobs and batches are never deleted (the books
-- hold them), and now cannot be.
ALTER TABLE batch_jobs DROP CONSTRAINT batch_jobs_job_id_fkey,
                       DROP CONSTRAINT batch_jobs_batch_id_fkey;
ALTER TABLE job_events DROP CONSTRAINT job_events_job_id_fkey;
ALTER TABLE charges DROP CONSTRAINT charges_job_id_fkey;

CREATE FUNCTION added_rows_name_jobs() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM added a WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = a.job_id OFFSET 0)) THEN
        RAISE EXCEPTION 'a row of % names a job that does not exist', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION added_members_name_batches() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT batch_id FROM added) a
               WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = a.batch_id OFFSET 0)) THEN
        RAISE EXCEPTION 'a row of batch_jobs names a batch that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER batch_jobs_name_jobs AFTER INSERT ON batch_jobs REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION added_rows_name_jobs();
CREATE TRIGGER batch_jobs_name_batches AFTER INSERT ON batch_jobs REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION added_members_name_batches();
CREATE TRIGGER job_events_name_jobs AFTER INSERT ON job_events REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION added_rows_name_jobs();
CREATE TRIGGER charges_name_jobs AFTER INSERT ON charges REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION added_rows_name_jobs();

CREATE FUNCTION never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are never deleted: the books hold them', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER jobs_never_deleted BEFORE DELETE OR TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION never_deleted();
CREATE TRIGGER batches_never_deleted BEFORE DELETE OR TRUNCATE ON batches
    FOR EACH STATEMENT EXECUTE FUNCTION never_deleted();
