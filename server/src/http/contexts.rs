//! Shared contexts: store a large input once and name it in many jobs.

use app::api::validation::{parse_context_request, parse_include_text, parse_share_context};
use app::api::{
    ContextCreated, ContextDeleted, ContextList, ContextRequest, ContextView, ShareContextRequest,
};
use axum::Json;
use axum::extract::State;

use super::extract::{AuthUser, ContextId, JsonBody, QueryPairs};
use super::openapi::ErrorBody;
use crate::context::Ctx;
use crate::contexts;
use crate::error::Result;

/// Store a context (its text at most 1 MiB); the same text again is the context stored.
#[utoipa::path(post, path = "/api/v1/batch/contexts", operation_id = "create_context", tag = "contexts", request_body = ContextRequest,
    responses((status = 200, description = "Stored, or already stored", body = ContextCreated)))]
pub async fn create(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JsonBody(body): JsonBody,
) -> Result<Json<ContextCreated>> {
    let request = parse_context_request(&body)?;
    contexts::create(&ctx, &caller, request).await.map(Json)
}

/// The contexts you may use (your own and shared ones; every one for an admin), newest first.
#[utoipa::path(get, path = "/api/v1/batch/contexts", operation_id = "list_contexts", tag = "contexts",
    responses((status = 200, description = "Without their texts", body = ContextList)))]
pub async fn list(State(ctx): State<Ctx>, AuthUser(caller): AuthUser) -> Result<Json<ContextList>> {
    contexts::list(&ctx, &caller).await.map(Json)
}

/// One context; its text with `?include_text=true`.
#[utoipa::path(get, path = "/api/v1/batch/contexts/{context_id}", operation_id = "get_context", tag = "contexts",
    params(
        ("context_id" = String, Path, description = "The context's id"),
        ("include_text" = Option<bool>, Query, description = "Answer the text too (false)"),
    ),
    responses(
        (status = 200, description = "The context", body = ContextView),
        (status = 404, description = "No such context you may use", body = ErrorBody),
    ))]
pub async fn get(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    ContextId(id): ContextId,
    query: QueryPairs,
) -> Result<Json<ContextView>> {
    let with_text = parse_include_text(query.iter())?;
    contexts::get(&ctx, &caller, &id, with_text).await.map(Json)
}

/// Delete one of your contexts (any, for an admin); refused while jobs that have not ended
/// carry it.
#[utoipa::path(delete, path = "/api/v1/batch/contexts/{context_id}", operation_id = "delete_context", tag = "contexts",
    params(("context_id" = String, Path, description = "The context's id")),
    responses(
        (status = 200, description = "Deleted", body = ContextDeleted),
        (status = 404, description = "No such context of yours", body = ErrorBody),
        (status = 409, description = "Jobs waiting carry it", body = ErrorBody),
    ))]
pub async fn delete(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    ContextId(id): ContextId,
) -> Result<Json<ContextDeleted>> {
    contexts::delete(&ctx, &caller, &id).await.map(Json)
}

/// Share a context with every user, or make it private again (admins).
#[utoipa::path(put, path = "/api/v1/batch/contexts/{context_id}/shared", operation_id = "share_context", tag = "contexts",
    request_body = ShareContextRequest,
    params(("context_id" = String, Path, description = "The context's id")),
    responses(
        (status = 200, description = "The context as it is now", body = ContextView),
        (status = 403, description = "A trader", body = ErrorBody),
        (status = 404, description = "No such context", body = ErrorBody),
    ))]
pub async fn share(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    ContextId(id): ContextId,
    JsonBody(body): JsonBody,
) -> Result<Json<ContextView>> {
    let request = parse_share_context(&body)?;
    contexts::share(&ctx, &caller, &id, request.shared)
        .await
        .map(Json)
}
