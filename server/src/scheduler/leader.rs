//! One leader for the background work among instances sharing a database: a lease row its
//! holder renews (every fifth of the lease) and another instance takes once it lapses. Chosen
//! over an advisory lock because its takeover time is bounded by the lease whatever happens
//! to the old leader's connection, it works through connection poolers, and SQLite runs the
//! same code. Whatever is done while leading is guarded in the store as well, so a leader that
//! lost its lease without knowing it yet does no harm.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::context::Ctx;

/// The duty the lease is for.
const DUTY: &str = "background";

pub(super) async fn lead(ctx: Ctx, stop: CancellationToken) {
    let span = chrono::Duration::seconds(ctx.config.batch.leader_lease_secs.max(1) as i64);
    let every = (span / 5).to_std().unwrap_or(Duration::from_secs(1));
    loop {
        let now = Utc::now();
        // Unsure means not leading: a database that does not answer cannot vouch for the lease.
        let leads = match ctx.store().lead(DUTY, &ctx.instance, now + span, now).await {
            Ok(leads) => leads,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew or take the leadership");
                false
            }
        };
        if ctx.leading.swap(leads, Ordering::SeqCst) != leads {
            if leads {
                tracing::info!(instance = %ctx.instance, "this instance now leads the background work");
            } else {
                tracing::warn!(instance = %ctx.instance, "this instance no longer leads the background work");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    // A clean stop hands the lease over at once instead of letting it lapse.
    if ctx.leading.swap(false, Ordering::SeqCst)
        && let Err(e) = ctx.store().resign(DUTY, &ctx.instance).await
    {
        tracing::warn!(error = %e, "could not resign the leadership; it will lapse");
    }
}
