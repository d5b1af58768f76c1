-- A flush's claim gives its 10,000 jobs their batch (`local_batch_id`) in one statement, and the
-- foreign key checked each row on its own (a lookup and a row lock apiece, all of one batch):
-- about 5% of the claim. The same rule is checked here once a statement, over the rows it
-- changed, as migration 19 checks members, events and charges. Jobs are inserted without a
-- batch, so an insert that names one is checked row by row, and only then (the trigger's
-- condition is tested before any call: an enqueue pays no function call and no copy of its row).
ALTER TABLE jobs DROP CONSTRAINT jobs_local_batch_id_fkey;

CREATE FUNCTION changed_jobs_name_batches() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT local_batch_id FROM changed
                              WHERE local_batch_id IS NOT NULL) c
               WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = c.local_batch_id OFFSET 0)) THEN
        RAISE EXCEPTION 'a job names a batch that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION inserted_job_names_a_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM batches WHERE id = NEW.local_batch_id) THEN
        RAISE EXCEPTION 'a job names a batch that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_updated_name_batches AFTER UPDATE ON jobs REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION changed_jobs_name_batches();
CREATE TRIGGER jobs_inserted_name_batches AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.local_batch_id IS NOT NULL) EXECUTE FUNCTION inserted_job_names_a_batch();
