//! Rate limits (governor's GCRA), counted per instance: what one client may ask of the
//! service. Each is keyed by who is asking once that is known, never by what a request
//! claims: REST calls by the authenticated token's id, dashboard calls by the signed-in
//! user, and failed authentication (a wrong or missing token, a failed sign-in) by the
//! client's address, so that neither spaces in a header nor a forged token buy a fresh bucket
//! or spend someone else's.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;
use crate::error::Error;

/// Above this many remembered keys, buckets that are full again are forgotten.
const MAX_REMEMBERED_KEYS: usize = 10_000;

/// One limit: a bucket per key.
struct Limit<K: Hash + Eq + Clone> {
    per_second: u32,
    buckets: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(rate);
        Some(Self {
            per_second,
            buckets: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })
    }

    fn check(&self, key: &K) -> Result<(), Error> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(4096)
            && self.buckets.len() > MAX_REMEMBERED_KEYS
        {
            self.buckets.retain_recent();
        }
        self.buckets.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::RateLimited {
                per_second: self.per_second,
                // Whole seconds, rounded up: Retry-After has no fractions.
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}

/// Which budget a call spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Enqueues (single or bulk, each request once).
    Enqueue,
    /// Everything else.
    Other,
}

/// Who is asking, once they are known.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Asker {
    /// A REST call, by the id of the token it authenticated with.
    Token(String),
    /// A dashboard call, by the signed-in user.
    User(String),
}

/// The limits of one instance (each instance counts its own requests).
pub struct Limits {
    enqueue: Option<Limit<Asker>>,
    other: Option<Limit<Asker>>,
    failed_auth: Option<Limit<IpAddr>>,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            enqueue: Limit::new(config.enqueue_per_sec, config.enqueue_burst),
            other: Limit::new(config.reads_per_sec, config.reads_burst),
            failed_auth: Limit::new(config.auth_failures_per_sec, config.auth_failures_burst),
        }
    }

    /// Counts a call of a known asker; `Err(RateLimited)` past their limit.
    pub fn check(&self, asker: &Asker, what: Use) -> Result<(), Error> {
        let limit = match what {
            Use::Enqueue => &self.enqueue,
            Use::Other => &self.other,
        };
        limit.as_ref().map_or(Ok(()), |limit| limit.check(asker))
    }

    /// Counts a failed authentication from `address`; `Err(RateLimited)` once it has failed
    /// too often (the caller answers that instead of "not authenticated").
    pub fn failed_auth(&self, address: Option<IpAddr>) -> Result<(), Error> {
        // Without a known address (a server run without connection info) every failure
        // shares one bucket.
        let address = address.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.failed_auth
            .as_ref()
            .map_or(Ok(()), |limit| limit.check(&address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_sec: u32, burst: u32) -> LimitsConfig {
        LimitsConfig {
            enqueue_per_sec: per_sec,
            enqueue_burst: burst,
            reads_per_sec: per_sec,
            reads_burst: burst,
            auth_failures_per_sec: per_sec,
            auth_failures_burst: burst,
            metrics: false,
            metrics_addr: None,
            api_request_timeout_secs: 30,
        }
    }

    #[test]
    fn each_asker_and_address_has_a_bucket_of_its_own() {
        let limits = Limits::new(&config(1, 2));
        let alice = Asker::Token("tok-a".into());
        assert!(limits.check(&alice, Use::Other).is_ok());
        assert!(limits.check(&alice, Use::Other).is_ok());
        assert!(matches!(
            limits.check(&alice, Use::Other),
            Err(Error::RateLimited { .. })
        ));
        assert!(
            limits.check(&alice, Use::Enqueue).is_ok(),
            "enqueues count apart"
        );
        assert!(
            limits
                .check(&Asker::User("tok-a".into()), Use::Other)
                .is_ok()
        );
        let here = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(limits.failed_auth(here).is_ok());
        assert!(limits.failed_auth(here).is_ok());
        assert!(limits.failed_auth(here).is_err());
        assert!(
            limits
                .failed_auth(Some(IpAddr::from([127, 0, 0, 2])))
                .is_ok()
        );
        let off = Limits::new(&config(0, 0));
        for _ in 0..100 {
            assert!(off.check(&alice, Use::Enqueue).is_ok(), "0 means no limit");
        }
    }
}
