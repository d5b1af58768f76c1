//! What the service keeps in memory so that a hot request costs no query. Each entry is
//! short-lived, so instances sharing a database agree again within its lifetime.

use std::time::Duration;

use app::api::Caller;
use moka::sync::Cache;

/// How long a checked bearer token is trusted without asking the database: a token revoked
/// through another instance stops working within this.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(1);
/// How long a user's cap is trusted: a cap set through another instance applies within this.
pub const CAP_LIFETIME: Duration = Duration::from_secs(1);
/// How long the typical batch duration (for `estimated_completion`) is reused.
const DURATION_LIFETIME: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Caches {
    /// Callers by the SHA-256 of the token they presented (never the token itself).
    pub tokens: Cache<[u8; 32], Caller>,
    /// The median duration of recent batches, in seconds.
    pub batch_duration: Cache<(), f64>,
    /// Monthly caps by user id (`None`: no cap), so an uncapped enqueue costs no query.
    pub caps: Cache<String, Option<i64>>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            tokens: Cache::builder()
                .time_to_live(TOKEN_LIFETIME)
                .max_capacity(100_000)
                .build(),
            batch_duration: Cache::builder().time_to_live(DURATION_LIFETIME).build(),
            caps: Cache::builder()
                .time_to_live(CAP_LIFETIME)
                .max_capacity(100_000)
                .build(),
        }
    }
}
