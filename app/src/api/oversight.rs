//! Spend caps and the admin audit log, as the REST API and the dashboard show them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user's spend in the current UTC month against their cap. Amounts come twice: in USD for
/// people and exactly in nano-dollars for pages, which add and compare only these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BudgetView {
    pub user: String,
    /// `YYYY-MM`, UTC.
    pub month: String,
    /// `null`: no cap.
    pub monthly_cap_usd: Option<f64>,
    /// Billed this month.
    pub spent_usd: f64,
    /// The most the user's pending and in-flight jobs may still cost (every request using
    /// its whole `max_tokens`, as the flush preview counts).
    pub pending_bound_usd: f64,
    /// Cap − spent − pending bound; below zero when the cap was lowered under what is owed.
    pub remaining_usd: Option<f64>,
    pub monthly_cap_nanos: Option<i64>,
    pub spent_nanos: i64,
    pub pending_bound_nanos: i64,
    pub remaining_nanos: Option<i64>,
}

/// Sets a user's monthly cap; `null` removes it. Past costs are never changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BudgetRequest {
    /// USD per UTC month, 0 to 1,000,000,000; `null` removes the cap. Required: an empty
    /// body changes nothing by accident.
    #[cfg_attr(
        feature = "ssr",
        schema(required = true, minimum = 0, maximum = 1_000_000_000)
    )]
    pub monthly_cap_usd: Option<f64>,
}

wire_enum!(
    /// What an admin did, as the audit log names it.
    AuditAction {
        TokenCreate => "token_create",
        TokenRevoke => "token_revoke",
        Flush => "flush",
        Poll => "poll",
        BudgetChange => "budget_change",
        Retry => "retry",
        ContextShare => "context_share",
    }
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEntryView {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The admin's user name.
    pub actor: String,
    pub action: AuditAction,
    /// What the action was done to: a token id, a user, a batch.
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// Filters of the audit log; newest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditQuery {
    pub action: Option<AuditAction>,
    /// An admin's user name.
    pub actor: Option<String>,
    /// Entries older than this id (the previous page's `next_before`).
    pub before: Option<i64>,
    /// 1 to 500; 50 by default.
    pub limit: Option<i64>,
}

impl AuditQuery {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 500;

    /// The Access page's: `actor` when not blank, the default length.
    pub fn page(action: Option<AuditAction>, actor: &str, before: Option<i64>) -> Self {
        Self {
            action,
            actor: Some(actor.to_string()).filter(|a| !a.trim().is_empty()),
            before,
            limit: Some(Self::DEFAULT_LIMIT),
        }
    }

    pub fn limit(&self) -> i64 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    /// Where the next (older) page starts, when this one is full.
    pub next_before: Option<i64>,
}
