-- A job's provider batch id is read through the batch that holds it (`jobs.local_batch_id`),
-- and since this version a submission no longer copies it onto each job: `jobs.batch_id` is
-- read by no version from the one before on, so its index goes. The column stays while an
-- instance of the version before may still run beside this one (it writes the copy, and this
-- version's requeues clear it so that one keeps recording every job's submission); a later
-- version drops it.
DROP INDEX IF EXISTS jobs_batch;
