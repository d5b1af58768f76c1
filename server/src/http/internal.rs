//! Admin endpoints that drive batches: flush, poll, and the list of batches.

use app::api::validation::{parse_flush, parse_poll};
use app::api::{BatchList, FlushPreview, FlushResponse, PollResponse};
use axum::Json;
use axum::extract::State;

use super::extract::{AdminUser, JsonBody, OptionalJsonBody, QueryPairs};
use crate::batches;
use crate::context::Ctx;
use crate::error::Result;

pub async fn flush(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<FlushResponse>> {
    let request = parse_flush(&body)?;
    tracing::info!(admin = %admin.name, ?request, "flush requested");
    batches::flush(&ctx, request).await.map(Json)
}

pub async fn poll(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
    JsonBody(body): JsonBody,
) -> Result<Json<PollResponse>> {
    let request = parse_poll(&body)?;
    tracing::info!(admin = %admin.name, batch_id = %request.batch_id, "poll requested");
    batches::poll(&ctx, &request.batch_id).await.map(Json)
}

/// Newest first; `limit` 1–1000, default 50.
pub async fn list_batches(
    State(ctx): State<Ctx>,
    _: AdminUser,
    query: QueryPairs,
) -> Result<Json<BatchList>> {
    let limit =
        app::api::validation::parse_list_query(query.iter().filter(|(k, _)| *k == "limit"))?.limit;
    batches::list(&ctx, limit).await.map(Json)
}

pub async fn flush_preview(
    State(ctx): State<Ctx>,
    _: AdminUser,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<FlushPreview>> {
    batches::preview(&ctx, parse_flush(&body)?).await.map(Json)
}
