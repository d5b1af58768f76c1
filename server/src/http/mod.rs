//! The REST API of the contract, under `/api/v1/batch`.

mod admin;
mod error;

pub use error::panicked;
pub(crate) use extract::QueryPairs;
pub(crate) use jobs::csv_download;
mod extract;
mod internal;
mod jobs;
pub(crate) mod limits;
mod openapi;

use app::api::validation::{MAX_BODY_BYTES, MAX_BULK_BODY_BYTES};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_http::set_header::SetResponseHeaderLayer;

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
        .route("/budget", get(jobs::budget))
        .route("/exports/jobs.csv", get(jobs::export_jobs))
        .route("/exports/daily.csv", get(jobs::export_daily_costs))
        .route("/internal/flush/preview", post(internal::flush_preview))
        .route("/internal/flush", post(internal::flush))
        .route("/internal/poll", post(internal::poll))
        .route("/internal/batches", get(internal::list_batches))
        .route("/internal/jobs/retry", post(internal::retry_jobs));
    let routes = Router::new()
        .nest("/api/v1/batch", batch)
        .route("/api/v1/admin/users", get(admin::users))
        .route("/api/v1/admin/tokens", post(admin::create_token))
        .route(
            "/api/v1/admin/tokens/{token_id}",
            axum::routing::delete(admin::revoke_token),
        )
        .route("/api/v1/admin/prices", get(admin::prices))
        .route("/api/v1/admin/budgets", get(admin::budgets))
        .route("/api/v1/admin/budgets/{user}", put(admin::set_budget))
        .route("/api/v1/admin/audit", get(admin::audit_log))
        .route("/api/v1/webhooks/secret", post(admin::webhook_secret))
        .route("/api/v1/{*rest}", any(not_found))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout(&ctx),
            limits::timeout,
        ))
        // Answers carry jobs and tokens: no cache, shared or private, may keep them.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let routes = if ctx.config.limits.metrics {
        crate::metrics::handle();
        routes.layer(axum::middleware::from_fn(limits::observe))
    } else {
        routes
    };
    routes.with_state(ctx)
}

/// The longest a request may run.
pub(crate) fn request_timeout(ctx: &Ctx) -> std::time::Duration {
    std::time::Duration::from_secs(ctx.config.limits.api_request_timeout_secs.max(1))
}

/// `/metrics` alone, without a token, for a listener of its own (`AI_BATCH_METRICS_ADDR`).
pub fn metrics_router(ctx: Ctx) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(ctx)
}

/// Prometheus text for admins.
async fn metrics(
    State(ctx): State<Ctx>,
    extract::AdminUser(_): extract::AdminUser,
) -> Result<axum::response::Response, Error> {
    metrics_text(State(ctx)).await
}

async fn metrics_text(State(ctx): State<Ctx>) -> Result<axum::response::Response, Error> {
    use axum::response::IntoResponse;
    let text = crate::metrics::render(&ctx).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn openapi_json() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document(),
    )
}

/// The API page: Swagger UI (bundled, see `public/docs`) over `/openapi.json`.
async fn docs() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                 frame-ancestors 'none'",
            ),
        ],
        include_str!("../../../public/docs/index.html"),
    )
}

/// Whether the database answers, and whether this instance leads the background work.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "Serving", body = openapi::Health)))]
async fn healthz(State(ctx): State<Ctx>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let engine = if ctx.config.database_url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), ctx.store().ping()).await;
    let body = |status: &str| openapi::Health {
        status: status.into(),
        instance: ctx.instance.to_string(),
        leader: ctx.is_leader(),
        database: engine.into(),
    };
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
