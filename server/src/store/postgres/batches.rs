//! The flush's side of the batch tables on PostgreSQL: candidates, claims, leases, the
//! create's outcomes, and what reconciliation reads. Every batch write is guarded by the lease
//! or the state it expects; claims skip jobs another transaction holds, so two instances
//! flushing at once never claim the same job.

use app::api::JobStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, QueryBuilder};

use super::results::requeue_processing;
use super::{COUNTED, CountedRow, PostgresStore, apply_totals, insert_events};
use crate::events::Happened;
use crate::store::*;

const BATCH_COLUMNS: &str = "b.id, b.provider_batch_id, b.status, b.job_count, b.estimated_tokens, b.request_bytes, \
    b.created_at, b.submitted_at, b.ended_at, b.expires_at, b.next_poll_at, b.poll_failures, b.request_counts, \
    b.results_collected, b.error, b.lease_owner, b.lease_expires_at, b.submit_started_at, b.submit_ended_at, \
    b.provider_created_at, b.duplicate_of, b.swept_at, b.short_reads, b.unaccounted_results, \
    COALESCE((SELECT SUM(c.input_tokens + c.output_tokens) FROM charges c WHERE c.provider_batch_id = b.provider_batch_id), 0)::BIGINT AS billed_tokens, \
    COALESCE((SELECT SUM(c.cost_nanos) FROM charges c WHERE c.provider_batch_id = b.provider_batch_id), 0)::BIGINT AS billed_cost_nanos";

/// The lease is free ($n: now, owner).
fn lease_free(now: usize, owner: usize) -> String {
    format!("(lease_expires_at IS NULL OR lease_expires_at < ${now} OR lease_owner = ${owner})")
}

impl PostgresStore {
    /// Batches selected by `tail` (SQL after `FROM batches b`, with `$1`), bound to `value`.
    async fn batches_where<T>(&self, tail: &str, value: T) -> StoreResult<Vec<BatchRecord>>
    where
        T: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
    {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches b {tail}");
        let rows: Vec<BatchRow> = sqlx::query_as(&sql)
            .bind(value)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(BatchRecord::try_from).collect()
    }
}

#[async_trait]
impl BatchStore for PostgresStore {
    async fn eligible_jobs(
        &self,
        filter: &FlushFilter,
        after: Option<&FlushCursor>,
        page: i64,
    ) -> StoreResult<Vec<QueuedJob>> {
        let mut query = QueryBuilder::<Postgres>::new(format!("SELECT {QUEUED_COLUMNS} FROM jobs"));
        push_eligible(&mut query, filter);
        if let Some(cursor) = after {
            // Flush order is (priority DESC, created_at, id): continue strictly after the cursor.
            query
                .push(" AND (priority < ")
                .push_bind(cursor.priority)
                .push(" OR (priority = ")
                .push_bind(cursor.priority)
                .push(" AND (created_at, id) > (")
                .push_bind(cursor.created_at)
                .push(", ")
                .push_bind(cursor.id.clone())
                .push(")))");
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
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT COUNT(*), MIN(GREATEST(created_at, COALESCE(run_after, created_at))) FROM jobs",
        );
        push_eligible(&mut query, filter);
        Ok(query.build_query_as().fetch_one(&self.pool).await?)
    }

    async fn first_capped_bounds(&self, now: DateTime<Utc>) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT b.user_id, f.bound FROM budgets b CROSS JOIN LATERAL ( \
               SELECT j.cost_bound_nanos AS bound FROM jobs j WHERE j.owner_id = b.user_id \
               AND j.status = 'pending' AND (j.run_after IS NULL OR j.run_after <= $1) \
               ORDER BY j.priority DESC, j.created_at, j.id LIMIT 1) f",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn claim_jobs(&self, batch: NewBatch, claims: &[Claim]) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO batches (id, status, job_count, estimated_tokens, request_bytes, created_at, \
             lease_owner, lease_expires_at, submit_started_at) VALUES ($1, 'submitting', 0, $2, $3, $4, $5, $6, $4)",
        )
        .bind(&batch.id)
        .bind(batch.estimated_tokens)
        .bind(batch.request_bytes)
        .bind(batch.created_at)
        .bind(&batch.lease.owner)
        .bind(batch.lease.until)
        .execute(&mut *tx)
        .await?;
        // Capped owners' budget rows are locked before their usage is read: two claims (two
        // instances, two admins) admit against one allowance, one after the other.
        let mut owners: Vec<&str> = claims.iter().map(|c| c.owner_id.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        let usages =
            super::oversight::capped_usages_in(&mut tx, batch.month_start, Some(&owners)).await?;
        let mut allowances = Allowances::new(&usages);
        let claims: Vec<&Claim> = claims
            .iter()
            .filter(|c| allowances.admit(&c.owner_id, c.bound_nanos))
            .collect();
        let ids: Vec<&str> = claims.iter().map(|c| c.job_id.as_str()).collect();
        let models: Vec<&str> = claims.iter().map(|c| c.model.as_str()).collect();
        let bounds: Vec<i64> = claims.iter().map(|c| c.bound_nanos).collect();
        // Jobs another transaction holds (another instance's claim, a cancel) are skipped.
        let sql = format!(
            "WITH wanted AS (SELECT * FROM unnest($1::text[], $2::text[], $5::bigint[]) AS w(id, model, bound)), \
             free AS (SELECT j.id FROM jobs j JOIN wanted w ON w.id = j.id WHERE j.status = 'pending' \
                      ORDER BY j.id FOR UPDATE OF j SKIP LOCKED) \
             UPDATE jobs j SET status = 'processing', local_batch_id = $3, model = w.model, cost_bound_nanos = w.bound, updated_at = $4 \
             FROM free JOIN wanted w ON w.id = free.id WHERE j.id = free.id RETURNING {}",
            COUNTED
                .split(", ")
                .map(|c| format!("j.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows: Vec<CountedRow> = sqlx::query_as(&sql)
            .bind(&ids)
            .bind(&models)
            .bind(&batch.id)
            .bind(batch.created_at)
            .bind(&bounds)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let mut deltas = Deltas::default();
        for row in &rows {
            let job = row.counted()?;
            deltas.moved(&job, JobStatus::Pending, &job, JobStatus::Processing);
        }
        let set: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        // In flush order, as asked.
        let claimed: Vec<String> = ids
            .into_iter()
            .filter(|id| set.contains(id))
            .map(String::from)
            .collect();
        sqlx::query(
            "INSERT INTO batch_jobs (batch_id, job_id) SELECT $1, id FROM unnest($2::text[]) AS t(id)",
        )
        .bind(&batch.id)
        .bind(&claimed)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE batches SET job_count = $1 WHERE id = $2")
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
        let changed = sqlx::query(
            "UPDATE batches SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3",
        )
        .bind(lease.until)
        .bind(batch_id)
        .bind(&lease.owner)
        .execute(&self.pool)
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
            "UPDATE batches SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3 AND {}",
            lease_free(4, 1)
        );
        let changed = sqlx::query(&sql)
            .bind(&lease.owner)
            .bind(lease.until)
            .bind(batch_id)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    async fn release_lease(&self, batch_id: &str, owner: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_owner = $2",
        )
        .bind(batch_id)
        .bind(owner)
        .execute(&self.pool)
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
            "UPDATE batches SET submit_started_at = $1, submit_ended_at = NULL \
             WHERE id = $2 AND status = 'submitting' AND lease_owner = $3",
        )
        .bind(now)
        .bind(batch_id)
        .bind(owner)
        .execute(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE batches SET provider_batch_id = $1, status = 'in_progress', submitted_at = $2, \
             submit_ended_at = COALESCE(submit_ended_at, $2), provider_created_at = $3, clock_sample = $4, \
             expires_at = $5, next_poll_at = $6, swept_at = CASE WHEN $7 THEN $2 ELSE NULL END, error = NULL, \
             lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $8 AND status = 'submitting' AND lease_owner = $9",
        )
        .bind(&s.provider_batch_id)
        .bind(s.submitted_at)
        .bind(s.provider_created_at)
        .bind(s.clock_sample)
        .bind(s.expires_at)
        .bind(s.next_poll_at)
        .bind(s.swept)
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
            "UPDATE jobs SET batch_id = $1, updated_at = $2 \
             WHERE local_batch_id = $3 AND batch_id IS NULL AND status IN ('processing', 'cancelled') RETURNING id",
        )
        .bind(&s.provider_batch_id)
        .bind(s.submitted_at)
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
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE batches SET status = 'failed', error = $1, submit_ended_at = $2, lease_owner = NULL, \
             lease_expires_at = NULL WHERE id = $3 AND status = 'submitting' AND lease_owner = $4",
        )
        .bind(error)
        .bind(now)
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
            "UPDATE batches SET error = $1, submit_ended_at = $2, lease_expires_at = $3 \
             WHERE id = $4 AND status = 'submitting' AND lease_owner = $5",
        )
        .bind(error)
        .bind(now)
        .bind(settle_until)
        .bind(batch_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn batch_members(&self, batch_id: &str) -> StoreResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT job_id FROM batch_jobs WHERE batch_id = $1 ORDER BY job_id")
                .bind(batch_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn batch_owners(&self, batch_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT j.owner_id FROM batch_jobs bj JOIN jobs j ON j.id = bj.job_id \
             WHERE bj.batch_id = $1 ORDER BY j.owner_id",
        )
        .bind(batch_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn batch_queued_jobs(&self, batch_id: &str) -> StoreResult<Vec<QueuedJob>> {
        let rows: Vec<QueuedRow> = sqlx::query_as(&format!(
            "SELECT {QUEUED_COLUMNS} FROM jobs \
             WHERE local_batch_id = $1 AND status = 'processing' ORDER BY priority DESC, created_at, id",
        ))
        .bind(batch_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(QueuedJob::try_from).collect()
    }

    async fn batches_to_reconcile(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.status = 'submitting' AND (b.lease_expires_at IS NULL OR b.lease_expires_at < $1) \
             ORDER BY b.created_at",
            now,
        )
        .await
    }

    async fn batches_to_sweep(&self, ended_before: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.swept_at IS NULL AND b.provider_batch_id IS NOT NULL AND b.duplicate_of IS NULL \
             AND b.submit_ended_at < $1 ORDER BY b.submit_ended_at",
            ended_before,
        )
        .await
    }

    async fn mark_swept(&self, batch_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE batches SET swept_at = $1 WHERE id = $2")
            .bind(now)
            .bind(batch_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn clock_samples(&self, limit: i64) -> StoreResult<Vec<ClockSample>> {
        let rows: Vec<(DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT submit_started_at, submit_ended_at, provider_created_at FROM batches \
             WHERE clock_sample AND submit_started_at IS NOT NULL AND submit_ended_at IS NOT NULL \
             AND provider_created_at IS NOT NULL ORDER BY submit_ended_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(started, ended, provider_created_at)| ClockSample {
                started,
                ended,
                provider_created_at,
            })
            .collect())
    }

    async fn record_duplicate(&self, d: &NewDuplicate) -> StoreResult<bool> {
        let changed = sqlx::query(
            "INSERT INTO batches (id, provider_batch_id, status, job_count, estimated_tokens, request_bytes, \
             created_at, submitted_at, expires_at, next_poll_at, duplicate_of, swept_at, submit_started_at, \
             submit_ended_at, provider_created_at, error) VALUES ($1, $2, $3, $4, 0, 0, $5, $5, $6, $5, $7, $5, $5, $5, $5, $8) \
             ON CONFLICT (provider_batch_id) DO NOTHING",
        )
        .bind(&d.id)
        .bind(&d.provider_batch_id)
        .bind(d.status.as_str())
        .bind(d.job_count)
        .bind(d.created_at)
        .bind(d.expires_at)
        .bind(&d.of)
        .bind(&d.note)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn note_batch(&self, batch_id: &str, note: &str) -> StoreResult<()> {
        sqlx::query("UPDATE batches SET error = $1 WHERE id = $2")
            .bind(note)
            .bind(batch_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_batch(&self, provider_batch_id: &str) -> StoreResult<Option<BatchRecord>> {
        Ok(self
            .batches_where(
                "WHERE b.provider_batch_id = $1",
                provider_batch_id.to_string(),
            )
            .await?
            .into_iter()
            .next())
    }

    async fn due_batches(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.status IN ('in_progress', 'canceling', 'ended') AND NOT b.results_collected \
             AND (b.next_poll_at IS NULL OR b.next_poll_at <= $1) ORDER BY b.next_poll_at",
            now,
        )
        .await
    }

    async fn list_batches(&self, limit: i64) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where("ORDER BY b.created_at DESC, b.id DESC LIMIT $1", limit)
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
            "UPDATE batches SET status = $1, next_poll_at = $2, poll_failures = $3, error = COALESCE($4, error) \
             WHERE id = $5 AND NOT results_collected",
        )
        .bind(status.as_str())
        .bind(next_poll_at)
        .bind(poll_failures)
        .bind(error)
        .bind(batch_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recent_batch_durations(&self, limit: i64) -> StoreResult<Vec<f64>> {
        Ok(sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM (ended_at - submitted_at))::FLOAT8 FROM batches \
             WHERE status = 'ended' AND duplicate_of IS NULL AND submitted_at IS NOT NULL AND ended_at IS NOT NULL \
             ORDER BY ended_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A job as a flush renders it.
const QUEUED_COLUMNS: &str =
    "id, owner_id, job_type, priority, payload, cost_bound_nanos, created_at";

/// `WHERE` with the filter's eligibility: pending, due, of the types and priority asked, of the
/// owners not left out.
fn push_eligible(query: &mut QueryBuilder<'_, Postgres>, filter: &FlushFilter) {
    query
        .push(" WHERE status = 'pending' AND (run_after IS NULL OR run_after <= ")
        .push_bind(filter.now)
        .push(") AND priority >= ")
        .push_bind(filter.min_priority);
    if let Some(types) = &filter.job_types {
        let names: Vec<String> = types.iter().map(|t| t.as_str().to_string()).collect();
        query
            .push(" AND job_type = ANY(")
            .push_bind(names)
            .push(")");
    }
    if !filter.exclude_owners.is_empty() {
        query
            .push(" AND owner_id <> ALL(")
            .push_bind(filter.exclude_owners.clone())
            .push(")");
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
    payload: Json<Value>,
    cost_bound_nanos: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<QueuedRow> for QueuedJob {
    type Error = StoreError;
    fn try_from(row: QueuedRow) -> StoreResult<Self> {
        Ok(QueuedJob {
            job_type: parse_job_type(&row.job_type)?,
            // The same compact text SQLite keeps, so a job renders the same on both engines.
            payload: row.payload.0.to_string(),
            created_at: row.created_at,
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
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    next_poll_at: Option<DateTime<Utc>>,
    poll_failures: i64,
    request_counts: Option<Json<Value>>,
    results_collected: bool,
    error: Option<String>,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    submit_started_at: Option<DateTime<Utc>>,
    submit_ended_at: Option<DateTime<Utc>>,
    provider_created_at: Option<DateTime<Utc>>,
    duplicate_of: Option<String>,
    swept_at: Option<DateTime<Utc>>,
    short_reads: i64,
    unaccounted_results: i64,
    billed_tokens: i64,
    billed_cost_nanos: i64,
}

impl TryFrom<BatchRow> for BatchRecord {
    type Error = StoreError;
    fn try_from(row: BatchRow) -> StoreResult<Self> {
        Ok(BatchRecord {
            status: parse_batch_status(&row.status)?,
            request_counts: row.request_counts.map(|c| c.0),
            id: row.id,
            provider_batch_id: row.provider_batch_id,
            job_count: row.job_count,
            estimated_tokens: row.estimated_tokens,
            request_bytes: row.request_bytes,
            created_at: row.created_at,
            submitted_at: row.submitted_at,
            ended_at: row.ended_at,
            expires_at: row.expires_at,
            next_poll_at: row.next_poll_at,
            poll_failures: row.poll_failures,
            results_collected: row.results_collected,
            error: row.error,
            lease_owner: row.lease_owner,
            lease_expires_at: row.lease_expires_at,
            submit_started_at: row.submit_started_at,
            submit_ended_at: row.submit_ended_at,
            provider_created_at: row.provider_created_at,
            duplicate_of: row.duplicate_of,
            swept_at: row.swept_at,
            short_reads: row.short_reads,
            unaccounted_results: row.unaccounted_results,
            billed_tokens: row.billed_tokens,
            billed_cost_nanos: row.billed_cost_nanos,
        })
    }
}
