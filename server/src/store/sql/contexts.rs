//! Shared contexts: stored once per owner and text, read by the flush that renders them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::audit::insert_audit;
use super::rows::ContextRow;
use super::{SqlStore, tx_execute, tx_read};
use crate::store::engine::{Engine, Query};
use crate::store::*;

/// A context's columns, with the jobs that name it; `{text}` is its text or NULL.
fn columns(with_text: bool) -> String {
    format!(
        "c.id, c.owner_id, u.name AS owner_name, c.name, c.sha256, c.bytes, c.tokens_estimate, \
         c.shared, c.created_at, {} AS text, \
         CAST((SELECT COUNT(*) FROM jobs j WHERE j.context_id = c.id \
           AND j.status IN ('pending', 'processing')) AS BIGINT) AS jobs_waiting, \
         CAST((SELECT COUNT(*) FROM jobs j WHERE j.context_id = c.id) AS BIGINT) AS jobs_total \
         FROM contexts c JOIN users u ON u.id = c.owner_id WHERE c.deleted_at IS NULL",
        if with_text { "c.text" } else { "NULL" }
    )
}

/// ` AND <the viewer may use it>`: their own or a shared one; any for an admin.
fn push_usable<'a>(query: &mut Query<'a>, visibility: &'a Visibility) {
    if let Visibility::Owner(owner_id) = visibility {
        query
            .push(" AND (c.owner_id = ")
            .bind(owner_id.as_str())
            .push(" OR c.shared)");
    }
}

/// ` AND <the viewer owns it>`: only an owner (or an admin) may delete.
fn push_owned<'a>(query: &mut Query<'a>, visibility: &'a Visibility) {
    if let Visibility::Owner(owner_id) = visibility {
        query.push(" AND c.owner_id = ").bind(owner_id.as_str());
    }
}

async fn context_in<E: Engine>(
    tx: &mut E::Tx,
    id: &str,
    visibility: &Visibility,
) -> StoreResult<Option<ContextRecord>> {
    let mut query = Query::new(format!("SELECT {} AND c.id = ", columns(false)), []);
    query.bind(id);
    push_owned(&mut query, visibility);
    let rows: Vec<ContextRow> = E::tx_read(tx, query).await?;
    rows.into_iter()
        .next()
        .map(ContextRecord::try_from)
        .transpose()
}

#[async_trait]
impl<E: Engine> ContextStore for SqlStore<E> {
    async fn insert_context(&self, c: NewContext) -> StoreResult<(ContextRecord, bool)> {
        let mut tx = self.begin().await?;
        let inserted = tx_execute::<E>(
            &mut tx,
            "INSERT INTO contexts (id, owner_id, name, text, sha256, bytes, tokens_estimate, shared, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, FALSE, ?) \
             ON CONFLICT (owner_id, sha256) WHERE deleted_at IS NULL DO NOTHING",
            [
                c.id.as_str().into(),
                c.owner_id.as_str().into(),
                c.name.as_str().into(),
                c.text.as_str().into(),
                c.sha256.as_str().into(),
                c.bytes.into(),
                c.tokens_estimate.into(),
                c.created_at.into(),
            ],
        )
        .await?
            == 1;
        let sql = format!(
            "SELECT {} AND c.owner_id = ? AND c.sha256 = ?",
            columns(false)
        );
        let rows: Vec<ContextRow> = tx_read::<E, _>(
            &mut tx,
            &sql,
            [c.owner_id.as_str().into(), c.sha256.as_str().into()],
        )
        .await?;
        E::commit(tx).await?;
        let stored = rows
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt(format!("context {} was not stored", c.id)))?;
        Ok((stored.try_into()?, inserted))
    }

    async fn get_context(
        &self,
        id: &str,
        visibility: &Visibility,
        with_text: bool,
    ) -> StoreResult<Option<ContextRecord>> {
        let mut query = Query::new(format!("SELECT {} AND c.id = ", columns(with_text)), []);
        query.bind(id);
        push_usable(&mut query, visibility);
        let rows: Vec<ContextRow> = self.engine.read(query).await?;
        rows.into_iter()
            .next()
            .map(ContextRecord::try_from)
            .transpose()
    }

    async fn list_contexts(&self, visibility: &Visibility) -> StoreResult<Vec<ContextRecord>> {
        let mut query = Query::new(format!("SELECT {}", columns(false)), []);
        push_usable(&mut query, visibility);
        query.push(" ORDER BY c.created_at DESC, c.id DESC");
        let rows: Vec<ContextRow> = self.engine.read(query).await?;
        rows.into_iter().map(ContextRecord::try_from).collect()
    }

    async fn delete_context(
        &self,
        id: &str,
        visibility: &Visibility,
        now: DateTime<Utc>,
    ) -> StoreResult<ContextDeletion> {
        let mut tx = self.begin().await?;
        // Where writers run at once, the row is locked first: an enqueue naming it waits.
        if E::DIALECT.locks_rows() {
            tx_execute::<E>(
                &mut tx,
                "SELECT id FROM contexts WHERE id = ? FOR UPDATE",
                [id.into()],
            )
            .await?;
        }
        let Some(context) = context_in::<E>(&mut tx, id, visibility).await? else {
            return Ok(ContextDeletion::NotFound);
        };
        if context.jobs_waiting > 0 {
            return Ok(ContextDeletion::InUse {
                jobs: context.jobs_waiting,
            });
        }
        tx_execute::<E>(
            &mut tx,
            "UPDATE contexts SET deleted_at = ?, text = '' WHERE id = ?",
            [now.into(), id.into()],
        )
        .await?;
        E::commit(tx).await?;
        Ok(ContextDeletion::Deleted)
    }

    async fn share_context(&self, id: &str, shared: bool, audit: &AuditEntry) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let changed = tx_execute::<E>(
            &mut tx,
            "UPDATE contexts SET shared = ? WHERE id = ? AND deleted_at IS NULL",
            [shared.into(), id.into()],
        )
        .await?;
        if changed != 1 {
            return Ok(false);
        }
        insert_audit::<E>(&mut tx, audit).await?;
        E::commit(tx).await?;
        Ok(true)
    }

    async fn context_texts(&self, ids: &[String]) -> StoreResult<Vec<(String, String, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = Query::new(
            "SELECT id, name, text FROM contexts WHERE deleted_at IS NULL AND id IN ",
            [],
        );
        query.list(ids);
        self.engine.read(query).await
    }
}
