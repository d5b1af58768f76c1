//! The poll's side of the batch tables on PostgreSQL: results applied a chunk at a time with
//! one statement per kind of outcome (rows bound as arrays), each guarded by the state its
//! updates were decided on; charges recorded once by their key.

use std::collections::{HashMap, HashSet};

use app::api::JobStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, Transaction};

use super::{COUNTED, CountedRow, PostgresStore, apply_totals, insert_events};
use crate::events::Happened;
use crate::store::*;

/// `COUNTED` as columns of `jobs`, for a `RETURNING` after a join.
fn returning() -> String {
    COUNTED
        .split(", ")
        .map(|c| format!("j.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

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

/// A spend as columns.
#[derive(Default)]
struct Spends<'a> {
    input_tokens: Vec<i64>,
    output_tokens: Vec<i64>,
    cost_nanos: Vec<i64>,
    standard_cost_nanos: Vec<i64>,
    price_versions: Vec<Option<&'a str>>,
}

impl<'a> Spends<'a> {
    fn push(&mut self, spend: Option<&'a Spend>) {
        self.input_tokens.push(spend.map_or(0, |s| s.input_tokens));
        self.output_tokens
            .push(spend.map_or(0, |s| s.output_tokens));
        self.cost_nanos.push(spend.map_or(0, |s| s.cost_nanos));
        self.standard_cost_nanos
            .push(spend.map_or(0, |s| s.standard_cost_nanos));
        self.price_versions
            .push(spend.map(|s| s.price_version.as_str()));
    }
}

async fn insert_charges(
    tx: &mut Transaction<'_, Postgres>,
    provider_batch_id: &str,
    kind: &str,
    charges: &[(&str, &Spend)],
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if charges.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = charges.iter().map(|c| c.0).collect();
    let mut spends = Spends::default();
    for (_, spend) in charges {
        spends.push(Some(spend));
    }
    sqlx::query(
        "INSERT INTO charges (job_id, provider_batch_id, kind, input_tokens, output_tokens, cost_nanos, \
         standard_cost_nanos, price_version, at) \
         SELECT id, $2, $3, it, ot, c, sc, pv, $9 FROM unnest($1::text[], $4::bigint[], $5::bigint[], \
         $6::bigint[], $7::bigint[], $8::text[]) AS v(id, it, ot, c, sc, pv)",
    )
    .bind(&ids)
    .bind(provider_batch_id)
    .bind(kind)
    .bind(&spends.input_tokens)
    .bind(&spends.output_tokens)
    .bind(&spends.cost_nanos)
    .bind(&spends.standard_cost_nanos)
    .bind(&spends.price_versions)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Puts a local batch's jobs that are still `processing` back to pending, with an event each.
pub(super) async fn requeue_processing(
    tx: &mut Transaction<'_, Postgres>,
    batch_id: &str,
    happened: &Happened,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let sql = format!(
        "UPDATE jobs SET status = 'pending', batch_id = NULL, local_batch_id = NULL, updated_at = $1 \
         WHERE local_batch_id = $2 AND status = 'processing' RETURNING {COUNTED}"
    );
    let rows: Vec<CountedRow> = sqlx::query_as(&sql)
        .bind(now)
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

#[async_trait]
impl ResultStore for PostgresStore {
    async fn job_states(
        &self,
        provider_batch_id: &str,
        job_ids: &[String],
    ) -> StoreResult<Vec<JobState>> {
        let rows: Vec<JobStateRow> = sqlx::query_as(
            "SELECT j.id, j.job_type, j.status, j.attempts, j.cancel_requested, j.model, \
             EXISTS (SELECT 1 FROM charges c WHERE c.job_id = j.id AND c.provider_batch_id = j.batch_id) AS charged \
             FROM jobs j WHERE j.batch_id = $1 AND j.id = ANY($2)",
        )
        .bind(provider_batch_id)
        .bind(job_ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(JobState::try_from).collect()
    }

    async fn apply_updates(
        &self,
        provider_batch_id: &str,
        updates: &[JobUpdate],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let mut deltas = Deltas::default();
        let mut changed: HashSet<String> = HashSet::with_capacity(updates.len());
        let returning = returning();

        // Completed: the spend is added in the same statement; the guard proves it is new.
        let completes: Vec<(&JobUpdate, &Value, &Spend)> = updates
            .iter()
            .filter_map(|u| match &u.transition {
                Transition::Complete { result, spend } => Some((u, result, spend)),
                _ => None,
            })
            .collect();
        if !completes.is_empty() {
            let ids: Vec<&str> = completes.iter().map(|c| c.0.job_id.as_str()).collect();
            let attempts: Vec<i64> = completes.iter().map(|c| c.0.expected_attempts).collect();
            let results: Vec<Json<&Value>> = completes.iter().map(|c| Json(c.1)).collect();
            let mut spends = Spends::default();
            for c in &completes {
                spends.push(Some(c.2));
            }
            let sql = format!(
                "UPDATE jobs j SET status = 'completed', result = v.result, completed_at = $9, updated_at = $9, \
                 error_message = NULL, input_tokens = j.input_tokens + v.it, output_tokens = j.output_tokens + v.ot, \
                 cost_nanos = j.cost_nanos + v.c, standard_cost_nanos = j.standard_cost_nanos + v.sc, price_version = v.pv \
                 FROM unnest($1::text[], $2::bigint[], $3::jsonb[], $4::bigint[], $5::bigint[], $6::bigint[], \
                             $7::bigint[], $8::text[]) AS v(id, attempts, result, it, ot, c, sc, pv) \
                 WHERE j.id = v.id AND j.batch_id = $10 AND j.status = 'processing' AND j.attempts = v.attempts \
                 RETURNING {returning}"
            );
            let rows: Vec<CountedRow> = sqlx::query_as(&sql)
                .bind(&ids)
                .bind(&attempts)
                .bind(&results)
                .bind(&spends.input_tokens)
                .bind(&spends.output_tokens)
                .bind(&spends.cost_nanos)
                .bind(&spends.standard_cost_nanos)
                .bind(&spends.price_versions)
                .bind(now)
                .bind(provider_batch_id)
                .fetch_all(&mut *tx)
                .await?;
            let by_id: HashMap<&str, &Spend> = completes
                .iter()
                .map(|c| (c.0.job_id.as_str(), c.2))
                .collect();
            let mut charges = Vec::with_capacity(rows.len());
            for row in &rows {
                let after = row.counted()?;
                let spend = by_id.get(row.id.as_str()).copied();
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
            insert_charges(&mut tx, provider_batch_id, "result", &charges, now).await?;
        }

        // Failed, with what was billed when a success could not be read.
        let fails: Vec<(&JobUpdate, &str, i64, Option<&Spend>)> = updates
            .iter()
            .filter_map(|u| match &u.transition {
                Transition::Fail {
                    error,
                    attempts,
                    spend,
                } => Some((u, error.as_str(), *attempts, spend.as_ref())),
                _ => None,
            })
            .collect();
        if !fails.is_empty() {
            let ids: Vec<&str> = fails.iter().map(|f| f.0.job_id.as_str()).collect();
            let attempts: Vec<i64> = fails.iter().map(|f| f.0.expected_attempts).collect();
            let errors: Vec<&str> = fails.iter().map(|f| f.1).collect();
            let new_attempts: Vec<i64> = fails.iter().map(|f| f.2).collect();
            let mut spends = Spends::default();
            for f in &fails {
                spends.push(f.3);
            }
            let sql = format!(
                "UPDATE jobs j SET status = 'failed', error_message = v.error, attempts = v.new_attempts, updated_at = $10, \
                 input_tokens = j.input_tokens + v.it, output_tokens = j.output_tokens + v.ot, cost_nanos = j.cost_nanos + v.c, \
                 standard_cost_nanos = j.standard_cost_nanos + v.sc, price_version = COALESCE(v.pv, j.price_version) \
                 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], \
                             $7::bigint[], $8::bigint[], $9::text[]) AS v(id, attempts, error, new_attempts, it, ot, c, sc, pv) \
                 WHERE j.id = v.id AND j.batch_id = $11 AND j.status = 'processing' AND j.attempts = v.attempts \
                 RETURNING {returning}"
            );
            let rows: Vec<CountedRow> = sqlx::query_as(&sql)
                .bind(&ids)
                .bind(&attempts)
                .bind(&errors)
                .bind(&new_attempts)
                .bind(&spends.input_tokens)
                .bind(&spends.output_tokens)
                .bind(&spends.cost_nanos)
                .bind(&spends.standard_cost_nanos)
                .bind(&spends.price_versions)
                .bind(now)
                .bind(provider_batch_id)
                .fetch_all(&mut *tx)
                .await?;
            let by_id: HashMap<&str, &Spend> = fails
                .iter()
                .filter_map(|f| f.3.map(|s| (f.0.job_id.as_str(), s)))
                .collect();
            let mut charges = Vec::with_capacity(rows.len());
            for row in &rows {
                let after = row.counted()?;
                let spend = by_id.get(row.id.as_str()).copied();
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
            insert_charges(&mut tx, provider_batch_id, "result", &charges, now).await?;
        }

        // Back to pending, out of the batch.
        let requeues: Vec<(&JobUpdate, &str, i64)> = updates
            .iter()
            .filter_map(|u| match &u.transition {
                Transition::Requeue { reason, attempts } => Some((u, reason.as_str(), *attempts)),
                _ => None,
            })
            .collect();
        if !requeues.is_empty() {
            let ids: Vec<&str> = requeues.iter().map(|r| r.0.job_id.as_str()).collect();
            let attempts: Vec<i64> = requeues.iter().map(|r| r.0.expected_attempts).collect();
            let reasons: Vec<&str> = requeues.iter().map(|r| r.1).collect();
            let new_attempts: Vec<i64> = requeues.iter().map(|r| r.2).collect();
            let sql = format!(
                "UPDATE jobs j SET status = 'pending', batch_id = NULL, local_batch_id = NULL, \
                 attempts = v.new_attempts, error_message = v.reason, updated_at = $5 \
                 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[]) AS v(id, attempts, reason, new_attempts) \
                 WHERE j.id = v.id AND j.batch_id = $6 AND j.status = 'processing' AND j.attempts = v.attempts \
                 RETURNING {returning}"
            );
            let rows: Vec<CountedRow> = sqlx::query_as(&sql)
                .bind(&ids)
                .bind(&attempts)
                .bind(&reasons)
                .bind(&new_attempts)
                .bind(now)
                .bind(provider_batch_id)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                let job = row.counted()?;
                deltas.moved(&job, JobStatus::Processing, &job, JobStatus::Pending);
                changed.insert(row.id.clone());
            }
        }

        // Cancelled in flight: the result is discarded, what it was billed counts, once.
        let discards: Vec<(&JobUpdate, &Spend)> = updates
            .iter()
            .filter_map(|u| match &u.transition {
                Transition::RecordSpend { spend } => Some((u, spend)),
                _ => None,
            })
            .collect();
        if !discards.is_empty() {
            let ids: Vec<&str> = discards.iter().map(|d| d.0.job_id.as_str()).collect();
            let mut spends = Spends::default();
            for d in &discards {
                spends.push(Some(d.1));
            }
            let sql = format!(
                "UPDATE jobs j SET input_tokens = j.input_tokens + v.it, output_tokens = j.output_tokens + v.ot, \
                 cost_nanos = j.cost_nanos + v.c, standard_cost_nanos = j.standard_cost_nanos + v.sc, price_version = v.pv \
                 FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) \
                      AS v(id, it, ot, c, sc, pv) \
                 WHERE j.id = v.id AND j.batch_id = $7 AND j.status = 'cancelled' AND NOT EXISTS \
                 (SELECT 1 FROM charges c WHERE c.job_id = j.id AND c.provider_batch_id = j.batch_id) \
                 RETURNING {returning}"
            );
            let rows: Vec<CountedRow> = sqlx::query_as(&sql)
                .bind(&ids)
                .bind(&spends.input_tokens)
                .bind(&spends.output_tokens)
                .bind(&spends.cost_nanos)
                .bind(&spends.standard_cost_nanos)
                .bind(&spends.price_versions)
                .bind(provider_batch_id)
                .fetch_all(&mut *tx)
                .await?;
            let by_id: HashMap<&str, &Spend> = discards
                .iter()
                .map(|d| (d.0.job_id.as_str(), d.1))
                .collect();
            let mut charges = Vec::with_capacity(rows.len());
            for row in &rows {
                if let Some(spend) = by_id.get(row.id.as_str()).copied() {
                    deltas.charged(&row.counted()?, JobStatus::Cancelled, &amounts(spend));
                    charges.push((row.id.as_str(), spend));
                }
                changed.insert(row.id.clone());
            }
            insert_charges(&mut tx, provider_batch_id, "discarded", &charges, now).await?;
        }

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
        let mut tx = self.pool.begin().await?;
        let ids: Vec<&str> = charges.iter().map(|c| c.job_id.as_str()).collect();
        let mut spends = Spends::default();
        for c in charges {
            spends.push(Some(&c.spend));
        }
        // Recorded once, for jobs of ours; then added to those jobs' figures.
        let new: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO charges (job_id, provider_batch_id, kind, input_tokens, output_tokens, cost_nanos, \
             standard_cost_nanos, price_version, at) \
             SELECT v.id, $2, 'duplicate', v.it, v.ot, v.c, v.sc, v.pv, $8 \
             FROM unnest($1::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[]) \
                  AS v(id, it, ot, c, sc, pv) \
             WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.id = v.id) ON CONFLICT DO NOTHING RETURNING job_id",
        )
        .bind(&ids)
        .bind(provider_batch_id)
        .bind(&spends.input_tokens)
        .bind(&spends.output_tokens)
        .bind(&spends.cost_nanos)
        .bind(&spends.standard_cost_nanos)
        .bind(&spends.price_versions)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let kept: Vec<&DuplicateCharge> =
            charges.iter().filter(|c| new.contains(&c.job_id)).collect();
        let mut deltas = Deltas::default();
        if !kept.is_empty() {
            let ids: Vec<&str> = kept.iter().map(|c| c.job_id.as_str()).collect();
            let mut spends = Spends::default();
            for c in &kept {
                spends.push(Some(&c.spend));
            }
            let sql = format!(
                "UPDATE jobs j SET input_tokens = j.input_tokens + v.it, output_tokens = j.output_tokens + v.ot, \
                 cost_nanos = j.cost_nanos + v.c, standard_cost_nanos = j.standard_cost_nanos + v.sc, \
                 duplicate_tokens = j.duplicate_tokens + v.it + v.ot, duplicate_cost_nanos = j.duplicate_cost_nanos + v.c \
                 FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS v(id, it, ot, c, sc) \
                 WHERE j.id = v.id RETURNING j.status, {}",
                returning()
            );
            let rows: Vec<DuplicatedRow> = sqlx::query_as(&sql)
                .bind(&ids)
                .bind(&spends.input_tokens)
                .bind(&spends.output_tokens)
                .bind(&spends.cost_nanos)
                .bind(&spends.standard_cost_nanos)
                .fetch_all(&mut *tx)
                .await?;
            let by_id: HashMap<&str, &Spend> =
                kept.iter().map(|c| (c.job_id.as_str(), &c.spend)).collect();
            for row in &rows {
                if let Some(spend) = by_id.get(row.job.id.as_str()) {
                    deltas.charged(
                        &row.job.counted()?,
                        parse_status(&row.status)?,
                        &amounts(spend),
                    );
                }
            }
        }
        // In the order given.
        let charged: Vec<String> = charges
            .iter()
            .filter(|c| new.contains(&c.job_id))
            .map(|c| c.job_id.clone())
            .collect();
        let happened = Happened::BilledAgain {
            batch: provider_batch_id.to_string(),
        };
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
            "UPDATE batches SET short_reads = short_reads + 1, next_poll_at = $1, error = $2, poll_failures = 0 \
             WHERE id = $3 RETURNING short_reads",
        )
        .bind(next_poll_at)
        .bind(note)
        .bind(batch_id)
        .fetch_one(&self.pool)
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
            "UPDATE batches SET status = $1, results_collected = TRUE, request_counts = $2, ended_at = $3, \
             next_poll_at = NULL, unaccounted_results = $4, error = COALESCE($5, error), poll_failures = 0, \
             lease_owner = NULL, lease_expires_at = NULL WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(Json(request_counts))
        .bind(ended_at)
        .bind(unaccounted_results)
        .bind(note)
        .bind(batch_id)
        .execute(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let returned = requeue_processing(&mut tx, batch_id, happened, now).await?;
        sqlx::query(
            "UPDATE batches SET status = 'lost', next_poll_at = NULL, error = $1 WHERE id = $2",
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
            "SELECT COUNT(*) FROM jobs WHERE batch_id = $1 AND status = 'processing'",
        )
        .bind(provider_batch_id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn charged_results(&self, provider_batch_id: &str) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM charges WHERE provider_batch_id = $1")
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
