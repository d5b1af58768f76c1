//! The stray search, a backstop for copies no create window holds. A create the provider
//! applied late, after its caller's lease lapsed and reconciliation had sent the jobs again,
//! and whose answer was lost too, made a batch nothing on our side names: no answer, no
//! window. So every so often the provider's recent batches are listed. An ended one that is
//! not on our books and whose results name only jobs of one of our batches is a copy of that
//! batch, recorded so what it was billed is counted; one naming any other job is someone
//! else's, remembered so it is read once. Where the provider keeps our label (OpenAI), the
//! label proves a batch ours or not without a read, so a copy is found while it still runs
//! and cancelled.

use std::collections::HashSet;

use app::api::ProviderName;
use chrono::Utc;
use futures::StreamExt;

use super::reconcile::{created_since, job_named, members_of};
use super::submit::{cancel_copy, duplicate_row};
use crate::context::Ctx;
use crate::error::Result;
use crate::provider::{MessageBatch, ProcessingStatus};
use crate::store::BatchRecord;

/// How far back the provider's listings are read (its batches here, its uploads in
/// `release`). A batch ends within a day of its creation, so a stray is seen ended by many
/// searches before it drops out of this.
pub(super) const LOOK_BACK: chrono::Duration = chrono::Duration::days(2);

const STRAY_NOTE: &str = "found by the stray search: a provider batch that ran this batch's jobs \
                          again, made by a create whose answer was lost after reconciliation had moved on";

/// Searches every configured provider; how many strays were recorded.
pub async fn find_strays(ctx: &Ctx) -> Result<usize> {
    let mut recorded = 0;
    for &provider in ProviderName::ALL {
        if ctx.provider(provider).is_ok() {
            recorded += search(ctx, provider).await?;
        }
    }
    // A batch proved someone else's that long ago was made before the look-back: no listing
    // shows it again. The margin covers a provider's clock ahead of ours.
    ctx.store()
        .forget_foreign(Utc::now() - LOOK_BACK - chrono::Duration::days(1))
        .await?;
    Ok(recorded)
}

async fn search(ctx: &Ctx, provider: ProviderName) -> Result<usize> {
    let labels = ctx.provider(provider)?.keeps_labels();
    let mut recorded = 0;
    for candidate in created_since(ctx.provider(provider)?, Utc::now() - LOOK_BACK).await? {
        if ctx.store().find_batch(&candidate.id).await?.is_some()
            || ctx.store().is_foreign(&candidate.id).await?
        {
            continue;
        }
        let stray = if labels {
            by_label(ctx, provider, &candidate).await?
        } else {
            candidate.processing_status == ProcessingStatus::Ended
                && examine(ctx, provider, &candidate).await?
        };
        recorded += usize::from(stray);
    }
    Ok(recorded)
}

/// A provider that keeps labels proves a batch ours by its label alone, so a copy is found
/// while it runs and cancelled before it bills the jobs twice; a batch not labelled with one
/// of our batches is someone else's, never read. Whether it was recorded.
async fn by_label(ctx: &Ctx, provider: ProviderName, candidate: &MessageBatch) -> Result<bool> {
    let of = match candidate.label.as_deref() {
        Some(label) => ctx.store().local_batch(label).await?,
        None => None,
    };
    let Some(of) = of else {
        return foreign(ctx, provider, candidate).await;
    };
    let stray = record(ctx, &of.id, candidate).await?;
    if stray {
        cancel_copy(ctx, provider, candidate).await;
    }
    Ok(stray)
}

/// Records a stray as a copy of local batch `of`, unless `of` is still `submitting`:
/// reconciliation settles that one, and may adopt this very batch. Whether it was recorded.
async fn record(ctx: &Ctx, of: &str, candidate: &MessageBatch) -> Result<bool> {
    let stray = ctx
        .store()
        .record_stray(&duplicate_row(of, candidate, STRAY_NOTE))
        .await?;
    if stray {
        tracing::error!(duplicate = %candidate.id, of, "{STRAY_NOTE}");
    }
    Ok(stray)
}

/// Proves an ended batch not on our books ours or someone else's; whether it was recorded.
async fn examine(ctx: &Ctx, provider: ProviderName, candidate: &MessageBatch) -> Result<bool> {
    let named = match read(ctx, provider, candidate).await? {
        Read::Ours(named) => named,
        Read::Foreign => return foreign(ctx, provider, candidate).await,
        Read::Unproved => return Ok(false),
    };
    for (batch, members) in &named.holders {
        if !named.jobs.is_subset(members) {
            continue;
        }
        return record(ctx, &batch.id, candidate).await;
    }
    // Every job is ours, but no one batch of ours sent them all: not a copy of any (our
    // batches are made only from claims, which write their members first).
    tracing::warn!(batch = %candidate.id, "a provider batch names jobs of several of our batches: not ours");
    foreign(ctx, provider, candidate).await
}

/// Remembers someone else's batch, so it is not read again; never recorded.
async fn foreign(ctx: &Ctx, provider: ProviderName, candidate: &MessageBatch) -> Result<bool> {
    ctx.store()
        .mark_foreign(provider, &candidate.id, Utc::now())
        .await?;
    Ok(false)
}

enum Read {
    /// Every job it names was sent by a batch that sent its first.
    Ours(Named),
    /// It names a job none of those batches sent.
    Foreign,
    /// Not readable now, or it named no job: look again next time.
    Unproved,
}

struct Named {
    jobs: HashSet<String>,
    /// The local batches that sent its first job, newest first, with every job each sent.
    holders: Vec<(BatchRecord, HashSet<String>)>,
}

/// Reads a candidate's results only as far as they prove it: someone else's batch is given up
/// at its first job we never sent, so a large file of theirs is not downloaded whole.
async fn read(ctx: &Ctx, provider: ProviderName, candidate: &MessageBatch) -> Result<Read> {
    let mut stream = match ctx.provider(provider)?.batch_results(candidate).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(batch = %candidate.id, error = %e, "cannot read a provider batch's results yet");
            return Ok(Read::Unproved);
        }
    };
    let mut jobs = HashSet::new();
    let mut holders: Option<Vec<(BatchRecord, HashSet<String>)>> = None;
    while let Some(item) = stream.next().await {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                tracing::warn!(batch = %candidate.id, error = %e, "a provider batch's results download failed");
                return Ok(Read::Unproved);
            }
        };
        let Some(job) = job_named(item) else { continue };
        if holders.is_none() {
            let mut sent = Vec::new();
            for batch in ctx.store().batches_holding_job(&job).await? {
                let members = members_of(ctx, &batch.id).await?;
                sent.push((batch, members));
            }
            holders = Some(sent);
        }
        let sent_by_one = holders
            .iter()
            .flatten()
            .any(|(_, members)| members.contains(&job));
        if !sent_by_one {
            return Ok(Read::Foreign);
        }
        jobs.insert(job);
    }
    Ok(match holders {
        Some(holders) => Read::Ours(Named { jobs, holders }),
        None => Read::Unproved,
    })
}
