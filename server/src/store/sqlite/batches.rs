//! The flush's side of the batch tables on SQLite: candidates, claims, leases, the create's
//! outcomes, and what reconciliation reads. Every batch write is guarded by the lease or the
//! state it expects.

use app::api::JobStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::results::requeue_processing;
use super::{
    COUNTED, CountedRow, ROWS_PER_STATEMENT, SqliteStore, apply_totals, insert_events, parse_json,
};
use crate::events::Happened;
use crate::store::*;

/// A batch's columns, with what its charges add up to.
const BATCH_COLUMNS: &str = "b.id, b.provider_batch_id, b.status, b.job_count, b.estimated_tokens, b.request_bytes, \
    b.created_at, b.submitted_at, b.ended_at, b.expires_at, b.next_poll_at, b.poll_failures, b.request_counts, \
    b.results_collected, b.error, b.lease_owner, b.lease_expires_at, b.submit_started_at, b.submit_ended_at, \
    b.provider_created_at, b.duplicate_of, b.swept_at, b.short_reads, b.unaccounted_results, \
    COALESCE((SELECT SUM(c.input_tokens + c.output_tokens) FROM charges c WHERE c.provider_batch_id = b.provider_batch_id), 0) AS billed_tokens, \
    COALESCE((SELECT SUM(c.cost_nanos) FROM charges c WHERE c.provider_batch_id = b.provider_batch_id), 0) AS billed_cost_nanos";

/// The lease is free: lapsed, never taken, or already ours.
const LEASE_FREE: &str = "(lease_expires_at IS NULL OR lease_expires_at < ? OR lease_owner = ?)";

impl SqliteStore {
    /// Batches selected by `tail` (the SQL after `FROM batches b`), with one integer bound.
    async fn batches_where(&self, tail: &str, value: i64) -> StoreResult<Vec<BatchRecord>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches b {tail}");
        let rows: Vec<BatchRow> = sqlx::query_as(&sql)
            .bind(value)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(BatchRecord::try_from).collect()
    }
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn eligible_jobs(
        &self,
        filter: &FlushFilter,
        after: Option<&FlushCursor>,
        page: i64,
    ) -> StoreResult<Vec<QueuedJob>> {
        let mut query = QueryBuilder::<Sqlite>::new(format!("SELECT {QUEUED_COLUMNS} FROM jobs"));
        push_eligible(&mut query, filter);
        if let Some(cursor) = after {
            // Flush order is (priority DESC, created_at, id): continue strictly after the cursor.
            query
                .push(" AND (priority < ")
                .push_bind(cursor.priority)
                .push(" OR (priority = ")
                .push_bind(cursor.priority)
                .push(" AND (created_at > ")
                .push_bind(to_micros(cursor.created_at))
                .push(" OR (created_at = ")
                .push_bind(to_micros(cursor.created_at))
                .push(" AND id > ")
                .push_bind(cursor.id.clone())
                .push("))))");
        }
        query
            .push(" ORDER BY priority DESC, created_at, id LIMIT ")
            .push_bind(page);
        let rows: Vec<QueuedRow> = query.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(QueuedJob::try_from).collect()
    }

    async fn eligible_summary(
        &self,
        filter: &FlushFilter,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT COUNT(*), MIN(MAX(created_at, COALESCE(run_after, created_at))) FROM jobs",
        );
        push_eligible(&mut query, filter);
        let (count, oldest): (i64, Option<i64>) =
            query.build_query_as().fetch_one(&self.pool).await?;
        Ok((count, oldest.map(from_micros).transpose()?))
    }

    async fn first_capped_bounds(&self, now: DateTime<Utc>) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT b.user_id, (SELECT j.cost_bound_nanos FROM jobs j WHERE j.owner_id = b.user_id                AND j.status = 'pending' AND (j.run_after IS NULL OR j.run_after <= ?1)                ORDER BY j.priority DESC, j.created_at, j.id LIMIT 1) AS bound              FROM budgets b WHERE bound IS NOT NULL",
        )
        .bind(to_micros(now))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn claim_jobs(&self, batch: NewBatch, claims: &[Claim]) -> StoreResult<Vec<String>> {
        // The one writer serialises claims, so what the budgets admit here holds.
        let mut tx = self.begin_write().await?;
        let usages = super::oversight::capped_usages_in(&mut tx, batch.month_start).await?;
        let mut allowances = Allowances::new(&usages);
        let claims: Vec<&Claim> = claims
            .iter()
            .filter(|c| allowances.admit(&c.owner_id, c.bound_nanos))
            .collect();
        let at = to_micros(batch.created_at);
        sqlx::query(
            "INSERT INTO batches (id, status, job_count, estimated_tokens, request_bytes, created_at, \
             lease_owner, lease_expires_at, submit_started_at) VALUES (?, 'submitting', 0, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&batch.id)
        .bind(batch.estimated_tokens)
        .bind(batch.request_bytes)
        .bind(at)
        .bind(&batch.lease.owner)
        .bind(to_micros(batch.lease.until))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let mut deltas = Deltas::default();
        let mut claimed = std::collections::HashSet::with_capacity(claims.len());
        for chunk in claims.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new("WITH wanted (id, model, bound) AS (");
            query.push_values(chunk, |mut b, claim| {
                b.push_bind(claim.job_id.clone())
                    .push_bind(claim.model.clone())
                    .push_bind(claim.bound_nanos);
            });
            query
                .push(") UPDATE jobs SET status = 'processing', local_batch_id = ")
                .push_bind(batch.id.clone())
                .push(", model = wanted.model, cost_bound_nanos = wanted.bound, updated_at = ")
                .push_bind(at)
                .push(format!(
                    " FROM wanted WHERE jobs.id = wanted.id AND jobs.status = 'pending' RETURNING {}",
                    qualified(COUNTED)
                ));
            let rows: Vec<CountedRow> = query.build_query_as().fetch_all(&mut *tx).await?;
            for row in rows {
                let job = row.counted()?;
                deltas.moved(&job, JobStatus::Pending, &job, JobStatus::Processing);
                claimed.insert(row.id);
            }
        }
        if claimed.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        // In flush order, as asked.
        let claimed: Vec<String> = claims
            .iter()
            .filter(|c| claimed.contains(&c.job_id))
            .map(|c| c.job_id.clone())
            .collect();
        for chunk in claimed.chunks(ROWS_PER_STATEMENT) {
            let mut query =
                QueryBuilder::<Sqlite>::new("INSERT INTO batch_jobs (batch_id, job_id) ");
            query.push_values(chunk, |mut b, id| {
                b.push_bind(batch.id.clone()).push_bind(id.clone());
            });
            query.build().execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE batches SET job_count = ? WHERE id = ?")
            .bind(claimed.len() as i64)
            .bind(&batch.id)
            .execute(&mut *tx)
            .await?;
        apply_totals(&mut tx, &deltas).await?;
        if let Some(audit) = &batch.audit {
            super::oversight::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn renew_lease(&self, batch_id: &str, lease: &Lease) -> StoreResult<bool> {
        let changed =
            sqlx::query("UPDATE batches SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?")
                .bind(to_micros(lease.until))
                .bind(batch_id)
                .bind(&lease.owner)
                .execute(&self.writer)
                .await?
                .rows_affected();
        Ok(changed == 1)
    }

    async fn take_lease(
        &self,
        batch_id: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE batches SET lease_owner = ?, lease_expires_at = ? WHERE id = ? AND {LEASE_FREE}"
        );
        let changed = sqlx::query(&sql)
            .bind(&lease.owner)
            .bind(to_micros(lease.until))
            .bind(batch_id)
            .bind(to_micros(now))
            .bind(&lease.owner)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    async fn release_lease(&self, batch_id: &str, owner: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?",
        )
        .bind(batch_id)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn start_submit(
        &self,
        batch_id: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE batches SET submit_started_at = ?, submit_ended_at = NULL \
             WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
        )
        .bind(to_micros(now))
        .bind(batch_id)
        .bind(owner)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn record_submission(
        &self,
        batch_id: &str,
        owner: &str,
        s: &Submission,
        happened: &Happened,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let at = to_micros(s.submitted_at);
        let changed = sqlx::query(
            "UPDATE batches SET provider_batch_id = ?, status = 'in_progress', submitted_at = ?, \
             submit_ended_at = COALESCE(submit_ended_at, ?), provider_created_at = ?, clock_sample = ?, \
             expires_at = ?, next_poll_at = ?, swept_at = CASE WHEN ? THEN ? ELSE NULL END, error = NULL, \
             lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
        )
        .bind(&s.provider_batch_id)
        .bind(at)
        .bind(at)
        .bind(to_micros(s.provider_created_at))
        .bind(s.clock_sample)
        .bind(to_micros(s.expires_at))
        .bind(to_micros(s.next_poll_at))
        .bind(s.swept)
        .bind(at)
        .bind(batch_id)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Jobs cancelled while the batch was being submitted were sent too: they keep the id.
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET batch_id = ?, updated_at = ? \
             WHERE local_batch_id = ? AND batch_id IS NULL AND status IN ('processing', 'cancelled') RETURNING id",
        )
        .bind(&s.provider_batch_id)
        .bind(at)
        .bind(batch_id)
        .fetch_all(&mut *tx)
        .await?;
        let events: Vec<_> = ids
            .iter()
            .map(|id| (id.as_str(), happened, s.submitted_at))
            .collect();
        insert_events(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn release_batch(
        &self,
        batch_id: &str,
        owner: &str,
        error: &str,
        happened: &Happened,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let at = to_micros(now);
        let changed = sqlx::query(
            "UPDATE batches SET status = 'failed', error = ?, submit_ended_at = ?, lease_owner = NULL, \
             lease_expires_at = NULL WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
        )
        .bind(error)
        .bind(at)
        .bind(batch_id)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        let released = requeue_processing(&mut tx, batch_id, happened, now).await?;
        tx.commit().await?;
        Ok(released)
    }

    async fn mark_uncertain(
        &self,
        batch_id: &str,
        owner: &str,
        error: &str,
        settle_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE batches SET error = ?, submit_ended_at = ?, lease_expires_at = ? \
             WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
        )
        .bind(error)
        .bind(to_micros(now))
        .bind(to_micros(settle_until))
        .bind(batch_id)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn batch_members(&self, batch_id: &str) -> StoreResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT job_id FROM batch_jobs WHERE batch_id = ? ORDER BY job_id")
                .bind(batch_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn batch_owners(&self, batch_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT j.owner_id FROM batch_jobs bj JOIN jobs j ON j.id = bj.job_id \
             WHERE bj.batch_id = ? ORDER BY j.owner_id",
        )
        .bind(batch_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn batch_queued_jobs(&self, batch_id: &str) -> StoreResult<Vec<QueuedJob>> {
        let rows: Vec<QueuedRow> = sqlx::query_as(&format!(
            "SELECT {QUEUED_COLUMNS} FROM jobs \
             WHERE local_batch_id = ? AND status = 'processing' ORDER BY priority DESC, created_at, id",
        ))
        .bind(batch_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(QueuedJob::try_from).collect()
    }

    async fn batches_to_reconcile(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.status = 'submitting' AND (b.lease_expires_at IS NULL OR b.lease_expires_at < ?) \
             ORDER BY b.created_at",
            to_micros(now),
        )
        .await
    }

    async fn batches_to_sweep(&self, ended_before: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.swept_at IS NULL AND b.provider_batch_id IS NOT NULL AND b.duplicate_of IS NULL \
             AND b.submit_ended_at < ? ORDER BY b.submit_ended_at",
            to_micros(ended_before),
        )
        .await
    }

    async fn mark_swept(&self, batch_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE batches SET swept_at = ? WHERE id = ?")
            .bind(to_micros(now))
            .bind(batch_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn clock_samples(&self, limit: i64) -> StoreResult<Vec<ClockSample>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT submit_started_at, submit_ended_at, provider_created_at FROM batches \
             WHERE clock_sample = 1 AND submit_started_at IS NOT NULL AND submit_ended_at IS NOT NULL \
             AND provider_created_at IS NOT NULL ORDER BY submit_ended_at DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(started, ended, created)| {
                Ok(ClockSample {
                    started: from_micros(started)?,
                    ended: from_micros(ended)?,
                    provider_created_at: from_micros(created)?,
                })
            })
            .collect()
    }

    async fn record_duplicate(&self, d: &NewDuplicate) -> StoreResult<bool> {
        let at = to_micros(d.created_at);
        let changed = sqlx::query(
            "INSERT INTO batches (id, provider_batch_id, status, job_count, estimated_tokens, request_bytes, \
             created_at, submitted_at, expires_at, next_poll_at, duplicate_of, swept_at, submit_started_at, \
             submit_ended_at, provider_created_at, error) VALUES (?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (provider_batch_id) DO NOTHING",
        )
        .bind(&d.id)
        .bind(&d.provider_batch_id)
        .bind(d.status.as_str())
        .bind(d.job_count)
        .bind(at)
        .bind(at)
        .bind(to_micros(d.expires_at))
        .bind(at)
        .bind(&d.of)
        .bind(at)
        .bind(at)
        .bind(at)
        .bind(at)
        .bind(&d.note)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn note_batch(&self, batch_id: &str, note: &str) -> StoreResult<()> {
        sqlx::query("UPDATE batches SET error = ? WHERE id = ?")
            .bind(note)
            .bind(batch_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn find_batch(&self, provider_batch_id: &str) -> StoreResult<Option<BatchRecord>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches b WHERE b.provider_batch_id = ?");
        let row: Option<BatchRow> = sqlx::query_as(&sql)
            .bind(provider_batch_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(BatchRecord::try_from).transpose()
    }

    async fn due_batches(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.status IN ('in_progress', 'canceling', 'ended') AND b.results_collected = 0 \
             AND (b.next_poll_at IS NULL OR b.next_poll_at <= ?) ORDER BY b.next_poll_at",
            to_micros(now),
        )
        .await
    }

    async fn list_batches(&self, limit: i64) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where("ORDER BY b.created_at DESC, b.id DESC LIMIT ?", limit)
            .await
    }

    async fn update_batch_progress(
        &self,
        batch_id: &str,
        status: BatchStatus,
        next_poll_at: Option<DateTime<Utc>>,
        poll_failures: i64,
        error: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE batches SET status = ?, next_poll_at = ?, poll_failures = ?, error = COALESCE(?, error) \
             WHERE id = ? AND results_collected = 0",
        )
        .bind(status.as_str())
        .bind(next_poll_at.map(to_micros))
        .bind(poll_failures)
        .bind(error)
        .bind(batch_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn recent_batch_durations(&self, limit: i64) -> StoreResult<Vec<f64>> {
        Ok(sqlx::query_scalar(
            "SELECT (ended_at - submitted_at) / 1000000.0 FROM batches \
             WHERE status = 'ended' AND duplicate_of IS NULL AND submitted_at IS NOT NULL AND ended_at IS NOT NULL \
             ORDER BY ended_at DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// `COUNTED` as columns of `jobs`, for a `RETURNING` after a join.
fn qualified(columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("jobs.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A job as a flush renders it.
const QUEUED_COLUMNS: &str =
    "id, owner_id, job_type, priority, payload, cost_bound_nanos, created_at";

/// `WHERE` with the filter's eligibility: pending, due, of the types and priority asked, of the
/// owners not left out.
fn push_eligible(query: &mut QueryBuilder<'_, Sqlite>, filter: &FlushFilter) {
    query
        .push(" WHERE status = 'pending' AND (run_after IS NULL OR run_after <= ")
        .push_bind(to_micros(filter.now))
        .push(") AND priority >= ")
        .push_bind(filter.min_priority);
    if let Some(types) = &filter.job_types {
        query.push(" AND job_type IN (");
        let mut list = query.separated(", ");
        for job_type in types {
            list.push_bind(job_type.as_str());
        }
        list.push_unseparated(")");
    }
    if !filter.exclude_owners.is_empty() {
        query.push(" AND owner_id NOT IN (");
        let mut list = query.separated(", ");
        for owner in &filter.exclude_owners {
            list.push_bind(owner.clone());
        }
        list.push_unseparated(")");
    }
    if let Some(owner) = &filter.owner {
        query.push(" AND owner_id = ").push_bind(owner.clone());
    }
}

#[derive(FromRow)]
struct QueuedRow {
    id: String,
    owner_id: String,
    job_type: String,
    priority: i64,
    payload: String,
    cost_bound_nanos: i64,
    created_at: i64,
}

impl TryFrom<QueuedRow> for QueuedJob {
    type Error = StoreError;
    fn try_from(row: QueuedRow) -> StoreResult<Self> {
        Ok(QueuedJob {
            job_type: parse_job_type(&row.job_type)?,
            created_at: from_micros(row.created_at)?,
            payload: row.payload,
            id: row.id,
            owner_id: row.owner_id,
            priority: row.priority,
            cost_bound_nanos: row.cost_bound_nanos,
        })
    }
}

#[derive(FromRow)]
struct BatchRow {
    id: String,
    provider_batch_id: Option<String>,
    status: String,
    job_count: i64,
    estimated_tokens: i64,
    request_bytes: i64,
    created_at: i64,
    submitted_at: Option<i64>,
    ended_at: Option<i64>,
    expires_at: Option<i64>,
    next_poll_at: Option<i64>,
    poll_failures: i64,
    request_counts: Option<String>,
    results_collected: bool,
    error: Option<String>,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    submit_started_at: Option<i64>,
    submit_ended_at: Option<i64>,
    provider_created_at: Option<i64>,
    duplicate_of: Option<String>,
    swept_at: Option<i64>,
    short_reads: i64,
    unaccounted_results: i64,
    billed_tokens: i64,
    billed_cost_nanos: i64,
}

impl TryFrom<BatchRow> for BatchRecord {
    type Error = StoreError;
    fn try_from(row: BatchRow) -> StoreResult<Self> {
        let at = |t: Option<i64>| t.map(from_micros).transpose();
        Ok(BatchRecord {
            status: parse_batch_status(&row.status)?,
            request_counts: parse_json("request_counts", row.request_counts)?,
            created_at: from_micros(row.created_at)?,
            submitted_at: at(row.submitted_at)?,
            ended_at: at(row.ended_at)?,
            expires_at: at(row.expires_at)?,
            next_poll_at: at(row.next_poll_at)?,
            lease_expires_at: at(row.lease_expires_at)?,
            submit_started_at: at(row.submit_started_at)?,
            submit_ended_at: at(row.submit_ended_at)?,
            provider_created_at: at(row.provider_created_at)?,
            swept_at: at(row.swept_at)?,
            id: row.id,
            provider_batch_id: row.provider_batch_id,
            job_count: row.job_count,
            estimated_tokens: row.estimated_tokens,
            request_bytes: row.request_bytes,
            poll_failures: row.poll_failures,
            results_collected: row.results_collected,
            error: row.error,
            lease_owner: row.lease_owner,
            duplicate_of: row.duplicate_of,
            short_reads: row.short_reads,
            unaccounted_results: row.unaccounted_results,
            billed_tokens: row.billed_tokens,
            billed_cost_nanos: row.billed_cost_nanos,
        })
    }
}
