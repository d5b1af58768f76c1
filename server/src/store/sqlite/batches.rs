//! The batch loop's tables on SQLite. Every job write is guarded by the state it was decided
//! on (`status = 'processing' AND batch_id = ? AND attempts = ?`), so late results are ignored.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{FromRow, QueryBuilder, Sqlite, Transaction};

use super::{SqliteStore, parse_job_type, parse_json, parse_status};
use crate::store::*;

const BATCH_COLUMNS: &str = "id, provider_batch_id, status, job_count, estimated_tokens, request_bytes, created_at, \
    submitted_at, ended_at, expires_at, next_poll_at, poll_failures, request_counts, results_collected, error";

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// A job is changed only in the state its update was decided on.
const GUARD: &str = "WHERE id = ? AND batch_id = ? AND status = 'processing' AND attempts = ?";

/// Binds a result's tokens and money, in the order every spend-recording update lists them.
fn bind_spend<'q>(query: SqliteQuery<'q>, spend: &'q Spend) -> SqliteQuery<'q> {
    query
        .bind(spend.input_tokens)
        .bind(spend.output_tokens)
        .bind(spend.cost_nanos)
        .bind(spend.standard_cost_nanos)
        .bind(&spend.price_version)
}

/// Binds the values of [`GUARD`].
fn guarded<'q>(
    query: SqliteQuery<'q>,
    update: &'q JobUpdate,
    provider_batch_id: &'q str,
) -> SqliteQuery<'q> {
    query
        .bind(&update.job_id)
        .bind(provider_batch_id)
        .bind(update.expected_attempts)
}

async fn event(
    tx: &mut Transaction<'_, Sqlite>,
    job_id: &str,
    kind: &str,
    detail: &str,
    at: i64,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO job_events (job_id, kind, detail, at) VALUES (?, ?, ?, ?)")
        .bind(job_id)
        .bind(kind)
        .bind(detail)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Puts a local batch's jobs that are still `processing` back to pending, with an event each.
async fn requeue_processing(
    tx: &mut Transaction<'_, Sqlite>,
    batch_id: &str,
    reason: &str,
    at: i64,
) -> StoreResult<i64> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE local_batch_id = ? AND status = 'processing'",
    )
    .bind(batch_id)
    .fetch_all(&mut **tx)
    .await?;
    for id in &ids {
        sqlx::query(
            "UPDATE jobs SET status = 'pending', batch_id = NULL, local_batch_id = NULL, updated_at = ? \
             WHERE id = ? AND status = 'processing'",
        )
        .bind(at)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        event(tx, id, "returned", reason, at).await?;
    }
    Ok(ids.len() as i64)
}

impl SqliteStore {
    /// Batches selected by `tail` (the SQL after `FROM batches`), with one integer bound.
    async fn batches_where(&self, tail: &str, value: i64) -> StoreResult<Vec<BatchRecord>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches {tail}");
        let rows: Vec<BatchRow> = sqlx::query_as(&sql)
            .bind(value)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(BatchRecord::try_from).collect()
    }
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn eligible_jobs(&self, filter: &FlushFilter) -> StoreResult<Vec<QueuedJob>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, job_type, priority, payload, created_at FROM jobs \
             WHERE status = 'pending' AND (run_after IS NULL OR run_after <= ",
        );
        query
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
        query
            .push(" ORDER BY priority DESC, created_at, id LIMIT ")
            .push_bind(filter.limit);
        let rows: Vec<QueuedRow> = query.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(QueuedJob::try_from).collect()
    }

    async fn eligible_summary(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(MAX(created_at, COALESCE(run_after, created_at))) FROM jobs \
             WHERE status = 'pending' AND (run_after IS NULL OR run_after <= ?)",
        )
        .bind(to_micros(now))
        .fetch_one(&self.pool)
        .await?;
        Ok((count, oldest.map(from_micros).transpose()?))
    }

    async fn claim_jobs(&self, batch: NewBatch, claims: &[Claim]) -> StoreResult<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let at = to_micros(batch.created_at);
        sqlx::query(
            "INSERT INTO batches (id, status, job_count, estimated_tokens, request_bytes, created_at) \
             VALUES (?, 'submitting', 0, ?, ?, ?)",
        )
        .bind(&batch.id)
        .bind(batch.estimated_tokens)
        .bind(batch.request_bytes)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(claims.len());
        for claim in claims {
            let changed = sqlx::query(
                "UPDATE jobs SET status = 'processing', local_batch_id = ?, model = ?, updated_at = ? \
                 WHERE id = ? AND status = 'pending'",
            )
            .bind(&batch.id)
            .bind(&claim.model)
            .bind(at)
            .bind(&claim.job_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                claimed.push(claim.job_id.clone());
            }
        }
        if claimed.is_empty() {
            tx.rollback().await?;
            return Ok(claimed);
        }
        sqlx::query("UPDATE batches SET job_count = ? WHERE id = ?")
            .bind(claimed.len() as i64)
            .bind(&batch.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn record_submission(&self, batch_id: &str, s: Submission) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let at = to_micros(s.submitted_at);
        sqlx::query(
            "UPDATE batches SET provider_batch_id = ?, status = 'in_progress', job_count = ?, submitted_at = ?, \
             expires_at = ?, next_poll_at = ? WHERE id = ?",
        )
        .bind(&s.provider_batch_id)
        .bind(s.job_count)
        .bind(at)
        .bind(to_micros(s.expires_at))
        .bind(to_micros(s.next_poll_at))
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
        // Jobs cancelled while the batch was being submitted were sent too: they keep the id.
        sqlx::query(
            "UPDATE jobs SET batch_id = ?, updated_at = ? \
             WHERE local_batch_id = ? AND batch_id IS NULL AND status IN ('processing', 'cancelled')",
        )
        .bind(&s.provider_batch_id)
        .bind(at)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO job_events (job_id, kind, detail, at) \
             SELECT id, 'submitted', 'in batch ' || ?, ? FROM jobs WHERE local_batch_id = ? AND batch_id = ?",
        )
        .bind(&s.provider_batch_id)
        .bind(at)
        .bind(batch_id)
        .bind(&s.provider_batch_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release_batch(
        &self,
        batch_id: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let released = requeue_processing(
            &mut tx,
            batch_id,
            &format!("the batch was not accepted: {error}"),
            to_micros(now),
        )
        .await?;
        sqlx::query("UPDATE batches SET status = 'failed', error = ? WHERE id = ?")
            .bind(error)
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(released)
    }

    async fn batch_queued_jobs(&self, batch_id: &str) -> StoreResult<Vec<QueuedJob>> {
        let rows: Vec<QueuedRow> = sqlx::query_as(
            "SELECT id, job_type, priority, payload, created_at FROM jobs \
             WHERE local_batch_id = ? AND status = 'processing' ORDER BY priority DESC, created_at, id",
        )
        .bind(batch_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(QueuedJob::try_from).collect()
    }

    async fn submitting_batches(
        &self,
        created_before: DateTime<Utc>,
    ) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE status = 'submitting' AND created_at < ? ORDER BY created_at",
            to_micros(created_before),
        )
        .await
    }

    async fn find_batch(&self, provider_batch_id: &str) -> StoreResult<Option<BatchRecord>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE provider_batch_id = ?");
        let row: Option<BatchRow> = sqlx::query_as(&sql)
            .bind(provider_batch_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(BatchRecord::try_from).transpose()
    }

    async fn due_batches(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where("WHERE status IN ('in_progress', 'canceling', 'ended') \
             AND results_collected = 0 AND (next_poll_at IS NULL OR next_poll_at <= ?) ORDER BY next_poll_at", to_micros(now)).await
    }

    async fn list_batches(&self, limit: i64) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where("ORDER BY created_at DESC, id DESC LIMIT ?", limit)
            .await
    }

    async fn update_batch_progress(
        &self,
        batch_id: &str,
        status: BatchStatus,
        next_poll_at: Option<DateTime<Utc>>,
        poll_failures: i64,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE batches SET status = ?, next_poll_at = ?, poll_failures = ? WHERE id = ? AND results_collected = 0")
            .bind(status.as_str())
            .bind(next_poll_at.map(to_micros))
            .bind(poll_failures)
            .bind(batch_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn job_states(
        &self,
        provider_batch_id: &str,
        job_ids: &[String],
    ) -> StoreResult<Vec<JobState>> {
        let mut states = Vec::with_capacity(job_ids.len());
        for chunk in job_ids.chunks(500) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT id, job_type, status, attempts, cancel_requested, usage_recorded_at IS NOT NULL AS usage_recorded, model \
                 FROM jobs WHERE batch_id = ",
            );
            query.push_bind(provider_batch_id).push(" AND id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            list.push_unseparated(")");
            let rows: Vec<StateRow> = query.build_query_as().fetch_all(&self.pool).await?;
            for row in rows {
                states.push(JobState {
                    job_type: parse_job_type(&row.job_type)?,
                    status: parse_status(&row.status)?,
                    id: row.id,
                    attempts: row.attempts,
                    cancel_requested: row.cancel_requested,
                    usage_recorded: row.usage_recorded,
                    model: row.model,
                });
            }
        }
        Ok(states)
    }

    async fn apply_updates(
        &self,
        provider_batch_id: &str,
        updates: &[JobUpdate],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let at = to_micros(now);
        let mut tx = self.begin_write().await?;
        let mut changed = Vec::with_capacity(updates.len());
        for u in updates {
            let (rows, kind, detail) = match &u.transition {
                Transition::Complete { result, spend } => {
                    let sql = format!(
                        "UPDATE jobs SET status = 'completed', result = ?, input_tokens = ?, output_tokens = ?, cost_nanos = ?, \
                         standard_cost_nanos = ?, price_version = ?, completed_at = ?, updated_at = ?, usage_recorded_at = ?, \
                         error_message = NULL {GUARD}"
                    );
                    // completed_at, updated_at, usage_recorded_at
                    let query = bind_spend(sqlx::query(&sql).bind(result.to_string()), spend)
                        .bind(at)
                        .bind(at)
                        .bind(at);
                    let rows = guarded(query, u, provider_batch_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    (
                        rows,
                        "completed",
                        format!("result received from batch {provider_batch_id}"),
                    )
                }
                Transition::Fail { error, attempts } => {
                    let sql = format!(
                        "UPDATE jobs SET status = 'failed', error_message = ?, attempts = ?, updated_at = ? {GUARD}"
                    );
                    let query = sqlx::query(&sql).bind(error).bind(attempts).bind(at);
                    let rows = guarded(query, u, provider_batch_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    (rows, "failed", error.clone())
                }
                Transition::Requeue { reason, attempts } => {
                    let sql = format!(
                        "UPDATE jobs SET status = 'pending', batch_id = NULL, local_batch_id = NULL, attempts = ?, \
                         error_message = ?, updated_at = ? {GUARD}"
                    );
                    let query = sqlx::query(&sql).bind(attempts).bind(reason).bind(at);
                    let rows = guarded(query, u, provider_batch_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    (rows, "retried", reason.clone())
                }
                Transition::RecordSpend { spend } => {
                    let query = sqlx::query(
                        "UPDATE jobs SET input_tokens = ?, output_tokens = ?, cost_nanos = ?, standard_cost_nanos = ?, \
                         price_version = ?, usage_recorded_at = ?, updated_at = ? \
                         WHERE id = ? AND batch_id = ? AND status = 'cancelled' AND usage_recorded_at IS NULL",
                    );
                    // usage_recorded_at, updated_at
                    let rows = bind_spend(query, spend)
                        .bind(at)
                        .bind(at)
                        .bind(&u.job_id)
                        .bind(provider_batch_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    (
                        rows,
                        "result_discarded",
                        "cancelled in flight: result discarded, tokens counted".to_string(),
                    )
                }
            };
            if rows == 1 {
                event(&mut tx, &u.job_id, kind, &detail, at).await?;
                changed.push(u.job_id.clone());
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn finish_batch(
        &self,
        batch_id: &str,
        request_counts: Value,
        ended_at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let returned = requeue_processing(
            &mut tx,
            batch_id,
            "the batch ended without a result for this job",
            to_micros(Utc::now()),
        )
        .await?;
        sqlx::query("UPDATE batches SET status = 'ended', results_collected = 1, request_counts = ?, ended_at = ?, next_poll_at = NULL WHERE id = ?")
            .bind(request_counts.to_string())
            .bind(to_micros(ended_at))
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(returned)
    }

    async fn lose_batch(&self, batch_id: &str, now: DateTime<Utc>) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let returned = requeue_processing(
            &mut tx,
            batch_id,
            "Anthropic no longer knows the batch",
            to_micros(now),
        )
        .await?;
        sqlx::query("UPDATE batches SET status = 'lost', next_poll_at = NULL, error = 'unknown to the provider' WHERE id = ?")
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(returned)
    }

    async fn batch_remaining(&self, provider_batch_id: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE batch_id = ? AND status = 'processing'",
        )
        .bind(provider_batch_id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn recent_batch_durations(&self, limit: i64) -> StoreResult<Vec<f64>> {
        Ok(sqlx::query_scalar(
            "SELECT (ended_at - submitted_at) / 1000000.0 FROM batches \
             WHERE status = 'ended' AND submitted_at IS NOT NULL AND ended_at IS NOT NULL \
             ORDER BY ended_at DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[derive(FromRow)]
struct QueuedRow {
    id: String,
    job_type: String,
    priority: i64,
    payload: String,
    created_at: i64,
}

impl TryFrom<QueuedRow> for QueuedJob {
    type Error = StoreError;
    fn try_from(row: QueuedRow) -> StoreResult<Self> {
        Ok(QueuedJob {
            job_type: parse_job_type(&row.job_type)?,
            payload: parse_json("payload", Some(row.payload))?.unwrap_or_default(),
            created_at: from_micros(row.created_at)?,
            id: row.id,
            priority: row.priority,
        })
    }
}

#[derive(FromRow)]
struct StateRow {
    id: String,
    job_type: String,
    status: String,
    attempts: i64,
    cancel_requested: bool,
    usage_recorded: bool,
    model: Option<String>,
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
}

impl TryFrom<BatchRow> for BatchRecord {
    type Error = StoreError;
    fn try_from(row: BatchRow) -> StoreResult<Self> {
        let at = |t: Option<i64>| t.map(from_micros).transpose();
        Ok(BatchRecord {
            status: BatchStatus::parse(&row.status).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown batch status {}", row.status))
            })?,
            request_counts: parse_json("request_counts", row.request_counts)?,
            created_at: from_micros(row.created_at)?,
            submitted_at: at(row.submitted_at)?,
            ended_at: at(row.ended_at)?,
            expires_at: at(row.expires_at)?,
            next_poll_at: at(row.next_poll_at)?,
            id: row.id,
            provider_batch_id: row.provider_batch_id,
            job_count: row.job_count,
            estimated_tokens: row.estimated_tokens,
            request_bytes: row.request_bytes,
            poll_failures: row.poll_failures,
            results_collected: row.results_collected,
            error: row.error,
        })
    }
}
