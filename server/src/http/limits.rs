//! What keeps a request from running away: a timeout around every API request and every
//! dashboard call (flush, poll and the live stream are exempt), answered through
//! [`Error`] so clients get FastAPI's `{"detail": ...}` (the dashboard's pages get the same
//! words in their own encoding, `web.rs`); and the request metrics, measured
//! around it. Rate limits are counted where the caller is known (`crate::limits`).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// Flush and poll may run long on purpose (a 256 MB upload, a big ingest); their leases make
/// them safe, so the request timeout leaves them alone, the dashboard's as REST's (a timeout
/// would drop the call half way: an upload cut off, an ingest stopped, the admin told it
/// failed). So does a page's live stream.
fn is_long_running(path: &str) -> bool {
    use leptos::server_fn::ServerFn;
    matches!(
        path,
        "/api/v1/batch/internal/flush" | "/api/v1/batch/internal/poll" | "/live"
    ) || path == app::server_fns::FlushNow::PATH
        || path == app::server_fns::PollBatch::PATH
}

/// Records each API request's latency by route pattern, when metrics are on.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    crate::metrics::api_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The middleware: runs the request within the timeout.
pub async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    if is_long_running(request.uri().path()) {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::Timeout(limit.as_secs()).into_response(),
    }
}
