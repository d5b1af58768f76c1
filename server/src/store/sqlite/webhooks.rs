//! Completion webhooks on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, insert_events};
use crate::events::Happened;
use crate::store::*;

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<DueWebhook>> {
        // One statement: the claim is atomic without a transaction of its own.
        Ok(sqlx::query_as(
            "UPDATE webhooks SET next_attempt_at = ? WHERE job_id IN ( \
                 SELECT job_id FROM webhooks WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ? \
                 AND delivered_at IS NULL AND gave_up_at IS NULL ORDER BY next_attempt_at LIMIT ?) \
             RETURNING job_id, (SELECT owner_id FROM jobs WHERE jobs.id = webhooks.job_id) AS owner_id, \
                       url, attempts",
        )
        .bind(to_micros(hold_until))
        .bind(to_micros(now))
        .bind(limit)
        .fetch_all(&self.writer)
        .await?)
    }

    async fn finish_webhook(
        &self,
        job_id: &str,
        outcome: &WebhookOutcome,
        event: &Happened,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let query = match outcome {
            WebhookOutcome::Delivered => sqlx::query(
                "UPDATE webhooks SET attempts = attempts + 1, delivered_at = ?, next_attempt_at = NULL, \
                 last_error = NULL WHERE job_id = ?",
            )
            .bind(to_micros(now)),
            WebhookOutcome::Failed { error, retry_at } => sqlx::query(
                "UPDATE webhooks SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, \
                 gave_up_at = CASE WHEN ? IS NULL THEN ? END WHERE job_id = ?",
            )
            .bind(error)
            .bind(retry_at.map(to_micros))
            .bind(retry_at.map(to_micros))
            .bind(to_micros(now)),
        };
        query.bind(job_id).execute(&mut *tx).await?;
        insert_events(&mut tx, &[(job_id, event, now)]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_webhook_secret(&self, user_id: &str, secret: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET webhook_secret = ? WHERE id = ?")
            .bind(secret)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn webhook_secret(&self, user_id: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT webhook_secret FROM users WHERE id = ?")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }
}
