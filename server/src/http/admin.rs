//! Endpoints for access: users, tokens, prices, budgets and the audit log (admins), and each
//! user's webhook secret.

use app::api::validation::{
    parse_audit_query, parse_budget_request, parse_create_token, parse_path_text,
};
use app::api::{
    AuditAction, AuditPage, BudgetRequest, BudgetView, CreateTokenRequest, IssuedToken, PriceView,
    RevokedToken, UserView, WebhookSecret,
};
use axum::Json;
use axum::extract::{Path, State};

use super::extract::{AdminUser, AuthUser, JsonBody, QueryPairs};
use super::openapi::ErrorBody;
use crate::context::Ctx;
use crate::error::Result;
use crate::{access, audit, budgets};

/// Users and their tokens (ids only, never secrets).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "access",
    responses((status = 200, description = "Every user", body = Vec<UserView>)))]
pub async fn users(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
) -> Result<Json<Vec<UserView>>> {
    access::list_users(&ctx, &admin).await.map(Json)
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
    access::create_token(&ctx, &admin, &request.user, request.role)
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
    let token_id = parse_path_text("token_id", &token_id)?;
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

/// Every user with a monthly cap, with what they spent this UTC month and what their unbilled
/// jobs may still cost.
#[utoipa::path(get, path = "/api/v1/admin/budgets", tag = "budgets",
    responses((status = 200, description = "Capped users' budgets this month", body = Vec<BudgetView>)))]
pub async fn budgets(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
) -> Result<Json<Vec<BudgetView>>> {
    budgets::all(&ctx, &admin).await.map(Json)
}

/// Set a user's monthly cap in USD (UTC months), or remove it with `null`. Past costs never
/// change; from now on enqueues that could pass the cap are refused (402) and flushes leave
/// the user's jobs pending once it is reached.
#[utoipa::path(put, path = "/api/v1/admin/budgets/{user}", tag = "budgets", request_body = BudgetRequest,
    params(("user" = String, Path, description = "The user's name")),
    responses(
        (status = 200, description = "The user's budget now", body = BudgetView),
        (status = 404, description = "No user has this name", body = ErrorBody),
    ))]
pub async fn set_budget(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
    Path(user): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<BudgetView>> {
    let user = parse_path_text("user", &user)?;
    let request = parse_budget_request(&body)?;
    budgets::set(&ctx, &admin, &user, &request).await.map(Json)
}

/// What admins did (tokens, flushes, polls, budgets, retries), newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "access",
    params(
        ("action" = Option<AuditAction>, Query, description = "Only this kind of action"),
        ("actor" = Option<String>, Query, description = "Only this admin's actions (user name)"),
        ("before" = Option<i64>, Query, minimum = 1, description = "A page's `next_before`: older entries"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
    ),
    responses((status = 200, description = "A page of the audit log", body = AuditPage)))]
pub async fn audit_log(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
    query: QueryPairs,
) -> Result<Json<AuditPage>> {
    let query = parse_audit_query(query.iter())?;
    audit::log(&ctx, &admin, &query).await.map(Json)
}
