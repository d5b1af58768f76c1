//! The flush's side of the batch tables: candidates, claims, leases, the create's outcomes,
//! and what reconciliation reads. Every batch write is guarded by the lease or the state it
//! expects; on PostgreSQL, claims skip rows another transaction holds.

use app::api::JobStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{
    BATCH_COLUMNS, BatchRow, ClockRow, CountedRow, QUEUED_COLUMNS, QueuedRow, column,
    counted_of_jobs, first,
};
use super::{SqlStore, apply_totals, insert_events, tx_execute, tx_read};
use crate::events::Happened;
use crate::store::engine::{Arg, Engine, Kind, Query, Rows};
use crate::store::*;

/// A batch whose results are still to collect.
const OPEN: &str = "b.status IN ('in_progress', 'canceling', 'ended') AND NOT b.results_collected";

/// The lease is free: lapsed, never taken, or already ours (binds: now, owner).
const LEASE_FREE: &str = "(lease_expires_at IS NULL OR lease_expires_at < ? OR lease_owner = ?)";

impl<E: Engine> SqlStore<E> {
    /// Batches selected by `tail` (the SQL after `FROM batches b`) and its binds.
    async fn batches_where(
        &self,
        tail: &str,
        args: impl IntoIterator<Item = Arg<'_>>,
    ) -> StoreResult<Vec<BatchRecord>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches b {tail}");
        self.read::<BatchRow>(&sql, args)
            .await?
            .into_iter()
            .map(BatchRecord::try_from)
            .collect()
    }

    /// A duplicate's row, copying its provider from the batch it copies; `guard` is further
    /// SQL on that batch (`src`).
    async fn insert_duplicate(&self, d: &NewDuplicate, guard: &str) -> StoreResult<bool> {
        let at = d.created_at;
        self.write_one(
            &format!(
                "INSERT INTO batches (id, provider, provider_batch_id, status, job_count, estimated_tokens, \
                 request_bytes, created_at, submitted_at, expires_at, next_poll_at, duplicate_of, swept_at, \
                 submit_started_at, submit_ended_at, provider_created_at, error) \
                 SELECT ?, src.provider, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
                 FROM batches src WHERE src.id = ? {guard} \
                 ON CONFLICT (provider_batch_id) DO NOTHING"
            ),
            [
                d.id.as_str().into(),
                d.provider_batch_id.as_str().into(),
                d.status.as_str().into(),
                d.job_count.into(),
                at.into(),
                at.into(),
                d.expires_at.into(),
                at.into(),
                d.of.as_str().into(),
                at.into(),
                at.into(),
                at.into(),
                at.into(),
                d.note.as_str().into(),
                d.of.as_str().into(),
            ],
        )
        .await
    }
}

/// ` WHERE …`: the filter's eligibility, the one definition of it. Pending, due, of the types
/// and priority asked, of the owners not left out (or of the one owner asked).
fn push_eligible<'a>(query: &mut Query<'a>, filter: &'a FlushFilter) {
    query
        .push(" WHERE status = 'pending' AND (run_after IS NULL OR run_after <= ")
        .bind(filter.now)
        .push(") AND priority >= ")
        .bind(filter.min_priority);
    if let Some(types) = &filter.job_types {
        query
            .push(" AND job_type IN ")
            .list(types.iter().map(|t| t.as_str()));
    }
    if !filter.exclude_owners.is_empty() {
        query
            .push(" AND owner_id NOT IN ")
            .list(filter.exclude_owners.iter());
    }
    if let Some(owner) = &filter.owner {
        query.push(" AND owner_id = ").bind(owner.as_str());
    }
}

/// Flush order: the highest priority first, then the longest waiting.
const FLUSH_ORDER: &str = " ORDER BY priority DESC, created_at, id";

/// Puts a local batch's jobs that are still `processing` back to pending, with an event each.
pub(super) async fn requeue_processing<E: Engine>(
    tx: &mut E::Tx,
    batch_id: &str,
    happened: &Happened,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let sql = format!(
        "UPDATE jobs SET status = 'pending', batch_id = NULL, local_batch_id = NULL, updated_at = ? \
         WHERE local_batch_id = ? AND status = 'processing' RETURNING {}",
        super::COUNTED
    );
    let rows: Vec<CountedRow> = tx_read::<E, _>(tx, &sql, [now.into(), batch_id.into()]).await?;
    let mut deltas = Deltas::default();
    super::counted_moves(
        &rows,
        JobStatus::Processing,
        JobStatus::Pending,
        &mut deltas,
    )?;
    let events: Vec<_> = rows
        .iter()
        .map(|r| (r.id.as_str(), happened, now))
        .collect();
    insert_events::<E>(tx, &events).await?;
    apply_totals::<E>(tx, &deltas).await?;
    Ok(rows.len() as i64)
}

#[async_trait]
impl<E: Engine> BatchStore for SqlStore<E> {
    async fn eligible_jobs(
        &self,
        filter: &FlushFilter,
        after: Option<&FlushCursor>,
        page: i64,
    ) -> StoreResult<Vec<QueuedJob>> {
        let candidates = || {
            let mut query = Query::new(format!("SELECT {QUEUED_COLUMNS} FROM jobs"), []);
            push_eligible(&mut query, filter);
            query
        };
        let mut query = match after {
            None => candidates(),
            // Strictly after the cursor in flush order: the rest of its priority, then the lower
            // ones, each a seek into the flush-order index, merged. One `OR` of the two is no
            // seek: each page re-read every job before the cursor (PostgreSQL, 200,000 pending:
            // 233 ms for a page at the 100,000th job, 4 ms as two seeks).
            Some(cursor) => {
                let mut same = candidates();
                same.push(" AND priority = ")
                    .bind(cursor.priority)
                    .push(" AND (created_at, id) > (")
                    .bind(cursor.created_at)
                    .push(", ")
                    .bind(cursor.id.as_str())
                    .push(&format!("){FLUSH_ORDER} LIMIT "))
                    .bind(page);
                let mut lower = candidates();
                lower
                    .push(" AND priority < ")
                    .bind(cursor.priority)
                    .push(&format!("{FLUSH_ORDER} LIMIT "))
                    .bind(page);
                let mut merged = Query::new("SELECT * FROM (", []);
                merged
                    .append(same)
                    .push(") AS same_priority UNION ALL SELECT * FROM (")
                    .append(lower)
                    .push(") AS lower_priority");
                merged
            }
        };
        query.push(&format!("{FLUSH_ORDER} LIMIT ")).bind(page);
        self.engine
            .read::<QueuedRow>(query)
            .await?
            .into_iter()
            .map(QueuedJob::try_from)
            .collect()
    }

    async fn eligible_summary(
        &self,
        filter: &FlushFilter,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        let mut query = Query::new(
            format!(
                "SELECT CAST(COUNT(*) AS BIGINT), MIN({}) FROM jobs",
                E::DIALECT.greatest("created_at", "COALESCE(run_after, created_at)")
            ),
            [],
        );
        push_eligible(&mut query, filter);
        let rows: Vec<(i64, Option<engine::Time>)> = self.engine.read(query).await?;
        let (count, oldest) = rows.into_iter().next().unwrap_or((0, None));
        Ok((count, oldest.map(|t| t.0)))
    }

    async fn first_capped_bounds(&self, now: DateTime<Utc>) -> StoreResult<Vec<(String, i64)>> {
        // Unqualified columns of the subquery are the job's (budgets has none of those names).
        let mut query = Query::new("SELECT b.user_id, (SELECT cost_bound_nanos FROM jobs", []);
        let due = FlushFilter::due(now);
        push_eligible(&mut query, &due);
        query.push(&format!(
            " AND owner_id = b.user_id{FLUSH_ORDER} LIMIT 1) AS bound FROM budgets b"
        ));
        let rows: Vec<(String, Option<i64>)> = self.engine.read(query).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(owner, bound)| Some((owner, bound?)))
            .collect())
    }

    async fn claim_jobs(&self, batch: NewBatch, claims: &[Claim]) -> StoreResult<Vec<String>> {
        let mut tx = self.begin().await?;
        // What the budgets admit is decided here, where no other claim can interleave: SQLite's
        // one writer serialises claims; on PostgreSQL the owners' budget rows are locked first.
        let mut owners: Vec<&str> = claims.iter().map(|c| c.owner_id.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        let usages =
            super::budgets::capped_usages_in::<E>(&mut tx, batch.month_start, &owners).await?;
        let mut allowances = Allowances::new(&usages);
        let claims: Vec<&Claim> = claims
            .iter()
            .filter(|c| allowances.admit(&c.owner_id, c.bound_nanos))
            .collect();
        tx_execute::<E>(
            &mut tx,
            "INSERT INTO batches (id, provider, status, job_count, estimated_tokens, request_bytes, created_at, \
             lease_owner, lease_expires_at, submit_started_at) VALUES (?, ?, 'submitting', 0, ?, ?, ?, ?, ?, ?)",
            [
                batch.id.as_str().into(),
                batch.provider.as_str().into(),
                batch.estimated_tokens.into(),
                batch.request_bytes.into(),
                batch.created_at.into(),
                batch.lease.owner.as_str().into(),
                batch.lease.until.into(),
                batch.created_at.into(),
            ],
        )
        .await?;
        let mut wanted = Rows::new(&[
            ("id", Kind::Text),
            ("model", Kind::Text),
            ("provider", Kind::Text),
            ("bound", Kind::Int),
        ]);
        for claim in &claims {
            wanted.push(vec![
                claim.job_id.as_str().into(),
                claim.model.as_str().into(),
                claim.provider.as_str().into(),
                claim.bound_nanos.into(),
            ]);
        }
        let mut claim = Query::default();
        claim
            .push(&format!("WITH wanted {} AS (", wanted.names()))
            .rows(wanted)
            .push(") UPDATE jobs SET status = 'processing', local_batch_id = ")
            .bind(batch.id.as_str())
            .push(", model = wanted.model, provider = wanted.provider, cost_bound_nanos = wanted.bound, updated_at = ")
            .bind(batch.created_at)
            .push(&format!(
                " FROM wanted WHERE jobs.id = wanted.id AND jobs.status = 'pending'{} RETURNING {}",
                E::DIALECT.claimable("wanted"),
                counted_of_jobs()
            ));
        let rows: Vec<CountedRow> = if claims.is_empty() {
            Vec::new()
        } else {
            E::tx_read(&mut tx, claim).await?
        };
        if rows.is_empty() {
            // Dropping the transaction rolls the batch row back.
            return Ok(Vec::new());
        }
        let mut deltas = Deltas::default();
        super::counted_moves(
            &rows,
            JobStatus::Pending,
            JobStatus::Processing,
            &mut deltas,
        )?;
        let set: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        // In flush order, as asked.
        let claimed: Vec<String> = claims
            .iter()
            .filter(|c| set.contains(c.job_id.as_str()))
            .map(|c| c.job_id.clone())
            .collect();
        let mut members = Rows::new(&[("batch_id", Kind::Text), ("job_id", Kind::Text)]);
        for id in &claimed {
            members.push(vec![batch.id.as_str().into(), id.as_str().into()]);
        }
        let mut insert = Query::default();
        insert
            .push(&format!("WITH v {} AS (", members.names()))
            .rows(members)
            .push(") INSERT INTO batch_jobs (batch_id, job_id) SELECT * FROM v");
        E::tx_execute(&mut tx, insert).await?;
        tx_execute::<E>(
            &mut tx,
            "UPDATE batches SET job_count = ? WHERE id = ?",
            [(claimed.len() as i64).into(), batch.id.as_str().into()],
        )
        .await?;
        apply_totals::<E>(&mut tx, &deltas).await?;
        if let Some(audit) = &batch.audit {
            super::audit::insert_audit::<E>(&mut tx, audit).await?;
        }
        E::commit(tx).await?;
        Ok(claimed)
    }

    async fn renew_lease(&self, batch_id: &str, lease: &Lease) -> StoreResult<bool> {
        self.write_one(
            "UPDATE batches SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?",
            [
                lease.until.into(),
                batch_id.into(),
                lease.owner.as_str().into(),
            ],
        )
        .await
    }

    async fn take_lease(
        &self,
        batch_id: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.write_one(
            &format!(
                "UPDATE batches SET lease_owner = ?, lease_expires_at = ? WHERE id = ? AND {LEASE_FREE}"
            ),
            [
                lease.owner.as_str().into(),
                lease.until.into(),
                batch_id.into(),
                now.into(),
                lease.owner.as_str().into(),
            ],
        )
        .await
    }

    async fn release_lease(&self, batch_id: &str, owner: &str) -> StoreResult<()> {
        self.write_one(
            "UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?",
            [batch_id.into(), owner.into()],
        )
        .await?;
        Ok(())
    }

    async fn start_submit(
        &self,
        batch_id: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.write_one(
            "UPDATE batches SET submit_started_at = ?, submit_ended_at = NULL \
             WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
            [now.into(), batch_id.into(), owner.into()],
        )
        .await
    }

    async fn record_submission(
        &self,
        batch_id: &str,
        owner: &str,
        s: &Submission,
        happened: &Happened,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let at = s.submitted_at;
        let changed = tx_execute::<E>(
            &mut tx,
            "UPDATE batches SET provider_batch_id = ?, status = 'in_progress', submitted_at = ?, \
             submit_ended_at = COALESCE(submit_ended_at, ?), provider_created_at = ?, clock_sample = ?, \
             expires_at = ?, next_poll_at = ?, swept_at = ?, error = NULL, \
             lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
            [
                s.provider_batch_id.as_str().into(),
                at.into(),
                at.into(),
                s.provider_created_at.into(),
                s.clock_sample.into(),
                s.expires_at.into(),
                s.next_poll_at.into(),
                s.swept.then_some(at).into(),
                batch_id.into(),
                owner.into(),
            ],
        )
        .await?;
        if changed == 0 {
            return Ok(false);
        }
        // The jobs learn the provider's id through their batch (`rows::batch_column_of!`), so
        // they are read here, not written. Jobs cancelled while the batch was being submitted
        // were sent too: they have the event as well.
        let ids = column::<String>(
            tx_read::<E, _>(
                &mut tx,
                "SELECT id FROM jobs WHERE local_batch_id = ? AND status IN ('processing', 'cancelled')",
                [batch_id.into()],
            )
            .await?,
        );
        let events: Vec<_> = ids
            .iter()
            .map(|id| (id.as_str(), happened, s.submitted_at))
            .collect();
        insert_events::<E>(&mut tx, &events).await?;
        E::commit(tx).await?;
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
        let mut tx = self.begin().await?;
        let changed = tx_execute::<E>(
            &mut tx,
            "UPDATE batches SET status = 'failed', error = ?, submit_ended_at = ?, lease_owner = NULL, \
             lease_expires_at = NULL WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
            [error.into(), now.into(), batch_id.into(), owner.into()],
        )
        .await?;
        if changed == 0 {
            return Ok(0);
        }
        let released = requeue_processing::<E>(&mut tx, batch_id, happened, now).await?;
        E::commit(tx).await?;
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
        self.write_one(
            "UPDATE batches SET error = ?, submit_ended_at = ?, lease_expires_at = ? \
             WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
            [
                error.into(),
                now.into(),
                settle_until.into(),
                batch_id.into(),
                owner.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn batch_members(&self, batch_id: &str) -> StoreResult<Vec<String>> {
        self.read(
            "SELECT job_id FROM batch_jobs WHERE batch_id = ? ORDER BY job_id",
            [batch_id.into()],
        )
        .await
        .map(column)
    }

    async fn batch_owners(&self, batch_id: &str) -> StoreResult<Vec<String>> {
        self.read(
            "SELECT DISTINCT j.owner_id FROM batch_jobs bj JOIN jobs j ON j.id = bj.job_id \
             WHERE bj.batch_id = ? ORDER BY j.owner_id",
            [batch_id.into()],
        )
        .await
        .map(column)
    }

    async fn batch_queued_jobs(&self, batch_id: &str) -> StoreResult<Vec<QueuedJob>> {
        let sql = format!(
            "SELECT {QUEUED_COLUMNS} FROM jobs \
             WHERE local_batch_id = ? AND status = 'processing'{FLUSH_ORDER}"
        );
        self.read::<QueuedRow>(&sql, [batch_id.into()])
            .await?
            .into_iter()
            .map(QueuedJob::try_from)
            .collect()
    }

    async fn batches_to_reconcile(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.status = 'submitting' AND (b.lease_expires_at IS NULL OR b.lease_expires_at < ?) \
             ORDER BY b.created_at",
            [now.into()],
        )
        .await
    }

    async fn batches_to_sweep(&self, ended_before: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.swept_at IS NULL AND b.provider_batch_id IS NOT NULL AND b.duplicate_of IS NULL \
             AND b.submit_ended_at < ? ORDER BY b.submit_ended_at",
            [ended_before.into()],
        )
        .await
    }

    async fn mark_swept(&self, batch_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.write_one(
            "UPDATE batches SET swept_at = ? WHERE id = ?",
            [now.into(), batch_id.into()],
        )
        .await?;
        Ok(())
    }

    async fn clock_samples(
        &self,
        provider: app::api::ProviderName,
        limit: i64,
    ) -> StoreResult<Vec<ClockSample>> {
        let rows: Vec<ClockRow> = self
            .read(
                "SELECT submit_started_at, submit_ended_at, provider_created_at FROM batches \
                 WHERE clock_sample AND provider = ? AND submit_started_at IS NOT NULL \
                 AND submit_ended_at IS NOT NULL AND provider_created_at IS NOT NULL \
                 ORDER BY submit_ended_at DESC LIMIT ?",
                [provider.as_str().into(), limit.into()],
            )
            .await?;
        Ok(rows.into_iter().map(ClockSample::from).collect())
    }

    async fn record_duplicate(&self, d: &NewDuplicate) -> StoreResult<bool> {
        self.insert_duplicate(d, "").await
    }

    async fn record_stray(&self, d: &NewDuplicate) -> StoreResult<bool> {
        self.insert_duplicate(d, "AND src.status <> 'submitting'")
            .await
    }

    async fn batches_holding_job(&self, job_id: &str) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.id IN (SELECT batch_id FROM batch_jobs WHERE job_id = ?) \
             ORDER BY b.created_at DESC, b.id DESC",
            [job_id.into()],
        )
        .await
    }

    async fn is_foreign(&self, provider_batch_id: &str) -> StoreResult<bool> {
        let found: Option<(String,)> = self
            .read_one(
                "SELECT provider_batch_id FROM foreign_batches WHERE provider_batch_id = ?",
                [provider_batch_id.into()],
            )
            .await?;
        Ok(found.is_some())
    }

    async fn mark_foreign(
        &self,
        provider: app::api::ProviderName,
        provider_batch_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write_one(
            "INSERT INTO foreign_batches (provider_batch_id, provider, checked_at) VALUES (?, ?, ?) \
             ON CONFLICT (provider_batch_id) DO NOTHING",
            [provider_batch_id.into(), provider.as_str().into(), now.into()],
        )
        .await?;
        Ok(())
    }

    async fn forget_foreign(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.engine
            .execute(Query::new(
                "DELETE FROM foreign_batches WHERE checked_at < ?",
                [before.into()],
            ))
            .await
    }

    async fn pending_releases(&self, limit: i64) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "WHERE b.release_pending ORDER BY b.ended_at LIMIT ?",
            [limit.into()],
        )
        .await
    }

    async fn mark_released(&self, provider_batch_id: &str, note: Option<&str>) -> StoreResult<()> {
        self.write_one(
            "UPDATE batches SET release_pending = FALSE, error = COALESCE(?, error) WHERE provider_batch_id = ?",
            [note.into(), provider_batch_id.into()],
        )
        .await?;
        Ok(())
    }

    async fn batch_settled(&self, batch_id: &str) -> StoreResult<bool> {
        let counts: Option<(i64, i64)> = self
            .read_one(
                "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN results_collected \
                 OR status IN ('failed', 'lost') THEN 0 ELSE 1 END), 0) AS BIGINT) \
                 FROM batches WHERE id = ? OR duplicate_of = ?",
                [batch_id.into(), batch_id.into()],
            )
            .await?;
        Ok(matches!(counts, Some((rows, 0)) if rows > 0))
    }

    async fn note_batch(&self, batch_id: &str, note: &str) -> StoreResult<()> {
        self.write_one(
            "UPDATE batches SET error = ? WHERE id = ?",
            [note.into(), batch_id.into()],
        )
        .await?;
        Ok(())
    }

    async fn find_batch(&self, provider_batch_id: &str) -> StoreResult<Option<BatchRecord>> {
        Ok(self
            .batches_where("WHERE b.provider_batch_id = ?", [provider_batch_id.into()])
            .await?
            .into_iter()
            .next())
    }

    async fn local_batch(&self, batch_id: &str) -> StoreResult<Option<BatchRecord>> {
        Ok(self
            .batches_where("WHERE b.id = ?", [batch_id.into()])
            .await?
            .into_iter()
            .next())
    }

    async fn due_batches(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            &format!(
                "WHERE {OPEN} AND (b.next_poll_at IS NULL OR b.next_poll_at <= ?) \
                 ORDER BY b.next_poll_at"
            ),
            [now.into()],
        )
        .await
    }

    async fn poll_soon(&self, provider_batch_id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        self.write_one(
            &format!(
                "UPDATE batches SET next_poll_at = ? WHERE provider_batch_id = ? AND id IN \
                 (SELECT b.id FROM batches b WHERE {OPEN})"
            ),
            [at.into(), provider_batch_id.into()],
        )
        .await
    }

    async fn batch_outcomes(
        &self,
        provider_batch_ids: &[String],
    ) -> StoreResult<Vec<(String, app::api::JobStatus, i64)>> {
        if provider_batch_ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; provider_batch_ids.len()].join(", ");
        let rows: Vec<(String, String, i64)> = self
            .read(
                &format!(
                    "SELECT b.provider_batch_id, j.status, CAST(COUNT(*) AS BIGINT) \
                     FROM batches b JOIN jobs j ON j.local_batch_id = b.id \
                     WHERE b.provider_batch_id IN ({marks}) GROUP BY b.provider_batch_id, j.status"
                ),
                provider_batch_ids.iter().map(|id| id.as_str().into()),
            )
            .await?;
        rows.into_iter()
            .map(|(batch, status, jobs)| Ok((batch, parse_status(&status)?, jobs)))
            .collect()
    }

    async fn count_open_batches(&self) -> StoreResult<i64> {
        let rows: Vec<(i64,)> = self
            .read(
                &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM batches b WHERE {OPEN}"),
                [],
            )
            .await?;
        Ok(first(rows).unwrap_or(0))
    }

    async fn list_batches(&self, limit: i64) -> StoreResult<Vec<BatchRecord>> {
        self.batches_where(
            "ORDER BY b.created_at DESC, b.id DESC LIMIT ?",
            [limit.into()],
        )
        .await
    }

    async fn update_batch_progress(
        &self,
        batch_id: &str,
        status: BatchStatus,
        next_poll_at: Option<DateTime<Utc>>,
        poll_failures: i64,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        self.write_one(
            "UPDATE batches SET status = ?, next_poll_at = ?, poll_failures = ?, error = COALESCE(?, error) \
             WHERE id = ? AND NOT results_collected",
            [
                status.as_str().into(),
                next_poll_at.into(),
                poll_failures.into(),
                error.into(),
                batch_id.into(),
            ],
        )
        .await
    }

    async fn recent_batch_durations(&self, limit: i64) -> StoreResult<Vec<f64>> {
        let sql = format!(
            "SELECT CAST({} / 1000000.0 AS DOUBLE PRECISION) FROM batches \
             WHERE status = 'ended' AND duplicate_of IS NULL AND submitted_at IS NOT NULL AND ended_at IS NOT NULL \
             ORDER BY ended_at DESC LIMIT ?",
            E::DIALECT.micros_between("submitted_at", "ended_at")
        );
        self.read(&sql, [limit.into()]).await.map(column)
    }
}
