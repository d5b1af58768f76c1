-- A job's provider batch id is read through the batch that holds it (`jobs.local_batch_id`),
-- and since this version a submission no longer copies it onto each job: no version from the
-- one before on reads `jobs.batch_id`, so its index goes. The column stays (dropping it would
-- rewrite SQLite's whole table for nothing). This version's requeues still clear it, for an
-- instance of the version before running beside it: that one writes the copy only where it is
-- empty, and records a job's submission there.
DROP INDEX IF EXISTS jobs_batch;
