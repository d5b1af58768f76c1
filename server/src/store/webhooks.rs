//! Completion webhooks as the store keeps them: a row per job that asked for one, due once
//! the job has ended, claimed by moving its next attempt forward.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::events::Happened;

/// A webhook to send now: the job it is about, where to, and the attempts made so far.
#[derive(Clone, Debug, PartialEq)]
pub struct DueWebhook {
    pub job_id: String,
    pub owner_id: String,
    pub url: String,
    pub attempts: i64,
}

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookOutcome {
    Delivered,
    /// Failed; tried again at `retry_at`, or never again when `None`.
    Failed {
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Up to `limit` webhooks whose jobs have ended and whose next attempt is due at `now`,
    /// oldest first, at most `per_owner` of any one owner and none of `busy_owners`.
    async fn due_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        per_owner: i64,
        busy_owners: &[String],
    ) -> StoreResult<Vec<DueWebhook>>;
    /// Claims those of `job_ids` still due at `now`: each is held until `hold_until` (no other
    /// claim takes it before then). Returns the ones claimed.
    async fn claim_webhooks(
        &self,
        job_ids: &[String],
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> StoreResult<Vec<DueWebhook>>;
    /// Records an attempt (counted once) and its event on the job, in one transaction.
    async fn finish_webhook(
        &self,
        job_id: &str,
        outcome: &WebhookOutcome,
        event: &Happened,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Replaces the user's signing secret.
    async fn set_webhook_secret(&self, user_id: &str, secret: &str) -> StoreResult<()>;
    async fn webhook_secret(&self, user_id: &str) -> StoreResult<Option<String>>;
}
