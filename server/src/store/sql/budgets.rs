//! Monthly caps and what counts against them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqlStore;
use super::audit::insert_audit;
use super::rows::{UsageRow, UserRow, first};
use crate::store::engine::{Engine, Kind, Query, Rows};
use crate::store::*;

/// A user's cap and the three amounts that count against it; `?` is the month's start. In
/// flight: processing, or cancelled while processing and not billed yet by a batch that has
/// not ended (the provider bills it if it completes).
const USAGE: &str = "SELECT u.id, u.name, b.monthly_cap_nanos, \
    CAST((SELECT COALESCE(SUM(c.cost_nanos), 0) FROM charges c JOIN jobs j ON j.id = c.job_id \
     WHERE j.owner_id = u.id AND c.at >= ?) AS BIGINT) AS spent, \
    CAST((SELECT COALESCE(SUM(j.cost_bound_nanos), 0) FROM jobs j WHERE j.owner_id = u.id AND (j.status = 'processing' \
     OR (j.status = 'cancelled' AND j.cancel_requested \
         AND EXISTS (SELECT 1 FROM batches lb WHERE lb.id = j.local_batch_id AND NOT lb.results_collected \
                     AND lb.status NOT IN ('failed', 'lost') \
                     AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.job_id = j.id \
                                     AND c.provider_batch_id = lb.provider_batch_id))))) AS BIGINT) AS in_flight, \
    CAST((SELECT COALESCE(SUM(cost_bound_nanos), 0) FROM jobs WHERE owner_id = u.id AND status = 'pending') AS BIGINT) AS pending \
    FROM users u ";

/// Capped users' usage, read inside a claim's transaction. Where writers run concurrently the
/// budget rows of `owners` are locked first (in one order, so claims never deadlock): a
/// concurrent claim of theirs waits, then reads what this one committed.
pub(super) async fn capped_usages_in<E: Engine>(
    tx: &mut E::Tx,
    month_start: DateTime<Utc>,
    owners: &[&str],
) -> StoreResult<Vec<BudgetUsage>> {
    if E::DIALECT.locks_rows() && !owners.is_empty() {
        let mut set = Rows::new(&[("owner_id", Kind::Text)]);
        for owner in owners {
            set.push(vec![(*owner).into()]);
        }
        let mut lock = Query::default();
        lock.push("SELECT user_id FROM budgets WHERE user_id IN (SELECT owner_id FROM (")
            .rows(set)
            .push(") o) ORDER BY user_id FOR UPDATE");
        let _: Vec<(String,)> = E::tx_read(tx, lock).await?;
    }
    let rows: Vec<UsageRow> = E::tx_read(
        tx,
        Query::new(
            format!("{USAGE} JOIN budgets b ON b.user_id = u.id ORDER BY u.name"),
            [month_start.into()],
        ),
    )
    .await?;
    Ok(rows.into_iter().map(BudgetUsage::from).collect())
}

#[async_trait]
impl<E: Engine> BudgetStore for SqlStore<E> {
    async fn set_budget(
        &self,
        user_name: &str,
        cap_nanos: Option<i64>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<UserRecord>> {
        let mut tx = self.begin().await?;
        let user: Option<UserRow> = super::tx_read::<E, _>(
            &mut tx,
            "SELECT id, name, role, created_at FROM users WHERE name = ?",
            [user_name.into()],
        )
        .await?
        .into_iter()
        .next();
        let Some(user) = user else {
            return Ok(None);
        };
        let user: UserRecord = user.try_into()?;
        match cap_nanos {
            Some(cap) => {
                super::tx_execute::<E>(
                    &mut tx,
                    "INSERT INTO budgets (user_id, monthly_cap_nanos, updated_at, updated_by) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (user_id) DO UPDATE SET monthly_cap_nanos = excluded.monthly_cap_nanos, \
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    [
                        user.id.as_str().into(),
                        cap.into(),
                        audit.at.into(),
                        audit.actor_name.as_str().into(),
                    ],
                )
                .await?;
            }
            None => {
                super::tx_execute::<E>(
                    &mut tx,
                    "DELETE FROM budgets WHERE user_id = ?",
                    [user.id.as_str().into()],
                )
                .await?;
            }
        }
        insert_audit::<E>(&mut tx, audit).await?;
        E::commit(tx).await?;
        Ok(Some(user))
    }

    async fn monthly_cap(&self, user_id: &str) -> StoreResult<Option<i64>> {
        let rows: Vec<(i64,)> = self
            .read(
                "SELECT monthly_cap_nanos FROM budgets WHERE user_id = ?",
                [user_id.into()],
            )
            .await?;
        Ok(first(rows))
    }

    async fn budget_usage(
        &self,
        user_id: &str,
        month_start: DateTime<Utc>,
    ) -> StoreResult<BudgetUsage> {
        self.read_one::<UsageRow>(
            &format!("{USAGE} LEFT JOIN budgets b ON b.user_id = u.id WHERE u.id = ?"),
            [month_start.into(), user_id.into()],
        )
        .await?
        .map(BudgetUsage::from)
        .ok_or_else(|| StoreError::Corrupt(format!("no user {user_id}")))
    }

    async fn capped_usages(&self, month_start: DateTime<Utc>) -> StoreResult<Vec<BudgetUsage>> {
        let rows: Vec<UsageRow> = self
            .read(
                &format!("{USAGE} JOIN budgets b ON b.user_id = u.id ORDER BY u.name"),
                [month_start.into()],
            )
            .await?;
        Ok(rows.into_iter().map(BudgetUsage::from).collect())
    }
}
