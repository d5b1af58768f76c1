//! Monthly spend caps (UTC calendar months). An enqueue that would take a user past their cap
//! is refused; a flush sends a capped user's jobs only while what they may cost fits. A cap
//! limits what is sent from now on; it never changes a recorded cost.

use std::collections::HashMap;

use app::api::validation::MAX_MONTHLY_CAP_USD;
use app::api::{AuditAction, BudgetRequest, BudgetView, Caller, nanos_to_usd};
use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::access::require_admin;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::store::{Allowances, BudgetUsage};

/// Midnight UTC on the first of `now`'s month.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

fn view(usage: &BudgetUsage, now: DateTime<Utc>) -> BudgetView {
    let pending = usage.in_flight_bound_nanos + usage.pending_bound_nanos;
    BudgetView {
        user: usage.user_name.clone(),
        month: now.format("%Y-%m").to_string(),
        monthly_cap_usd: usage.cap_nanos.map(nanos_to_usd),
        spent_usd: nanos_to_usd(usage.spent_nanos),
        pending_bound_usd: nanos_to_usd(pending),
        remaining_usd: usage.remaining().map(nanos_to_usd),
        monthly_cap_nanos: usage.cap_nanos,
        spent_nanos: usage.spent_nanos,
        pending_bound_nanos: pending,
        remaining_nanos: usage.remaining(),
    }
}

/// The caller's own budget this month.
pub async fn own(ctx: &Ctx, caller: &Caller) -> Result<BudgetView> {
    let now = Utc::now();
    let usage = ctx
        .store()
        .budget_usage(&caller.user_id, month_start(now))
        .await?;
    Ok(view(&usage, now))
}

/// Every capped user's budget this month (admins).
pub async fn all(ctx: &Ctx, caller: &Caller) -> Result<Vec<BudgetView>> {
    require_admin(caller)?;
    let now = Utc::now();
    let usages = ctx.store().capped_usages(month_start(now)).await?;
    Ok(usages.iter().map(|u| view(u, now)).collect())
}

/// Sets or removes a user's cap (admins), with its audit entry in the same transaction.
pub async fn set(
    ctx: &Ctx,
    caller: &Caller,
    user: &str,
    request: &BudgetRequest,
) -> Result<BudgetView> {
    require_admin(caller)?;
    // Checked by `parse_budget_request` on every way in.
    let cap_nanos = request
        .monthly_cap_usd
        .map(|usd| (usd.clamp(0.0, MAX_MONTHLY_CAP_USD) * 1e9).round() as i64);
    let detail = match cap_nanos {
        Some(cap) => format!("monthly cap {}", app::api::money(cap)),
        None => "cap removed".to_string(),
    };
    let audit = crate::store::AuditEntry::by(
        caller,
        AuditAction::BudgetChange,
        Some(user.to_string()),
        Some(detail),
    );
    let Some(record) = ctx.store().set_budget(user, cap_nanos, &audit).await? else {
        return Err(Error::NotFound(format!("No user is named {user}")));
    };
    ctx.caches.caps.invalidate(&record.id);
    let now = Utc::now();
    let usage = ctx
        .store()
        .budget_usage(&record.id, month_start(now))
        .await?;
    Ok(view(&usage, now))
}

/// Refuses new jobs that could take the caller past their cap: what is spent, what their
/// unbilled jobs may cost and what these may cost must fit. Users without a cap pay one
/// cached lookup.
pub async fn check_enqueue(ctx: &Ctx, caller: &Caller, new_bound_nanos: i64) -> Result<()> {
    let cap = match ctx.caches.caps.get(&caller.user_id) {
        Some(cap) => cap,
        None => {
            let cap = ctx.store().monthly_cap(&caller.user_id).await?;
            ctx.caches.caps.insert(caller.user_id.clone(), cap);
            cap
        }
    };
    if cap.is_none() {
        return Ok(());
    }
    let now = Utc::now();
    let usage = ctx
        .store()
        .budget_usage(&caller.user_id, month_start(now))
        .await?;
    let Some(left) = usage.remaining() else {
        return Ok(());
    };
    if new_bound_nanos <= left {
        return Ok(());
    }
    let owed = usage.in_flight_bound_nanos + usage.pending_bound_nanos;
    let cap = usage.cap_nanos.unwrap_or_default();
    // The refusal compares the new bound with what is left: never "$0.01, and $0.01 is left".
    let precision = app::api::Precision::telling_apart([
        new_bound_nanos,
        left.max(0),
        cap,
        usage.spent_nanos,
        owed,
    ]);
    let money = |nanos: i64| precision.show(nanos);
    Err(Error::OverBudget(format!(
        "Over your monthly budget: these jobs may cost up to {}, and {} of your {} cap is left \
         ({} spent this month, up to {} owed by jobs not yet billed). Ask an admin to raise the cap, \
         or cancel pending jobs.",
        money(new_bound_nanos),
        money(left.max(0)),
        money(cap),
        money(usage.spent_nanos),
        money(owed),
    )))
}

/// The budgets' side of a flush.
pub struct FlushBudgets {
    /// What each capped owner may still have sent (cap − spent − in flight).
    pub allowances: Allowances,
    /// Capped owners' names, by id, for messages.
    pub names: HashMap<String, String>,
    /// Capped owners whose first eligible job does not fit their allowance: none of their
    /// jobs can go, so none may trigger an automatic flush.
    pub blocked: Vec<String>,
}

pub async fn for_flush(ctx: &Ctx, now: DateTime<Utc>) -> Result<FlushBudgets> {
    let usages = ctx.store().capped_usages(month_start(now)).await?;
    let allowances = Allowances::new(&usages);
    let blocked = if usages.is_empty() {
        Vec::new()
    } else {
        ctx.store()
            .first_capped_bounds(now)
            .await?
            .into_iter()
            .filter(|(owner, bound)| allowances.blocks(owner, *bound))
            .map(|(owner, _)| owner)
            .collect()
    };
    Ok(FlushBudgets {
        allowances,
        names: usages
            .into_iter()
            .map(|u| (u.user_id, u.user_name))
            .collect(),
        blocked,
    })
}
