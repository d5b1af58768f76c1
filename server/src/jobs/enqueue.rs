//! Enqueueing: one job through the group-commit writer, or many in one transaction.

use app::api::validation::FieldError;
use app::api::{BulkEnqueueResponse, Caller, EnqueueRequest, EnqueueResponse};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::to_api_job;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::store::{InsertOutcome, KeyConflicts, NewJob, StoreError};

/// The stores keep microseconds: an answer shows the times a later read will.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn new_job(ctx: &Ctx, caller: &Caller, request: &EnqueueRequest, now: DateTime<Utc>) -> NewJob {
    let payload = Value::Object(request.payload.clone());
    NewJob {
        cost_bound_nanos: ctx
            .prices
            .job_bound_nanos(request.job_type, &payload.to_string()),
        id: uuid::Uuid::now_v7().to_string(),
        owner_id: caller.user_id.clone(),
        owner_name: caller.name.clone(),
        job_type: request.job_type,
        priority: request.priority,
        payload,
        run_after: request.run_after.map(|at| at.trunc_subsecs(6)),
        idempotency_key: request.idempotency_key.clone(),
        request_hash: fingerprint(request),
        callback_url: request.callback_url.clone(),
        created_at: now,
    }
}

/// `http://` callbacks (to this machine, as the parser allows) only when the server allows
/// them: a setting for development and tests.
fn check_callbacks(ctx: &Ctx, requests: &[&EnqueueRequest], bulk: bool) -> Result<()> {
    if ctx.config.webhooks.allow_http_loopback {
        return Ok(());
    }
    let refused: Vec<FieldError> = requests
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let url = r.callback_url.as_deref()?;
            url.get(..7)?.eq_ignore_ascii_case("http://").then(|| {
                let mut loc = vec![json!("body")];
                if bulk {
                    loc.extend([json!("jobs"), json!(i)]);
                }
                loc.push(json!("callback_url"));
                FieldError::new(
                    "url_scheme",
                    loc,
                    "URL scheme should be 'https': this server does not send webhooks over plain http",
                    json!(url),
                )
            })
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(refused))
    }
}

async fn estimated_completion(
    ctx: &Ctx,
    run_after: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<String> {
    Ok(crate::batches::estimate_completion(ctx, run_after, now)
        .await?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

pub async fn enqueue(
    ctx: &Ctx,
    caller: &Caller,
    request: EnqueueRequest,
) -> Result<EnqueueResponse> {
    check_callbacks(ctx, &[&request], false)?;
    if request.callback_url.is_some() {
        crate::webhooks::require_secret(ctx, caller).await?;
    }
    let now = now();
    let new_job = new_job(ctx, caller, &request, now);
    crate::budgets::check_enqueue(ctx, caller, new_job.cost_bound_nanos).await?;
    let request_hash = new_job.request_hash.clone();
    let (record, message) = match ctx.enqueuer.insert(new_job).await? {
        InsertOutcome::Created(record) => {
            crate::metrics::jobs_enqueued(1);
            ctx.changes.jobs_of(&caller.user_id);
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
    let estimated_completion = estimated_completion(ctx, record.run_after, now).await?;
    Ok(EnqueueResponse {
        success: true,
        job: to_api_job(record, true),
        message,
        estimated_completion,
    })
}

/// Enqueues up to 10,000 jobs at once, all or none, in one transaction. A job whose key its
/// owner already used for the same request is that job; for a different request, nothing is
/// enqueued and the answer is a 409 naming the item.
pub async fn enqueue_many(
    ctx: &Ctx,
    caller: &Caller,
    requests: Vec<EnqueueRequest>,
) -> Result<BulkEnqueueResponse> {
    check_callbacks(ctx, &requests.iter().collect::<Vec<_>>(), true)?;
    if requests.iter().any(|r| r.callback_url.is_some()) {
        crate::webhooks::require_secret(ctx, caller).await?;
    }
    let now = now();
    let jobs: Vec<NewJob> = requests
        .iter()
        .map(|r| new_job(ctx, caller, r, now))
        .collect();
    let bound = jobs.iter().map(|j| j.cost_bound_nanos).sum();
    crate::budgets::check_enqueue(ctx, caller, bound).await?;
    let outcomes = match ctx.store().insert_jobs(&jobs, KeyConflicts::Refuse).await {
        Ok(outcomes) => outcomes,
        Err(StoreError::KeyConflict { index }) => {
            return Err(Error::Conflict(format!(
                "jobs[{index}]: this idempotency key was already used for a different request; nothing was enqueued."
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, InsertOutcome::Created(_)))
        .count() as i64;
    let existing = outcomes.len() as i64 - created;
    crate::metrics::jobs_enqueued(created as usize);
    if created > 0 {
        ctx.changes.jobs_of(&caller.user_id);
    }
    let latest_run_after = requests.iter().filter_map(|r| r.run_after).max();
    Ok(BulkEnqueueResponse {
        success: true,
        created,
        existing,
        message: format!(
            "{created} jobs queued; {existing} already existed with their idempotency keys."
        ),
        estimated_completion: estimated_completion(ctx, latest_run_after, now).await?,
        jobs: outcomes
            .into_iter()
            .map(|o| match o {
                InsertOutcome::Created(r) | InsertOutcome::Existing(r) => to_api_job(r, false),
            })
            .collect(),
    })
}

/// Identifies a request after defaults, so a retry with the same key can be told from a new request.
fn fingerprint(request: &EnqueueRequest) -> String {
    let canonical = serde_json::json!([
        request.job_type.as_str(),
        canonical_json(&Value::Object(request.payload.clone())),
        request.priority,
        request.run_after.map(|t| t.timestamp_micros()),
    ]);
    // Jobs without a callback keep the fingerprint they always had.
    let canonical = match &request.callback_url {
        Some(url) => serde_json::json!([canonical, url]),
        None => canonical,
    };
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
