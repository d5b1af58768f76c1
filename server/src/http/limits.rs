//! What keeps a request from running away: a timeout around every API request (flush and
//! poll are exempt) and every dashboard call (the live stream is exempt), answered through
//! [`Error`] so clients get FastAPI's `{"detail": ...}`; and the request metrics, measured
//! around it. Rate limits are counted where the caller is known (`crate::limits`).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// Flush and poll may run long on purpose (a 256 MB upload, a big ingest); their leases make
/// them safe, so the request timeout leaves them alone. So does a page's live stream.
fn is_long_running(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/batch/internal/flush" | "/api/v1/batch/internal/poll" | "/live"
    )
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
