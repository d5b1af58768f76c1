-- Job types are the application's (`JobType`), checked where a request is read; SQLite never
-- listed them, and a list here made a new type fail only on PostgreSQL. Both schemas now
-- constrain the same columns the same way (the conformance suite round-trips every type).
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_job_type_check;
