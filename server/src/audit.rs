//! The audit log of admin actions: entries are made here and written by the store in the
//! transaction of the action they record.

use app::api::{AuditAction, AuditEntryView, AuditPage, AuditQuery, Caller};
use chrono::Utc;

use crate::access::{require_admin, scheduler};
use crate::context::Ctx;
use crate::error::Result;
use crate::store::{AuditEntry, AuditFilter};

/// The entry for `caller` doing `action` now.
pub fn entry(
    caller: &Caller,
    action: AuditAction,
    target: Option<String>,
    detail: Option<String>,
) -> AuditEntry {
    AuditEntry {
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
pub fn entry_by_person(
    caller: &Caller,
    action: AuditAction,
    target: Option<String>,
    detail: Option<String>,
) -> Option<AuditEntry> {
    (caller.user_id != scheduler().user_id).then(|| entry(caller, action, target, detail))
}

/// The log, newest first, filtered (admins).
pub async fn log(ctx: &Ctx, caller: &Caller, query: &AuditQuery) -> Result<AuditPage> {
    require_admin(caller)?;
    let limit = query.limit();
    let records = ctx
        .store()
        .audit_log(&AuditFilter {
            action: query.action,
            actor_name: query.actor.clone().filter(|a| !a.trim().is_empty()),
            before_id: query.before,
            limit,
        })
        .await?;
    let next_before = (records.len() as i64 == limit)
        .then(|| records.last().map(|r| r.id))
        .flatten();
    Ok(AuditPage {
        entries: records
            .into_iter()
            .map(|r| AuditEntryView {
                id: r.id,
                at: r.entry.at,
                actor: r.entry.actor_name,
                action: r.entry.action,
                target: r.entry.target,
                detail: r.entry.detail,
            })
            .collect(),
        next_before,
    })
}
