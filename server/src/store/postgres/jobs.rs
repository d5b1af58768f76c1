//! Jobs on PostgreSQL.

use std::collections::HashSet;

use app::api::{JobStatus, ListQuery};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder, Transaction};

use super::{
    COUNTED, CountedRow, JOB_COLUMNS, JOB_FROM, JOB_SUMMARY_COLUMNS, JobRow, PostgresStore,
    TotalsDbRow, apply_totals, insert_events, push_visibility,
};
use crate::events::Happened;
use crate::store::*;

/// The job an owner already made with an idempotency key, read inside the writing transaction
/// (it may have been inserted by the same transaction).
async fn by_key(
    tx: &mut Transaction<'_, Postgres>,
    owner_id: &str,
    key: &str,
) -> StoreResult<JobRecord> {
    let sql =
        format!("SELECT {JOB_COLUMNS}{JOB_FROM} WHERE j.owner_id = $1 AND j.idempotency_key = $2");
    let row: JobRow = sqlx::query_as(&sql)
        .bind(owner_id)
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
    row.try_into()
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn insert_jobs(
        &self,
        jobs: &[NewJob],
        conflicts: KeyConflicts,
    ) -> StoreResult<Vec<InsertOutcome>> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        let owners: Vec<&str> = jobs.iter().map(|j| j.owner_id.as_str()).collect();
        let types: Vec<&str> = jobs.iter().map(|j| j.job_type.as_str()).collect();
        let priorities: Vec<i64> = jobs.iter().map(|j| j.priority).collect();
        let payloads: Vec<&str> = jobs.iter().map(|j| j.payload.as_str()).collect();
        let run_afters: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| j.run_after).collect();
        let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
        let hashes: Vec<&str> = jobs.iter().map(|j| j.request_hash.as_str()).collect();
        let bounds: Vec<i64> = jobs.iter().map(|j| j.cost_bound_nanos).collect();
        let created: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.created_at).collect();
        // A key reused by its owner (before, or earlier in this very statement) inserts nothing.
        let inserted: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, run_after, idempotency_key, \
             request_hash, cost_bound_nanos, created_at, updated_at) \
             SELECT id, owner_id, job_type, 'pending', priority, payload::jsonb, run_after, key, hash, bound, \
                    created, created \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], \
                         $7::text[], $8::text[], $9::timestamptz[], $10::bigint[]) WITH ORDINALITY \
                  AS v(id, owner_id, job_type, priority, payload, run_after, key, hash, created, bound, n) \
             ORDER BY n ON CONFLICT (owner_id, idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(&ids)
        .bind(&owners)
        .bind(&types)
        .bind(&priorities)
        .bind(&payloads)
        .bind(&run_afters)
        .bind(&keys)
        .bind(&hashes)
        .bind(&created)
        .bind(&bounds)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
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
        let (webhook_jobs, webhook_urls): (Vec<&str>, Vec<&str>) = jobs
            .iter()
            .filter(|job| inserted.contains(&job.id))
            .filter_map(|job| Some((job.id.as_str(), job.callback_url.as_deref()?)))
            .unzip();
        if !webhook_jobs.is_empty() {
            sqlx::query(
                "INSERT INTO webhooks (job_id, url) SELECT * FROM unnest($1::text[], $2::text[])",
            )
            .bind(&webhook_jobs)
            .bind(&webhook_urls)
            .execute(&mut *tx)
            .await?;
        }
        insert_events(&mut tx, &events).await?;
        apply_totals(&mut tx, &deltas).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn get_job(&self, id: &str, visibility: &Visibility) -> StoreResult<Option<JobRecord>> {
        self.job_where(|q| {
            q.push("j.id = ").push_bind(id.to_string());
            push_visibility(q, visibility);
        })
        .await
    }

    async fn jobs_by_keys(&self, owner_id: &str, keys: &[String]) -> StoreResult<Vec<JobRecord>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_SUMMARY_COLUMNS}{JOB_FROM} WHERE j.owner_id = $1 AND j.idempotency_key = ANY($2)"
        ))
        .bind(owner_id)
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(JobRecord::try_from).collect()
    }

    async fn list_jobs(&self, visibility: &Visibility, filter: &ListQuery) -> StoreResult<JobPage> {
        let mut query =
            QueryBuilder::new(format!("SELECT {JOB_SUMMARY_COLUMNS}{JOB_FROM} WHERE TRUE"));
        push_visibility(&mut query, visibility);
        push_filter(&mut query, filter);
        if let Some(cursor) = &filter.cursor {
            query
                .push(" AND (j.created_at, j.id) < (")
                .push_bind(cursor.created_at)
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
                QueryBuilder::new("SELECT COUNT(*) FROM (SELECT 1 FROM jobs j WHERE TRUE");
            push_visibility(&mut matching, visibility);
            push_filter(&mut matching, filter);
            matching
                .push(" LIMIT ")
                .push_bind(SEARCH_COUNT_CAP + 1)
                .push(") AS matching");
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
        let mut tx = self.pool.begin().await?;
        let mut find = QueryBuilder::new("SELECT j.status, j.batch_id FROM jobs j WHERE j.id = ");
        find.push_bind(id.to_string());
        push_visibility(&mut find, visibility);
        // Locks the row: a concurrent ingest waits, then finds it cancelled.
        find.push(" FOR UPDATE");
        let found: Option<(String, Option<String>)> =
            find.build_query_as().fetch_optional(&mut *tx).await?;
        let Some((status, batch_id)) = found else {
            return Ok(CancelOutcome::NotFound);
        };
        let was = parse_status(&status)?;
        if was.is_terminal() {
            return Ok(CancelOutcome::Terminal(was));
        }
        let sql = format!(
            "UPDATE jobs SET status = 'cancelled', cancel_requested = (status = 'processing'), updated_at = $1 \
             WHERE id = $2 AND status IN ('pending', 'processing') RETURNING {COUNTED}"
        );
        let job: CountedRow = sqlx::query_as(&sql)
            .bind(now)
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
            .get_job(id, &Visibility::All)
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
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE jobs SET status = 'pending', error_message = NULL, batch_id = NULL, \
             local_batch_id = NULL, completed_at = NULL, updated_at = $1 \
             WHERE status = 'failed' AND id = ANY($2) RETURNING {COUNTED}"
        );
        let rows: Vec<CountedRow> = sqlx::query_as(&sql)
            .bind(now)
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
        let mut deltas = Deltas::default();
        let mut retried = Vec::with_capacity(rows.len());
        for row in rows {
            let job = row.counted()?;
            deltas.moved(&job, JobStatus::Failed, &job, JobStatus::Pending);
            retried.push(row.id);
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
        let mut query = QueryBuilder::<Postgres>::new(
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
            "SELECT owner_id, status, job_type, COUNT(*) AS jobs, SUM(input_tokens)::BIGINT AS input_tokens, \
             SUM(output_tokens)::BIGINT AS output_tokens, SUM(cost_nanos)::BIGINT AS cost_nanos, \
             SUM(standard_cost_nanos)::BIGINT AS standard_cost_nanos, \
             SUM(CASE WHEN status = 'completed' AND completed_at IS NOT NULL \
                      THEN (EXTRACT(EPOCH FROM completed_at - created_at) * 1000000)::BIGINT ELSE 0 END)::BIGINT \
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
        let rows: Vec<(String, Option<String>, DateTime<Utc>)> =
            sqlx::query_as("SELECT kind, detail, at FROM job_events WHERE job_id = $1 ORDER BY id")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, detail, at)| JobEvent { kind, detail, at })
            .collect())
    }

    async fn daily_costs(
        &self,
        visibility: &Visibility,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DailyCostRecord>> {
        let mut query = QueryBuilder::new(
            "SELECT FLOOR(EXTRACT(EPOCH FROM c.at) / 86400)::BIGINT AS day, j.job_type, u.name, COUNT(*), \
             SUM(c.cost_nanos)::BIGINT, SUM(c.standard_cost_nanos)::BIGINT FROM charges c \
             JOIN jobs j ON j.id = c.job_id JOIN users u ON u.id = j.owner_id WHERE c.at >= ",
        );
        query.push_bind(since);
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

/// A payload's words: a stored column (migration 000006), indexed by `jobs_payload_words`.
const PAYLOAD_WORDS: &str = "j.payload_words";

/// The list's filters: status, type, and a search by id, idempotency key or payload text.
fn push_filter(query: &mut QueryBuilder<'_, Postgres>, filter: &ListQuery) {
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
            .push(" AND j.error_message ILIKE ")
            .push_bind(contains_pattern(text))
            .push(" ESCAPE '\\'");
    }
    if let Some(text) = &filter.search {
        query
            .push(" AND (j.id = ")
            .push_bind(text.clone())
            .push(" OR j.idempotency_key = ")
            .push_bind(text.clone());
        let words = search_words(text);
        if !words.is_empty() {
            // Each word as a prefix (nvd:*), all of them.
            let prefixes: Vec<String> = words.iter().map(|w| format!("{w}:*")).collect();
            query
                .push(format!(" OR {PAYLOAD_WORDS} @@ to_tsquery('simple', "))
                .push_bind(prefixes.join(" & "))
                .push(")");
        }
        query.push(")");
    }
}
