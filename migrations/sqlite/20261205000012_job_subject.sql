-- What a job is about, for lists: the first of its payload's ticker, portfolio_id, strategy,
-- model_name or account (app::api::SUBJECT_FIELDS), written at insert. Older jobs have none.
ALTER TABLE jobs ADD COLUMN subject TEXT;
