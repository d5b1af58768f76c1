//! Users and credentials on PostgreSQL.

use app::api::Role;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::oversight::insert_audit;
use super::{PostgresStore, UserRow};
use crate::store::*;

#[derive(FromRow)]
struct CredentialRow {
    secret_hash: String,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    user: UserRow,
}

#[async_trait]
impl AccessStore for PostgresStore {
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
        sqlx::query(
            "INSERT INTO users (id, name, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(role.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row: UserRow =
            sqlx::query_as("SELECT id, name, role, created_at FROM users WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
        row.try_into()
    }

    async fn insert_credential(&self, c: NewCredential) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO credentials (id, kind, user_id, secret_hash, created_at, expires_at, opened_with) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(c.kind.as_str())
        .bind(&c.user_id)
        .bind(&c.secret_hash)
        .bind(c.created_at)
        .bind(c.expires_at)
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
             FROM credentials c JOIN users u ON u.id = c.user_id WHERE c.kind = $1 AND c.id = $2",
        )
        .bind(kind.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(CredentialRecord {
                secret_hash: row.secret_hash,
                expires_at: row.expires_at,
                revoked_at: row.revoked_at,
                user: row.user.try_into()?,
            })
        })
        .transpose()
    }

    async fn delete_credential(&self, kind: CredentialKind, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM credentials WHERE kind = $1 AND id = $2")
            .bind(kind.as_str())
            .bind(id)
            .execute(&self.pool)
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
        let rows: Vec<(String, String, DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT id, user_id, created_at, revoked_at FROM credentials WHERE kind = 'token' ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, user_id, created_at, revoked_at)| TokenRecord {
                id,
                user_id,
                created_at,
                revoked_at,
            })
            .collect())
    }

    async fn revoke_credential(
        &self,
        kind: CredentialKind,
        id: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE credentials SET revoked_at = $1 WHERE kind = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(kind.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 && kind == CredentialKind::Token {
            sqlx::query(
                "UPDATE credentials SET revoked_at = $1 WHERE kind = $2 AND opened_with = $3 AND revoked_at IS NULL",
            )
            .bind(now)
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
