//! One leader for the background work among instances sharing a database: a lease row its
//! holder renews (every fifth of the lease) and another instance takes once it lapses. Chosen
//! over an advisory lock because its takeover time is bounded by the lease whatever happens
//! to the old leader's connection, it works through connection poolers, and SQLite runs the
//! same code. Whatever is done while leading is guarded in the store as well, so a leader that
//! lost its lease without knowing it yet does no harm.

use std::sync::atomic::Ordering;

use chrono::{Duration, Utc};

use crate::context::Ctx;

/// The duty the lease is for.
const DUTY: &str = "background";

/// Takes the lease, or renews it, for `span`; whether this instance leads now (unsure means
/// not leading: a database that does not answer cannot vouch for the lease).
pub async fn hold(ctx: &Ctx, span: Duration) -> bool {
    let now = Utc::now();
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
    leads
}

/// Hands the lease over at once, if this instance holds it, instead of letting it lapse.
pub async fn resign(ctx: &Ctx) {
    if ctx.leading.swap(false, Ordering::SeqCst)
        && let Err(e) = ctx.store().resign(DUTY, &ctx.instance).await
    {
        tracing::warn!(error = %e, "could not resign the leadership; it will lapse");
    }
}
