//! Letting go of what the provider keeps for us (OpenAI's input, output and error files: the
//! traders' prompts and answers). The store marks an ended batch's copy due with its results;
//! a release that fails, or a kill before it, leaves the mark for the next rescuer round. An
//! input file no batch took (a kill between upload and create, a retried upload, a refused
//! create whose cleanup failed) is found by its name and deleted once its batch has settled.
//! So no copy stays at the provider for good.

use app::api::ProviderName;
use chrono::Utc;

use super::strays::LOOK_BACK;
use crate::context::Ctx;
use crate::error::Result;

/// Releases at most this many copies a round; the rest wait for the next.
const PER_ROUND: i64 = 20;

/// What became of one release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Released {
    Done,
    /// Refused for now (an outage, a busy provider, our store): the mark stays.
    Later,
    /// Refused for good (a 4xx other than not found): left at the provider, the mark cleared
    /// so it does not stand in front of the others.
    GaveUp,
}

/// Releases one ended batch's copy at `name`. A failure is logged, never the caller's error
/// (its results are stored); a refusal for good is noted on the batch, where admins see it.
pub(super) async fn release(ctx: &Ctx, name: ProviderName, provider_batch_id: &str) -> Released {
    let Ok(provider) = ctx.provider(name) else {
        // No longer configured: the mark stays for when it is again.
        return Released::Later;
    };
    let (outcome, note) = match provider.ingested(provider_batch_id).await {
        Ok(()) => (Released::Done, None),
        Err(e) if e.retryable() => {
            tracing::warn!(batch = %provider_batch_id, error = %e, "the provider's copy of an ingested batch was not released; it will be tried again");
            return Released::Later;
        }
        Err(e) => {
            tracing::error!(batch = %provider_batch_id, error = %e, "the provider refused to release an ingested batch's copy; it is left there");
            let label = name.label();
            let note = format!(
                "{label} refused to delete this batch's files ({e}); they stay at {label} until deleted by hand"
            );
            (Released::GaveUp, Some(note))
        }
    };
    match ctx
        .store()
        .mark_released(provider_batch_id, note.as_deref())
        .await
    {
        Ok(()) => outcome,
        Err(e) => {
            tracing::warn!(batch = %provider_batch_id, error = %e, "a release could not be recorded; it will be tried again");
            Released::Later
        }
    }
}

/// Releases the copies a failed or interrupted release left; how many were released. The
/// round stops at the first release refused for now: a provider refusing deletes costs one
/// call a round, and the rescuer's reconciliation is not kept waiting behind its retries.
/// A batch whose provider is no longer configured keeps its mark for when it is again.
pub async fn release_pending(ctx: &Ctx) -> Result<usize> {
    let mut released = 0;
    for batch in ctx.store().pending_releases(PER_ROUND).await? {
        let (Some(id), Ok(_)) = (
            batch.provider_batch_id.as_deref(),
            ctx.provider(batch.provider),
        ) else {
            continue;
        };
        match release(ctx, batch.provider, id).await {
            Released::Done => released += 1,
            Released::GaveUp => {}
            Released::Later => break,
        }
    }
    Ok(released)
}

/// Deletes our uploads at every provider whose batch, and every copy of it, has settled: one
/// still submitting, running or being read may yet read its input (OpenAI's refused batches
/// are read from it). A file whose name is not one of our batches (another deployment on the
/// same account) is left alone. How many were deleted.
pub async fn delete_leftover_uploads(ctx: &Ctx) -> Result<usize> {
    let mut deleted = 0;
    for &name in ProviderName::ALL {
        let Ok(provider) = ctx.provider(name) else {
            continue;
        };
        for upload in provider.uploads_since(Utc::now() - LOOK_BACK).await? {
            if ctx.store().batch_settled(&upload.label).await? {
                provider.delete_upload(&upload.id).await?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
