//! The batch loop's tables on SQLite. Every job write is guarded by the state it was decided
//! on (`status = 'processing' AND batch_id = ? AND attempts = ?`), every batch write by the
//! lease or state it expects, and every charge by its key, so late or repeated work is ignored.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{FromRow, QueryBuilder, Sqlite, Transaction};

use super::{SqliteStore, parse_json};
use crate::events::Happened;
use crate::store::*;

/// A batch's columns, with what its charges add up to.
const BATCH_COLUMNS: &str = "b.id, b.provider_batch_id, b.status, b.job_count, b.estimated_tokens, b.request_bytes, \
    b.created_at, b.submitted_at, b.ended_at, b.expires_at, b.next_poll_at, b.poll_failures, b.request_counts, \
    b.results_collected, b.error, b.lease_owner, b.lease_expires_at, b.submit_started_at, b.submit_ended_at, \
    b.provider_created_at, b.duplicate_of, b.swept_at, b.short_reads, b.unaccounted_results, \
    COALESCE((SELECT SUM(c.input_tokens + c.output_tokens) FROM charges c WHERE c.provider_batch_id = b.provider_batch_id), 0) AS billed_tokens, \
    COALESCE((SELECT SUM(c.cost_nanos) FROM charges c WHERE c.provider_batch_id = b.provider_batch_id), 0) AS billed_cost_nanos";

/// A job is changed only in the state its update was decided on.
const GUARD: &str = "WHERE id = ? AND batch_id = ? AND status = 'processing' AND attempts = ?";

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds the values of [`GUARD`].
fn guarded<'q>(
    query: SqliteQuery<'q>,
    update: &JobUpdate,
    provider_batch_id: &str,
) -> SqliteQuery<'q> {
    query
        .bind(update.job_id.clone())
        .bind(provider_batch_id.to_string())
        .bind(update.expected_attempts)
}

async fn applies(tx: &mut Transaction<'_, Sqlite>, query: SqliteQuery<'_>) -> StoreResult<bool> {
    Ok(query.execute(&mut **tx).await?.rows_affected() == 1)
}

/// The lease is free: lapsed, never taken, or already ours.
const LEASE_FREE: &str = "(lease_expires_at IS NULL OR lease_expires_at < ? OR lease_owner = ?)";

async fn event(
    tx: &mut Transaction<'_, Sqlite>,
    job_id: &str,
    happened: &Happened,
    at: i64,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO job_events (job_id, kind, detail, at) VALUES (?, ?, ?, ?)")
        .bind(job_id)
        .bind(happened.kind())
        .bind(happened.detail())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Clone, Copy)]
enum ChargeKind {
    Result,
    Discarded,
    Duplicate,
}

impl ChargeKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Result => "result",
            Self::Discarded => "discarded",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Records what Anthropic billed for a job in a provider batch, once, and adds it to the
/// job's totals. `false` if that charge was already recorded (or the job does not exist).
async fn charge(
    tx: &mut Transaction<'_, Sqlite>,
    job_id: &str,
    provider_batch_id: &str,
    kind: ChargeKind,
    spend: &Spend,
    at: i64,
) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO charges (job_id, provider_batch_id, kind, input_tokens, output_tokens, cost_nanos, \
         standard_cost_nanos, price_version, at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? \
         WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?) ON CONFLICT DO NOTHING",
    )
    .bind(job_id)
    .bind(provider_batch_id)
    .bind(kind.as_str())
    .bind(spend.input_tokens)
    .bind(spend.output_tokens)
    .bind(spend.cost_nanos)
    .bind(spend.standard_cost_nanos)
    .bind(&spend.price_version)
    .bind(at)
    .bind(job_id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let duplicate = matches!(kind, ChargeKind::Duplicate);
        sqlx::query(
            "UPDATE jobs SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, \
             cost_nanos = cost_nanos + ?, standard_cost_nanos = standard_cost_nanos + ?, \
             duplicate_tokens = duplicate_tokens + ?, duplicate_cost_nanos = duplicate_cost_nanos + ?, \
             price_version = CASE WHEN ? THEN price_version ELSE ? END WHERE id = ?",
        )
        .bind(spend.input_tokens)
        .bind(spend.output_tokens)
        .bind(spend.cost_nanos)
        .bind(spend.standard_cost_nanos)
        .bind(if duplicate {
            spend.input_tokens + spend.output_tokens
        } else {
            0
        })
        .bind(if duplicate { spend.cost_nanos } else { 0 })
        .bind(duplicate)
        .bind(&spend.price_version)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(inserted)
}

/// Puts a local batch's jobs that are still `processing` back to pending, with an event each.
async fn requeue_processing(
    tx: &mut Transaction<'_, Sqlite>,
    batch_id: &str,
    happened: &Happened,
    at: i64,
) -> StoreResult<i64> {
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE jobs SET status = 'pending', batch_id = NULL, local_batch_id = NULL, updated_at = ? \
         WHERE local_batch_id = ? AND status = 'processing' RETURNING id",
    )
    .bind(at)
    .bind(batch_id)
    .fetch_all(&mut **tx)
    .await?;
    for id in &ids {
        event(tx, id, happened, at).await?;
    }
    Ok(ids.len() as i64)
}

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
                sqlx::query("INSERT INTO batch_jobs (batch_id, job_id) VALUES (?, ?)")
                    .bind(&batch.id)
                    .bind(&claim.job_id)
                    .execute(&mut *tx)
                    .await?;
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
        for id in &ids {
            event(&mut tx, id, happened, at).await?;
        }
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
        let released = requeue_processing(&mut tx, batch_id, happened, at).await?;
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

    async fn job_states(
        &self,
        provider_batch_id: &str,
        job_ids: &[String],
    ) -> StoreResult<Vec<JobState>> {
        let mut states = Vec::with_capacity(job_ids.len());
        for chunk in job_ids.chunks(500) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT j.id, j.job_type, j.status, j.attempts, j.cancel_requested, j.model, \
                 EXISTS (SELECT 1 FROM charges c WHERE c.job_id = j.id AND c.provider_batch_id = j.batch_id) AS charged \
                 FROM jobs j WHERE j.batch_id = ",
            );
            query.push_bind(provider_batch_id).push(" AND j.id IN (");
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
                    charged: row.charged,
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
            // Each transition is one guarded update, and maybe a charge for what was billed.
            let (passed, billed) = match &u.transition {
                Transition::Complete { result, spend } => {
                    let sql = format!(
                        "UPDATE jobs SET status = 'completed', result = ?, completed_at = ?, updated_at = ?, \
                         error_message = NULL {GUARD}"
                    );
                    let query = sqlx::query(&sql).bind(result.to_string()).bind(at).bind(at);
                    (
                        applies(&mut tx, guarded(query, u, provider_batch_id)).await?,
                        Some((spend, ChargeKind::Result)),
                    )
                }
                Transition::Fail {
                    error,
                    attempts,
                    spend,
                } => {
                    let sql = format!(
                        "UPDATE jobs SET status = 'failed', error_message = ?, attempts = ?, updated_at = ? {GUARD}"
                    );
                    let query = sqlx::query(&sql).bind(error).bind(attempts).bind(at);
                    (
                        applies(&mut tx, guarded(query, u, provider_batch_id)).await?,
                        spend.as_ref().map(|s| (s, ChargeKind::Result)),
                    )
                }
                Transition::Requeue { reason, attempts } => {
                    let sql = format!(
                        "UPDATE jobs SET status = 'pending', batch_id = NULL, local_batch_id = NULL, attempts = ?, \
                         error_message = ?, updated_at = ? {GUARD}"
                    );
                    let query = sqlx::query(&sql).bind(attempts).bind(reason).bind(at);
                    (
                        applies(&mut tx, guarded(query, u, provider_batch_id)).await?,
                        None,
                    )
                }
                Transition::RecordSpend { spend } => {
                    let cancelled_here: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ? AND batch_id = ? AND status = 'cancelled')",
                    )
                    .bind(&u.job_id)
                    .bind(provider_batch_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    (cancelled_here, Some((spend, ChargeKind::Discarded)))
                }
            };
            let applied = match (passed, billed) {
                (true, Some((spend, kind))) => {
                    let charged =
                        charge(&mut tx, &u.job_id, provider_batch_id, kind, spend, at).await?;
                    // A discard changes nothing but the books: it applies only the first time.
                    charged || !matches!(kind, ChargeKind::Discarded)
                }
                (passed, _) => passed,
            };
            if applied {
                event(&mut tx, &u.job_id, &u.event, at).await?;
                changed.push(u.job_id.clone());
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn record_duplicate_charges(
        &self,
        provider_batch_id: &str,
        charges: &[DuplicateCharge],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let at = to_micros(now);
        let mut tx = self.begin_write().await?;
        let mut charged = Vec::with_capacity(charges.len());
        let happened = Happened::BilledAgain {
            batch: provider_batch_id.to_string(),
        };
        for c in charges {
            if charge(
                &mut tx,
                &c.job_id,
                provider_batch_id,
                ChargeKind::Duplicate,
                &c.spend,
                at,
            )
            .await?
            {
                event(&mut tx, &c.job_id, &happened, at).await?;
                charged.push(c.job_id.clone());
            }
        }
        tx.commit().await?;
        Ok(charged)
    }

    async fn record_short_read(
        &self,
        batch_id: &str,
        next_poll_at: DateTime<Utc>,
        note: &str,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE batches SET short_reads = short_reads + 1, next_poll_at = ?, error = ?, poll_failures = 0 \
             WHERE id = ? RETURNING short_reads",
        )
        .bind(to_micros(next_poll_at))
        .bind(note)
        .bind(batch_id)
        .fetch_one(&self.writer)
        .await?)
    }

    async fn finish_batch(
        &self,
        batch_id: &str,
        status: BatchStatus,
        request_counts: &Value,
        ended_at: DateTime<Utc>,
        unaccounted_results: i64,
        note: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE batches SET status = ?, results_collected = 1, request_counts = ?, ended_at = ?, \
             next_poll_at = NULL, unaccounted_results = ?, error = COALESCE(?, error), poll_failures = 0, \
             lease_owner = NULL, lease_expires_at = NULL WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(request_counts.to_string())
        .bind(to_micros(ended_at))
        .bind(unaccounted_results)
        .bind(note)
        .bind(batch_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn lose_batch(
        &self,
        batch_id: &str,
        note: &str,
        happened: &Happened,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let returned = requeue_processing(&mut tx, batch_id, happened, to_micros(now)).await?;
        sqlx::query(
            "UPDATE batches SET status = 'lost', next_poll_at = NULL, error = ? WHERE id = ?",
        )
        .bind(note)
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

    async fn charged_results(&self, provider_batch_id: &str) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM charges WHERE provider_batch_id = ?")
                .bind(provider_batch_id)
                .fetch_one(&self.pool)
                .await?,
        )
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
            created_at: from_micros(row.created_at)?,
            payload: row.payload,
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
    charged: bool,
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
