//! Users and credentials on SQLite.

use app::api::Role;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::oversight::insert_audit;
use super::{CredentialRow, SqliteStore, UserRow};
use crate::store::*;

#[async_trait]
impl AccessStore for SqliteStore {
    async fn count_users(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn ensure_user(
        &self,
        id: &str,
        name: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> StoreResult<UserRecord> {
        sqlx::query("INSERT INTO users (id, name, role, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(id)
            .bind(name)
            .bind(role.as_str())
            .bind(to_micros(now))
            .execute(&self.writer)
            .await?;
        let row: UserRow =
            sqlx::query_as("SELECT id, name, role, created_at FROM users WHERE name = ?")
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
        row.try_into()
    }

    async fn insert_credential(&self, c: NewCredential) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO credentials (id, kind, user_id, secret_hash, created_at, expires_at, opened_with) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(c.kind.as_str())
        .bind(&c.user_id)
        .bind(&c.secret_hash)
        .bind(to_micros(c.created_at))
        .bind(c.expires_at.map(to_micros))
        .bind(&c.opened_with)
        .execute(&mut *tx)
        .await?;
        if let Some(audit) = &c.audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_credential(
        &self,
        kind: CredentialKind,
        id: &str,
    ) -> StoreResult<Option<CredentialRecord>> {
        let row: Option<CredentialRow> = sqlx::query_as(
            "SELECT c.secret_hash, c.expires_at, c.revoked_at, u.id, u.name, u.role, u.created_at \
             FROM credentials c JOIN users u ON u.id = c.user_id WHERE c.kind = ? AND c.id = ?",
        )
        .bind(kind.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(CredentialRecord::try_from).transpose()
    }

    async fn delete_credential(&self, kind: CredentialKind, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM credentials WHERE kind = ? AND id = ?")
            .bind(kind.as_str())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        let rows: Vec<UserRow> =
            sqlx::query_as("SELECT id, name, role, created_at FROM users ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(UserRecord::try_from).collect()
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, user_id, created_at, revoked_at FROM credentials WHERE kind = 'token' ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, user_id, created_at, revoked_at)| {
                Ok(TokenRecord {
                    id,
                    user_id,
                    created_at: from_micros(created_at)?,
                    revoked_at: revoked_at.map(from_micros).transpose()?,
                })
            })
            .collect()
    }

    async fn revoke_credential(
        &self,
        kind: CredentialKind,
        id: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query("UPDATE credentials SET revoked_at = ? WHERE kind = ? AND id = ? AND revoked_at IS NULL")
            .bind(to_micros(now))
            .bind(kind.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 1 && kind == CredentialKind::Token {
            sqlx::query(
                "UPDATE credentials SET revoked_at = ? WHERE kind = ? AND opened_with = ? AND revoked_at IS NULL",
            )
            .bind(to_micros(now))
            .bind(CredentialKind::Session.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if changed == 1
            && let Some(audit) = audit
        {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }
}
