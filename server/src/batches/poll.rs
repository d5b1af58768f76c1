//! Poll: check a batch; once it has ended, stream its results into the jobs, chunk by chunk.

use std::collections::HashMap;

use app::api::{POLL_RESULTS_CAP, PollResponse, PollResult};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;

use super::outcome::decide;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::provider::{MessageBatch, ProcessingStatus, ResultLine};
use crate::store::{BatchRecord, BatchStatus, JobUpdate};

/// Results written per transaction: big enough to be fast, small enough to keep locks short.
const CHUNK: usize = 500;
/// Longest wait between polls of a batch that is still running.
const MAX_POLL_GAP: Duration = Duration::minutes(5);

pub(super) fn first_poll_delay(ctx: &Ctx) -> Duration {
    Duration::seconds(ctx.config.batch.poll_interval_secs as i64)
}

/// Polls grow sparser as a batch ages (a quarter of its age), between the interval and 5 min.
fn next_poll(ctx: &Ctx, batch: &BatchRecord, now: DateTime<Utc>) -> DateTime<Utc> {
    let age = now - batch.submitted_at.unwrap_or(batch.created_at);
    now + (age / 4).clamp(
        first_poll_delay(ctx),
        MAX_POLL_GAP.max(first_poll_delay(ctx)),
    )
}

/// After a failed poll: the interval doubled per consecutive failure, at most 30 min.
fn retry_poll(ctx: &Ctx, failures: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    let factor = 2i32.saturating_pow(failures.clamp(0, 16) as u32);
    now + (first_poll_delay(ctx) * factor).min(Duration::minutes(30))
}

pub async fn poll(ctx: &Ctx, provider_batch_id: &str) -> Result<PollResponse> {
    let batch = ctx
        .store()
        .find_batch(provider_batch_id)
        .await?
        .ok_or_else(|| Error::NotFound("Batch not found".into()))?;
    let answer = |status: &str,
                  results: Vec<PollResult>,
                  processed: i64,
                  remaining: i64,
                  message: String| PollResponse {
        success: true,
        batch_id: provider_batch_id.to_string(),
        status: status.to_string(),
        results,
        jobs_processed: processed,
        jobs_remaining: remaining,
        message,
    };
    if batch.results_collected {
        let remaining = ctx.store().batch_remaining(provider_batch_id).await?;
        return Ok(answer(
            "ended",
            vec![],
            0,
            remaining,
            "The results were already collected; nothing changed.".into(),
        ));
    }
    let now = Utc::now();
    let remote = match ctx.provider.retrieve_batch(provider_batch_id).await {
        Ok(remote) => remote,
        Err(e) if e.is_not_found() => {
            let returned = ctx.store().lose_batch(&batch.id, now).await?;
            let message = format!(
                "Anthropic no longer knows this batch; its {returned} unfinished jobs are pending again."
            );
            return Ok(answer("not_found", vec![], 0, 0, message));
        }
        Err(e) => return Err(poll_failed(ctx, &batch, e.into(), now).await),
    };
    if remote.processing_status != ProcessingStatus::Ended {
        let status = if remote.processing_status == ProcessingStatus::Canceling {
            BatchStatus::Canceling
        } else {
            BatchStatus::InProgress
        };
        ctx.store()
            .update_batch_progress(&batch.id, status, Some(next_poll(ctx, &batch, now)), 0)
            .await?;
        let remaining = ctx.store().batch_remaining(provider_batch_id).await?;
        let message = format!(
            "The batch is still {}: {} requests processing.",
            status.as_str(),
            remote.request_counts.processing
        );
        return Ok(answer(status.as_str(), vec![], 0, remaining, message));
    }
    match collect(ctx, &batch, &remote).await {
        Ok((results, processed)) => {
            let remaining = ctx.store().batch_remaining(provider_batch_id).await?;
            let c = remote.request_counts;
            let message = format!(
                "The batch has ended: {} succeeded, {} errored, {} expired, {} canceled; {processed} jobs updated.",
                c.succeeded, c.errored, c.expired, c.canceled
            );
            Ok(answer("ended", results, processed, remaining, message))
        }
        Err(e) => Err(poll_failed(ctx, &batch, e, now).await),
    }
}

/// Records a failed poll (for the backoff) and hands the error back.
async fn poll_failed(ctx: &Ctx, batch: &BatchRecord, error: Error, now: DateTime<Utc>) -> Error {
    let failures = batch.poll_failures + 1;
    if let Err(e) = ctx
        .store()
        .update_batch_progress(
            &batch.id,
            batch.status,
            Some(retry_poll(ctx, failures, now)),
            failures,
        )
        .await
    {
        tracing::error!(error = %e, "could not record a failed poll");
    }
    error
}

/// Streams the results and writes them in chunks; each chunk is one transaction, so a cut
/// stream leaves every job either fully updated or untouched, and the next poll resumes.
async fn collect(
    ctx: &Ctx,
    batch: &BatchRecord,
    remote: &MessageBatch,
) -> Result<(Vec<PollResult>, i64)> {
    let mut stream = ctx.provider.batch_results(&remote.id).await?;
    let mut reports = Vec::new();
    let mut processed = 0i64;
    let mut chunk = Vec::with_capacity(CHUNK);
    while let Some(line) = stream.next().await {
        chunk.push(line?);
        if chunk.len() == CHUNK {
            processed += ingest(
                ctx,
                batch,
                &remote.id,
                std::mem::take(&mut chunk),
                &mut reports,
            )
            .await?;
        }
    }
    processed += ingest(ctx, batch, &remote.id, chunk, &mut reports).await?;
    let counts = serde_json::to_value(remote.request_counts).unwrap_or_default();
    let returned = ctx
        .store()
        .finish_batch(&batch.id, counts, remote.ended_at.unwrap_or_else(Utc::now))
        .await?;
    if returned > 0 {
        tracing::warn!(batch = %remote.id, returned, "jobs without a result line went back to pending");
    }
    Ok((reports, processed))
}

async fn ingest(
    ctx: &Ctx,
    batch: &BatchRecord,
    provider_batch_id: &str,
    lines: Vec<ResultLine>,
    reports: &mut Vec<PollResult>,
) -> Result<i64> {
    if lines.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = lines.iter().map(|l| l.custom_id.clone()).collect();
    let states: HashMap<String, _> = ctx
        .store()
        .job_states(provider_batch_id, &ids)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let now = Utc::now();
    let elapsed_ms = (now - batch.submitted_at.unwrap_or(batch.created_at)).num_milliseconds();
    let mut updates = Vec::with_capacity(lines.len());
    let mut pending_reports = HashMap::with_capacity(lines.len());
    for line in &lines {
        let Some(state) = states.get(&line.custom_id) else {
            continue;
        };
        if let Some(decision) = decide(
            state,
            &line.result,
            &ctx.prices,
            ctx.config.batch.max_attempts,
            elapsed_ms,
        ) {
            updates.push(JobUpdate {
                job_id: state.id.clone(),
                expected_attempts: state.attempts,
                transition: decision.transition,
            });
            pending_reports.insert(state.id.clone(), decision.report);
        }
    }
    let changed = ctx
        .store()
        .apply_updates(provider_batch_id, &updates, now)
        .await?;
    for id in &changed {
        if reports.len() < POLL_RESULTS_CAP
            && let Some(report) = pending_reports.remove(id)
        {
            reports.push(report);
        }
    }
    Ok(changed.len() as i64)
}

/// Polls every open batch whose next poll is due (the scheduler's auto-poll).
pub async fn poll_due(ctx: &Ctx) -> Result<usize> {
    let due = ctx.store().due_batches(Utc::now()).await?;
    let mut polled = 0;
    for batch in due {
        let Some(id) = batch.provider_batch_id.as_deref() else {
            continue;
        };
        match poll(ctx, id).await {
            Ok(answer) if answer.jobs_processed > 0 => {
                tracing::info!(batch = id, processed = answer.jobs_processed, status = %answer.status, "results collected");
                polled += 1;
            }
            Ok(_) => polled += 1,
            Err(e) => {
                tracing::warn!(batch = id, error = %e, "poll failed; will retry with backoff")
            }
        }
    }
    Ok(polled)
}
