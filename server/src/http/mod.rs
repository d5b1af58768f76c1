//! The REST API of the contract, under `/api/v1/batch`.

mod admin;
mod contexts;
mod error;

pub use error::panicked;
pub(crate) use extract::{QueryPairs, client_address, unread_body};
pub(crate) use jobs::csv_download;
mod extract;
mod internal;
mod jobs;
pub(crate) mod limits;
mod openapi;
mod provider_events;

use app::api::validation::{MAX_BODY_BYTES, MAX_BULK_BODY_BYTES, MAX_CONTEXT_BODY_BYTES};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::context::Ctx;
use crate::error::Error;

/// The REST API, each route once with the handler that documents it: this table is also the
/// OpenAPI document (`openapi::document`), so a route cannot be left out of it.
pub(crate) fn api() -> OpenApiRouter<Ctx> {
    OpenApiRouter::default()
        .routes(routes!(jobs::enqueue))
        .routes(routes!(jobs::enqueue_many).layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::cancel_many))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::result))
        .routes(routes!(jobs::events))
        .routes(routes!(jobs::stats))
        .routes(routes!(jobs::daily_costs))
        .routes(routes!(jobs::budget))
        .routes(routes!(jobs::export_jobs))
        .routes(routes!(jobs::export_daily_costs))
        .routes(
            routes!(contexts::create, contexts::list)
                .layer(DefaultBodyLimit::max(MAX_CONTEXT_BODY_BYTES)),
        )
        .routes(routes!(contexts::get, contexts::delete))
        .routes(routes!(contexts::share))
        .routes(routes!(internal::flush_preview))
        .routes(routes!(internal::flush))
        .routes(routes!(internal::poll))
        .routes(routes!(internal::list_batches))
        .routes(routes!(internal::retry_jobs))
        .routes(routes!(admin::users))
        .routes(routes!(admin::create_token))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(admin::prices))
        .routes(routes!(admin::budgets))
        .routes(routes!(admin::set_budget))
        .routes(routes!(admin::audit_log))
        .routes(routes!(admin::webhook_secret))
        .routes(routes!(healthz))
}

pub fn router(ctx: Ctx) -> Router {
    let (api, _) = api().split_for_parts();
    let routes = api
        .route("/api/v1/{*rest}", any(not_found))
        .route("/metrics", get(metrics))
        .route(
            "/webhooks/openai",
            axum::routing::post(provider_events::openai)
                .layer(DefaultBodyLimit::max(provider_events::MAX_EVENT_BYTES)),
        )
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
    let text = crate::books::scrape(&ctx).await?;
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
    let answers = crate::health::database_answers(&ctx).await;
    let body = |status: &str| openapi::Health {
        status: status.into(),
        instance: ctx.instance.to_string(),
        leader: ctx.is_leader(),
        database: engine.into(),
    };
    match answers {
        true => Json(body("ok")).into_response(),
        false => {
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
