//! Budgets as the store keeps them: caps, what counts against them, and the one admission
//! rule both the flush and the store's claim apply.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AuditEntry, StoreResult, UserRecord};

/// A user's cap and what counts against it since the start of a month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetUsage {
    pub user_id: String,
    pub user_name: String,
    /// `None`: no cap.
    pub cap_nanos: Option<i64>,
    /// Charged since the month began (every charge of the user's jobs, duplicates included).
    pub spent_nanos: i64,
    /// The cost bounds of the user's jobs sent and not yet billed: processing, or cancelled in
    /// flight while their batch has not ended (the provider bills them if they complete).
    pub in_flight_bound_nanos: i64,
    /// The cost bounds of the user's pending jobs.
    pub pending_bound_nanos: i64,
}

impl BudgetUsage {
    /// What may still be spent on jobs not yet sent; `None` without a cap.
    pub fn unsent_allowance(&self) -> Option<i64> {
        self.cap_nanos
            .map(|cap| cap - self.spent_nanos - self.in_flight_bound_nanos)
    }

    /// Cap − spent − every unbilled job's bound; `None` without a cap.
    pub fn remaining(&self) -> Option<i64> {
        self.unsent_allowance()
            .map(|left| left - self.pending_bound_nanos)
    }
}

/// The one admission rule of budgets: a capped owner's jobs go, in flush order, while their
/// bounds fit in cap − spent − in flight; the first that does not fit stops that owner for
/// the rest of the flush. Uncapped owners are always admitted. The flush plans with it, and
/// the store applies it again inside the claim's transaction, where no other claim can
/// interleave.
#[derive(Clone, Debug, Default)]
pub struct Allowances {
    left: HashMap<String, i64>,
    stopped: BTreeSet<String>,
}

impl Allowances {
    pub fn new<'a>(usages: impl IntoIterator<Item = &'a BudgetUsage>) -> Self {
        Self {
            left: usages
                .into_iter()
                .filter_map(|u| Some((u.user_id.clone(), u.unsent_allowance()?)))
                .collect(),
            stopped: BTreeSet::new(),
        }
    }

    /// Whether a job of `owner` that may cost `bound` is admitted; if so, its bound is taken
    /// from the owner's allowance.
    pub fn admit(&mut self, owner: &str, bound: i64) -> bool {
        if self.stopped.contains(owner) {
            return false;
        }
        match self.left.get_mut(owner) {
            None => true,
            Some(left) if bound <= *left => {
                *left -= bound;
                true
            }
            Some(_) => {
                self.stopped.insert(owner.to_string());
                false
            }
        }
    }

    /// Whether `owner`'s next job, costing at most `bound`, would be refused.
    pub fn blocks(&self, owner: &str, bound: i64) -> bool {
        self.stopped.contains(owner) || self.left.get(owner).is_some_and(|left| bound > *left)
    }

    /// Owners stopped so far, in name order of their ids.
    pub fn stopped(&self) -> &BTreeSet<String> {
        &self.stopped
    }

    pub fn is_capped(&self, owner: &str) -> bool {
        self.left.contains_key(owner)
    }

    pub fn any_capped(&self) -> bool {
        !self.left.is_empty()
    }
}

/// Monthly spend caps.
#[async_trait]
pub trait BudgetStore: Send + Sync + 'static {
    /// Sets (`Some`) or removes (`None`) the named user's cap with its audit entry, in one
    /// transaction; the user, or `None` if no user has that name.
    async fn set_budget(
        &self,
        user_name: &str,
        cap_nanos: Option<i64>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<UserRecord>>;
    /// The user's cap, if any.
    async fn monthly_cap(&self, user_id: &str) -> StoreResult<Option<i64>>;
    /// One user's cap and usage since `month_start`.
    async fn budget_usage(
        &self,
        user_id: &str,
        month_start: DateTime<Utc>,
    ) -> StoreResult<BudgetUsage>;
    /// The same for every user with a cap, by user name.
    async fn capped_usages(&self, month_start: DateTime<Utc>) -> StoreResult<Vec<BudgetUsage>>;
}
