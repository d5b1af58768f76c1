//! The poll's side of the batch tables on SQLite. Results are applied a chunk at a time with
//! one statement per kind of outcome, each guarded by the state its updates were decided on
//! (`status = 'processing' AND batch_id = ? AND attempts = ?`): a late or repeated result
//! changes nothing. Charges are recorded once by their key.

use std::collections::{HashMap, HashSet};

use app::api::JobStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{FromRow, QueryBuilder, Sqlite, Transaction};

use super::{COUNTED, CountedRow, ROWS_PER_STATEMENT, SqliteStore, apply_totals, insert_events};
use crate::events::Happened;
use crate::store::*;

/// Rows per multi-row update: each binds up to ten values.
const UPDATES_PER_STATEMENT: usize = 200;

/// `COUNTED` as columns of `jobs`, for a `RETURNING` after a join.
fn returning() -> String {
    COUNTED
        .split(", ")
        .map(|c| format!("jobs.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a charge adds to a job and its totals.
fn amounts(spend: &Spend) -> Amounts {
    Amounts {
        jobs: 0,
        input_tokens: spend.input_tokens,
        output_tokens: spend.output_tokens,
        cost_nanos: spend.cost_nanos,
        standard_cost_nanos: spend.standard_cost_nanos,
        completion_micros: 0,
    }
}

/// The job as it was before a spend was added to it.
fn without(job: &Counted, spend: Option<&Spend>) -> Counted {
    let mut before = job.clone();
    if let Some(s) = spend {
        before.input_tokens -= s.input_tokens;
        before.output_tokens -= s.output_tokens;
        before.cost_nanos -= s.cost_nanos;
        before.standard_cost_nanos -= s.standard_cost_nanos;
    }
    before.completed_at = None;
    before
}

async fn insert_charges(
    tx: &mut Transaction<'_, Sqlite>,
    provider_batch_id: &str,
    kind: &str,
    charges: &[(&str, &Spend)],
    at: i64,
) -> StoreResult<()> {
    for chunk in charges.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO charges (job_id, provider_batch_id, kind, input_tokens, output_tokens, cost_nanos, \
             standard_cost_nanos, price_version, at) ",
        );
        query.push_values(chunk, |mut b, (job_id, spend)| {
            b.push_bind(job_id.to_string())
                .push_bind(provider_batch_id.to_string())
                .push_bind(kind)
                .push_bind(spend.input_tokens)
                .push_bind(spend.output_tokens)
                .push_bind(spend.cost_nanos)
                .push_bind(spend.standard_cost_nanos)
                .push_bind(spend.price_version.clone())
                .push_bind(at);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Puts a local batch's jobs that are still `processing` back to pending, with an event each.
pub(super) async fn requeue_processing(
    tx: &mut Transaction<'_, Sqlite>,
    batch_id: &str,
    happened: &Happened,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let sql = format!(
        "UPDATE jobs SET status = 'pending', batch_id = NULL, local_batch_id = NULL, updated_at = ? \
         WHERE local_batch_id = ? AND status = 'processing' RETURNING {COUNTED}"
    );
    let rows: Vec<CountedRow> = sqlx::query_as(&sql)
        .bind(to_micros(now))
        .bind(batch_id)
        .fetch_all(&mut **tx)
        .await?;
    let mut deltas = Deltas::default();
    for row in &rows {
        let job = row.counted()?;
        deltas.moved(&job, JobStatus::Processing, &job, JobStatus::Pending);
    }
    let events: Vec<_> = rows
        .iter()
        .map(|r| (r.id.as_str(), happened, now))
        .collect();
    insert_events(tx, &events).await?;
    apply_totals(tx, &deltas).await?;
    Ok(rows.len() as i64)
}

/// The updates of a chunk, by kind of outcome.
#[derive(Default)]
struct ByKind<'a> {
    completes: Vec<(&'a JobUpdate, &'a Value, &'a Spend)>,
    fails: Vec<(&'a JobUpdate, &'a str, i64, Option<&'a Spend>)>,
    requeues: Vec<(&'a JobUpdate, &'a str, i64)>,
    discards: Vec<(&'a JobUpdate, &'a Spend)>,
}

impl<'a> ByKind<'a> {
    fn of(updates: &'a [JobUpdate]) -> Self {
        let mut by = ByKind::default();
        for u in updates {
            match &u.transition {
                Transition::Complete { result, spend } => by.completes.push((u, result, spend)),
                Transition::Fail {
                    error,
                    attempts,
                    spend,
                } => by.fails.push((u, error, *attempts, spend.as_ref())),
                Transition::Requeue { reason, attempts } => {
                    by.requeues.push((u, reason, *attempts))
                }
                Transition::RecordSpend { spend } => by.discards.push((u, spend)),
            }
        }
        by
    }
}

/// One guarded multi-row update: `values` binds each row (after its `id` and expected
/// `attempts`), `set` says what changes. Returns the jobs it changed, as they are now.
async fn guarded_update<T>(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[T],
    columns: &str,
    set: &str,
    guard: &str,
    batch: &str,
    values: impl Fn(&mut sqlx::query_builder::Separated<'_, '_, Sqlite, &'static str>, &T),
) -> StoreResult<Vec<CountedRow>> {
    let mut changed = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(UPDATES_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new(format!("WITH v ({columns}) AS ("));
        query.push_values(chunk, |mut b, row| values(&mut b, row));
        query
            .push(format!(
                ") UPDATE jobs SET {set} FROM v WHERE jobs.id = v.id AND jobs.batch_id = "
            ))
            .push_bind(batch.to_string())
            .push(format!(" AND {guard} RETURNING {}", returning()));
        changed.extend(
            query
                .build_query_as::<CountedRow>()
                .fetch_all(&mut **tx)
                .await?,
        );
    }
    Ok(changed)
}

#[async_trait]
impl ResultStore for SqliteStore {
    async fn job_states(
        &self,
        provider_batch_id: &str,
        job_ids: &[String],
    ) -> StoreResult<Vec<JobState>> {
        let mut states = Vec::with_capacity(job_ids.len());
        // `+j.batch_id`: find each job by its id, not by scanning the whole batch's index.
        for chunk in job_ids.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT j.id, j.job_type, j.status, j.attempts, j.cancel_requested, j.model, \
                 EXISTS (SELECT 1 FROM charges c WHERE c.job_id = j.id AND c.provider_batch_id = j.batch_id) AS charged \
                 FROM jobs j WHERE +j.batch_id = ",
            );
            query.push_bind(provider_batch_id).push(" AND j.id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            list.push_unseparated(")");
            let rows: Vec<JobStateRow> = query.build_query_as().fetch_all(&self.pool).await?;
            for row in rows {
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
    ) -> StoreResult<Vec<String>> {
        let at = to_micros(now);
        let by = ByKind::of(updates);
        let mut tx = self.begin_write().await?;
        let mut deltas = Deltas::default();
        let mut changed: HashSet<String> = HashSet::with_capacity(updates.len());
        let processing = "jobs.status = 'processing' AND jobs.attempts = v.attempts";

        // Completed: the spend is added in the same statement; the guard proves it is new.
        let spends: HashMap<&str, &Spend> = by
            .completes
            .iter()
            .map(|(u, _, s)| (u.job_id.as_str(), *s))
            .collect();
        let rows = guarded_update(
            &mut tx,
            &by.completes,
            "id, attempts, result, input_tokens, output_tokens, cost_nanos, standard_cost_nanos, price_version",
            &format!(
                "status = 'completed', result = v.result, completed_at = {at}, updated_at = {at}, \
                 error_message = NULL, input_tokens = jobs.input_tokens + v.input_tokens, \
                 output_tokens = jobs.output_tokens + v.output_tokens, cost_nanos = jobs.cost_nanos + v.cost_nanos, \
                 standard_cost_nanos = jobs.standard_cost_nanos + v.standard_cost_nanos, price_version = v.price_version"
            ),
            processing,
            provider_batch_id,
            |b, (u, result, s)| {
                b.push_bind(u.job_id.clone())
                    .push_bind(u.expected_attempts)
                    .push_bind(result.to_string())
                    .push_bind(s.input_tokens)
                    .push_bind(s.output_tokens)
                    .push_bind(s.cost_nanos)
                    .push_bind(s.standard_cost_nanos)
                    .push_bind(s.price_version.clone());
            },
        )
        .await?;
        let mut charges = Vec::with_capacity(rows.len());
        for row in &rows {
            let after = row.counted()?;
            let spend = spends.get(row.id.as_str()).copied();
            deltas.moved(
                &without(&after, spend),
                JobStatus::Processing,
                &after,
                JobStatus::Completed,
            );
            if let Some(spend) = spend {
                charges.push((row.id.as_str(), spend));
            }
            changed.insert(row.id.clone());
        }
        insert_charges(&mut tx, provider_batch_id, "result", &charges, at).await?;

        // Failed, with what was billed when a success could not be read.
        let spends: HashMap<&str, &Spend> = by
            .fails
            .iter()
            .filter_map(|(u, _, _, s)| s.map(|s| (u.job_id.as_str(), s)))
            .collect();
        let rows = guarded_update(
            &mut tx,
            &by.fails,
            "id, attempts, error, new_attempts, input_tokens, output_tokens, cost_nanos, standard_cost_nanos, price_version",
            &format!(
                "status = 'failed', error_message = v.error, attempts = v.new_attempts, updated_at = {at}, \
                 input_tokens = jobs.input_tokens + v.input_tokens, output_tokens = jobs.output_tokens + v.output_tokens, \
                 cost_nanos = jobs.cost_nanos + v.cost_nanos, standard_cost_nanos = jobs.standard_cost_nanos + v.standard_cost_nanos, \
                 price_version = COALESCE(v.price_version, jobs.price_version)"
            ),
            processing,
            provider_batch_id,
            |b, (u, error, attempts, spend)| {
                let zero = Spend {
                    input_tokens: 0,
                    output_tokens: 0,
                    cost_nanos: 0,
                    standard_cost_nanos: 0,
                    price_version: String::new(),
                };
                let s = spend.unwrap_or(&zero);
                b.push_bind(u.job_id.clone())
                    .push_bind(u.expected_attempts)
                    .push_bind(error.to_string())
                    .push_bind(*attempts)
                    .push_bind(s.input_tokens)
                    .push_bind(s.output_tokens)
                    .push_bind(s.cost_nanos)
                    .push_bind(s.standard_cost_nanos)
                    .push_bind(spend.map(|s| s.price_version.clone()));
            },
        )
        .await?;
        let mut charges = Vec::with_capacity(rows.len());
        for row in &rows {
            let after = row.counted()?;
            let spend = spends.get(row.id.as_str()).copied();
            deltas.moved(
                &without(&after, spend),
                JobStatus::Processing,
                &after,
                JobStatus::Failed,
            );
            if let Some(spend) = spend {
                charges.push((row.id.as_str(), spend));
            }
            changed.insert(row.id.clone());
        }
        insert_charges(&mut tx, provider_batch_id, "result", &charges, at).await?;

        // Back to pending, out of the batch.
        let rows = guarded_update(
            &mut tx,
            &by.requeues,
            "id, attempts, reason, new_attempts",
            &format!(
                "status = 'pending', batch_id = NULL, local_batch_id = NULL, attempts = v.new_attempts, \
                 error_message = v.reason, updated_at = {at}"
            ),
            processing,
            provider_batch_id,
            |b, (u, reason, attempts)| {
                b.push_bind(u.job_id.clone())
                    .push_bind(u.expected_attempts)
                    .push_bind(reason.to_string())
                    .push_bind(*attempts);
            },
        )
        .await?;
        for row in &rows {
            let job = row.counted()?;
            deltas.moved(&job, JobStatus::Processing, &job, JobStatus::Pending);
            changed.insert(row.id.clone());
        }

        // Cancelled in flight: the result is discarded, what it was billed counts, once.
        let spends: HashMap<&str, &Spend> = by
            .discards
            .iter()
            .map(|(u, s)| (u.job_id.as_str(), *s))
            .collect();
        let rows = guarded_update(
            &mut tx,
            &by.discards,
            "id, attempts, input_tokens, output_tokens, cost_nanos, standard_cost_nanos, price_version",
            "input_tokens = jobs.input_tokens + v.input_tokens, output_tokens = jobs.output_tokens + v.output_tokens, \
             cost_nanos = jobs.cost_nanos + v.cost_nanos, standard_cost_nanos = jobs.standard_cost_nanos + v.standard_cost_nanos, \
             price_version = v.price_version",
            "jobs.status = 'cancelled' AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.job_id = jobs.id \
             AND c.provider_batch_id = jobs.batch_id)",
            provider_batch_id,
            |b, (u, s)| {
                b.push_bind(u.job_id.clone())
                    .push_bind(u.expected_attempts)
                    .push_bind(s.input_tokens)
                    .push_bind(s.output_tokens)
                    .push_bind(s.cost_nanos)
                    .push_bind(s.standard_cost_nanos)
                    .push_bind(s.price_version.clone());
            },
        )
        .await?;
        let mut charges = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(spend) = spends.get(row.id.as_str()).copied() {
                deltas.charged(&row.counted()?, JobStatus::Cancelled, &amounts(spend));
                charges.push((row.id.as_str(), spend));
            }
            changed.insert(row.id.clone());
        }
        insert_charges(&mut tx, provider_batch_id, "discarded", &charges, at).await?;

        let changed: Vec<&JobUpdate> = updates
            .iter()
            .filter(|u| changed.contains(&u.job_id))
            .collect();
        let events: Vec<_> = changed
            .iter()
            .map(|u| (u.job_id.as_str(), &u.event, now))
            .collect();
        insert_events(&mut tx, &events).await?;
        apply_totals(&mut tx, &deltas).await?;
        tx.commit().await?;
        Ok(changed.into_iter().map(|u| u.job_id.clone()).collect())
    }

    async fn record_duplicate_charges(
        &self,
        provider_batch_id: &str,
        charges: &[DuplicateCharge],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let at = to_micros(now);
        let mut tx = self.begin_write().await?;
        let mut deltas = Deltas::default();
        let mut charged = Vec::with_capacity(charges.len());
        let happened = Happened::BilledAgain {
            batch: provider_batch_id.to_string(),
        };
        for chunk in charges.chunks(UPDATES_PER_STATEMENT) {
            // Recorded once, for jobs of ours; then added to those jobs' figures.
            let mut query = QueryBuilder::<Sqlite>::new(
                "WITH v (id, input_tokens, output_tokens, cost_nanos, standard_cost_nanos, price_version) AS (",
            );
            query.push_values(chunk, |mut b, c| {
                b.push_bind(c.job_id.clone())
                    .push_bind(c.spend.input_tokens)
                    .push_bind(c.spend.output_tokens)
                    .push_bind(c.spend.cost_nanos)
                    .push_bind(c.spend.standard_cost_nanos)
                    .push_bind(c.spend.price_version.clone());
            });
            query
                .push(
                    ") INSERT INTO charges (job_id, provider_batch_id, kind, input_tokens, output_tokens, cost_nanos, \
                     standard_cost_nanos, price_version, at) SELECT v.id, ",
                )
                .push_bind(provider_batch_id.to_string())
                .push(", 'duplicate', v.input_tokens, v.output_tokens, v.cost_nanos, v.standard_cost_nanos, v.price_version, ")
                .push_bind(at)
                .push(" FROM v WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.id = v.id) ON CONFLICT DO NOTHING RETURNING job_id");
            let new: HashSet<String> = query
                .build_query_scalar()
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            for c in chunk.iter().filter(|c| new.contains(&c.job_id)) {
                let sql = format!(
                    "UPDATE jobs SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, \
                     cost_nanos = cost_nanos + ?, standard_cost_nanos = standard_cost_nanos + ?, \
                     duplicate_tokens = duplicate_tokens + ?, duplicate_cost_nanos = duplicate_cost_nanos + ? \
                     WHERE id = ? RETURNING status, {COUNTED}"
                );
                let row: DuplicatedRow = sqlx::query_as(&sql)
                    .bind(c.spend.input_tokens)
                    .bind(c.spend.output_tokens)
                    .bind(c.spend.cost_nanos)
                    .bind(c.spend.standard_cost_nanos)
                    .bind(c.spend.input_tokens + c.spend.output_tokens)
                    .bind(c.spend.cost_nanos)
                    .bind(&c.job_id)
                    .fetch_one(&mut *tx)
                    .await?;
                deltas.charged(
                    &row.job.counted()?,
                    parse_status(&row.status)?,
                    &amounts(&c.spend),
                );
                charged.push(c.job_id.clone());
            }
        }
        let events: Vec<_> = charged
            .iter()
            .map(|id| (id.as_str(), &happened, now))
            .collect();
        insert_events(&mut tx, &events).await?;
        apply_totals(&mut tx, &deltas).await?;
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
        let returned = requeue_processing(&mut tx, batch_id, happened, now).await?;
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
}

#[derive(FromRow)]
struct DuplicatedRow {
    status: String,
    #[sqlx(flatten)]
    job: CountedRow,
}
