//! Poll: check a batch; once it has ended, collect its results (`ingest`). A batch is polled
//! by one worker at a time, under its lease.

use std::time::Duration as StdDuration;

use app::api::{Caller, PollResponse, PollResult, count_of_jobs};
use chrono::{DateTime, Utc};

use super::cadence::{next_poll, retry_poll};
use super::ingest::{Collected, collect};
use super::lease::Held;
use crate::access::require_admin;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::events::Happened;
use crate::provider::ProcessingStatus;
use crate::store::{BatchRecord, BatchStatus};

/// How long an admin's poll waits for another worker's poll of the same batch to finish.
const POLL_PATIENCE: StdDuration = StdDuration::from_secs(5);

pub(super) struct Answer {
    pub status: String,
    pub results: Vec<PollResult>,
    pub processed: i64,
    pub message: String,
}

impl Answer {
    fn collected_before() -> Answer {
        Answer {
            status: "ended".into(),
            results: vec![],
            processed: 0,
            message: "The results were already collected; nothing changed.".into(),
        }
    }
}

/// Polls a batch now (an admin's poll), waiting briefly if another worker is polling it.
pub async fn poll(ctx: &Ctx, caller: &Caller, provider_batch_id: &str) -> Result<PollResponse> {
    require_admin(caller)?;
    tracing::info!(by = %caller.name, batch_id = %provider_batch_id, "poll");
    let batch = ctx
        .store()
        .find_batch(provider_batch_id)
        .await?
        .ok_or_else(|| Error::NotFound("Batch not found".into()))?;
    let answer = if batch.results_collected {
        Answer::collected_before()
    } else {
        let Some(held) = Held::take_within(ctx, &batch.id, POLL_PATIENCE).await? else {
            return Err(Error::Conflict(
                "This batch is being polled right now by another worker; try again in a few seconds.".into(),
            ));
        };
        let answer = poll_held(ctx, &batch).await;
        held.release().await;
        tell_changes(ctx, &batch, answer.as_ref().ok()).await;
        answer?
    };
    let remaining = ctx.store().batch_remaining(provider_batch_id).await?;
    // A poll is many transactions (one per chunk of results): its entry follows them.
    if let Some(entry) = crate::store::AuditEntry::by_person(
        caller,
        app::api::AuditAction::Poll,
        Some(provider_batch_id.to_string()),
        Some(format!(
            "{}: results of {} stored, {} open",
            answer.status,
            count_of_jobs(answer.processed),
            count_of_jobs(remaining)
        )),
    ) {
        ctx.store().record_audit(&entry).await?;
    }
    Ok(PollResponse {
        success: true,
        batch_id: provider_batch_id.to_string(),
        status: answer.status,
        results: answer.results,
        jobs_processed: answer.processed,
        jobs_remaining: remaining,
        message: answer.message,
    })
}

/// Polls every open batch whose next poll is due and that nobody else is polling (the
/// scheduler's auto-poll). Duplicates are polled to their end like any batch.
pub async fn poll_due(ctx: &Ctx) -> Result<usize> {
    let due = ctx.store().due_batches(Utc::now()).await?;
    let mut polled = 0;
    for batch in due {
        let Some(held) = Held::take(ctx, &batch.id).await? else {
            continue;
        };
        let outcome = poll_held(ctx, &batch).await;
        held.release().await;
        tell_changes(ctx, &batch, outcome.as_ref().ok()).await;
        let id = batch.provider_batch_id.as_deref().unwrap_or(&batch.id);
        match outcome {
            Ok(answer) => {
                if answer.processed > 0 {
                    tracing::info!(batch = id, processed = answer.processed, status = %answer.status, "results collected");
                }
                polled += 1;
            }
            Err(e) => {
                tracing::warn!(batch = id, error = %e, "poll failed; will retry with backoff")
            }
        }
    }
    Ok(polled)
}

/// The provider says a batch ended (OpenAI's `batch.completed`, … webhooks): it is polled at
/// the scheduler's next tick rather than at its cadence. False when no batch of ours waits.
pub async fn poll_soon(ctx: &Ctx, provider_batch_id: &str) -> Result<bool> {
    Ok(ctx.store().poll_soon(provider_batch_id, Utc::now()).await?)
}

/// A poll may move the batch; jobs changed only if results were stored, and then only their
/// owners' pages are told.
async fn tell_changes(ctx: &Ctx, batch: &BatchRecord, answer: Option<&Answer>) {
    ctx.changes.batches();
    if answer.is_none_or(|a| a.processed > 0) {
        let members_of = batch.duplicate_of.as_deref().unwrap_or(&batch.id);
        match ctx.store().batch_owners(members_of).await {
            Ok(owners) => ctx.changes.jobs_of_each(owners),
            Err(e) => tracing::warn!(error = %e, "open pages are not told of this poll"),
        }
    }
}

async fn poll_held(ctx: &Ctx, batch: &BatchRecord) -> Result<Answer> {
    // Read before the lease was ours: another worker may have collected the batch since and
    // let go of the provider's copy, which a second collect would take for lost.
    let Some(batch) = ctx
        .store()
        .local_batch(&batch.id)
        .await?
        .filter(|b| !b.results_collected)
    else {
        return Ok(Answer::collected_before());
    };
    let batch = &batch;
    let provider_batch_id = batch
        .provider_batch_id
        .as_deref()
        .ok_or_else(|| Error::NotFound("Batch not found".into()))?;
    let now = Utc::now();
    let remote = match async {
        ctx.provider(batch.provider)?
            .retrieve_batch(provider_batch_id)
            .await
    }
    .await
    {
        Ok(remote) => remote,
        Err(e) if e.is_not_found() => {
            let event = Happened::Returned {
                reason: format!("{} no longer knows the batch", batch.provider.label()),
            };
            let returned = ctx
                .store()
                .lose_batch(&batch.id, "unknown to the provider", &event, now)
                .await?;
            return Ok(Answer {
                status: "not_found".into(),
                results: vec![],
                processed: 0,
                message: format!(
                    "{} no longer knows this batch; its {returned} unfinished jobs are pending again.",
                    batch.provider.label()
                ),
            });
        }
        Err(e) => return poll_failed(ctx, batch, e.into(), now).await,
    };
    if remote.processing_status == ProcessingStatus::InProgress && batch.duplicate_of.is_some() {
        // A known duplicate still running: the first cancel failed; try again.
        if let Err(e) = async { ctx.provider(batch.provider)?.cancel_batch(&remote.id).await }.await
        {
            tracing::warn!(duplicate = %remote.id, error = %e, "could not cancel a duplicate batch");
        }
    }
    if remote.processing_status != ProcessingStatus::Ended {
        let status = BatchStatus::from(remote.processing_status);
        ctx.store()
            .update_batch_progress(&batch.id, status, Some(next_poll(ctx, batch, now)), 0, None)
            .await?;
        return Ok(Answer {
            status: status.as_str().into(),
            results: vec![],
            processed: 0,
            message: format!(
                "The batch is still {}: {} requests processing.",
                status.as_str(),
                remote.request_counts.processing
            ),
        });
    }
    match collect(ctx, batch, &remote).await {
        Ok(Collected::Done { results, processed }) => {
            let c = remote.request_counts;
            Ok(Answer {
                status: "ended".into(),
                results,
                processed,
                message: format!(
                    "The batch has ended: {} succeeded, {} errored, {} expired, {} canceled; {} updated.",
                    c.succeeded,
                    c.errored,
                    c.expired,
                    c.canceled,
                    count_of_jobs(processed)
                ),
            })
        }
        Ok(Collected::ReadAgain {
            results,
            processed,
            note,
        }) => Ok(Answer {
            status: "ended".into(),
            results,
            processed,
            message: format!("{note}; {} updated so far.", count_of_jobs(processed)),
        }),
        Ok(Collected::ByAnother) => Ok(Answer::collected_before()),
        Err(e) => poll_failed(ctx, batch, e, now).await,
    }
}

/// Records a failed poll (for the backoff, and so admins see a batch that keeps failing) and
/// hands the error back. A batch another worker collected meanwhile (this poll's lease lapsed
/// while it waited on the provider) records nothing: its poll did not fail, and the admin
/// hears that it was collected.
async fn poll_failed(
    ctx: &Ctx,
    batch: &BatchRecord,
    error: Error,
    now: DateTime<Utc>,
) -> Result<Answer> {
    let failures = batch.poll_failures + 1;
    match ctx
        .store()
        .update_batch_progress(
            &batch.id,
            batch.status,
            Some(retry_poll(ctx, failures, now)),
            failures,
            Some(&error.to_string()),
        )
        .await
    {
        Ok(true) => Err(error),
        Ok(false) => {
            tracing::info!(batch = %batch.id, %error, "a late poll failed on a batch another collected");
            Ok(Answer::collected_before())
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record a failed poll");
            Err(error)
        }
    }
}
