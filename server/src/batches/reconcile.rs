//! The reconciliation rule for batches left `submitting` (a crash or a lost answer between
//! the create call and recording the provider's id). A batch carries no label, so match the
//! provider's batches created after our local start time with the same request count.

use chrono::{DateTime, Duration, Utc};

use super::flush::submit;
use crate::context::Ctx;
use crate::error::Result;
use crate::provider::{ListParams, MessageBatch};
use crate::store::{BatchRecord, Submission};
use crate::templates;

/// Clocks differ: look this far before the local start time.
const CLOCK_SKEW: Duration = Duration::minutes(5);

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub adopted: usize,
    pub resubmitted: usize,
    pub duplicates_cancelled: usize,
}

/// Reconciles every `submitting` batch created before `stale_before`.
pub async fn reconcile_stale(ctx: &Ctx, stale_before: DateTime<Utc>) -> Result<Reconciled> {
    let mut report = Reconciled::default();
    for batch in ctx.store().submitting_batches(stale_before).await? {
        let matches = provider_matches(ctx, &batch).await?;
        match matches.as_slice() {
            [] => {
                resubmit(ctx, &batch).await?;
                report.resubmitted += 1;
            }
            [only] => {
                adopt(ctx, &batch, only).await?;
                report.adopted += 1;
            }
            [newest, others @ ..] => {
                tracing::error!(
                    local = %batch.id, adopted = %newest.id, duplicates = ?others.iter().map(|b| &b.id).collect::<Vec<_>>(),
                    "several provider batches match one local batch: adopting the newest and cancelling the others"
                );
                adopt(ctx, &batch, newest).await?;
                for other in others {
                    ctx.provider.cancel_batch(&other.id).await?;
                    report.duplicates_cancelled += 1;
                }
                report.adopted += 1;
            }
        }
    }
    Ok(report)
}

/// Provider batches that could be this one, newest first. The listing is read back until it
/// passes the local start time (less the skew), so "none" means none.
async fn provider_matches(ctx: &Ctx, batch: &BatchRecord) -> Result<Vec<MessageBatch>> {
    let since = batch.created_at - CLOCK_SKEW;
    let mut params = ListParams {
        limit: Some(100),
        ..ListParams::default()
    };
    let mut found = Vec::new();
    loop {
        let page = ctx.provider.list_batches(params.clone()).await?;
        let mut passed_window = false;
        for candidate in page.data {
            if candidate.created_at < since {
                passed_window = true;
                break;
            }
            let same_size = candidate.request_counts.total() == batch.job_count;
            if same_size && ctx.store().find_batch(&candidate.id).await?.is_none() {
                found.push(candidate);
            }
        }
        if passed_window || !page.has_more {
            return Ok(found);
        }
        params.after_id = page.last_id;
    }
}

async fn adopt(ctx: &Ctx, batch: &BatchRecord, remote: &MessageBatch) -> Result<()> {
    let now = Utc::now();
    let submission = Submission {
        provider_batch_id: remote.id.clone(),
        job_count: batch.job_count,
        submitted_at: remote.created_at,
        expires_at: remote.expires_at,
        next_poll_at: now,
    };
    ctx.store().record_submission(&batch.id, submission).await?;
    tracing::warn!(local = %batch.id, provider = %remote.id, "adopted a batch whose submission was not recorded");
    Ok(())
}

async fn resubmit(ctx: &Ctx, batch: &BatchRecord) -> Result<()> {
    let jobs = ctx.store().batch_queued_jobs(&batch.id).await?;
    if jobs.is_empty() {
        ctx.store()
            .release_batch(&batch.id, "nothing left to submit", Utc::now())
            .await?;
        return Ok(());
    }
    let mut requests = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let model = ctx.prices.model_for(job.job_type);
        requests.push(templates::render(&job.id, job.job_type, &job.payload, model)?.request);
    }
    tracing::warn!(local = %batch.id, jobs = jobs.len(), "no provider batch matches: submitting again");
    submit(ctx, &batch.id, requests).await.map(|_| ())
}
