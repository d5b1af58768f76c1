//! Coordination of instances on SQLite (one instance in practice, but the same rules).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use crate::store::*;

#[async_trait]
impl InstanceStore for SqliteStore {
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
            "INSERT INTO leadership (name, owner, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE leadership.owner = excluded.owner OR leadership.expires_at < ?",
        )
        .bind(name)
        .bind(owner)
        .bind(to_micros(until))
        .bind(to_micros(now))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn resign(&self, name: &str, owner: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM leadership WHERE name = ? AND owner = ?")
            .bind(name)
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn announce(&self, _message: &str) -> StoreResult<()> {
        Ok(())
    }

    async fn announcements(
        &self,
    ) -> StoreResult<Option<futures::stream::BoxStream<'static, String>>> {
        Ok(None)
    }
}
