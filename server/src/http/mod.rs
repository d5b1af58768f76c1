//! The REST API of the contract, under `/api/v1/batch`.

mod admin;
mod error;

pub use error::panicked;
mod extract;
mod internal;
mod jobs;

use app::api::validation::{MAX_BODY_BYTES, MAX_BULK_BODY_BYTES};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::context::Ctx;
use crate::error::Error;

pub fn router(ctx: Ctx) -> Router {
    let batch = Router::new()
        .route("/enqueue", post(jobs::enqueue))
        .route(
            "/enqueue/bulk",
            post(jobs::enqueue_many).layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)),
        )
        .route("/jobs", get(jobs::list))
        .route("/jobs/cancel", post(jobs::cancel_many))
        .route("/jobs/{job_id}", get(jobs::get))
        .route("/jobs/{job_id}/cancel", post(jobs::cancel))
        .route("/jobs/{job_id}/result", get(jobs::result))
        .route("/jobs/{job_id}/events", get(jobs::events))
        .route("/stats", get(jobs::stats))
        .route("/stats/daily", get(jobs::daily_costs))
        .route("/internal/flush/preview", post(internal::flush_preview))
        .route("/internal/flush", post(internal::flush))
        .route("/internal/poll", post(internal::poll))
        .route("/internal/batches", get(internal::list_batches));
    Router::new()
        .nest("/api/v1/batch", batch)
        .route("/api/v1/admin/users", get(admin::users))
        .route("/api/v1/admin/tokens", post(admin::create_token))
        .route(
            "/api/v1/admin/tokens/{token_id}",
            axum::routing::delete(admin::revoke_token),
        )
        .route("/api/v1/admin/prices", get(admin::prices))
        .route("/api/v1/{*rest}", any(not_found))
        .route("/healthz", get(healthz))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ctx)
}

/// For load balancers and operators: whether the database answers, and whether this instance
/// leads the background work.
async fn healthz(State(ctx): State<Ctx>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let engine = if ctx.config.database_url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), ctx.store().ping()).await;
    let body = |status: &str| json!({"status": status, "instance": &*ctx.instance, "leader": ctx.is_leader(), "database": engine});
    match ping {
        Ok(Ok(())) => Json(body("ok")).into_response(),
        _ => {
            let mut response = (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(body("database unavailable")),
            )
                .into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            response
        }
    }
}

async fn not_found() -> Error {
    Error::NotFound("Not Found".into())
}

async fn method_not_allowed() -> (axum::http::StatusCode, Json<Value>) {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "detail": "Method Not Allowed" })),
    )
}
