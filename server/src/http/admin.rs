//! Admin endpoints for access and prices, under `/api/v1/admin`.

use app::api::validation::parse_create_token;
use app::api::{IssuedToken, PriceView, UserView};
use axum::Json;
use axum::extract::{Path, State};

use super::extract::{AdminUser, JsonBody};
use crate::access;
use crate::context::Ctx;
use crate::error::Result;

pub async fn users(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
) -> Result<Json<Vec<UserView>>> {
    access::list_users(ctx.store(), &admin).await.map(Json)
}

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

pub async fn revoke_token(
    State(ctx): State<Ctx>,
    AdminUser(admin): AdminUser,
    Path(token_id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    access::revoke_token(&ctx, &admin, &token_id).await?;
    Ok(Json(
        serde_json::json!({ "success": true, "revoked": token_id }),
    ))
}

pub async fn prices(State(ctx): State<Ctx>, _: AdminUser) -> Json<PriceView> {
    Json(ctx.prices.view())
}
