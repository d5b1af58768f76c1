//! A lease on a batch row, held while submitting, reconciling or polling it and renewed by a
//! heartbeat. Nobody else works on the batch until the lease lapses, so a create still in
//! flight is never reconciled, and two workers never poll one batch.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::error::Result;
use crate::store::Lease;

pub(super) struct Held {
    ctx: Ctx,
    batch_id: String,
    owner: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// A lease for a new operation of this instance, from `now`.
pub(super) fn new_lease(ctx: &Ctx, now: DateTime<Utc>) -> Lease {
    Lease {
        owner: format!("{}/{}", ctx.instance, uuid::Uuid::now_v7().simple()),
        until: now + lease_span(ctx),
    }
}

pub(super) fn lease_span(ctx: &Ctx) -> chrono::Duration {
    chrono::Duration::seconds(ctx.config.batch.lease_secs.max(1) as i64)
}

impl Held {
    /// Takes the batch if nobody holds it.
    pub async fn take(ctx: &Ctx, batch_id: &str) -> Result<Option<Held>> {
        let now = Utc::now();
        let lease = new_lease(ctx, now);
        if ctx.store().take_lease(batch_id, &lease, now).await? {
            Ok(Some(Held::start(ctx, batch_id, lease)))
        } else {
            Ok(None)
        }
    }

    /// Takes the batch, waiting up to `patience` for its holder to let go.
    pub async fn take_within(
        ctx: &Ctx,
        batch_id: &str,
        patience: Duration,
    ) -> Result<Option<Held>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(held) = Held::take(ctx, batch_id).await? {
                return Ok(Some(held));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts the heartbeat of a lease already written (a flush's claim writes it).
    pub fn start(ctx: &Ctx, batch_id: &str, lease: Lease) -> Held {
        let heartbeat = tokio::spawn(heartbeat(
            ctx.clone(),
            batch_id.to_string(),
            lease.owner.clone(),
        ));
        Held {
            ctx: ctx.clone(),
            batch_id: batch_id.to_string(),
            owner: lease.owner,
            heartbeat,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Stops the heartbeat and gives the batch up (a no-op if a write already cleared the lease).
    pub async fn release(self) {
        self.heartbeat.abort();
        if let Err(e) = self
            .ctx
            .store()
            .release_lease(&self.batch_id, &self.owner)
            .await
        {
            tracing::warn!(batch = %self.batch_id, error = %e, "could not release a lease; it will lapse");
        }
    }

    /// Stops the heartbeat and keeps the lease until it lapses (a settle period).
    pub fn keep_until_it_lapses(self) {
        self.heartbeat.abort();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Renews the lease until stopped. Once someone else holds it, there is nothing to renew:
/// every write this holder still makes is guarded by the lease or the state it expects.
async fn heartbeat(ctx: Ctx, batch_id: String, owner: String) {
    let span = lease_span(&ctx);
    let every = (span / 3).to_std().unwrap_or(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        // Test failpoint: a frozen process, whose lease lapses while its call is in flight.
        if ctx.config.at_failpoint("stall-heartbeat") {
            continue;
        }
        let lease = Lease {
            owner: owner.clone(),
            until: Utc::now() + span,
        };
        match ctx.store().renew_lease(&batch_id, &lease).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(batch = %batch_id, error = %e, "could not renew a lease"),
        }
    }
}
