//! Completion webhooks on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteStore, insert_events};
use crate::events::Happened;
use crate::store::*;

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn due_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        per_owner: i64,
        busy_owners: &[String],
    ) -> StoreResult<Vec<DueWebhook>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT job_id, owner_id, url, attempts FROM ( \
               SELECT w.job_id, j.owner_id, w.url, w.attempts, w.next_attempt_at, \
                      ROW_NUMBER() OVER (PARTITION BY j.owner_id ORDER BY w.next_attempt_at, w.job_id) AS n \
               FROM webhooks w JOIN jobs j ON j.id = w.job_id \
               WHERE w.next_attempt_at IS NOT NULL AND w.delivered_at IS NULL AND w.gave_up_at IS NULL \
               AND w.next_attempt_at <= ",
        );
        query.push_bind(to_micros(now));
        if !busy_owners.is_empty() {
            query.push(" AND j.owner_id NOT IN (");
            let mut list = query.separated(", ");
            for owner in busy_owners {
                list.push_bind(owner.clone());
            }
            list.push_unseparated(")");
        }
        query
            .push(") WHERE n <= ")
            .push_bind(per_owner)
            .push(" ORDER BY next_attempt_at, job_id LIMIT ")
            .push_bind(limit);
        Ok(query.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn claim_webhooks(
        &self,
        job_ids: &[String],
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> StoreResult<Vec<DueWebhook>> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One statement: the claim is atomic without a transaction of its own.
        let mut query = QueryBuilder::<Sqlite>::new("UPDATE webhooks SET next_attempt_at = ");
        query
            .push_bind(to_micros(hold_until))
            .push(
                " WHERE next_attempt_at IS NOT NULL AND delivered_at IS NULL AND gave_up_at IS NULL \
                 AND next_attempt_at <= ",
            )
            .push_bind(to_micros(now))
            .push(" AND job_id IN (");
        let mut list = query.separated(", ");
        for id in job_ids {
            list.push_bind(id.clone());
        }
        list.push_unseparated(")");
        query.push(
            " RETURNING job_id, (SELECT owner_id FROM jobs WHERE jobs.id = webhooks.job_id) AS owner_id, \
             url, attempts",
        );
        Ok(query.build_query_as().fetch_all(&self.writer).await?)
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
