//! Coordination of instances on PostgreSQL: a leadership row per duty, taken once it lapses.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::postgres::PgListener;

use super::PostgresStore;
use crate::store::*;

#[async_trait]
impl InstanceStore for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn lead(
        &self,
        name: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "INSERT INTO leadership (name, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE leadership.owner = excluded.owner OR leadership.expires_at < $4",
        )
        .bind(name)
        .bind(owner)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn resign(&self, name: &str, owner: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM leadership WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn announce(&self, message: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(ANNOUNCEMENTS)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn announcements(&self) -> StoreResult<Option<BoxStream<'static, String>>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(ANNOUNCEMENTS).await?;
        let heard = futures::stream::unfold(listener, |mut listener| async move {
            loop {
                match listener.recv().await {
                    Ok(notification) => {
                        return Some((notification.payload().to_string(), listener));
                    }
                    // The next call connects again; wait a little so a database that is down
                    // is not asked in a loop.
                    Err(error) => {
                        tracing::debug!(%error, "listening for announcements failed; trying again");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Some(Box::pin(heard)))
    }
}

/// The PostgreSQL channel instances announce their changes on.
const ANNOUNCEMENTS: &str = "ai_batch_changes";
