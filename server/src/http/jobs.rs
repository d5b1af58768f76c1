//! The contract's job endpoints: parse, authenticate, call one use case, answer.

use app::api::validation::{
    parse_bulk_cancel, parse_bulk_items, parse_days, parse_enqueue_bytes, parse_list_query,
    read_bulk_item,
};
// the request and status types are named only in the OpenAPI attributes
use app::api::{
    BudgetView, BulkCancelRequest, BulkCancelResponse, BulkEnqueueRequest, BulkEnqueueResponse,
    CancelResponse, DailyCost, EnqueueRequest, EnqueueResponse, Job, JobEventView, JobList,
    JobStatus, JobType, ProviderName, Stats,
};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::extract::{AuthUser, BulkBody, JobId, JsonBody, QueryPairs, RawJsonBody};
use super::openapi::ErrorBody;
use crate::context::Ctx;
use crate::error::Result;
use crate::jobs;

/// Queue a job for the next batch.
#[utoipa::path(post, path = "/api/v1/batch/enqueue", tag = "jobs", request_body = EnqueueRequest,
    responses(
        (status = 200, description = "The job, queued; or the job this idempotency key made already", body = EnqueueResponse),
        (status = 402, description = "The job could take you past your monthly budget; nothing was enqueued", body = ErrorBody),
        (status = 409, description = "The idempotency key was used for a different request", body = ErrorBody),
    ))]
pub async fn enqueue(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    RawJsonBody(body): RawJsonBody,
) -> Result<Json<EnqueueResponse>> {
    let request = parse_enqueue_bytes(&body)?;
    jobs::enqueue(&ctx, &caller, request).await.map(Json)
}

/// Queue up to 10,000 jobs at once, all or none.
#[utoipa::path(post, path = "/api/v1/batch/enqueue/bulk", tag = "jobs", request_body = BulkEnqueueRequest,
    responses(
        (status = 200, description = "Every job, in the order sent", body = BulkEnqueueResponse),
        (status = 402, description = "The jobs could take you past your monthly budget; nothing was enqueued", body = ErrorBody),
        (status = 409, description = "An item's idempotency key was used for a different request; nothing was enqueued", body = ErrorBody),
    ))]
pub async fn enqueue_many(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    body: BulkBody,
) -> Result<Json<BulkEnqueueResponse>> {
    let prepared = {
        let items = parse_bulk_items(&body.bytes)?;
        // Each item is read as the use case takes it, so only one item's values exist at a time.
        let requests = items
            .iter()
            .enumerate()
            .map(|(i, item)| read_bulk_item(i, item));
        jobs::prepare_many(&ctx, &caller, requests).await?
    };
    // The jobs hold their payloads now: the body goes before they are stored (its place for
    // parsing too).
    drop(body);
    jobs::enqueue_many(&ctx, &caller, prepared).await.map(Json)
}

/// Visible jobs, newest first (a trader's own; every job for an admin).
#[utoipa::path(get, path = "/api/v1/batch/jobs", tag = "jobs",
    params(
        ("status_filter" = Option<JobStatus>, Query, description = "Only jobs in this status"),
        ("job_type" = Option<JobType>, Query, description = "Only jobs of this type"),
        ("provider" = Option<ProviderName>, Query, description = "Only jobs a flush sent to this provider"),
        ("batch_id" = Option<String>, Query, max_length = 200, description = "Only the jobs of this provider batch"),
        ("q" = Option<String>, Query, max_length = 200, description = "A job id, an idempotency key, a batch id, or words of the payload's values (prefixes, any order; field names are not words)"),
        ("error" = Option<String>, Query, max_length = 200, description = "Text the job's error message contains, any case (failed jobs by what went wrong)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 50)"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Jobs to skip"),
        ("cursor" = Option<String>, Query, pattern = r"^([0-9]{1,18}\..{1,64})?$", description = "A page's `next_cursor`: continue after it"),
    ),
    responses((status = 200, description = "A page of jobs and the counts", body = JobList)))]
pub async fn list(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    query: QueryPairs,
) -> Result<Json<JobList>> {
    let query = parse_list_query(query.iter())?;
    jobs::list(&ctx, &caller, query).await.map(Json)
}

/// One job, with its payload.
#[utoipa::path(get, path = "/api/v1/batch/jobs/{job_id}", tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = Job),
    ))]
pub async fn get(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JobId(job_id): JobId,
) -> Result<Json<Job>> {
    jobs::get(&ctx, &caller, &job_id).await.map(Json)
}

/// Cancel a pending or processing job.
#[utoipa::path(post, path = "/api/v1/batch/jobs/{job_id}/cancel", tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Cancelled", body = CancelResponse),
        (status = 409, description = "The job has ended already", body = ErrorBody),
    ))]
pub async fn cancel(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JobId(job_id): JobId,
) -> Result<Json<CancelResponse>> {
    jobs::cancel(&ctx, &caller, &job_id).await.map(Json)
}

/// The structured result of a completed job.
#[utoipa::path(get, path = "/api/v1/batch/jobs/{job_id}/result", tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The result object", body = Object),
        (status = 409, description = "The job has not completed", body = ErrorBody),
    ))]
pub async fn result(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JobId(job_id): JobId,
) -> Result<Json<Value>> {
    jobs::result(&ctx, &caller, &job_id).await.map(Json)
}

/// The job's history, oldest first.
#[utoipa::path(get, path = "/api/v1/batch/jobs/{job_id}/events", tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "What happened to the job", body = Vec<JobEventView>),
    ))]
pub async fn events(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JobId(job_id): JobId,
) -> Result<Json<Vec<JobEventView>>> {
    jobs::events(&ctx, &caller, &job_id).await.map(Json)
}

/// Counts, tokens, cost and savings of the visible jobs.
#[utoipa::path(get, path = "/api/v1/batch/stats", tag = "jobs",
    responses((status = 200, description = "Totals", body = Stats)))]
pub async fn stats(State(ctx): State<Ctx>, AuthUser(caller): AuthUser) -> Result<Json<Stats>> {
    jobs::stats(&ctx, &caller).await.map(Json)
}

/// Your monthly budget: the cap an admin set (if any), what you spent this UTC month, and
/// what your pending and in-flight jobs may still cost at most.
#[utoipa::path(get, path = "/api/v1/batch/budget", tag = "budgets",
    responses((status = 200, description = "Your budget this month", body = BudgetView)))]
pub async fn budget(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
) -> Result<Json<BudgetView>> {
    crate::budgets::own(&ctx, &caller).await.map(Json)
}

/// Cancel several jobs; each answers for itself.
#[utoipa::path(post, path = "/api/v1/batch/jobs/cancel", tag = "jobs", request_body = BulkCancelRequest,
    responses((status = 200, description = "One result per job", body = BulkCancelResponse)))]
pub async fn cancel_many(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JsonBody(body): JsonBody,
) -> Result<Json<BulkCancelResponse>> {
    let request = parse_bulk_cancel(&body)?;
    jobs::cancel_many(&ctx, &caller, &request.job_ids)
        .await
        .map(Json)
}

/// Cost paid and standard cost per UTC day, job type and owner.
#[utoipa::path(get, path = "/api/v1/batch/stats/daily", tag = "jobs",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 366, description = "Days back from today (default 30)")),
    responses((status = 200, description = "One row per day, type and owner", body = Vec<DailyCost>)))]
pub async fn daily_costs(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    query: QueryPairs,
) -> Result<Json<Vec<DailyCost>>> {
    let days = parse_days(query.iter())?;
    jobs::daily_costs(&ctx, &caller, days).await.map(Json)
}

/// The visible jobs matching the list's filters, as CSV, newest first, streamed.
#[utoipa::path(get, path = "/api/v1/batch/exports/jobs.csv", tag = "jobs",
    params(
        ("status_filter" = Option<JobStatus>, Query, description = "Only jobs in this status"),
        ("job_type" = Option<JobType>, Query, description = "Only jobs of this type"),
        ("provider" = Option<ProviderName>, Query, description = "Only jobs a flush sent to this provider"),
        ("batch_id" = Option<String>, Query, max_length = 200, description = "Only the jobs of this provider batch"),
        ("q" = Option<String>, Query, max_length = 200, description = "As for the list"),
        ("error" = Option<String>, Query, max_length = 200, description = "As for the list"),
    ),
    responses((status = 200, description = "A header line, then one job per line", content_type = "text/csv", body = String)))]
pub async fn export_jobs(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    query: QueryPairs,
) -> Result<Response> {
    let query = parse_list_query(query.iter())?;
    Ok(csv_download(
        "jobs.csv",
        Body::from_stream(jobs::jobs_csv(ctx, caller, query).await?),
    ))
}

/// Cost paid and standard cost per UTC day, job type and owner, as CSV.
#[utoipa::path(get, path = "/api/v1/batch/exports/daily.csv", tag = "jobs",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 366, description = "Days back from today (default 30)")),
    responses((status = 200, description = "A header line, then one row per day, type and owner", content_type = "text/csv", body = String)))]
pub async fn export_daily_costs(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    query: QueryPairs,
) -> Result<Response> {
    let days = parse_days(query.iter())?;
    let csv = jobs::daily_costs_csv(&ctx, &caller, days).await?;
    Ok(csv_download("daily-costs.csv", Body::from(csv)))
}

/// A CSV answer the browser saves as `filename`.
pub fn csv_download(filename: &str, body: Body) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}
