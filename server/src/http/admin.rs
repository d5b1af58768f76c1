//! Endpoints for access: users, tokens and prices (admins), and each user's webhook secret.

use app::api::validation::parse_create_token;
use app::api::{CreateTokenRequest, IssuedToken, PriceView, RevokedToken, UserView, WebhookSecret};
use axum::Json;
use axum::extract::{Path, State};

use super::extract::{AdminUser, AuthUser, JsonBody};
use super::openapi::ErrorBody;
use crate::access;
use crate::context::Ctx;
use crate::error::Result;

/// Users and their tokens (ids only, never secrets).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "access",
    responses((status = 200, description = "Every user", body = Vec<UserView>)))]
pub async fn users(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
) -> Result<Json<Vec<UserView>>> {
    access::list_users(ctx.store(), &admin).await.map(Json)
}

/// Issue a token (the user is created if new); the token is shown this once.
#[utoipa::path(post, path = "/api/v1/admin/tokens", tag = "access", request_body = CreateTokenRequest,
    responses(
        (status = 200, description = "The new token", body = IssuedToken),
        (status = 409, description = "The user exists with another role", body = ErrorBody),
    ))]
pub async fn create_token(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
    JsonBody(body): JsonBody,
) -> Result<Json<IssuedToken>> {
    let request = parse_create_token(&body)?;
    access::create_token(ctx.store(), &admin, &request.user, request.role)
        .await
        .map(Json)
}

/// Revoke a token, and end the dashboard sessions opened with it.
#[utoipa::path(delete, path = "/api/v1/admin/tokens/{token_id}", tag = "access",
    params(("token_id" = String, Path, description = "The token's public id")),
    responses(
        (status = 200, description = "Revoked", body = RevokedToken),
        (status = 404, description = "No live token has this id", body = ErrorBody),
    ))]
pub async fn revoke_token(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
    Path(token_id): Path<String>,
) -> Result<Json<RevokedToken>> {
    access::revoke_token(&ctx, &admin, &token_id).await?;
    Ok(Json(RevokedToken {
        success: true,
        revoked: token_id,
    }))
}

/// The price table in force.
#[utoipa::path(get, path = "/api/v1/admin/prices", tag = "access",
    responses((status = 200, description = "Prices per model, and the batch discount", body = PriceView)))]
pub async fn prices(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
) -> Result<Json<PriceView>> {
    access::price_table(&ctx, &admin).map(Json)
}

/// Make (or replace) your webhook signing secret; it is shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks/secret", tag = "jobs",
    responses((status = 200, description = "The new secret; deliveries from now on are signed with it", body = WebhookSecret)))]
pub async fn webhook_secret(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
) -> Result<Json<WebhookSecret>> {
    let secret = crate::webhooks::rotate_secret(&ctx, &caller, &caller.user_id).await?;
    Ok(Json(WebhookSecret { secret }))
}
