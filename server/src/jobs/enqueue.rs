//! Enqueueing: one job through the group-commit writer, or many in one transaction.

use app::api::validation::{FieldError, Validated};
use app::api::{BulkEnqueueResponse, Caller, EnqueueRequest, EnqueueResponse, count_of_jobs};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::to_api_job;
use crate::context::Ctx;
use crate::contexts::ForJobs;
use crate::error::{Error, Result};
use crate::store::{InsertOutcome, JobRecord, KeyConflicts, NewJob, StoreError, Visibility};
use crate::templates::SharedContext;

/// The stores keep microseconds: an answer shows the times a later read will.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A payload as compact JSON text at its exact size: a bulk enqueue holds thousands at once,
/// and a string grown by doubling can take twice its length.
fn payload_text(payload: &serde_json::Map<String, Value>) -> String {
    let mut text = serde_json::to_string(payload).expect("a JSON object serializes");
    text.shrink_to_fit();
    text
}

/// The job a request makes, with its payload as compact text (the request's values are not
/// kept: a bulk enqueue holds thousands of these at once). Its cost bound counts the context
/// its request carries, written to the cache at the dearest price.
fn new_job(
    ctx: &Ctx,
    caller: &Caller,
    request: &EnqueueRequest,
    context: Option<&SharedContext>,
    now: DateTime<Utc>,
) -> NewJob {
    let payload = payload_text(&request.payload);
    NewJob {
        cost_bound_nanos: ctx
            .prices
            .job_bound_nanos(request.job_type, &payload, context),
        context_id: context.map(|c| c.id.clone()),
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

/// Callbacks the server may not send to: `http://` unless the server allows it (a setting for
/// development and tests), and any address that is not public, written as an IP in any form
/// or as a name that is this machine (names are checked again for the address actually
/// dialled). `at` is the item's place in a bulk body.
fn check_callback(ctx: &Ctx, request: &EnqueueRequest, at: Option<usize>) -> Option<FieldError> {
    let url = request.callback_url.as_deref()?;
    let mut loc = vec![json!("body")];
    if let Some(i) = at {
        loc.extend([json!("jobs"), json!(i)]);
    }
    loc.push(json!("callback_url"));
    let plain_http = url.get(..7)?.eq_ignore_ascii_case("http://");
    if plain_http && !ctx.config.webhooks.allow_http_loopback {
        return Some(FieldError::new(
            "url_scheme",
            loc,
            "URL scheme should be 'https': this server does not send webhooks over plain http",
            json!(url),
        ));
    }
    if url::Url::parse(url).is_err() {
        return Some(FieldError::new(
            "url_parsing",
            loc,
            "Input should be a valid URL: https://host/path in ASCII, without spaces or credentials",
            json!(url),
        ));
    }
    let why = ctx.webhooks.refuses_url(url)?;
    Some(FieldError::new(
        "url_host",
        loc,
        format!(
            "URL host is not allowed: {why}. Webhooks go only to public addresses (an operator may \
             allow internal networks with AI_BATCH_WEBHOOK_ALLOW_NETWORKS)"
        ),
        json!(url),
    ))
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

/// What an existing job answers to a request that reuses its key: itself, for the same
/// request; a conflict for another.
fn same_request(existing: JobRecord, request_hash: &str) -> Result<JobRecord> {
    if existing.request_hash == request_hash {
        Ok(existing)
    } else {
        Err(Error::Conflict(
            "This idempotency key was already used for a different request; use a new key for a new job.".into(),
        ))
    }
}

pub async fn enqueue(
    ctx: &Ctx,
    caller: &Caller,
    request: EnqueueRequest,
) -> Result<EnqueueResponse> {
    if let Some(refused) = check_callback(ctx, &request, None) {
        return Err(Error::Validation(vec![refused]));
    }
    if request.callback_url.is_some() {
        crate::webhooks::require_secret(ctx, caller).await?;
    }
    let now = now();
    let mut contexts = ForJobs::default();
    let context = match &request.context_id {
        None => None,
        Some(id) => Some(
            contexts
                .get(ctx, caller, id)
                .await?
                .ok_or_else(|| Error::Validation(vec![unknown_context(None, id)]))?,
        ),
    };
    let new_job = new_job(ctx, caller, &request, context, now);
    // A retry of a job that exists is that job, whatever the budget says now.
    if let Some(key) = &request.idempotency_key
        && let Some(existing) = ctx
            .store()
            .jobs_by_keys(&caller.user_id, std::slice::from_ref(key))
            .await?
            .pop()
    {
        let existing = ctx
            .store()
            .get_job(&existing.id, &Visibility::Owner(caller.user_id.clone()))
            .await?
            .unwrap_or(existing);
        return answer(
            ctx,
            same_request(existing, &new_job.request_hash)?,
            now,
            EXISTS,
        )
        .await;
    }
    crate::budgets::check_enqueue(ctx, caller, new_job.cost_bound_nanos).await?;
    let request_hash = new_job.request_hash.clone();
    let inserted = match ctx.enqueuer.insert(new_job).await {
        Err(StoreError::ContextGone { .. }) => {
            return Err(Error::Conflict(
                "The context was deleted while the job was being enqueued; the job was not enqueued."
                    .into(),
            ));
        }
        other => other?,
    };
    match inserted {
        InsertOutcome::Created(mut record) => {
            crate::metrics::jobs_enqueued(1);
            ctx.changes.jobs_of(&caller.user_id);
            record.payload = Some(Value::Object(request.payload));
            let message = match record.run_after {
                Some(at) if at > now => format!(
                    "Job queued; it will not be sent before {}.",
                    at.to_rfc3339()
                ),
                _ => "Job queued for the next batch.".to_string(),
            };
            answer(ctx, record, now, &message).await
        }
        InsertOutcome::Existing(record) => {
            answer(ctx, same_request(record, &request_hash)?, now, EXISTS).await
        }
    }
}

const EXISTS: &str = "A job with this idempotency key already exists; this is that job.";

async fn answer(
    ctx: &Ctx,
    record: JobRecord,
    now: DateTime<Utc>,
    message: &str,
) -> Result<EnqueueResponse> {
    let estimated_completion = estimated_completion(ctx, record.run_after, now).await?;
    Ok(EnqueueResponse {
        success: true,
        job: to_api_job(record, true),
        message: message.to_string(),
        estimated_completion,
    })
}

/// A bulk enqueue's jobs, made from its requests and checked, before anything is stored.
pub struct Prepared {
    jobs: Vec<NewJob>,
    latest_run_after: Option<DateTime<Utc>>,
    callbacks: bool,
    now: DateTime<Utc>,
}

/// A `context_id` the caller may not use (none of theirs, none shared).
fn unknown_context(at: Option<usize>, id: &str) -> FieldError {
    let mut loc = vec![Value::from("body")];
    if let Some(i) = at {
        loc.extend([Value::from("jobs"), Value::from(i)]);
    }
    loc.push(Value::from("context_id"));
    FieldError::new(
        "value_error",
        loc,
        "Value error, no context of yours (or shared) has this id",
        Value::String(id.to_string()),
    )
    .with_ctx(json!({ "error": "no context of yours (or shared) has this id" }))
}

/// Turns up to 10,000 requests into jobs, every field checked: `requests` are read one at a
/// time and each becomes its job before the next is read, so only one request's values exist
/// at once; once this returns, the body they were read from can go ([`enqueue_many`] stores
/// them). Each context the jobs name is looked up once.
pub async fn prepare_many(
    ctx: &Ctx,
    caller: &Caller,
    requests: impl Iterator<Item = Validated<EnqueueRequest>>,
) -> Result<Prepared> {
    let mut contexts = ForJobs::default();
    let now = now();
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    let mut latest_run_after = None;
    let mut callbacks = false;
    for (i, request) in requests.enumerate() {
        match request {
            Ok(request) => {
                if let Some(refused) = check_callback(ctx, &request, Some(i)) {
                    errors.push(refused);
                }
                callbacks |= request.callback_url.is_some();
                latest_run_after = latest_run_after.max(request.run_after);
                let context = match &request.context_id {
                    None => None,
                    Some(id) => match contexts.get(ctx, caller, id).await? {
                        Some(context) => Some(context),
                        None => {
                            errors.push(unknown_context(Some(i), id));
                            continue;
                        }
                    },
                };
                jobs.push(new_job(ctx, caller, &request, context, now));
            }
            Err(mut refused) => errors.append(&mut refused),
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    Ok(Prepared {
        jobs,
        latest_run_after,
        callbacks,
        now,
    })
}

/// Enqueues prepared jobs, all or none, in one transaction. A job whose key its owner already
/// used for the same request is that job (and is not counted against the budget again); for
/// a different request, nothing is enqueued and the answer is a 409 naming the item.
pub async fn enqueue_many(
    ctx: &Ctx,
    caller: &Caller,
    prepared: Prepared,
) -> Result<BulkEnqueueResponse> {
    let Prepared {
        jobs,
        latest_run_after,
        callbacks,
        now,
    } = prepared;
    if callbacks {
        crate::webhooks::require_secret(ctx, caller).await?;
    }
    let keys: Vec<String> = jobs
        .iter()
        .filter_map(|j| j.idempotency_key.clone())
        .collect();
    let existing: std::collections::HashSet<String> = if keys.is_empty() {
        Default::default()
    } else {
        ctx.store()
            .jobs_by_keys(&caller.user_id, &keys)
            .await?
            .into_iter()
            .filter_map(|j| j.idempotency_key)
            .collect()
    };
    let bound = jobs
        .iter()
        .filter(|j| {
            j.idempotency_key
                .as_ref()
                .is_none_or(|k| !existing.contains(k))
        })
        .map(|j| j.cost_bound_nanos)
        .sum();
    crate::budgets::check_enqueue(ctx, caller, bound).await?;
    let outcomes = match ctx.store().insert_jobs(jobs, KeyConflicts::Refuse).await {
        Ok(outcomes) => outcomes,
        Err(StoreError::KeyConflict { index }) => {
            return Err(Error::Conflict(format!(
                "jobs[{index}]: this idempotency key was already used for a different request; nothing was enqueued."
            )));
        }
        Err(StoreError::ContextGone { index }) => {
            return Err(Error::Conflict(format!(
                "jobs[{index}]: its context was deleted while the jobs were being enqueued; nothing was enqueued."
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
    Ok(BulkEnqueueResponse {
        success: true,
        created,
        existing,
        message: format!(
            "{} queued; {existing} already existed with their idempotency keys.",
            count_of_jobs(created)
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
    // Jobs without a callback or a context keep the fingerprint they always had.
    let canonical = match &request.callback_url {
        Some(url) => serde_json::json!([canonical, url]),
        None => canonical,
    };
    let canonical = match &request.context_id {
        Some(id) => serde_json::json!([canonical, {"context": id}]),
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
