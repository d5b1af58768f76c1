//! The poll's side of the batch tables. Results are applied a chunk at a time with one
//! statement per kind of outcome, each guarded by the state its updates were decided on
//! (`status = 'processing' AND attempts = ?`, in the batch's own jobs): a late or repeated result
//! changes nothing. Charges are recorded once by their key.

use std::collections::{HashMap, HashSet};

use app::api::JobStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::batches::requeue_processing;
use super::rows::{
    CountedRow, DuplicatedRow, JobStateRow, column, counted_of_jobs, first, local_batch_named,
};
use super::{COUNTED, SqlStore, apply_totals, insert_events, tx_execute};
use crate::events::Happened;
use crate::store::engine::{Arg, Engine, Kind, Query, Rows};
use crate::store::*;

/// What a charge adds to a job and its totals.
fn amounts(spend: &Spend) -> Amounts {
    Amounts {
        jobs: 0,
        bill: spend.bill,
        completion_micros: 0,
    }
}

/// The job as it was before a spend was added to it.
fn without(job: &Counted, spend: Option<&Spend>) -> Counted {
    let mut before = job.clone();
    if let Some(s) = spend {
        before.bill.add(&s.bill, -1);
    }
    before.completed_at = None;
    before
}

/// A spend's columns beside a bill's (`v.<bill column>` in the statements).
const SPEND_EXTRA: [(&str, Kind); 2] = [
    ("cache_write_1h_tokens", Kind::Int),
    ("price_version", Kind::Text),
];

/// A spend's values in the order of `with_spend`'s columns (zero for none).
fn spend_values(spend: Option<&Spend>) -> Vec<Arg<'_>> {
    let bill = spend.map(|s| s.bill).unwrap_or_default();
    let mut values: Vec<Arg> = bill.values().map(Arg::from).to_vec();
    values.push(spend.map_or(0, |s| s.cache_write_1h_tokens).into());
    values.push(spend.map(|s| s.price_version.as_str()).into());
    values
}

/// `columns` then a spend's.
fn with_spend(columns: &[(&'static str, Kind)]) -> Rows<'static> {
    let mut all = columns.to_vec();
    all.extend(Bill::COLUMNS.map(|c| (c, Kind::Int)));
    all.extend(SPEND_EXTRA);
    Rows::new(&all)
}

/// Adds a spend's bill (`v`) to a job's.
fn add_spend() -> String {
    Bill::COLUMNS
        .iter()
        .map(|c| format!("{c} = jobs.{c} + v.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A charge's columns, and the values they take from a spend's row `v`.
const CHARGE_COLUMNS: &str = "input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, \
    cache_write_1h_tokens, cost_nanos, uncached_cost_nanos, standard_cost_nanos, price_version";
const CHARGE_VALUES: &str = "v.input_tokens, v.output_tokens, v.cache_read_tokens, \
    v.cache_write_tokens - v.cache_write_1h_tokens, v.cache_write_1h_tokens, v.cost_nanos, \
    v.uncached_cost_nanos, v.standard_cost_nanos, v.price_version";

async fn insert_charges<E: Engine>(
    tx: &mut E::Tx,
    provider_batch_id: &str,
    kind: &str,
    charges: &[(&str, &Spend)],
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if charges.is_empty() {
        return Ok(());
    }
    let mut rows = with_spend(&[("job_id", Kind::Text)]);
    for (job_id, spend) in charges {
        let mut row = vec![(*job_id).into()];
        row.extend(spend_values(Some(spend)));
        rows.push(row);
    }
    let mut query = Query::default();
    query
        .push(&format!("WITH v {} AS (", rows.names()))
        .rows(rows)
        .push(&format!(
            ") INSERT INTO charges (job_id, provider_batch_id, kind, {CHARGE_COLUMNS}, at) SELECT v.job_id, "
        ))
        .bind(provider_batch_id)
        .push(", ")
        .bind(kind)
        .push(&format!(", {CHARGE_VALUES}, "))
        .bind(at)
        .push(" FROM v");
    E::tx_execute(tx, query).await?;
    Ok(())
}

/// One guarded multi-row update: the rows (`id` first), what changes (with its binds), and
/// the state they must still be in. Returns the jobs it changed, as they are now.
async fn guarded_update<'a, E: Engine>(
    tx: &mut E::Tx,
    rows: Rows<'a>,
    set: Query<'a>,
    guard: Query<'a>,
    batch: &'a str,
) -> StoreResult<Vec<CountedRow>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = Query::default();
    query
        .push(&format!("WITH v {} AS (", rows.names()))
        .rows(rows)
        .push(") UPDATE jobs SET ")
        .append(set)
        .push(" FROM v WHERE jobs.id = v.id AND jobs.local_batch_id = ")
        .append(local_batch_named(batch))
        .push(" AND ")
        .append(guard)
        .push(&format!(" RETURNING {}", counted_of_jobs()));
    E::tx_read(tx, query).await
}

/// The jobs a guarded update changed: their moves in the totals, their charges.
struct Applied<'a> {
    deltas: &'a mut Deltas,
    changed: &'a mut HashSet<String>,
}

impl Applied<'_> {
    /// Moves each changed job from processing to `to`, the spend it was decided with added.
    fn moved<'s>(
        &mut self,
        rows: &'s [CountedRow],
        spends: &HashMap<&str, &'s Spend>,
        to: JobStatus,
    ) -> StoreResult<Vec<(&'s str, &'s Spend)>> {
        let mut charges = Vec::with_capacity(rows.len());
        for row in rows {
            let after = row.counted()?;
            let spend = spends.get(row.id.as_str()).copied();
            self.deltas
                .moved(&without(&after, spend), JobStatus::Processing, &after, to);
            if let Some(spend) = spend {
                charges.push((row.id.as_str(), spend));
            }
            self.changed.insert(row.id.clone());
        }
        Ok(charges)
    }
}

#[async_trait]
impl<E: Engine> ResultStore for SqlStore<E> {
    fn result_writers(&self) -> usize {
        E::DIALECT.result_writers()
    }

    async fn job_states(
        &self,
        provider_batch_id: &str,
        job_ids: &[String],
    ) -> StoreResult<Vec<JobState>> {
        let mut states = Vec::with_capacity(job_ids.len());
        for chunk in job_ids.chunks(E::DIALECT.items_per_statement().min(5_000)) {
            // Find each job by its id, not by scanning the whole batch's index.
            let mut query = Query::new(
                "SELECT j.id, j.job_type, j.status, j.attempts, j.cancel_requested, j.model, \
                 EXISTS (SELECT 1 FROM charges c WHERE c.job_id = j.id AND c.provider_batch_id = ?) AS charged \
                 FROM jobs j WHERE ",
                [provider_batch_id.into()],
            );
            query
                .push(&format!("{}j.local_batch_id = ", E::DIALECT.not_by_index()))
                .append(local_batch_named(provider_batch_id))
                .push(" AND j.id IN ")
                .list(chunk.iter());
            for row in self.engine.read::<JobStateRow>(query).await? {
                states.push(JobState::try_from(row)?);
            }
        }
        Ok(states)
    }

    async fn apply_updates(
        &self,
        provider_batch_id: &str,
        updates: &[JobUpdate],
        now: DateTime<Utc>,
    ) -> StoreResult<Updated> {
        let mut tx = self.begin().await?;
        let mut deltas = Deltas::default();
        let mut changed: HashSet<String> = HashSet::with_capacity(updates.len());
        let processing = || {
            Query::new(
                "jobs.status = 'processing' AND jobs.attempts = v.attempts",
                [],
            )
        };
        let key = [("id", Kind::Text), ("attempts", Kind::Int)];

        // Completed: the spend is added in the same statement; the guard proves it is new.
        let mut rows = with_spend(&[key[0], key[1], ("result", Kind::Json)]);
        let mut spends = HashMap::new();
        for u in updates {
            if let Transition::Complete { result, spend } = &u.transition {
                let mut row = vec![
                    u.job_id.as_str().into(),
                    u.expected_attempts.into(),
                    Arg::json(result.get()),
                ];
                row.extend(spend_values(Some(spend)));
                rows.push(row);
                spends.insert(u.job_id.as_str(), spend);
            }
        }
        let set = Query::new(
            format!(
                "status = 'completed', result = v.result, completed_at = ?, updated_at = ?, \
                 error_message = NULL, {}, price_version = v.price_version",
                add_spend()
            ),
            [now.into(), now.into()],
        );
        let done = guarded_update::<E>(&mut tx, rows, set, processing(), provider_batch_id).await?;
        let mut applied = Applied {
            deltas: &mut deltas,
            changed: &mut changed,
        };
        let charges = applied.moved(&done, &spends, JobStatus::Completed)?;
        insert_charges::<E>(&mut tx, provider_batch_id, "result", &charges, now).await?;

        // Failed, with what was billed when a success could not be read.
        let mut rows = with_spend(&[
            key[0],
            key[1],
            ("error", Kind::Text),
            ("new_attempts", Kind::Int),
        ]);
        let mut spends = HashMap::new();
        for u in updates {
            if let Transition::Fail {
                error,
                attempts,
                spend,
            } = &u.transition
            {
                let mut row = vec![
                    u.job_id.as_str().into(),
                    u.expected_attempts.into(),
                    error.as_str().into(),
                    (*attempts).into(),
                ];
                row.extend(spend_values(spend.as_ref()));
                rows.push(row);
                if let Some(spend) = spend {
                    spends.insert(u.job_id.as_str(), spend);
                }
            }
        }
        let set = Query::new(
            format!(
                "status = 'failed', error_message = v.error, attempts = v.new_attempts, updated_at = ?, \
                 {}, price_version = COALESCE(v.price_version, jobs.price_version)",
                add_spend()
            ),
            [now.into()],
        );
        let failed =
            guarded_update::<E>(&mut tx, rows, set, processing(), provider_batch_id).await?;
        let mut applied = Applied {
            deltas: &mut deltas,
            changed: &mut changed,
        };
        let charges = applied.moved(&failed, &spends, JobStatus::Failed)?;
        insert_charges::<E>(&mut tx, provider_batch_id, "result", &charges, now).await?;

        // Back to pending, out of the batch.
        let mut rows = Rows::new(&[
            key[0],
            key[1],
            ("reason", Kind::Text),
            ("new_attempts", Kind::Int),
        ]);
        for u in updates {
            if let Transition::Requeue { reason, attempts } = &u.transition {
                rows.push(vec![
                    u.job_id.as_str().into(),
                    u.expected_attempts.into(),
                    reason.as_str().into(),
                    (*attempts).into(),
                ]);
            }
        }
        let set = Query::new(
            "status = 'pending', batch_id = NULL, local_batch_id = NULL, attempts = v.new_attempts, \
             error_message = v.reason, updated_at = ?",
            [now.into()],
        );
        let requeued =
            guarded_update::<E>(&mut tx, rows, set, processing(), provider_batch_id).await?;
        for row in &requeued {
            let job = row.counted()?;
            deltas.moved(&job, JobStatus::Processing, &job, JobStatus::Pending);
            changed.insert(row.id.clone());
        }

        // Cancelled in flight: the result is discarded, what it was billed counts, once. A
        // job cancelled after its result was decided on `processing` is one too: the updates
        // above skipped it, but the provider billed its result all the same.
        let mut rows = with_spend(&[key[0], key[1]]);
        let mut spends = HashMap::new();
        let mut late = HashSet::new();
        for u in updates {
            let spend = match &u.transition {
                Transition::RecordSpend { spend } => spend,
                other => match other.spend() {
                    Some(spend) if !changed.contains(&u.job_id) => {
                        late.insert(u.job_id.as_str());
                        spend
                    }
                    _ => continue,
                },
            };
            let mut row = vec![u.job_id.as_str().into(), u.expected_attempts.into()];
            row.extend(spend_values(Some(spend)));
            rows.push(row);
            spends.insert(u.job_id.as_str(), spend);
        }
        let set = Query::new(
            format!("{}, price_version = v.price_version", add_spend()),
            [],
        );
        // Not charged for this batch's result already: the guard runs inside the batch's jobs.
        let mut not_charged = Query::new(
            "jobs.status = 'cancelled' AND jobs.cancel_requested AND NOT EXISTS \
             (SELECT 1 FROM charges c WHERE c.job_id = jobs.id AND c.provider_batch_id = ",
            [],
        );
        not_charged.bind(provider_batch_id).push(")");
        let discarded =
            guarded_update::<E>(&mut tx, rows, set, not_charged, provider_batch_id).await?;
        let mut charges = Vec::with_capacity(discarded.len());
        for row in &discarded {
            if let Some(spend) = spends.get(row.id.as_str()).copied() {
                deltas.charged(&row.counted()?, JobStatus::Cancelled, &amounts(spend));
                charges.push((row.id.as_str(), spend));
            }
            changed.insert(row.id.clone());
        }
        insert_charges::<E>(&mut tx, provider_batch_id, "discarded", &charges, now).await?;

        let instead = Happened::ResultDiscarded {
            batch: provider_batch_id.to_string(),
        };
        let mut updated = Updated::default();
        let mut events = Vec::with_capacity(changed.len());
        for u in updates.iter().filter(|u| changed.contains(&u.job_id)) {
            if late.contains(u.job_id.as_str()) {
                updated.discarded.push(u.job_id.clone());
                events.push((u.job_id.as_str(), &instead, now));
            } else {
                updated.changed.push(u.job_id.clone());
                events.push((u.job_id.as_str(), &u.event, now));
            }
        }
        insert_events::<E>(&mut tx, &events).await?;
        apply_totals::<E>(&mut tx, &deltas).await?;
        E::commit(tx).await?;
        Ok(updated)
    }

    async fn record_duplicate_charges(
        &self,
        provider_batch_id: &str,
        charges: &[DuplicateCharge],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin().await?;
        let mut deltas = Deltas::default();
        let happened = Happened::BilledAgain {
            batch: provider_batch_id.to_string(),
        };
        // Recorded once, for jobs of ours; then added to those jobs' figures.
        let mut rows = with_spend(&[("id", Kind::Text)]);
        for c in charges {
            let mut row = vec![c.job_id.as_str().into()];
            row.extend(spend_values(Some(&c.spend)));
            rows.push(row);
        }
        let mut insert = Query::default();
        insert
            .push(&format!("WITH v {} AS (", rows.names()))
            .rows(rows)
            .push(&format!(
                ") INSERT INTO charges (job_id, provider_batch_id, kind, {CHARGE_COLUMNS}, at) SELECT v.id, "
            ))
            .bind(provider_batch_id)
            .push(&format!(", 'duplicate', {CHARGE_VALUES}, "))
            .bind(now)
            .push(" FROM v WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.id = v.id) ON CONFLICT DO NOTHING RETURNING job_id");
        let new: HashSet<String> = if charges.is_empty() {
            HashSet::new()
        } else {
            column(E::tx_read(&mut tx, insert).await?)
                .into_iter()
                .collect()
        };
        let mut charged = Vec::with_capacity(new.len());
        for c in charges.iter().filter(|c| new.contains(&c.job_id)) {
            let bill = &c.spend.bill;
            let sets: Vec<String> = Bill::COLUMNS
                .iter()
                .map(|c| format!("{c} = {c} + ?"))
                .collect();
            let mut args: Vec<Arg> = bill.values().map(Arg::from).to_vec();
            args.extend([
                bill.tokens().into(),
                bill.cost_nanos.into(),
                c.job_id.as_str().into(),
            ]);
            let update = Query::new(
                format!(
                    "UPDATE jobs SET {}, duplicate_tokens = duplicate_tokens + ?, \
                     duplicate_cost_nanos = duplicate_cost_nanos + ? WHERE id = ? RETURNING status, {COUNTED}",
                    sets.join(", ")
                ),
                args,
            );
            let rows: Vec<DuplicatedRow> = E::tx_read(&mut tx, update).await?;
            for row in rows {
                deltas.charged(
                    &row.job.counted()?,
                    parse_status(&row.status)?,
                    &amounts(&c.spend),
                );
            }
            charged.push(c.job_id.clone());
        }
        let events: Vec<_> = charged
            .iter()
            .map(|id| (id.as_str(), &happened, now))
            .collect();
        insert_events::<E>(&mut tx, &events).await?;
        apply_totals::<E>(&mut tx, &deltas).await?;
        E::commit(tx).await?;
        Ok(charged)
    }

    async fn record_short_read(
        &self,
        batch_id: &str,
        next_poll_at: DateTime<Utc>,
        note: &str,
    ) -> StoreResult<Option<i64>> {
        let rows = self
            .engine
            .write::<(i64,)>(Query::new(
                "UPDATE batches SET short_reads = short_reads + 1, next_poll_at = ?, error = ?, poll_failures = 0 \
                 WHERE id = ? AND NOT results_collected RETURNING short_reads",
                [next_poll_at.into(), note.into(), batch_id.into()],
            ))
            .await?;
        Ok(first(rows))
    }

    async fn finish_batch(
        &self,
        batch_id: &str,
        status: BatchStatus,
        request_counts: &Value,
        ended_at: DateTime<Utc>,
        unaccounted_results: i64,
        note: Option<&str>,
    ) -> StoreResult<bool> {
        self.write_one(
            "UPDATE batches SET status = ?, results_collected = TRUE, request_counts = ?, ended_at = ?, \
             next_poll_at = NULL, unaccounted_results = ?, error = COALESCE(?, error), poll_failures = 0, \
             lease_owner = NULL, lease_expires_at = NULL, release_pending = ? WHERE id = ? AND NOT results_collected",
            [
                status.as_str().into(),
                Arg::json(request_counts.to_string()),
                ended_at.into(),
                unaccounted_results.into(),
                note.into(),
                // Only an ended batch's copy is let go: a lost one's file may be read again by hand.
                (status == BatchStatus::Ended).into(),
                batch_id.into(),
            ],
        )
        .await
    }

    async fn lose_batch(
        &self,
        batch_id: &str,
        note: &str,
        happened: &Happened,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let mut tx = self.begin().await?;
        let lost = tx_execute::<E>(
            &mut tx,
            "UPDATE batches SET status = 'lost', next_poll_at = NULL, error = ? \
             WHERE id = ? AND NOT results_collected",
            [note.into(), batch_id.into()],
        )
        .await?;
        if lost == 0 {
            return Ok(0);
        }
        let returned = requeue_processing::<E>(&mut tx, batch_id, happened, now).await?;
        E::commit(tx).await?;
        Ok(returned)
    }

    async fn batch_remaining(&self, provider_batch_id: &str) -> StoreResult<i64> {
        let mut query = Query::new(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM jobs WHERE status = 'processing' AND local_batch_id = ",
            [],
        );
        query.append(local_batch_named(provider_batch_id));
        Ok(first(self.engine.read(query).await?).unwrap_or(0))
    }

    async fn charged_results(&self, provider_batch_id: &str) -> StoreResult<i64> {
        let rows = self
            .read(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM charges WHERE provider_batch_id = ?",
                [provider_batch_id.into()],
            )
            .await?;
        Ok(first(rows).unwrap_or(0))
    }
}
