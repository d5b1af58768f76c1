//! The stray search, a backstop for copies no create window holds. A create the provider
//! applied late, after its caller's lease lapsed and reconciliation had sent the jobs again,
//! and whose answer was lost too, made a batch nothing on our side names: no answer, no
//! window. So every so often the provider's recent batches are listed. An ended one that is
//! not on our books and whose results name only jobs of one of our batches is a copy of that
//! batch, recorded so what it was billed is counted; one naming any other job is someone
//! else's, remembered so it is read once.

use app::api::ProviderName;
use chrono::Utc;

use super::reconcile::{created_since, members_of, named_jobs};
use super::submit::duplicate_row;
use crate::context::Ctx;
use crate::error::Result;
use crate::provider::{MessageBatch, ProcessingStatus};

/// How far back the provider's listing is read. A batch ends within a day of its creation,
/// so a stray is seen ended by many searches before it drops out of this.
const LOOK_BACK: chrono::Duration = chrono::Duration::days(2);

/// Searches every configured provider; how many strays were recorded.
pub async fn find_strays(ctx: &Ctx) -> Result<usize> {
    let mut recorded = 0;
    for &provider in ProviderName::ALL {
        if ctx.provider(provider).is_ok() {
            recorded += search(ctx, provider).await?;
        }
    }
    Ok(recorded)
}

async fn search(ctx: &Ctx, provider: ProviderName) -> Result<usize> {
    let mut recorded = 0;
    for candidate in created_since(ctx.provider(provider)?, Utc::now() - LOOK_BACK).await? {
        if candidate.processing_status == ProcessingStatus::Ended
            && ctx.store().find_batch(&candidate.id).await?.is_none()
            && !ctx.store().is_foreign(&candidate.id).await?
            && examine(ctx, provider, &candidate).await?
        {
            recorded += 1;
        }
    }
    Ok(recorded)
}

/// Proves an ended batch not on our books ours or someone else's; whether it was recorded.
async fn examine(ctx: &Ctx, provider: ProviderName, candidate: &MessageBatch) -> Result<bool> {
    let Some(named) = named_jobs(ctx.provider(provider)?, candidate).await else {
        return Ok(false);
    };
    // A read that named no job proves nothing either way: look again next time.
    let Some(first) = named.iter().next() else {
        return Ok(false);
    };
    for batch in ctx.store().batches_holding_job(first).await? {
        if !named.is_subset(&members_of(ctx, &batch.id).await?) {
            continue;
        }
        let note = "found by the stray search: a provider batch that ran this batch's jobs again, \
                    made by a create whose answer was lost after reconciliation had moved on";
        let row = duplicate_row(&batch.id, candidate, note);
        // A batch still `submitting` is reconciliation's to settle, which may adopt this one.
        let stray = ctx.store().record_stray(&row).await?;
        if stray {
            tracing::error!(duplicate = %candidate.id, of = %batch.id, "{note}");
        }
        return Ok(stray);
    }
    ctx.store()
        .mark_foreign(provider, &candidate.id, Utc::now())
        .await?;
    Ok(false)
}
