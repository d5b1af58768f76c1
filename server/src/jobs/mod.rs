//! Use cases of jobs, one per action, each with the caller's identity. The REST handlers and
//! the dashboard's server functions both call these.

mod enqueue;
mod export;
mod view;

use app::api::validation::MAX_BULK_CANCEL;
use std::collections::{HashMap, HashSet};

use app::api::{
    BulkCancelItem, BulkCancelResponse, Caller, CancelResponse, DailyCost, Job, JobDetail,
    JobEventView, JobList, JobStatus, ListQuery, ProviderSpend, RetryItem, RetryRequest,
    RetryResponse, Stats, nanos_to_usd,
};
use chrono::Utc;
use serde_json::Value;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::events::Happened;
use crate::store::{CancelOutcome, JobRecord, Visibility};

pub use enqueue::{Prepared, enqueue, enqueue_many, prepare_many};
pub use export::{daily_costs_csv, jobs_csv};
pub use view::{to_api_job, to_event_view};

const NOT_FOUND: &str = "Job not found";

/// The one visibility rule: a trader sees their own jobs, an admin sees all.
pub fn visibility(caller: &Caller) -> Visibility {
    if caller.is_admin() {
        Visibility::All
    } else {
        Visibility::Owner(caller.user_id.clone())
    }
}

pub async fn list(ctx: &Ctx, caller: &Caller, query: ListQuery) -> Result<JobList> {
    let page = ctx.store().list_jobs(&visibility(caller), &query).await?;
    Ok(JobList {
        jobs: page
            .jobs
            .into_iter()
            .map(|r| to_api_job(r, false))
            .collect(),
        total_count: page.total_count,
        total_count_capped: page.total_count_capped,
        pending_count: page.pending_count,
        processing_count: page.processing_count,
        next_cursor: page.next_cursor.map(|c| c.encode()),
    })
}

pub async fn get(ctx: &Ctx, caller: &Caller, job_id: &str) -> Result<Job> {
    find(ctx, caller, job_id).await.map(|r| to_api_job(r, true))
}

pub async fn cancel(ctx: &Ctx, caller: &Caller, job_id: &str) -> Result<CancelResponse> {
    match ctx
        .store()
        .cancel_job(job_id, &visibility(caller), Utc::now())
        .await?
    {
        CancelOutcome::Cancelled { job, .. } => {
            ctx.changes.jobs_of(&job.owner_id);
            Ok(CancelResponse {
                success: true,
                cancelled: true,
            })
        }
        CancelOutcome::NotFound => Err(Error::NotFound(NOT_FOUND.into())),
        CancelOutcome::Terminal(status) => Err(Error::Conflict(format!(
            "Job is already {status}; only pending or processing jobs can be cancelled."
        ))),
    }
}

/// The structured result of a completed job.
pub async fn result(ctx: &Ctx, caller: &Caller, job_id: &str) -> Result<Value> {
    let record = find(ctx, caller, job_id).await?;
    match (record.status, record.result) {
        (JobStatus::Completed, Some(result)) => Ok(result),
        (JobStatus::Failed, _) => Err(Error::Conflict(format!(
            "Job failed, so it has no result: {}",
            record
                .error_message
                .as_deref()
                .unwrap_or("no reason recorded")
        ))),
        (status, _) => Err(Error::Conflict(format!(
            "Job is {status}; a result exists only once it is completed."
        ))),
    }
}

/// A job's history, oldest first, for the dashboard's timeline.
pub async fn events(ctx: &Ctx, caller: &Caller, job_id: &str) -> Result<Vec<JobEventView>> {
    let job = find(ctx, caller, job_id).await?;
    let events = ctx.store().job_events(&job.id).await?;
    Ok(events.into_iter().map(to_event_view).collect())
}

/// A job, its history and its result, as the job page shows them.
pub async fn detail(ctx: &Ctx, caller: &Caller, job_id: &str) -> Result<JobDetail> {
    let record = find(ctx, caller, job_id).await?;
    let events = ctx.store().job_events(&record.id).await?;
    let result = (record.status == JobStatus::Completed)
        .then(|| record.result.clone())
        .flatten();
    let estimated_completion = match record.status {
        JobStatus::Pending => {
            Some(crate::batches::estimate_completion(ctx, record.run_after, Utc::now()).await?)
        }
        _ => None,
    };
    let cost_bound_nanos = match record.status {
        JobStatus::Pending | JobStatus::Processing => Some(cost_bound(ctx, caller, &record).await?),
        _ => None,
    };
    Ok(JobDetail {
        job: to_api_job(record, true),
        events: events.into_iter().map(to_event_view).collect(),
        result,
        estimated_completion,
        cost_bound_nanos,
    })
}

/// The most an unbilled job may cost, reckoned as its enqueue did (its context written to
/// the cache at the dearest price), with today's route.
async fn cost_bound(ctx: &Ctx, caller: &Caller, record: &JobRecord) -> Result<i64> {
    let payload = record
        .payload
        .as_ref()
        .map(Value::to_string)
        .unwrap_or_default();
    let mut contexts = crate::contexts::ForJobs::default();
    let context = match &record.context_id {
        Some(id) => contexts.get(ctx, caller, id).await?,
        None => None,
    };
    Ok(ctx
        .prices
        .job_bound_nanos(record.job_type, &payload, context))
}

/// Cancels each job the caller may see; one answer per id, never failing the lot.
pub async fn cancel_many(
    ctx: &Ctx,
    caller: &Caller,
    job_ids: &[String],
) -> Result<BulkCancelResponse> {
    if job_ids.len() > MAX_BULK_CANCEL {
        return Err(Error::BadInput(format!(
            "cancel at most {MAX_BULK_CANCEL} jobs at once"
        )));
    }
    let mut results = Vec::with_capacity(job_ids.len());
    for id in job_ids {
        let item = match cancel(ctx, caller, id).await {
            Ok(_) => BulkCancelItem {
                job_id: id.clone(),
                cancelled: true,
                detail: None,
            },
            Err(Error::NotFound(detail) | Error::Conflict(detail)) => BulkCancelItem {
                job_id: id.clone(),
                cancelled: false,
                detail: Some(detail),
            },
            Err(other) => return Err(other),
        };
        results.push(item);
    }
    Ok(BulkCancelResponse {
        cancelled: results.iter().filter(|r| r.cancelled).count() as i64,
        results,
    })
}

/// Failed jobs back to pending for one more attempt, same job (admins). Each id answers for
/// itself: retried, not found, or not failed. A job that was billed already is billed again
/// when it runs again, so retrying one needs `confirm_rebill`; without it nothing is retried.
pub async fn retry(ctx: &Ctx, caller: &Caller, request: &RetryRequest) -> Result<RetryResponse> {
    crate::access::require_admin(caller)?;
    let job_ids = &request.job_ids;
    let mut found = HashMap::with_capacity(job_ids.len());
    for id in job_ids {
        if let Some(job) = ctx.store().get_job(id, &Visibility::All).await? {
            found.insert(id.clone(), job);
        }
    }
    let billed: Vec<&JobRecord> = found
        .values()
        .filter(|j| j.status == JobStatus::Failed && j.bill.cost_nanos > 0)
        .collect();
    if !billed.is_empty() && !request.confirm_rebill {
        let total: i64 = billed.iter().map(|j| j.bill.cost_nanos).sum();
        let named = billed.iter().take(3);
        // The total and its parts to one precision, as a column.
        let precision =
            app::api::Precision::fitting(named.clone().map(|j| j.bill.cost_nanos).chain([total]));
        let named: Vec<String> = named
            .map(|j| format!("{} ({})", j.id, precision.show(j.bill.cost_nanos)))
            .collect();
        return Err(Error::RebillNotConfirmed(format!(
            "{} of these jobs were billed already ({} in all: {}{}). Sent again, they are billed again. \
             Nothing was retried; to retry them anyway, confirm the new charge (\"confirm_rebill\": true).",
            billed.len(),
            precision.show(total),
            named.join(", "),
            if billed.len() > 3 { ", …" } else { "" },
        )));
    }
    let happened = Happened::Requeued {
        by: caller.name.clone(),
    };
    let retried: HashSet<String> = ctx
        .store()
        .retry_failed(
            job_ids,
            &happened,
            Utc::now(),
            &crate::store::AuditEntry::by(
                caller,
                app::api::AuditAction::Retry,
                Some(match job_ids.as_slice() {
                    [one] => one.clone(),
                    many => format!("{} jobs", many.len()),
                }),
                retry_detail(job_ids, billed.len()),
            ),
        )
        .await?
        .into_iter()
        .collect();
    ctx.changes.jobs_of_each(
        found
            .values()
            .filter(|j| retried.contains(&j.id))
            .map(|j| j.owner_id.clone()),
    );
    let results: Vec<RetryItem> = job_ids
        .iter()
        .map(|id| {
            let detail = if retried.contains(id) {
                None
            } else {
                Some(match found.get(id) {
                    // Failed, carrying a context, yet not retried: the store keeps a job
                    // whose context's text is gone.
                    Some(job) if job.status == JobStatus::Failed && job.context_id.is_some() => {
                        "its context was deleted".to_string()
                    }
                    Some(job) => format!("the job is {}, not failed", job.status),
                    None => NOT_FOUND.to_string(),
                })
            };
            RetryItem {
                job_id: id.clone(),
                retried: detail.is_none(),
                detail,
            }
        })
        .collect();
    Ok(RetryResponse {
        retried: results.iter().filter(|r| r.retried).count() as i64,
        results,
    })
}

/// The audit entry's detail: the first ids of a retry of several, and what was re-billed.
fn retry_detail(job_ids: &[String], rebilled: usize) -> Option<String> {
    let mut parts = Vec::new();
    if job_ids.len() > 1 {
        let shown: Vec<&str> = job_ids.iter().take(5).map(String::as_str).collect();
        let more = if job_ids.len() > 5 { ", …" } else { "" };
        parts.push(format!("{}{more}", shown.join(", ")));
    }
    if rebilled > 0 {
        parts.push(format!("{rebilled} billed before, confirmed to bill again"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// What the visible jobs cost per day over the last `days` days, by type and owner.
pub async fn daily_costs(ctx: &Ctx, caller: &Caller, days: i64) -> Result<Vec<DailyCost>> {
    let since = Utc::now() - chrono::Duration::days(days.clamp(1, 366));
    let rows = ctx.store().daily_costs(&visibility(caller), since).await?;
    Ok(rows
        .into_iter()
        .map(|r| DailyCost {
            day: chrono::DateTime::from_timestamp(r.day * 86_400, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            job_type: r.job_type,
            owner: r.owner_name,
            jobs: r.jobs,
            cost_usd: nanos_to_usd(r.bill.cost_nanos),
            standard_cost_usd: nanos_to_usd(r.bill.standard_cost_nanos),
            cost_nanos: r.bill.cost_nanos,
            standard_cost_nanos: r.bill.standard_cost_nanos,
            uncached_cost_nanos: r.bill.uncached_cost_nanos,
            cache_read_tokens: r.bill.cache_read_tokens,
            cache_write_tokens: r.bill.cache_write_tokens,
            input_tokens: r.bill.input_tokens,
        })
        .collect())
}

pub async fn stats(ctx: &Ctx, caller: &Caller) -> Result<Stats> {
    let s = ctx.store().stats(&visibility(caller)).await?;
    let by_provider = ctx
        .store()
        .provider_costs(&visibility(caller))
        .await?
        .into_iter()
        .map(|p| ProviderSpend {
            provider: p.provider,
            jobs: p.jobs,
            tokens_used: p.bill.tokens(),
            cost_usd: nanos_to_usd(p.bill.cost_nanos),
            standard_cost_usd: nanos_to_usd(p.bill.standard_cost_nanos),
            savings_usd: nanos_to_usd(p.bill.savings_nanos()),
        })
        .collect();
    Ok(Stats {
        total_jobs_queued: s.total,
        pending_jobs: s.pending,
        processing_jobs: s.processing,
        completed_jobs: s.completed,
        failed_jobs: s.failed,
        total_tokens_used: s.bill.tokens(),
        total_cost_usd: nanos_to_usd(s.bill.cost_nanos),
        total_savings_usd: nanos_to_usd(s.bill.savings_nanos()),
        avg_processing_time_hours: s.avg_completion_micros.map_or(0.0, |us| us / 3.6e9),
        total_saved_by_batching_usd: nanos_to_usd(s.bill.saved_by_batching_nanos()),
        total_saved_by_caching_usd: nanos_to_usd(s.bill.saved_by_caching_nanos()),
        cache_read_tokens: s.bill.cache_read_tokens,
        cache_write_tokens: s.bill.cache_write_tokens,
        by_provider,
    })
}

async fn find(ctx: &Ctx, caller: &Caller, job_id: &str) -> Result<JobRecord> {
    ctx.store()
        .get_job(job_id, &visibility(caller))
        .await?
        .ok_or_else(|| Error::NotFound(NOT_FOUND.into()))
}
