//! Use cases of jobs, one per action, each with the caller's identity. The REST handlers and
//! the dashboard's server functions both call these.

mod view;

use app::api::validation::MAX_BULK_CANCEL;
use app::api::{
    BulkCancelItem, BulkCancelResponse, Caller, CancelResponse, DailyCost, EnqueueRequest,
    EnqueueResponse, Job, JobDetail, JobEventView, JobList, JobStatus, ListQuery, Stats,
    nanos_to_usd,
};
use chrono::{SubsecRound, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::store::{CancelOutcome, InsertOutcome, JobRecord, NewJob, Visibility};

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

pub async fn enqueue(
    ctx: &Ctx,
    caller: &Caller,
    request: EnqueueRequest,
) -> Result<EnqueueResponse> {
    // The stores keep microseconds: the answer shows what a later read will.
    let now = Utc::now().trunc_subsecs(6);
    let new_job = NewJob {
        id: uuid::Uuid::now_v7().to_string(),
        owner_id: caller.user_id.clone(),
        owner_name: caller.name.clone(),
        job_type: request.job_type,
        priority: request.priority,
        payload: Value::Object(request.payload.clone()),
        run_after: request.run_after.map(|at| at.trunc_subsecs(6)),
        idempotency_key: request.idempotency_key.clone(),
        request_hash: fingerprint(&request),
        created_at: now,
    };
    let request_hash = new_job.request_hash.clone();
    let (record, message) = match ctx.enqueuer.insert(new_job).await? {
        InsertOutcome::Created(record) => {
            let message = match record.run_after {
                Some(at) if at > now => format!(
                    "Job queued; it will not be sent before {}.",
                    at.to_rfc3339()
                ),
                _ => "Job queued for the next batch.".to_string(),
            };
            (record, message)
        }
        InsertOutcome::Existing(record) if record.request_hash == request_hash => (
            record,
            "A job with this idempotency key already exists; this is that job.".to_string(),
        ),
        InsertOutcome::Existing(_) => {
            return Err(Error::Conflict(
                "This idempotency key was already used for a different request; use a new key for a new job.".into(),
            ));
        }
    };
    let estimated_completion = crate::batches::estimate_completion(ctx, record.run_after, now)
        .await?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(EnqueueResponse {
        success: true,
        job: to_api_job(record, true),
        message,
        estimated_completion,
    })
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
        CancelOutcome::Cancelled { .. } => Ok(CancelResponse {
            success: true,
            cancelled: true,
        }),
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
    Ok(JobDetail {
        job: to_api_job(record, true),
        events: events.into_iter().map(to_event_view).collect(),
        result,
    })
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
            cost_usd: nanos_to_usd(r.cost_nanos),
            standard_cost_usd: nanos_to_usd(r.standard_cost_nanos),
        })
        .collect())
}

pub async fn stats(ctx: &Ctx, caller: &Caller) -> Result<Stats> {
    let s = ctx.store().stats(&visibility(caller)).await?;
    Ok(Stats {
        total_jobs_queued: s.total,
        pending_jobs: s.pending,
        processing_jobs: s.processing,
        completed_jobs: s.completed,
        failed_jobs: s.failed,
        total_tokens_used: s.tokens,
        total_cost_usd: nanos_to_usd(s.cost_nanos),
        total_savings_usd: nanos_to_usd(s.standard_cost_nanos - s.cost_nanos),
        avg_processing_time_hours: s.avg_completion_micros.map_or(0.0, |us| us / 3.6e9),
    })
}

async fn find(ctx: &Ctx, caller: &Caller, job_id: &str) -> Result<JobRecord> {
    ctx.store()
        .get_job(job_id, &visibility(caller))
        .await?
        .ok_or_else(|| Error::NotFound(NOT_FOUND.into()))
}

/// Identifies a request after defaults, so a retry with the same key can be told from a new request.
fn fingerprint(request: &EnqueueRequest) -> String {
    let canonical = serde_json::json!([
        request.job_type.as_str(),
        canonical_json(&Value::Object(request.payload.clone())),
        request.priority,
        request.run_after.map(|t| t.timestamp_micros()),
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// JSON text with object keys sorted at every level, whatever map order serde_json was built with.
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a = json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": null}});
        let b = json!({"a": {"x": null, "y": [1, {"c": 3, "d": 2}]}, "b": 1});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_ne!(canonical_json(&a), canonical_json(&json!({"b": 2})));
    }
}
