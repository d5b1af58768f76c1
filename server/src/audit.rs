//! The audit log of admin actions, as admins read it. Entries are made with
//! `store::AuditEntry::by` and written by the store in the transaction of their action.

use app::api::{AuditEntryView, AuditPage, AuditQuery, Caller};

use crate::access::require_admin;
use crate::context::Ctx;
use crate::error::Result;
use crate::store::AuditFilter;

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
