//! Use cases of the batch loop: flush, poll, reconcile, and the estimates they feed.
//! Admins (over REST and the dashboard) and the scheduler call the same functions; each
//! checks its caller itself, so no entry point can forget to.

mod cadence;
mod flush;
mod ingest;
mod lease;
mod outcome;
mod poll;
mod reconcile;
mod release;
mod render;
mod strays;
mod submit;
mod window;

use app::api::{BatchList, BatchView, Caller, JobOutcome, nanos_to_usd};
use chrono::{DateTime, Utc};

use crate::access::require_admin;
use crate::context::Ctx;
use crate::error::Result;
use crate::store::BatchRecord;

pub use flush::{auto_flush, flush, preview};

/// The provider's word for a running batch, as the store keeps it.
impl From<crate::provider::ProcessingStatus> for crate::store::BatchStatus {
    fn from(status: crate::provider::ProcessingStatus) -> Self {
        use crate::provider::ProcessingStatus;
        match status {
            ProcessingStatus::InProgress => Self::InProgress,
            ProcessingStatus::Canceling => Self::Canceling,
            ProcessingStatus::Ended => Self::Ended,
        }
    }
}
pub use poll::{poll, poll_due, poll_soon};
pub use reconcile::{Reconciled, reconcile};
pub use release::{delete_leftover_uploads, release_pending};
pub use strays::find_strays;

/// What a task of a use case's own gave back: its panic carried on, its cancelling (only at
/// shutdown) an error.
fn joined<T>(joined: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    match joined {
        Ok(value) => Ok(value),
        Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
        Err(failed) => Err(crate::store::StoreError::Unavailable(failed.to_string()).into()),
    }
}

/// Anthropic says most batches end within an hour; until we have history, assume that.
const PRIOR_BATCH_SECONDS: f64 = 3600.0;
/// How many recent batches the estimate looks at.
const HISTORY: i64 = 20;

/// When a job enqueued now (or due at `run_after`) should have its result: the next flush,
/// plus the median duration of recent batches (or the prior, without history).
pub async fn estimate_completion(
    ctx: &Ctx,
    run_after: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>> {
    let typical = match ctx.caches.batch_duration.get(&()) {
        Some(typical) => typical,
        None => {
            let mut durations = ctx.store().recent_batch_durations(HISTORY).await?;
            durations.sort_by(f64::total_cmp);
            let typical = durations
                .get(durations.len() / 2)
                .copied()
                .unwrap_or(PRIOR_BATCH_SECONDS);
            ctx.caches.batch_duration.insert((), typical);
            typical
        }
    };
    let start = run_after.map_or(now, |at| at.max(now));
    let wait = chrono::Duration::from_std(ctx.config.flush_interval()).unwrap_or_default()
        + chrono::Duration::milliseconds((typical * 1000.0) as i64);
    // Capped at the end of year 9999: a time past it has no RFC 3339 form.
    let latest = app::api::validation::latest_datetime();
    Ok(start.checked_add_signed(wait).unwrap_or(latest).min(latest))
}

/// The newest batches (admins).
pub async fn list(ctx: &Ctx, caller: &Caller, limit: i64) -> Result<BatchList> {
    require_admin(caller)?;
    let batches = ctx.store().list_batches(limit).await?;
    let ids: Vec<String> = batches
        .iter()
        .filter_map(|b| b.provider_batch_id.clone())
        .collect();
    let mut outcomes: std::collections::HashMap<String, Vec<JobOutcome>> = Default::default();
    for (batch, status, jobs) in ctx.store().batch_outcomes(&ids).await? {
        outcomes
            .entry(batch)
            .or_default()
            .push(JobOutcome { status, jobs });
    }
    let now = Utc::now();
    let stuck_after = ctx.config.batch.stuck_after_failures;
    Ok(BatchList {
        batches: batches
            .into_iter()
            .map(|b| {
                let mut ours = b
                    .provider_batch_id
                    .as_ref()
                    .and_then(|id| outcomes.remove(id))
                    .unwrap_or_default();
                ours.sort_by_key(|o| o.status);
                view(b, ours, now, stuck_after)
            })
            .collect(),
    })
}

fn view(
    b: BatchRecord,
    job_outcomes: Vec<JobOutcome>,
    now: DateTime<Utc>,
    stuck_after: i64,
) -> BatchView {
    BatchView {
        job_outcomes,
        age_seconds: (b.ended_at.unwrap_or(now) - b.submitted_at.unwrap_or(b.created_at))
            .num_seconds(),
        batch_id: b.provider_batch_id,
        provider: Some(b.provider),
        local_id: b.id,
        status: b.status.as_str().to_string(),
        jobs_count: b.job_count,
        estimated_tokens: b.estimated_tokens,
        created_at: b.created_at,
        submitted_at: b.submitted_at,
        ended_at: b.ended_at,
        expires_at: b.expires_at,
        request_counts: b.request_counts,
        results_collected: b.results_collected,
        error: b.error,
        poll_failures: b.poll_failures,
        stuck: b.poll_failures >= stuck_after,
        duplicate_of: b.duplicate_of,
        billed_tokens: b.billed_tokens,
        billed_cost_usd: nanos_to_usd(b.billed_cost_nanos),
        unaccounted_results: b.unaccounted_results,
    }
}
