//! The audit log of admin actions: entries are made by use cases and written by the store in
//! the transaction of the action they record.

use app::api::{AuditAction, Caller};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// An admin action, written by the store in the transaction of the action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor_id: String,
    pub actor_name: String,
    pub action: AuditAction,
    pub target: Option<String>,
    pub detail: Option<String>,
}

impl AuditEntry {
    /// `caller` doing `action` now.
    pub fn by(
        caller: &Caller,
        action: AuditAction,
        target: Option<String>,
        detail: Option<String>,
    ) -> Self {
        Self {
            at: Utc::now(),
            actor_id: caller.user_id.clone(),
            actor_name: caller.name.clone(),
            action,
            target,
            detail,
        }
    }

    /// The same, unless the caller is the scheduler: its timed flushes and polls are routine,
    /// not an admin's decision, and would bury the log.
    pub fn by_person(
        caller: &Caller,
        action: AuditAction,
        target: Option<String>,
        detail: Option<String>,
    ) -> Option<Self> {
        (!caller.is_scheduler()).then(|| Self::by(caller, action, target, detail))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<AuditAction>,
    pub actor_name: Option<String>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// The audit log of admin actions.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// For an action that is not one transaction of its own (a poll).
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Newest first.
    async fn audit_log(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;
}
