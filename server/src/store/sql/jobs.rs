//! Jobs as their owners see them: insert, idempotency, lists, cancel, retry, stats.

use std::collections::HashMap;

use app::api::{JobStatus, ListQuery};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{
    CountedRow, DailyCostRow, EventRow, JOB_COLUMNS, JOB_FROM, JOB_PROVIDER_BATCH,
    JOB_SUMMARY_COLUMNS, JobRow, PageRow, ProviderCostRow, TotalsDbRow, bill_columns, bill_sums,
    first, local_batch_named,
};
use super::search::{Plan, counted_words, known_capped, page_query, typed_words, word_match};
use super::{
    COUNTED, SqlStore, apply_totals, counted_moves, insert_events, push_visibility,
    push_visibility_of, tx_read,
};
use crate::events::Happened;
use crate::store::engine::{Arg, Engine, Kind, Query, Rows};
use crate::store::*;

/// The columns of `jobs` an insert writes, as a set of rows.
const NEW_JOB_COLUMNS: [(&str, Kind); 12] = [
    ("id", Kind::Text),
    ("owner_id", Kind::Text),
    ("job_type", Kind::Text),
    ("priority", Kind::Int),
    ("payload", Kind::Json),
    ("run_after", Kind::Time),
    ("idempotency_key", Kind::Text),
    ("request_hash", Kind::Text),
    ("cost_bound_nanos", Kind::Int),
    ("context_id", Kind::Text),
    ("created_at", Kind::Time),
    ("updated_at", Kind::Time),
];

impl<E: Engine> SqlStore<E> {
    /// One job by a condition on `j` (SQL after `WHERE`, with its binds).
    async fn job_where(
        &self,
        condition: &str,
        args: impl IntoIterator<Item = Arg<'_>>,
    ) -> StoreResult<Option<JobRecord>> {
        let sql = format!("SELECT {JOB_COLUMNS}{JOB_FROM} WHERE {condition}");
        self.read_one::<JobRow>(&sql, args)
            .await?
            .map(JobRecord::try_from)
            .transpose()
    }
}

/// The job an owner already made with an idempotency key, read inside the writing transaction
/// (it may have been inserted by the same transaction).
async fn by_key<E: Engine>(
    tx: &mut E::Tx,
    owner_id: &str,
    key: &str,
) -> StoreResult<Option<JobRecord>> {
    let sql =
        format!("SELECT {JOB_COLUMNS}{JOB_FROM} WHERE j.owner_id = ? AND j.idempotency_key = ?");
    let rows: Vec<JobRow> = tx_read::<E, _>(tx, &sql, [owner_id.into(), key.into()]).await?;
    rows.into_iter().next().map(JobRecord::try_from).transpose()
}

/// Which index a list statement is driven by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Drive {
    /// Whichever the planner picks from the filters (the owner's, a status's).
    Filters,
    /// The set of a search's matches: the filters are tested on each, never walked by index
    /// (SQLite, without statistics, takes an owner's or a status's index for selective and
    /// would walk a million jobs to test each against a set of two hundred).
    Matches,
}

/// ` AND <visible> AND <the list's filters>`: owner, status, type, provider, batch, error
/// text (the search is `Dialect::push_search`).
pub(super) fn push_filter<'a, E: Engine>(
    query: &mut Query<'a>,
    visibility: &'a Visibility,
    filter: &'a ListQuery,
    drive: Drive,
) {
    let j = match drive {
        Drive::Filters => " AND j.",
        Drive::Matches => &format!(" AND {}j.", E::DIALECT.not_by_index()),
    };
    push_visibility_of(query, visibility, j);
    if let Some(status) = filter.status_filter {
        query.push(&format!("{j}status = ")).bind(status.as_str());
    }
    if let Some(job_type) = filter.job_type {
        query
            .push(&format!("{j}job_type = "))
            .bind(job_type.as_str());
    }
    if let Some(provider) = filter.provider {
        query
            .push(&format!("{j}provider = "))
            .bind(provider.as_str());
    }
    if let Some(batch) = &filter.batch_id {
        query
            .push(&format!("{j}local_batch_id = "))
            .append(local_batch_named(batch));
    }
    if let Some(text) = &filter.error {
        query
            .push(&format!(
                " AND j.error_message {} ",
                E::DIALECT.like_any_case()
            ))
            .bind(contains_pattern(text))
            .push(" ESCAPE '\\'");
    }
}

/// ` AND <after the cursor>`, where the list reads on from a page's last job.
pub(super) fn push_cursor<'a>(query: &mut Query<'a>, filter: &'a ListQuery) {
    if let Some(cursor) = &filter.cursor {
        query
            .push(" AND (j.created_at, j.id) < (")
            .bind(cursor.created_at)
            .push(", ")
            .bind(cursor.id.as_str())
            .push(")");
    }
}

#[async_trait]
impl<E: Engine> JobStore for SqlStore<E> {
    async fn insert_jobs(
        &self,
        mut jobs: Vec<NewJob>,
        conflicts: KeyConflicts,
    ) -> StoreResult<Vec<InsertOutcome>> {
        let mut tx = self.begin().await?;
        let mut rows = Rows::new(&NEW_JOB_COLUMNS);
        for job in &mut jobs {
            rows.push(vec![
                job.id.as_str().into(),
                job.owner_id.as_str().into(),
                job.job_type.as_str().into(),
                job.priority.into(),
                // Moved, not copied: the payload is not needed after its insert.
                Arg::json(std::mem::take(&mut job.payload)),
                job.run_after.into(),
                job.idempotency_key.clone().into(),
                job.request_hash.as_str().into(),
                job.cost_bound_nanos.into(),
                job.context_id.as_deref().into(),
                job.created_at.into(),
                job.created_at.into(),
            ]);
        }
        let mut insert = Query::default();
        // A key reused by its owner (before, or earlier in this very statement) inserts nothing.
        insert
            .push(&format!("WITH v {} AS (", rows.names()))
            .rows(rows)
            .push(&format!(
                ") INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, run_after, \
                 idempotency_key, request_hash, cost_bound_nanos, context_id, created_at, updated_at, \
                 subject) \
                 SELECT id, owner_id, job_type, 'pending', priority, payload, run_after, idempotency_key, \
                 request_hash, cost_bound_nanos, context_id, created_at, updated_at, {} FROM v \
                 WHERE (v.context_id IS NULL OR EXISTS (SELECT 1 FROM contexts c \
                 WHERE c.id = v.context_id AND c.deleted_at IS NULL{})) \
                 ON CONFLICT (owner_id, idempotency_key) DO NOTHING RETURNING id, subject",
                E::DIALECT.payload_subject("v.payload"),
                E::DIALECT.share_lock()
            ));
        // Each inserted job's id, with the subject the insert read from its payload.
        let inserted: HashMap<String, Option<String>> =
            E::tx_read::<(String, Option<String>)>(&mut tx, insert)
                .await?
                .into_iter()
                .collect();
        let mut deltas = Deltas::default();
        let mut events = Vec::with_capacity(inserted.len());
        let mut outcomes = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            if let Some(subject) = inserted.get(&job.id) {
                deltas.added(&job.counted(), JobStatus::Pending);
                events.push((job.id.as_str(), &Happened::Created, job.created_at));
                outcomes.push(InsertOutcome::Created(JobRecord {
                    subject: subject.clone(),
                    ..job.record()
                }));
            } else {
                let existing = match job.idempotency_key.as_deref() {
                    Some(key) => by_key::<E>(&mut tx, &job.owner_id, key).await?,
                    None => None,
                };
                // Not inserted and not there: its context was deleted meanwhile.
                let existing = existing.ok_or(StoreError::ContextGone { index })?;
                if conflicts == KeyConflicts::Refuse && existing.request_hash != job.request_hash {
                    // Dropping the transaction rolls the whole group back.
                    return Err(StoreError::KeyConflict { index });
                }
                outcomes.push(InsertOutcome::Existing(existing));
            }
        }
        // A job that asked for a webhook gets its row now; it becomes due when the job ends.
        let mut hooks = Rows::new(&[("job_id", Kind::Text), ("url", Kind::Text)]);
        for job in jobs.iter().filter(|job| inserted.contains_key(&job.id)) {
            if let Some(url) = &job.callback_url {
                hooks.push(vec![job.id.as_str().into(), url.as_str().into()]);
            }
        }
        if !hooks.is_empty() {
            let mut query = Query::default();
            query
                .push(&format!("WITH v {} AS (", hooks.names()))
                .rows(hooks)
                .push(") INSERT INTO webhooks (job_id, url) SELECT * FROM v");
            E::tx_execute(&mut tx, query).await?;
        }
        insert_events::<E>(&mut tx, &events).await?;
        apply_totals::<E>(&mut tx, &deltas).await?;
        E::commit(tx).await?;
        Ok(outcomes)
    }

    async fn get_job(&self, id: &str, visibility: &Visibility) -> StoreResult<Option<JobRecord>> {
        match visibility {
            Visibility::Owner(owner_id) => {
                self.job_where("j.id = ? AND j.owner_id = ?", [id.into(), owner_id.into()])
                    .await
            }
            Visibility::All => self.job_where("j.id = ?", [id.into()]).await,
        }
    }

    async fn jobs_by_keys(&self, owner_id: &str, keys: &[String]) -> StoreResult<Vec<JobRecord>> {
        let mut jobs = Vec::new();
        for chunk in keys.chunks(E::DIALECT.items_per_statement()) {
            let mut query = Query::new(
                format!(
                    "SELECT {JOB_SUMMARY_COLUMNS}{JOB_FROM} WHERE j.owner_id = ? AND j.idempotency_key IN "
                ),
                [owner_id.into()],
            );
            query.list(chunk.iter());
            for row in self.engine.read::<JobRow>(query).await? {
                jobs.push(JobRecord::try_from(row)?);
            }
        }
        Ok(jobs)
    }

    async fn list_jobs(&self, visibility: &Visibility, filter: &ListQuery) -> StoreResult<JobPage> {
        let words = filter
            .search
            .as_deref()
            .map(search_words)
            .unwrap_or_default();
        let searched = word_match(&self.engine, &words).await?;
        let words = searched.as_ref().map(|searched| &searched.matching);
        let typed = typed_words(filter, words);
        let page_words = typed.as_ref().or(words);
        let plans: &[Plan] = if words.is_none() {
            &[Plan::Ordered]
        } else {
            &[Plan::Recent, Plan::Sorted]
        };
        let mut jobs = Vec::new();
        // What the sorted plan counted: every match, when it read from the first (an empty
        // first page counts none).
        let mut matched = None;
        for &plan in plans {
            let rows = self
                .engine
                .read::<PageRow>(page_query::<E>(visibility, filter, page_words, plan))
                .await?;
            matched = match rows.first() {
                Some(row) => row.matched,
                None if plan == Plan::Sorted && filter.cursor.is_none() && filter.offset == 0 => {
                    Some(0)
                }
                None => None,
            };
            jobs = rows
                .into_iter()
                .map(|row| JobRecord::try_from(row.job))
                .collect::<StoreResult<Vec<_>>>()?;
            if jobs.len() as i64 >= filter.limit {
                break;
            }
        }

        let totals = self.totals(visibility).await?;
        let known_capped = match (&searched, matched) {
            (Some(searched), None) => {
                known_capped(&self.engine, visibility, filter, searched).await?
            }
            _ => false,
        };
        let (total_count, total_count_capped) = if let Some(matched) = matched {
            capped_count(matched)
        } else if known_capped {
            (SEARCH_COUNT_CAP, true)
        } else if filter.matches_text() {
            let mut conditions = Query::default();
            let drive = if filter.search.is_some() {
                Drive::Matches
            } else {
                Drive::Filters
            };
            push_filter::<E>(&mut conditions, visibility, filter, drive);
            let counted = counted_words::<E>(visibility, filter, page_words);
            let matching = match filter.search.as_deref() {
                Some(text) => E::DIALECT.count_search(
                    text,
                    page_words,
                    counted.as_ref(),
                    conditions,
                    SEARCH_COUNT_CAP + 1,
                ),
                None => {
                    let mut matching =
                        Query::new("SELECT COUNT(*) FROM (SELECT 1 FROM jobs j WHERE 1 = 1", []);
                    matching.append(conditions);
                    matching
                        .push(" LIMIT ")
                        .bind(SEARCH_COUNT_CAP + 1)
                        .push(") matching");
                    matching
                }
            };
            capped_count(first(self.engine.read::<(i64,)>(matching).await?).unwrap_or(0))
        } else {
            (
                count_from(&totals, filter.status_filter, filter.job_type),
                false,
            )
        };
        let next_cursor = (jobs.len() as i64 == filter.limit)
            .then(|| jobs.last())
            .flatten()
            .map(|last| app::api::ListCursor {
                created_at: last.created_at,
                id: last.id.clone(),
            });
        Ok(JobPage {
            jobs,
            total_count,
            total_count_capped,
            pending_count: count_from(&totals, Some(JobStatus::Pending), None),
            processing_count: count_from(&totals, Some(JobStatus::Processing), None),
            next_cursor,
        })
    }

    async fn cancel_job(
        &self,
        id: &str,
        visibility: &Visibility,
        now: DateTime<Utc>,
    ) -> StoreResult<CancelOutcome> {
        let mut tx = self.begin().await?;
        let mut find = Query::new(
            format!("SELECT j.status, {JOB_PROVIDER_BATCH} FROM jobs j WHERE j.id = ?"),
            [id.into()],
        );
        push_visibility(&mut find, visibility);
        if E::DIALECT.locks_rows() {
            // Locks the row: a concurrent ingest waits, then finds it cancelled.
            find.push(" FOR UPDATE");
        }
        let found: Vec<(String, Option<String>)> = E::tx_read(&mut tx, find).await?;
        let Some((status, batch_id)) = found.into_iter().next() else {
            return Ok(CancelOutcome::NotFound);
        };
        let was = parse_status(&status)?;
        if !was.can_cancel() {
            return Ok(CancelOutcome::Terminal(was));
        }
        // The status is checked again where it is changed: `can_cancel`, as SQL.
        let mut cancel = Query::new(
            "UPDATE jobs SET status = 'cancelled', cancel_requested = (status = 'processing'), \
             updated_at = ? WHERE id = ? AND status IN ",
            [now.into(), id.into()],
        );
        cancel
            .list(JobStatus::cancellable().map(JobStatus::as_str))
            .push(&format!(" RETURNING {COUNTED}"));
        let rows: Vec<CountedRow> = E::tx_read(&mut tx, cancel).await?;
        let Some(job) = rows.into_iter().next() else {
            // Claimed or ended since it was read (PostgreSQL: another transaction's).
            return Ok(CancelOutcome::Terminal(was));
        };
        let happened = Happened::Cancelled {
            was,
            batch: batch_id,
        };
        insert_events::<E>(&mut tx, &[(id, &happened, now)]).await?;
        let mut deltas = Deltas::default();
        let counted = job.counted()?;
        deltas.moved(&counted, was, &counted, JobStatus::Cancelled);
        apply_totals::<E>(&mut tx, &deltas).await?;
        E::commit(tx).await?;
        let job = self
            .job_where("j.id = ?", [id.into()])
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("job {id} vanished")))?;
        Ok(CancelOutcome::Cancelled {
            job: Box::new(job),
            was,
        })
    }

    async fn retry_failed(
        &self,
        ids: &[String],
        happened: &Happened,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin().await?;
        let mut deltas = Deltas::default();
        let mut retried = Vec::new();
        for chunk in ids.chunks(E::DIALECT.items_per_statement()) {
            // A failed job whose context was deleted since stays failed: its text is gone.
            let mut query = Query::new(
                format!(
                    "UPDATE jobs SET status = 'pending', error_message = NULL, batch_id = NULL, \
                     local_batch_id = NULL, completed_at = NULL, updated_at = ? WHERE status = 'failed' \
                     AND (context_id IS NULL OR EXISTS (SELECT 1 FROM contexts c \
                     WHERE c.id = jobs.context_id AND c.deleted_at IS NULL{})) AND id IN ",
                    E::DIALECT.share_lock()
                ),
                [now.into()],
            );
            query
                .list(chunk.iter())
                .push(&format!(" RETURNING {COUNTED}"));
            let rows: Vec<CountedRow> = E::tx_read(&mut tx, query).await?;
            counted_moves(&rows, JobStatus::Failed, JobStatus::Pending, &mut deltas)?;
            retried.extend(rows.into_iter().map(|r| r.id));
        }
        let events: Vec<_> = retried
            .iter()
            .map(|id| (id.as_str(), happened, now))
            .collect();
        insert_events::<E>(&mut tx, &events).await?;
        apply_totals::<E>(&mut tx, &deltas).await?;
        super::audit::insert_audit::<E>(&mut tx, audit).await?;
        E::commit(tx).await?;
        Ok(retried)
    }

    async fn stats(&self, visibility: &Visibility) -> StoreResult<StatsRecord> {
        Ok(stats_from(&self.totals(visibility).await?))
    }

    async fn totals(&self, visibility: &Visibility) -> StoreResult<Vec<TotalsRow>> {
        let mut query = Query::new(
            format!(
                "SELECT owner_id, status, job_type, jobs, {}, completion_micros \
                 FROM job_totals j WHERE j.jobs <> 0",
                bill_columns("")
            ),
            [],
        );
        push_visibility(&mut query, visibility);
        let mut rows = self
            .engine
            .read::<TotalsDbRow>(query)
            .await?
            .into_iter()
            .map(TotalsRow::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        rows.sort();
        Ok(rows)
    }

    async fn recount_totals(&self) -> StoreResult<Vec<TotalsRow>> {
        let completion = format!(
            "CASE WHEN status = 'completed' AND completed_at IS NOT NULL THEN {} ELSE 0 END",
            E::DIALECT.micros_between("created_at", "completed_at")
        );
        let sql = format!(
            "SELECT j.owner_id, j.status, j.job_type, CAST(COUNT(*) AS BIGINT) AS jobs, {}, \
             CAST(SUM({completion}) AS BIGINT) AS completion_micros FROM jobs j \
             GROUP BY j.owner_id, j.status, j.job_type",
            bill_sums("j")
        );
        let mut rows = self
            .read::<TotalsDbRow>(&sql, [])
            .await?
            .into_iter()
            .map(TotalsRow::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        rows.sort();
        Ok(rows)
    }

    async fn job_events(&self, job_id: &str) -> StoreResult<Vec<JobEvent>> {
        let rows: Vec<EventRow> = self
            .read(
                "SELECT kind, detail, at FROM job_events WHERE job_id = ? ORDER BY id",
                [job_id.into()],
            )
            .await?;
        Ok(rows.into_iter().map(JobEvent::from).collect())
    }

    async fn provider_costs(
        &self,
        visibility: &Visibility,
    ) -> StoreResult<Vec<ProviderCostRecord>> {
        let mut query = Query::new(
            format!(
                "SELECT j.provider, CAST(COUNT(DISTINCT c.job_id) AS BIGINT) AS jobs, {} \
                 FROM charges c JOIN jobs j ON j.id = c.job_id WHERE j.provider IS NOT NULL",
                bill_sums("c")
            ),
            [],
        );
        push_visibility(&mut query, visibility);
        query.push(" GROUP BY j.provider ORDER BY j.provider");
        self.engine
            .read::<ProviderCostRow>(query)
            .await?
            .into_iter()
            .map(ProviderCostRecord::try_from)
            .collect()
    }

    async fn daily_costs(
        &self,
        visibility: &Visibility,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DailyCostRecord>> {
        let mut query = Query::new(
            format!(
                "SELECT {} AS day, j.job_type, u.name AS owner_name, CAST(COUNT(*) AS BIGINT) AS jobs, {} \
                 FROM charges c JOIN jobs j ON j.id = c.job_id JOIN users u ON u.id = j.owner_id WHERE c.at >= ?",
                E::DIALECT.day_of("c.at"),
                bill_sums("c")
            ),
            [since.into()],
        );
        push_visibility(&mut query, visibility);
        query.push(" GROUP BY day, j.job_type, u.name ORDER BY day, j.job_type, u.name");
        self.engine
            .read::<DailyCostRow>(query)
            .await?
            .into_iter()
            .map(DailyCostRecord::try_from)
            .collect()
    }
}
