//! Finding what our creates made. Anthropic's batches carry no label, so a provider batch is
//! ours only when its results, once readable, name our jobs: a match on time and size alone
//! could adopt or cancel someone else's batch.
//!
//! - *Reconcile* a `submitting` batch nobody holds (a create whose answer was lost, or a
//!   crash): search its create window. A proved match is adopted (the oldest; any other proved
//!   one is recorded as a duplicate, polled to its end, its bill counted). Candidates still
//!   running are waited for, since they cannot be proved yet. Nothing at all in the window:
//!   the create never landed, so it is sent again.
//! - *Sweep* an accepted batch's window once it has settled: any other provider batch proved
//!   to hold its jobs (a create applied twice, a late copy) is a duplicate.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::lease::{Held, lease_span};
use super::render::Renderer;
use super::submit::{record_duplicate, submit};
use super::window::{self, Offset};
use crate::context::Ctx;
use crate::error::Result;
use crate::events::Happened;
use crate::provider::Provider;
use crate::provider::{
    BatchBodyBuilder, BodyLimits, ListParams, MessageBatch, ProcessingStatus, ResultItem,
};
use crate::store::{BatchRecord, Submission};

/// Answered creates read to estimate the provider's clock.
const CLOCK_SAMPLES: i64 = 20;
/// How far before a create's start a labelled batch is looked for (clocks disagree).
const LABEL_SEARCH_MARGIN: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub adopted: usize,
    pub resubmitted: usize,
    pub duplicates: usize,
    /// Batches whose window holds candidates that cannot be proved yet.
    pub waiting: usize,
}

impl Reconciled {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Reconciles every `submitting` batch nobody holds, then sweeps settled windows.
pub async fn reconcile(ctx: &Ctx) -> Result<Reconciled> {
    let mut report = Reconciled::default();
    for batch in ctx.store().batches_to_reconcile(Utc::now()).await? {
        let Some(held) = Held::take(ctx, &batch.id).await? else {
            continue;
        };
        reconcile_one(ctx, &batch, held, &mut report).await?;
    }
    let settled = Utc::now() - lease_span(ctx);
    for batch in ctx.store().batches_to_sweep(settled).await? {
        sweep(ctx, &batch, &mut report).await?;
    }
    Ok(report)
}

async fn reconcile_one(
    ctx: &Ctx,
    batch: &BatchRecord,
    held: Held,
    report: &mut Reconciled,
) -> Result<()> {
    let found = classify(ctx, batch).await?;
    if let Some((adopted, others)) = found.ours.split_first() {
        // The copies first: once adopted (and swept) the batch is not looked at again, so a
        // crash in between must find them already on the books, not orphaned.
        for other in others {
            let note = "a second provider batch with the same jobs (a create applied twice)";
            record_duplicate(ctx, &batch.id, batch.provider, other, note, true).await?;
            report.duplicates += 1;
        }
        let now = Utc::now();
        let submission = Submission {
            provider_batch_id: adopted.id.clone(),
            provider_created_at: adopted.created_at,
            clock_sample: false,
            submitted_at: adopted.created_at,
            expires_at: adopted.expires_at,
            next_poll_at: now,
            swept: found.waiting == 0,
        };
        let event = Happened::Submitted {
            batch: adopted.id.clone(),
        };
        if !ctx
            .store()
            .record_submission(&batch.id, held.owner(), &submission, &event)
            .await?
        {
            return Ok(());
        }
        tracing::warn!(local = %batch.id, provider = %adopted.id, "adopted a batch whose create answer was lost");
        report.adopted += 1;
        return Ok(());
    }
    if found.waiting > 0 {
        let note = format!(
            "reconciling: {} batches at the provider were created in this batch's create window; \
             waiting for them to end to prove from their results which holds these jobs",
            found.waiting
        );
        ctx.store().note_batch(&batch.id, &note).await?;
        report.waiting += 1;
        // Look again once the lease lapses.
        held.keep_until_it_lapses();
        return Ok(());
    }
    resubmit(ctx, batch, held).await?;
    report.resubmitted += 1;
    Ok(())
}

async fn sweep(ctx: &Ctx, batch: &BatchRecord, report: &mut Reconciled) -> Result<()> {
    let found = classify(ctx, batch).await?;
    if found.waiting > 0 {
        return Ok(());
    }
    for duplicate in &found.ours {
        let note = "another provider batch ran this batch's jobs again";
        record_duplicate(ctx, &batch.id, batch.provider, duplicate, note, true).await?;
        report.duplicates += 1;
    }
    Ok(ctx.store().mark_swept(&batch.id, Utc::now()).await?)
}

/// The provider batches of a batch's create window, sorted out.
struct Found {
    /// Proved to hold this batch's jobs, oldest first.
    ours: Vec<MessageBatch>,
    /// Still running, so not provable yet.
    waiting: usize,
}

async fn classify(ctx: &Ctx, batch: &BatchRecord) -> Result<Found> {
    // A provider that keeps our label proves its batches ours at once, running or not.
    let provider = ctx.provider(batch.provider)?;
    if provider.keeps_labels() {
        let since = batch.submit_started_at.unwrap_or(batch.created_at) - LABEL_SEARCH_MARGIN;
        let mut ours = Vec::new();
        for candidate in created_since(provider, since).await? {
            if candidate.label.as_deref() == Some(batch.id.as_str())
                && ctx.store().find_batch(&candidate.id).await?.is_none()
            {
                ours.push(candidate);
            }
        }
        oldest_first(&mut ours);
        return Ok(Found { ours, waiting: 0 });
    }
    let members = members_of(ctx, &batch.id).await?;
    let mut found = Found {
        ours: Vec::new(),
        waiting: 0,
    };
    for candidate in window(ctx, batch, members.len() as i64).await? {
        if candidate.processing_status != ProcessingStatus::Ended {
            found.waiting += 1;
            continue;
        }
        match named_jobs(provider, &candidate).await {
            // One job that is not this batch's proves the candidate someone else's.
            Some(ids) if !ids.is_subset(&members) => {}
            Some(ids) if !ids.is_empty() => found.ours.push(candidate),
            // Unreadable for now, or a read that named no job (a results file cut short at
            // its start proves nothing either way): try again later.
            _ => found.waiting += 1,
        }
    }
    oldest_first(&mut found.ours);
    Ok(found)
}

/// The one to adopt comes first.
fn oldest_first(batches: &mut [MessageBatch]) {
    batches.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// Provider batches created in the batch's create window (`window`) that we do not know
/// yet, no larger than the batch.
async fn window(ctx: &Ctx, batch: &BatchRecord, members: i64) -> Result<Vec<MessageBatch>> {
    let samples = ctx
        .store()
        .clock_samples(batch.provider, CLOCK_SAMPLES)
        .await?;
    let offset = Offset::from_samples(&samples);
    let window = window::of(batch, &offset, Utc::now());
    let mut found = Vec::new();
    for candidate in created_since(ctx.provider(batch.provider)?, window.opened).await? {
        let size = candidate.request_counts.total();
        if window.holds(candidate.created_at)
            && (1..=members).contains(&size)
            && ctx.store().find_batch(&candidate.id).await?.is_none()
        {
            found.push(candidate);
        }
    }
    Ok(found)
}

/// The provider's batches created since `since`, newest first: its listing, read back as far
/// as that.
pub(super) async fn created_since(
    provider: &dyn Provider,
    since: DateTime<Utc>,
) -> Result<Vec<MessageBatch>> {
    let mut params = ListParams {
        limit: Some(100),
        ..ListParams::default()
    };
    let mut found = Vec::new();
    loop {
        let page = provider.list_batches(params.clone()).await?;
        for batch in page.data {
            if batch.created_at < since {
                return Ok(found);
            }
            found.push(batch);
        }
        if !page.has_more {
            return Ok(found);
        }
        params.after_id = page.last_id;
    }
}

/// Every job the local batch was ever asked to run: what proves a provider batch its copy.
pub(super) async fn members_of(ctx: &Ctx, batch_id: &str) -> Result<HashSet<String>> {
    Ok(ctx
        .store()
        .batch_members(batch_id)
        .await?
        .into_iter()
        .collect())
}

/// The jobs an ended provider batch names in its results, or `None` if they cannot be read now.
async fn named_jobs(provider: &dyn Provider, candidate: &MessageBatch) -> Option<HashSet<String>> {
    let mut stream = match provider.batch_results(candidate).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(batch = %candidate.id, error = %e, "cannot read a candidate's results yet");
            return None;
        }
    };
    let mut ids = HashSet::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(item) => ids.extend(job_named(item)),
            Err(e) => {
                tracing::warn!(batch = %candidate.id, error = %e, "a candidate's results download failed");
                return None;
            }
        }
    }
    Some(ids)
}

/// The job a results line names, when its id is legible.
pub(super) fn job_named(item: ResultItem) -> Option<String> {
    match item {
        ResultItem::Line(line) => Some(line.custom_id),
        ResultItem::Unreadable(u) => u.custom_id,
    }
}

/// Nothing in the window: the create never landed. Sends the jobs still waiting in the batch.
async fn resubmit(ctx: &Ctx, batch: &BatchRecord, held: Held) -> Result<()> {
    let jobs = ctx.store().batch_queued_jobs(&batch.id).await?;
    let now = Utc::now();
    if jobs.is_empty() {
        let event = Happened::Returned {
            reason: "nothing left to submit".into(),
        };
        ctx.store()
            .release_batch(
                &batch.id,
                held.owner(),
                "nothing left to submit: every job was cancelled",
                &event,
                now,
            )
            .await?;
        return Ok(());
    }
    // The provider's own limits, not our caps (`max_batch_requests`, `max_batch_mb`): these
    // jobs were flushed as one batch already, and a cap lowered since must not keep them from
    // being sent.
    let mut body = BatchBodyBuilder::new().within(BodyLimits::of(batch.provider));
    let mut renderer = Renderer::default();
    renderer.load(ctx, &jobs).await?;
    for job in &jobs {
        // A context deleted meanwhile cannot be: its jobs were waiting, so deletion was refused.
        let Some((_, rendered)) = renderer.render(ctx, job) else {
            continue;
        };
        body.push_in(&job.id, &rendered.params, rendered.cache_key.as_deref())?;
    }
    if !ctx
        .store()
        .start_submit(&batch.id, held.owner(), now)
        .await?
    {
        return Ok(());
    }
    tracing::warn!(local = %batch.id, jobs = jobs.len(), "no provider batch holds these jobs: submitting again");
    match submit(ctx, &batch.id, batch.provider, body.finish()?, held).await {
        Ok(_) => Ok(()),
        // Refused or uncertain: recorded on the batch, reconciled again later.
        Err(crate::error::Error::Provider(_) | crate::error::Error::SubmissionUncertain { .. }) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}
