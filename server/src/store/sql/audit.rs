//! The audit log of admin actions.

use async_trait::async_trait;

use super::SqlStore;
use super::rows::AuditRow;
use crate::store::engine::{Engine, Query};
use crate::store::*;

const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor_id, actor_name, action, target, detail) \
    VALUES (?, ?, ?, ?, ?, ?)";

fn audit_insert(entry: &AuditEntry) -> Query<'_> {
    Query::new(
        INSERT_AUDIT,
        [
            entry.at.into(),
            entry.actor_id.as_str().into(),
            entry.actor_name.as_str().into(),
            entry.action.as_str().into(),
            entry.target.clone().into(),
            entry.detail.clone().into(),
        ],
    )
}

/// Writes an audit entry inside the transaction of the action it records.
pub(super) async fn insert_audit<E: Engine>(tx: &mut E::Tx, entry: &AuditEntry) -> StoreResult<()> {
    E::tx_execute(tx, audit_insert(entry)).await?;
    Ok(())
}

#[async_trait]
impl<E: Engine> AuditStore for SqlStore<E> {
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.engine.execute(audit_insert(entry)).await?;
        Ok(())
    }

    async fn audit_log(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let mut query = Query::new(
            "SELECT id, at, actor_id, actor_name, action, target, detail FROM audit_log WHERE TRUE",
            [],
        );
        if let Some(action) = filter.action {
            query.push(" AND action = ").bind(action.as_str());
        }
        if let Some(actor) = &filter.actor_name {
            query.push(" AND actor_name = ").bind(actor.as_str());
        }
        if let Some(before) = filter.before_id {
            query.push(" AND id < ").bind(before);
        }
        query.push(" ORDER BY id DESC LIMIT ").bind(filter.limit);
        let rows: Vec<AuditRow> = self.engine.read(query).await?;
        rows.into_iter().map(AuditRecord::try_from).collect()
    }
}
