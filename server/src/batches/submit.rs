//! One batch create, and what its outcome means for the local batch. Only an outcome that
//! proves no batch was made puts the jobs back; an uncertain one leaves the batch
//! `submitting` for reconciliation, after a settle period in which the lease is kept.

use app::api::ProviderName;
use chrono::Utc;

use super::lease::{Held, lease_span};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::events::Happened;
use crate::provider::{BatchBody, MessageBatch, ProcessingStatus};
use crate::store::{BatchStatus, NewDuplicate, Submission};

pub(super) async fn submit(
    ctx: &Ctx,
    batch_id: &str,
    provider: ProviderName,
    body: BatchBody,
    held: Held,
) -> Result<MessageBatch> {
    crash_here_if(ctx, "before-submit");
    let outcome = async { ctx.provider(provider)?.create_batch(batch_id, body).await }.await;
    let now = Utc::now();
    match outcome {
        Ok(remote) => {
            crash_here_if(ctx, "after-submit");
            let submission = Submission {
                provider_batch_id: remote.id.clone(),
                provider_created_at: remote.created_at,
                clock_sample: true,
                submitted_at: now,
                expires_at: remote.expires_at,
                next_poll_at: now + super::cadence::first_poll_delay(ctx),
                swept: false,
            };
            let event = Happened::Submitted {
                batch: remote.id.clone(),
            };
            let recorded = ctx
                .store()
                .record_submission(batch_id, held.owner(), &submission, &event)
                .await?;
            if recorded {
                tracing::info!(batch = %remote.id, local = batch_id, "batch submitted");
                return Ok(remote);
            }
            // The lease lapsed while the call was in flight and reconciliation took the
            // batch over: what the provider just made is a second copy. Stop it now.
            let note = "created by a call whose answer came after reconciliation had taken over; cancelled at once";
            record_duplicate(ctx, batch_id, provider, &remote, note, true).await?;
            Err(Error::Conflict(format!(
                "{} accepted the batch as {}, but reconciliation had already taken it over; that copy was cancelled as a duplicate.",
                provider.label(),
                remote.id
            )))
        }
        Err(e) if e.proves_nothing_created() => {
            let event = Happened::Returned {
                reason: format!("the batch was not accepted: {e}"),
            };
            let released = ctx
                .store()
                .release_batch(batch_id, held.owner(), &e.to_string(), &event, now)
                .await?;
            tracing::warn!(error = %e, released, provider = %provider, "the provider did not accept the batch; its jobs are pending again");
            Err(Error::Provider(e))
        }
        Err(e) => {
            let note = format!(
                "{}'s answer to the create was lost ({e}); reconciliation will find out whether the batch exists",
                provider.label()
            );
            ctx.store()
                .mark_uncertain(batch_id, held.owner(), &note, now + lease_span(ctx), now)
                .await?;
            // Keep the lease through the settle period: a create still being applied by the
            // provider must show up in its listing before anyone decides it does not exist.
            held.keep_until_it_lapses();
            tracing::error!(error = %e, batch = batch_id, provider = %provider, "the batch may or may not have reached the provider; it will be reconciled");
            Err(Error::SubmissionUncertain {
                provider: provider.label(),
                reason: e.to_string(),
            })
        }
    }
}

/// Records a provider batch that ran the jobs of local batch `of` again, so it is polled to
/// its end and what it was billed is counted; then cancels it when it may still run. The
/// record comes first: a crash after a cancel must not leave a copy the books never name
/// (the poller cancels a recorded copy that is still running).
pub(super) async fn record_duplicate(
    ctx: &Ctx,
    of: &str,
    provider: ProviderName,
    remote: &MessageBatch,
    note: &str,
    cancel: bool,
) -> Result<()> {
    if ctx
        .store()
        .record_duplicate(&duplicate_row(of, remote, note))
        .await?
    {
        tracing::error!(duplicate = %remote.id, of, "{note}");
    }
    if cancel {
        cancel_copy(ctx, provider, remote).await;
    }
    Ok(())
}

/// Cancels a recorded copy that may still run, so the jobs it has not reached yet are not
/// billed twice. A failed cancel is tried again by the poll.
pub(super) async fn cancel_copy(ctx: &Ctx, provider: ProviderName, remote: &MessageBatch) {
    if remote.processing_status != ProcessingStatus::InProgress {
        return;
    }
    if let Err(e) = async { ctx.provider(provider)?.cancel_batch(&remote.id).await }.await {
        tracing::error!(duplicate = %remote.id, error = %e, "could not cancel a duplicate batch; polling it will try again");
    }
    crash_here_if(ctx, "after-duplicate-cancel");
}

/// The row of provider batch `remote`, which ran the jobs of local batch `of` again.
pub(super) fn duplicate_row(of: &str, remote: &MessageBatch, note: &str) -> NewDuplicate {
    NewDuplicate {
        id: uuid::Uuid::now_v7().to_string(),
        provider_batch_id: remote.id.clone(),
        of: of.to_string(),
        job_count: remote.request_counts.total(),
        created_at: remote.created_at,
        expires_at: remote.expires_at,
        status: BatchStatus::from(remote.processing_status),
        note: note.to_string(),
    }
}

/// Test failpoint: `AI_BATCH_FAILPOINT=<name>` ends the process here, as a crash would.
fn crash_here_if(ctx: &Ctx, name: &str) {
    if ctx.config.at_failpoint(name) {
        eprintln!("failpoint {name}: exiting");
        std::process::exit(86);
    }
}
