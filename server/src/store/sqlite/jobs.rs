//! Jobs on SQLite.

use std::collections::HashSet;

use app::api::{JobStatus, ListQuery};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::{
    COUNTED, CountedRow, JOB_COLUMNS, JOB_FROM, JOB_SUMMARY_COLUMNS, JobRow, ROWS_PER_STATEMENT,
    SqliteStore, TotalsDbRow, apply_totals, insert_events, push_visibility,
};
use crate::events::Happened;
use crate::store::*;

/// The job an owner already made with an idempotency key, read inside the writing transaction
/// (it may have been inserted by the same transaction).
async fn by_key(
    tx: &mut Transaction<'_, Sqlite>,
    owner_id: &str,
    key: &str,
) -> StoreResult<JobRecord> {
    let sql =
        format!("SELECT {JOB_COLUMNS}{JOB_FROM} WHERE j.owner_id = ? AND j.idempotency_key = ?");
    let row: JobRow = sqlx::query_as(&sql)
        .bind(owner_id)
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
    row.try_into()
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert_jobs(
        &self,
        jobs: &[NewJob],
        conflicts: KeyConflicts,
    ) -> StoreResult<Vec<InsertOutcome>> {
        let mut tx = self.begin_write().await?;
        let mut inserted = HashSet::with_capacity(jobs.len());
        for chunk in jobs.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, run_after, \
                 idempotency_key, request_hash, cost_bound_nanos, created_at, updated_at) ",
            );
            query.push_values(chunk, |mut b, job| {
                let created_at = to_micros(job.created_at);
                b.push_bind(job.id.clone())
                    .push_bind(job.owner_id.clone())
                    .push_bind(job.job_type.as_str())
                    .push_bind("pending")
                    .push_bind(job.priority)
                    .push_bind(job.payload.clone())
                    .push_bind(job.run_after.map(to_micros))
                    .push_bind(job.idempotency_key.clone())
                    .push_bind(job.request_hash.clone())
                    .push_bind(job.cost_bound_nanos)
                    .push_bind(created_at)
                    .push_bind(created_at);
            });
            // A key reused by its owner (before, or earlier in this very statement) inserts nothing.
            query.push(" ON CONFLICT (owner_id, idempotency_key) DO NOTHING RETURNING id");
            let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *tx).await?;
            inserted.extend(ids);
        }
        let mut deltas = Deltas::default();
        let mut events = Vec::with_capacity(inserted.len());
        let mut outcomes = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            if inserted.contains(&job.id) {
                deltas.added(&job.counted(), JobStatus::Pending);
                events.push((job.id.as_str(), &Happened::Created, job.created_at));
                outcomes.push(InsertOutcome::Created(job.record()));
            } else {
                let key = job.idempotency_key.as_deref().ok_or_else(|| {
                    StoreError::Corrupt(format!("job {} was not inserted and has no key", job.id))
                })?;
                let existing = by_key(&mut tx, &job.owner_id, key).await?;
                if conflicts == KeyConflicts::Refuse && existing.request_hash != job.request_hash {
                    // Dropping the transaction rolls the whole group back.
                    return Err(StoreError::KeyConflict { index });
                }
                outcomes.push(InsertOutcome::Existing(existing));
            }
        }
        // A job that asked for a webhook gets its row now; it becomes due when the job ends.
        let webhooks: Vec<(&str, &str)> = jobs
            .iter()
            .filter(|job| inserted.contains(&job.id))
            .filter_map(|job| Some((job.id.as_str(), job.callback_url.as_deref()?)))
            .collect();
        for chunk in webhooks.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new("INSERT INTO webhooks (job_id, url) ");
            query.push_values(chunk, |mut b, (job_id, url)| {
                b.push_bind(job_id.to_string()).push_bind(url.to_string());
            });
            query.build().execute(&mut *tx).await?;
        }
        insert_events(&mut tx, &events).await?;
        apply_totals(&mut tx, &deltas).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn get_job(&self, id: &str, visibility: &Visibility) -> StoreResult<Option<JobRecord>> {
        match visibility {
            Visibility::Owner(owner_id) => {
                self.job_by("j.id = ? AND j.owner_id = ?", &[id, owner_id])
                    .await
            }
            Visibility::All => self.job_by("j.id = ?", &[id]).await,
        }
    }

    async fn jobs_by_keys(&self, owner_id: &str, keys: &[String]) -> StoreResult<Vec<JobRecord>> {
        let mut jobs = Vec::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {JOB_SUMMARY_COLUMNS}{JOB_FROM} WHERE j.owner_id = "
            ));
            query
                .push_bind(owner_id)
                .push(" AND j.idempotency_key IN (");
            let mut list = query.separated(", ");
            for key in chunk {
                list.push_bind(key.clone());
            }
            list.push_unseparated(")");
            let rows: Vec<JobRow> = query.build_query_as().fetch_all(&self.pool).await?;
            for row in rows {
                jobs.push(JobRecord::try_from(row)?);
            }
        }
        Ok(jobs)
    }

    async fn list_jobs(&self, visibility: &Visibility, filter: &ListQuery) -> StoreResult<JobPage> {
        let mut query = QueryBuilder::new(format!(
            "SELECT {JOB_SUMMARY_COLUMNS}{JOB_FROM} WHERE 1 = 1"
        ));
        push_visibility(&mut query, visibility);
        push_filter(&mut query, filter);
        if let Some(cursor) = &filter.cursor {
            query
                .push(" AND (j.created_at, j.id) < (")
                .push_bind(to_micros(cursor.created_at))
                .push(", ")
                .push_bind(cursor.id.clone())
                .push(")");
        }
        query
            .push(" ORDER BY j.created_at DESC, j.id DESC LIMIT ")
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.offset);
        let rows: Vec<JobRow> = query.build_query_as().fetch_all(&self.pool).await?;
        let jobs = rows
            .into_iter()
            .map(JobRecord::try_from)
            .collect::<StoreResult<Vec<_>>>()?;

        let totals = self.totals(visibility).await?;
        let (total_count, total_count_capped) = if filter.matches_text() {
            let mut matching =
                QueryBuilder::new("SELECT COUNT(*) FROM (SELECT 1 FROM jobs j WHERE 1 = 1");
            push_visibility(&mut matching, visibility);
            push_filter(&mut matching, filter);
            matching
                .push(" LIMIT ")
                .push_bind(SEARCH_COUNT_CAP + 1)
                .push(")");
            capped_count(matching.build_query_scalar().fetch_one(&self.pool).await?)
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
        let mut tx = self.begin_write().await?;
        let mut find = QueryBuilder::new("SELECT j.status, j.batch_id FROM jobs j WHERE j.id = ");
        find.push_bind(id);
        push_visibility(&mut find, visibility);
        let found: Option<(String, Option<String>)> =
            find.build_query_as().fetch_optional(&mut *tx).await?;
        let Some((status, batch_id)) = found else {
            return Ok(CancelOutcome::NotFound);
        };
        let was = parse_status(&status)?;
        if was.is_terminal() {
            return Ok(CancelOutcome::Terminal(was));
        }
        let micros = to_micros(now);
        let sql = format!(
            "UPDATE jobs SET status = 'cancelled', cancel_requested = (status = 'processing'), updated_at = ? \
             WHERE id = ? AND status IN ('pending', 'processing') RETURNING {COUNTED}"
        );
        let job: CountedRow = sqlx::query_as(&sql)
            .bind(micros)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let happened = Happened::Cancelled {
            was,
            batch: batch_id,
        };
        insert_events(&mut tx, &[(id, &happened, now)]).await?;
        let mut deltas = Deltas::default();
        let counted = job.counted()?;
        deltas.moved(&counted, was, &counted, JobStatus::Cancelled);
        apply_totals(&mut tx, &deltas).await?;
        tx.commit().await?;
        let job = self
            .job_by("j.id = ?", &[id])
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
        let mut tx = self.begin_write().await?;
        let mut deltas = Deltas::default();
        let mut retried = Vec::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "UPDATE jobs SET status = 'pending', error_message = NULL, batch_id = NULL, \
                 local_batch_id = NULL, completed_at = NULL, updated_at = ",
            );
            query
                .push_bind(to_micros(now))
                .push(" WHERE status = 'failed' AND id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.clone());
            }
            query.push(format!(") RETURNING {COUNTED}"));
            let rows: Vec<CountedRow> = query.build_query_as().fetch_all(&mut *tx).await?;
            for row in rows {
                let job = row.counted()?;
                deltas.moved(&job, JobStatus::Failed, &job, JobStatus::Pending);
                retried.push(row.id);
            }
        }
        let events: Vec<_> = retried
            .iter()
            .map(|id| (id.as_str(), happened, now))
            .collect();
        insert_events(&mut tx, &events).await?;
        apply_totals(&mut tx, &deltas).await?;
        super::oversight::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(retried)
    }

    async fn stats(&self, visibility: &Visibility) -> StoreResult<StatsRecord> {
        Ok(stats_from(&self.totals(visibility).await?))
    }

    async fn totals(&self, visibility: &Visibility) -> StoreResult<Vec<TotalsRow>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT owner_id, status, job_type, jobs, input_tokens, output_tokens, cost_nanos, \
             standard_cost_nanos, completion_micros FROM job_totals j WHERE j.jobs <> 0",
        );
        push_visibility(&mut query, visibility);
        let rows: Vec<TotalsDbRow> = query.build_query_as().fetch_all(&self.pool).await?;
        let mut rows = rows
            .into_iter()
            .map(TotalsRow::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        rows.sort();
        Ok(rows)
    }

    async fn recount_totals(&self) -> StoreResult<Vec<TotalsRow>> {
        let rows: Vec<TotalsDbRow> = sqlx::query_as(
            "SELECT owner_id, status, job_type, COUNT(*) AS jobs, SUM(input_tokens) AS input_tokens, \
             SUM(output_tokens) AS output_tokens, SUM(cost_nanos) AS cost_nanos, \
             SUM(standard_cost_nanos) AS standard_cost_nanos, \
             SUM(CASE WHEN status = 'completed' AND completed_at IS NOT NULL THEN completed_at - created_at ELSE 0 END) \
             AS completion_micros FROM jobs GROUP BY owner_id, status, job_type",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut rows = rows
            .into_iter()
            .map(TotalsRow::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        rows.sort();
        Ok(rows)
    }

    async fn job_events(&self, job_id: &str) -> StoreResult<Vec<JobEvent>> {
        let rows: Vec<(String, Option<String>, i64)> =
            sqlx::query_as("SELECT kind, detail, at FROM job_events WHERE job_id = ? ORDER BY id")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(kind, detail, at)| {
                Ok(JobEvent {
                    kind,
                    detail,
                    at: from_micros(at)?,
                })
            })
            .collect()
    }

    async fn daily_costs(
        &self,
        visibility: &Visibility,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DailyCostRecord>> {
        let mut query = QueryBuilder::new(
            "SELECT c.at / 86400000000 AS day, j.job_type, u.name, COUNT(*), SUM(c.cost_nanos), \
             SUM(c.standard_cost_nanos) FROM charges c JOIN jobs j ON j.id = c.job_id \
             JOIN users u ON u.id = j.owner_id WHERE c.at >= ",
        );
        query.push_bind(to_micros(since));
        push_visibility(&mut query, visibility);
        query.push(" GROUP BY day, j.job_type, u.name ORDER BY day, j.job_type, u.name");
        let rows: Vec<(i64, String, String, i64, i64, i64)> =
            query.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(
                |(day, job_type, owner_name, jobs, cost_nanos, standard_cost_nanos)| {
                    Ok(DailyCostRecord {
                        day,
                        job_type: parse_job_type(&job_type)?,
                        owner_name,
                        jobs,
                        cost_nanos,
                        standard_cost_nanos,
                    })
                },
            )
            .collect()
    }
}

/// The list's filters: status, type, and a search by id, idempotency key or payload text.
fn push_filter(query: &mut QueryBuilder<'_, Sqlite>, filter: &ListQuery) {
    if let Some(status) = filter.status_filter {
        query.push(" AND j.status = ").push_bind(status.as_str());
    }
    if let Some(job_type) = filter.job_type {
        query
            .push(" AND j.job_type = ")
            .push_bind(job_type.as_str());
    }
    if let Some(text) = &filter.error {
        query
            .push(" AND j.error_message LIKE ")
            .push_bind(contains_pattern(text))
            .push(" ESCAPE '\\'");
    }
    if let Some(text) = &filter.search {
        // One set of rowids from three indexes; an OR of the three would scan every job.
        query
            .push(" AND j.rowid IN (SELECT rowid FROM jobs WHERE id = ")
            .push_bind(text.clone())
            .push(" UNION ALL SELECT rowid FROM jobs WHERE idempotency_key = ")
            .push_bind(text.clone());
        let words = search_words(text);
        if !words.is_empty() {
            // Each word as a prefix ("nvd"*), all of them: FTS5's implicit AND.
            let prefixes: Vec<String> = words.iter().map(|w| format!("\"{w}\"*")).collect();
            query
                .push(" UNION ALL SELECT rowid FROM jobs_search WHERE jobs_search MATCH ")
                .push_bind(prefixes.join(" "));
        }
        query.push(")");
    }
}
