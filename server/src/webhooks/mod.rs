//! Completion webhooks: when a job that asked for one ends, its job object is POSTed to its
//! `callback_url`, signed by the Standard Webhooks specification (`send`), and only to
//! addresses a trader may make this server reach (`address`). Deliveries run as a scheduler
//! service of their own, never inside ingest; a failed one is retried with doubling waits and
//! every attempt is an event on the job.
//!
//! Fair to every owner: at most [`PER_OWNER`] deliveries of one owner are in flight at once,
//! and each runs as a task of its own, so a receiver that never answers holds up only its
//! owner's next deliveries, never another owner's.

pub mod address;
pub mod deliveries;
mod send;

use std::collections::HashMap;
use std::time::Duration;

use app::api::Caller;
use chrono::Utc;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::events::Happened;
use crate::jobs::to_api_job;
use crate::store::{DueWebhook, Visibility, WebhookOutcome};

pub use address::{Destinations, Lookup, SystemLookup};
use deliveries::Place;
pub use deliveries::{Deliveries, PER_OWNER};
pub use send::{SIGNATURE_HEADER, sign, sign_legacy, verify};

/// The wait after the first failure; it doubles after each, up to an hour.
const FIRST_WAIT_SECS: i64 = 1;
const LONGEST_WAIT_SECS: i64 = 3600;

/// Makes (or replaces) a user's signing secret and shows it this once: the caller's own, or
/// any user's for an admin (the Access page).
pub async fn rotate_secret(ctx: &Ctx, caller: &Caller, user_id: &str) -> Result<String> {
    if user_id != caller.user_id {
        crate::access::require_admin(caller)?;
    }
    let secret = format!("whsec_{}", crate::access::random_secret());
    ctx.store().set_webhook_secret(user_id, &secret).await?;
    Ok(secret)
}

/// Jobs can only ask for a webhook once their owner has a secret to check its signature with.
pub async fn require_secret(ctx: &Ctx, caller: &Caller) -> Result<()> {
    match ctx.store().webhook_secret(&caller.user_id).await? {
        Some(_) => Ok(()),
        None => Err(Error::Conflict(
            "callback_url needs a webhook signing secret: create one with POST /api/v1/webhooks/secret \
             (it is shown once), then enqueue again"
                .into(),
        )),
    }
}

/// One round: claims the webhooks that are due and that have a free place (never more than
/// [`PER_OWNER`] of one owner in flight), and starts each as a task of its own; `Ok(started)`.
/// The round does not wait for them.
pub async fn deliver_due(ctx: &Ctx) -> Result<usize> {
    let deliveries = ctx.webhooks.clone();
    let (busy, room) = deliveries.busy();
    if room == 0 {
        return Ok(0);
    }
    let timeout = Duration::from_secs(ctx.config.webhooks.timeout_secs.max(1));
    let now = Utc::now();
    let due = ctx
        .store()
        .due_webhooks(now, room as i64, PER_OWNER as i64, &busy)
        .await?;
    let mut places = Vec::new();
    for webhook in due {
        if let Some(place) = deliveries.take(&webhook.owner_id) {
            places.push((webhook.job_id, place));
        }
    }
    if places.is_empty() {
        return Ok(0);
    }
    // Held past the longest a delivery can take, so a crashed instance's webhooks come back.
    let hold =
        chrono::Duration::from_std(timeout * 4).unwrap_or_default() + chrono::Duration::seconds(30);
    let ids: Vec<String> = places.iter().map(|(id, _)| id.clone()).collect();
    let claimed = ctx.store().claim_webhooks(&ids, now, now + hold).await?;
    let mut places: HashMap<String, Place> = places.into_iter().collect();
    let started = claimed.len();
    for webhook in claimed {
        let Some(place) = places.remove(&webhook.job_id) else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _place = place;
            if let Err(e) = deliver(&ctx, webhook, timeout).await {
                tracing::warn!(error = %e, "a webhook delivery could not be recorded; it is sent again later");
            }
        });
    }
    Ok(started)
}

async fn deliver(ctx: &Ctx, webhook: DueWebhook, timeout: Duration) -> Result<()> {
    let store = ctx.store();
    let attempt = webhook.attempts + 1;
    let job = store.get_job(&webhook.job_id, &Visibility::All).await?;
    let secret = store.webhook_secret(&webhook.owner_id).await?;
    let answer = match (job, secret) {
        (Some(job), Some(secret)) => {
            let body = serde_json::to_vec(&to_api_job(job, false)).unwrap_or_default();
            let message_id = format!("msg_{}", webhook.job_id);
            let delivery = send::Delivery {
                url: &webhook.url,
                message_id: &message_id,
                body,
                secret: &secret,
                timeout,
            };
            send::post(&ctx.webhooks.client, &ctx.webhooks.destinations, delivery).await
        }
        (None, _) => Err("the job no longer exists".to_string()),
        (_, None) => Err("its owner has no signing secret".to_string()),
    };
    let now = Utc::now();
    let (outcome, event) = match answer {
        Ok(status) => (
            WebhookOutcome::Delivered,
            Happened::WebhookDelivered { status, attempt },
        ),
        Err(error) => {
            let wait = (attempt < ctx.config.webhooks.max_attempts).then(|| {
                FIRST_WAIT_SECS
                    .saturating_mul(1 << (attempt - 1).clamp(0, 20))
                    .min(LONGEST_WAIT_SECS)
            });
            (
                WebhookOutcome::Failed {
                    error: error.clone(),
                    retry_at: wait.map(|secs| now + chrono::Duration::seconds(secs)),
                },
                Happened::WebhookFailed {
                    error,
                    attempt,
                    retry_in_secs: wait,
                },
            )
        }
    };
    crate::metrics::webhook_attempt(matches!(outcome, WebhookOutcome::Delivered));
    store
        .finish_webhook(&webhook.job_id, &outcome, &event, now)
        .await?;
    ctx.changes.jobs_of(&webhook.owner_id);
    Ok(())
}
