//! Completion webhooks: due once their job has ended, claimed by moving the next attempt on.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{DueWebhookRow, first};
use super::{SqlStore, insert_events, tx_execute};
use crate::events::Happened;
use crate::store::engine::{Engine, Query};
use crate::store::*;

/// A webhook still owed an attempt (columns only `webhooks` has, so they need no alias).
const OWED: &str = "next_attempt_at IS NOT NULL AND delivered_at IS NULL AND gave_up_at IS NULL";

#[async_trait]
impl<E: Engine> WebhookStore for SqlStore<E> {
    async fn due_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        per_owner: i64,
        busy_owners: &[String],
    ) -> StoreResult<Vec<DueWebhook>> {
        let mut query = Query::new(
            format!(
                "SELECT job_id, owner_id, url, attempts FROM ( \
                   SELECT w.job_id, j.owner_id, w.url, w.attempts, w.next_attempt_at, \
                     ROW_NUMBER() OVER (PARTITION BY j.owner_id ORDER BY w.next_attempt_at, w.job_id) AS n \
                   FROM webhooks w JOIN jobs j ON j.id = w.job_id \
                   WHERE {OWED} AND w.next_attempt_at <= ?"
            ),
            [now.into()],
        );
        if !busy_owners.is_empty() {
            query.push(" AND j.owner_id NOT IN ").list(busy_owners);
        }
        query
            .push(") due WHERE n <= ")
            .bind(per_owner)
            .push(" ORDER BY next_attempt_at, job_id LIMIT ")
            .bind(limit);
        let rows: Vec<DueWebhookRow> = self.engine.read(query).await?;
        Ok(rows.into_iter().map(DueWebhook::from).collect())
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
        // One statement: the claim is atomic without a transaction of its own; rows another
        // instance holds are skipped.
        let mut query = Query::new("UPDATE webhooks SET next_attempt_at = ", []);
        query
            .bind(hold_until)
            .push(&format!(
                " WHERE job_id IN (SELECT w.job_id FROM webhooks w WHERE {OWED} AND w.next_attempt_at <= "
            ))
            .bind(now)
            .push(" AND w.job_id IN ")
            .list(job_ids)
            .push(&format!(
                "{}) RETURNING job_id, (SELECT owner_id FROM jobs WHERE jobs.id = webhooks.job_id) AS owner_id, \
                 url, attempts",
                E::DIALECT.skip_locked("w")
            ));
        let rows: Vec<DueWebhookRow> = self.engine.write(query).await?;
        Ok(rows.into_iter().map(DueWebhook::from).collect())
    }

    async fn finish_webhook(
        &self,
        job_id: &str,
        outcome: &WebhookOutcome,
        event: &Happened,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        match outcome {
            WebhookOutcome::Delivered => {
                tx_execute::<E>(
                    &mut tx,
                    "UPDATE webhooks SET attempts = attempts + 1, delivered_at = ?, \
                     next_attempt_at = NULL, last_error = NULL WHERE job_id = ?",
                    [now.into(), job_id.into()],
                )
                .await?
            }
            WebhookOutcome::Failed { error, retry_at } => {
                let gave_up_at = if retry_at.is_none() { Some(now) } else { None };
                tx_execute::<E>(
                    &mut tx,
                    "UPDATE webhooks SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, \
                     gave_up_at = ? WHERE job_id = ?",
                    [
                        error.as_str().into(),
                        (*retry_at).into(),
                        gave_up_at.into(),
                        job_id.into(),
                    ],
                )
                .await?
            }
        };
        insert_events::<E>(&mut tx, &[(job_id, event, now)]).await?;
        E::commit(tx).await
    }

    async fn set_webhook_secret(&self, user_id: &str, secret: &str) -> StoreResult<()> {
        self.write_one(
            "UPDATE users SET webhook_secret = ? WHERE id = ?",
            [secret.into(), user_id.into()],
        )
        .await?;
        Ok(())
    }

    async fn webhook_secret(&self, user_id: &str) -> StoreResult<Option<String>> {
        let rows: Vec<(Option<String>,)> = self
            .read(
                "SELECT webhook_secret FROM users WHERE id = ?",
                [user_id.into()],
            )
            .await?;
        Ok(first(rows).flatten())
    }
}
