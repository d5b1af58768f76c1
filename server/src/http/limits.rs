//! What protects the REST API from a runaway client or a stuck request: per-token rate limits
//! (governor's GCRA, one bucket for enqueues and one for everything else) and a request
//! timeout. Both answer through [`Error`], so clients get FastAPI's `{"detail": ...}`. Also
//! the request metrics, measured around both.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::config::LimitsConfig;
use crate::error::Error;

/// Above this many remembered tokens, buckets that are full again are forgotten.
const MAX_REMEMBERED_TOKENS: usize = 10_000;

/// One limit: a bucket per token.
struct Limit {
    per_second: u32,
    buckets: DefaultKeyedRateLimiter<[u8; 32]>,
}

impl Limit {
    fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(rate);
        Some(Self {
            per_second,
            buckets: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        })
    }

    fn check(&self, token: &[u8; 32]) -> Result<(), Error> {
        self.buckets.check_key(token).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::RateLimited {
                per_second: self.per_second,
                // Whole seconds, rounded up: Retry-After has no fractions.
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}

/// The limits of one instance (each instance counts its own requests).
pub struct Limits {
    enqueue: Option<Limit>,
    reads: Option<Limit>,
    timeout: Duration,
    checks: AtomicU64,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Arc<Self> {
        Arc::new(Self {
            enqueue: Limit::new(config.enqueue_per_sec, config.enqueue_burst),
            reads: Limit::new(config.reads_per_sec, config.reads_burst),
            timeout: Duration::from_secs(config.api_request_timeout_secs.max(1)),
            checks: AtomicU64::new(0),
        })
    }

    fn check(&self, path: &str, token: &[u8; 32]) -> Result<(), Error> {
        let limit = if path.starts_with("/api/v1/batch/enqueue") {
            &self.enqueue
        } else {
            &self.reads
        };
        let Some(limit) = limit else { return Ok(()) };
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(4096)
            && limit.buckets.len() > MAX_REMEMBERED_TOKENS
        {
            limit.buckets.retain_recent();
        }
        limit.check(token)
    }
}

/// Flush and poll may run long on purpose (a 256 MB upload, a big ingest); their leases make
/// them safe, so the request timeout leaves them alone.
fn is_long_running(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/batch/internal/flush" | "/api/v1/batch/internal/poll"
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

/// The middleware: rate limit by the presented token (a request without one is left to the
/// handler's 401), then run the request within the timeout.
pub async fn guard(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if let Some(presented) = request.headers().get(AUTHORIZATION) {
        // Keyed by a digest: the limiter never holds a token itself.
        let key: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if let Err(error) = limits.check(path, &key) {
            return error.into_response();
        }
    }
    if is_long_running(path) {
        return next.run(request).await;
    }
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::Timeout(limits.timeout.as_secs()).into_response(),
    }
}
