//! Users and their credentials.

use app::api::Role;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::audit::insert_audit;
use super::rows::{CredentialRow, TokenRow, UserRow, first};
use super::{SqlStore, tx_execute};
use crate::store::engine::Engine;
use crate::store::*;

const USER_COLUMNS: &str = "SELECT id, name, role, created_at FROM users";

#[async_trait]
impl<E: Engine> AccessStore for SqlStore<E> {
    async fn count_users(&self) -> StoreResult<i64> {
        let rows: Vec<(i64,)> = self.read("SELECT COUNT(*) FROM users", []).await?;
        Ok(first(rows).unwrap_or(0))
    }

    async fn ensure_user(
        &self,
        id: &str,
        name: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> StoreResult<UserRecord> {
        self.engine
            .execute(crate::store::engine::Query::new(
                "INSERT INTO users (id, name, role, created_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (name) DO NOTHING",
                [id.into(), name.into(), role.as_str().into(), now.into()],
            ))
            .await?;
        self.read_one::<UserRow>(&format!("{USER_COLUMNS} WHERE name = ?"), [name.into()])
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("user {name:?} was not stored")))?
            .try_into()
    }

    async fn insert_credential(&self, c: NewCredential) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx_execute::<E>(
            &mut tx,
            "INSERT INTO credentials (id, kind, user_id, secret_hash, created_at, expires_at, opened_with) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                c.id.as_str().into(),
                c.kind.as_str().into(),
                c.user_id.as_str().into(),
                c.secret_hash.as_str().into(),
                c.created_at.into(),
                c.expires_at.into(),
                c.opened_with.clone().into(),
            ],
        )
        .await?;
        if let Some(audit) = &c.audit {
            insert_audit::<E>(&mut tx, audit).await?;
        }
        E::commit(tx).await
    }

    async fn find_credential(
        &self,
        kind: CredentialKind,
        id: &str,
    ) -> StoreResult<Option<CredentialRecord>> {
        self.read_one::<CredentialRow>(
            "SELECT c.secret_hash, c.expires_at, c.revoked_at, u.id, u.name, u.role, u.created_at \
             FROM credentials c JOIN users u ON u.id = c.user_id WHERE c.kind = ? AND c.id = ?",
            [kind.as_str().into(), id.into()],
        )
        .await?
        .map(CredentialRecord::try_from)
        .transpose()
    }

    async fn delete_credential(&self, kind: CredentialKind, id: &str) -> StoreResult<()> {
        self.write_one(
            "DELETE FROM credentials WHERE kind = ? AND id = ?",
            [kind.as_str().into(), id.into()],
        )
        .await?;
        Ok(())
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        let rows: Vec<UserRow> = self
            .read(&format!("{USER_COLUMNS} ORDER BY name"), [])
            .await?;
        rows.into_iter().map(UserRecord::try_from).collect()
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = self
            .read(
                "SELECT id, user_id, created_at, revoked_at FROM credentials \
                 WHERE kind = 'token' ORDER BY created_at, id",
                [],
            )
            .await?;
        Ok(rows.into_iter().map(TokenRecord::from).collect())
    }

    async fn revoke_credential(
        &self,
        kind: CredentialKind,
        id: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let revoked = tx_execute::<E>(
            &mut tx,
            "UPDATE credentials SET revoked_at = ? WHERE kind = ? AND id = ? AND revoked_at IS NULL",
            [now.into(), kind.as_str().into(), id.into()],
        )
        .await?
            == 1;
        if !revoked {
            return Ok(false);
        }
        if kind == CredentialKind::Token {
            tx_execute::<E>(
                &mut tx,
                "UPDATE credentials SET revoked_at = ? WHERE kind = ? AND opened_with = ? \
                 AND revoked_at IS NULL",
                [
                    now.into(),
                    CredentialKind::Session.as_str().into(),
                    id.into(),
                ],
            )
            .await?;
        }
        if let Some(audit) = audit {
            insert_audit::<E>(&mut tx, audit).await?;
        }
        E::commit(tx).await?;
        Ok(true)
    }
}
