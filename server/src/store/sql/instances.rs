//! What instances sharing a database coordinate through: leases on duties, announcements.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use super::SqlStore;
use crate::store::engine::Engine;
use crate::store::*;

#[async_trait]
impl<E: Engine> InstanceStore for SqlStore<E> {
    async fn ping(&self) -> StoreResult<()> {
        let _: Vec<(i64,)> = self.read("SELECT CAST(1 AS BIGINT)", []).await?;
        Ok(())
    }

    async fn lead(
        &self,
        name: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.write_one(
            "INSERT INTO leadership (name, owner, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE leadership.owner = excluded.owner OR leadership.expires_at < ?",
            [name.into(), owner.into(), until.into(), now.into()],
        )
        .await
    }

    async fn resign(&self, name: &str, owner: &str) -> StoreResult<()> {
        self.write_one(
            "DELETE FROM leadership WHERE name = ? AND owner = ?",
            [name.into(), owner.into()],
        )
        .await?;
        Ok(())
    }

    async fn announce(&self, message: &str) -> StoreResult<()> {
        self.engine.announce(message).await
    }

    async fn announcements(&self) -> StoreResult<Option<BoxStream<'static, String>>> {
        self.engine.announcements().await
    }
}
