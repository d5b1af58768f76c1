//! Completion webhooks: when a job that asked for one ends, its job object is POSTed to its
//! `callback_url`, signed the way Stripe and GitHub sign theirs (HMAC-SHA256 of
//! `"{timestamp}.{body}"` with the owner's secret). Deliveries run as a scheduler service of
//! their own, never inside ingest; a failed one is retried with doubling waits and every
//! attempt is an event on the job.

mod send;

use std::time::Duration;

use app::api::Caller;
use chrono::Utc;
use futures::StreamExt;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::events::Happened;
use crate::jobs::to_api_job;
use crate::store::{DueWebhook, Visibility, WebhookOutcome};

pub use send::{SIGNATURE_HEADER, sign};

/// Webhooks claimed per round, and sent at once.
const ROUND: i64 = 64;
const AT_ONCE: usize = 16;
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

/// One round: sends the webhooks that are due, a few at a time; `Ok(sent)`.
pub async fn deliver_due(ctx: &Ctx) -> Result<usize> {
    let timeout = Duration::from_secs(ctx.config.webhooks.timeout_secs.max(1));
    let now = Utc::now();
    // Held past the longest a round can take, so a crashed round's webhooks come back.
    let hold =
        chrono::Duration::from_std(timeout * 4).unwrap_or_default() + chrono::Duration::seconds(30);
    let due = ctx.store().claim_webhooks(now, now + hold, ROUND).await?;
    let count = due.len();
    let results: Vec<Result<()>> = futures::stream::iter(due)
        .map(|webhook| deliver(ctx, webhook, timeout))
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    for result in results {
        result?;
    }
    Ok(count)
}

async fn deliver(ctx: &Ctx, webhook: DueWebhook, timeout: Duration) -> Result<()> {
    let store = ctx.store();
    let attempt = webhook.attempts + 1;
    let job = store.get_job(&webhook.job_id, &Visibility::All).await?;
    let secret = store.webhook_secret(&webhook.owner_id).await?;
    let answer = match (job, secret) {
        (Some(job), Some(secret)) => {
            let body = serde_json::to_vec(&to_api_job(job, false)).unwrap_or_default();
            send::post(&webhook.url, body, &secret, timeout).await
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
    Ok(())
}
