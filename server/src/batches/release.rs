//! Letting go of what the provider keeps for us (OpenAI's input, output and error files: the
//! traders' prompts and answers). The store marks an ended batch's copy due with its results;
//! a release that fails, or a kill before it, leaves the mark for the next rescuer round. An
//! input file no batch took (a kill between upload and create, a retried upload, a refused
//! create whose cleanup failed) is found by its name and deleted once its batch has settled.
//! So no copy stays at the provider for good.

use app::api::ProviderName;
use chrono::Utc;

use crate::context::Ctx;
use crate::error::Result;
use crate::store::BatchRecord;

/// How far back uploads are listed: the stray search's look-back, well past a batch's day.
const UPLOADS_LOOK_BACK: chrono::Duration = chrono::Duration::days(2);

/// Releases at most this many copies a round; the rest wait for the next.
const PER_ROUND: i64 = 20;

/// Releases one ended batch's copy; whether it was released and marked so. A failure is a
/// warning, never the caller's error (its results are stored): the mark stays, and the next
/// round tries again.
pub(super) async fn release(ctx: &Ctx, batch: &BatchRecord, provider_batch_id: &str) -> bool {
    let released = async {
        ctx.provider(batch.provider)?
            .ingested(provider_batch_id)
            .await?;
        ctx.store().mark_released(provider_batch_id).await?;
        Ok::<_, crate::error::Error>(())
    };
    match released.await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(batch = %provider_batch_id, error = %e, "the provider's copy of an ingested batch was not released; it will be tried again");
            false
        }
    }
}

/// Releases the copies a failed or interrupted release left; how many were released. The
/// round stops at the first refusal: a provider refusing deletes costs one call a round, and
/// the rescuer's reconciliation is not kept waiting behind its retries.
pub async fn release_pending(ctx: &Ctx) -> Result<usize> {
    let mut released = 0;
    for batch in ctx.store().pending_releases(PER_ROUND).await? {
        let Some(id) = batch.provider_batch_id.as_deref() else {
            continue;
        };
        if !release(ctx, &batch, id).await {
            break;
        }
        released += 1;
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
        for upload in provider
            .uploads_since(Utc::now() - UPLOADS_LOOK_BACK)
            .await?
        {
            if ctx.store().batch_settled(&upload.label).await? {
                provider.delete_upload(&upload.id).await?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
