//! Completion webhooks on PostgreSQL: claims skip rows another instance holds.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, insert_events};
use crate::events::Happened;
use crate::store::*;

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn due_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        per_owner: i64,
        busy_owners: &[String],
    ) -> StoreResult<Vec<DueWebhook>> {
        Ok(sqlx::query_as(
            "SELECT job_id, owner_id, url, attempts FROM ( \
               SELECT w.job_id, j.owner_id, w.url, w.attempts, w.next_attempt_at, \
                      ROW_NUMBER() OVER (PARTITION BY j.owner_id ORDER BY w.next_attempt_at, w.job_id) AS n \
               FROM webhooks w JOIN jobs j ON j.id = w.job_id \
               WHERE w.next_attempt_at IS NOT NULL AND w.delivered_at IS NULL AND w.gave_up_at IS NULL \
               AND w.next_attempt_at <= $1 AND j.owner_id <> ALL($2)) due \
             WHERE n <= $3 ORDER BY next_attempt_at, job_id LIMIT $4",
        )
        .bind(now)
        .bind(busy_owners)
        .bind(per_owner)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn claim_webhooks(
        &self,
        job_ids: &[String],
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> StoreResult<Vec<DueWebhook>> {
        Ok(sqlx::query_as(
            "WITH due AS ( \
                 SELECT job_id FROM webhooks WHERE job_id = ANY($3) AND next_attempt_at IS NOT NULL \
                 AND next_attempt_at <= $2 AND delivered_at IS NULL AND gave_up_at IS NULL \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE webhooks w SET next_attempt_at = $1 FROM due, jobs j \
             WHERE w.job_id = due.job_id AND j.id = w.job_id \
             RETURNING w.job_id, j.owner_id, w.url, w.attempts",
        )
        .bind(hold_until)
        .bind(now)
        .bind(job_ids)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn finish_webhook(
        &self,
        job_id: &str,
        outcome: &WebhookOutcome,
        event: &Happened,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let query = match outcome {
            WebhookOutcome::Delivered => sqlx::query(
                "UPDATE webhooks SET attempts = attempts + 1, delivered_at = $1, next_attempt_at = NULL, \
                 last_error = NULL WHERE job_id = $2",
            )
            .bind(now),
            WebhookOutcome::Failed { error, retry_at } => sqlx::query(
                "UPDATE webhooks SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, \
                 gave_up_at = CASE WHEN $2::timestamptz IS NULL THEN $3::timestamptz END WHERE job_id = $4",
            )
            .bind(error)
            .bind(*retry_at)
            .bind(now),
        };
        query.bind(job_id).execute(&mut *tx).await?;
        insert_events(&mut tx, &[(job_id, event, now)]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_webhook_secret(&self, user_id: &str, secret: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET webhook_secret = $1 WHERE id = $2")
            .bind(secret)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn webhook_secret(&self, user_id: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT webhook_secret FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }
}
