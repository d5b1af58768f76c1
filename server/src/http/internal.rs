//! Admin endpoints that drive batches: flush, poll, and the list of batches.

use app::api::validation::{parse_flush, parse_poll, parse_retry};
use app::api::{
    BatchList, FlushPreview, FlushRequest, FlushResponse, PollRequest, PollResponse, RetryRequest,
    RetryResponse,
};
use axum::Json;
use axum::extract::State;

use super::extract::{AdminUser, JsonBody, OptionalJsonBody, QueryPairs};
use super::openapi::ErrorBody;
use crate::context::Ctx;
use crate::error::Result;
use crate::{batches, jobs};

/// Send eligible jobs to Anthropic as one batch.
#[utoipa::path(post, path = "/api/v1/batch/internal/flush", tag = "batches", request_body(content = FlushRequest, description = "Every field is optional; an empty body takes the defaults"),
    responses(
        (status = 200, description = "The batch sent, or why nothing was sent", body = FlushResponse),
        (status = 409, description = "The preview named by preview_token no longer holds (other options, more cost), so nothing was sent; or reconciliation took this batch over and this copy was cancelled", body = ErrorBody),
        (status = 502, description = "Anthropic refused or failed the create", body = ErrorBody),
    ))]
pub async fn flush(
    State(ctx): State<Ctx>,
    AdminUser(caller): AdminUser,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<FlushResponse>> {
    batches::flush(&ctx, &caller, parse_flush(&body)?)
        .await
        .map(Json)
}

/// Check a batch; once it has ended, collect its results.
#[utoipa::path(post, path = "/api/v1/batch/internal/poll", tag = "batches", request_body = PollRequest,
    responses(
        (status = 200, description = "The batch's status and what this call changed", body = PollResponse),
        (status = 404, description = "No such batch", body = ErrorBody),
        (status = 409, description = "Another worker is polling this batch", body = ErrorBody),
        (status = 502, description = "Anthropic failed the call", body = ErrorBody),
    ))]
pub async fn poll(
    State(ctx): State<Ctx>,
    AdminUser(caller): AdminUser,
    JsonBody(body): JsonBody,
) -> Result<Json<PollResponse>> {
    let request = parse_poll(&body)?;
    batches::poll(&ctx, &caller, &request.batch_id)
        .await
        .map(Json)
}

/// Batches, newest first, with what each was billed.
#[utoipa::path(get, path = "/api/v1/batch/internal/batches", tag = "batches",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "How many (default 50)")),
    responses((status = 200, description = "The batches", body = BatchList)))]
pub async fn list_batches(
    State(ctx): State<Ctx>,
    AdminUser(caller): AdminUser,
    query: QueryPairs,
) -> Result<Json<BatchList>> {
    let limit =
        app::api::validation::parse_list_query(query.iter().filter(|(k, _)| *k == "limit"))?.limit;
    batches::list(&ctx, &caller, limit).await.map(Json)
}

/// What a flush with this body would send; nothing is claimed.
#[utoipa::path(post, path = "/api/v1/batch/internal/flush/preview", tag = "batches", request_body(content = FlushRequest, description = "As for flush"),
    responses((status = 200, description = "Jobs, tokens and an upper bound of the cost", body = FlushPreview)))]
pub async fn flush_preview(
    State(ctx): State<Ctx>,
    AdminUser(caller): AdminUser,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<FlushPreview>> {
    batches::preview(&ctx, &caller, parse_flush(&body)?)
        .await
        .map(Json)
}

/// Send failed jobs back for one more attempt (same job, same id). A job that was billed
/// already is billed again if it runs again: such a retry needs `confirm_rebill`.
#[utoipa::path(post, path = "/api/v1/batch/internal/jobs/retry", tag = "batches", request_body = RetryRequest,
    responses(
        (status = 200, description = "One result per job", body = RetryResponse),
        (status = 409, description = "Some of these jobs were billed already and confirm_rebill was not given; nothing was retried", body = ErrorBody),
    ))]
pub async fn retry_jobs(
    State(ctx): State<Ctx>,
    AdminUser(caller): AdminUser,
    JsonBody(body): JsonBody,
) -> Result<Json<RetryResponse>> {
    let request = parse_retry(&body)?;
    jobs::retry(&ctx, &caller, &request).await.map(Json)
}
