//! Budgets and the audit log on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::{PostgresStore, UserRow};
use crate::store::oversight::UsageRow;
use crate::store::*;

/// A user's cap and the three amounts that count against it; `$1` is the month's start. In
/// flight: processing, or cancelled while processing and not billed yet by a batch that has
/// not ended (the provider bills it if it completes).
const USAGE: &str = "SELECT u.id, u.name, b.monthly_cap_nanos, \
    (SELECT COALESCE(SUM(c.cost_nanos), 0)::bigint FROM charges c JOIN jobs j ON j.id = c.job_id \
     WHERE j.owner_id = u.id AND c.at >= $1) AS spent, \
    (SELECT COALESCE(SUM(j.cost_bound_nanos), 0)::bigint FROM jobs j WHERE j.owner_id = u.id AND (j.status = 'processing' \
     OR (j.status = 'cancelled' AND j.cancel_requested \
         AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.job_id = j.id AND c.provider_batch_id = j.batch_id) \
         AND EXISTS (SELECT 1 FROM batches lb WHERE lb.id = j.local_batch_id AND NOT lb.results_collected \
                     AND lb.status NOT IN ('failed', 'lost'))))) AS in_flight, \
    (SELECT COALESCE(SUM(cost_bound_nanos), 0)::bigint FROM jobs WHERE owner_id = u.id AND status = 'pending') AS pending \
    FROM users u ";

/// Capped users' usage, read on `conn`. Inside a claim's transaction, `lock` names the owners
/// whose budget rows are locked first (in one order, so claims never deadlock): a concurrent
/// claim of theirs waits, then reads what this one committed.
pub(super) async fn capped_usages_in(
    conn: &mut PgConnection,
    month_start: DateTime<Utc>,
    lock: Option<&[&str]>,
) -> StoreResult<Vec<BudgetUsage>> {
    if let Some(owners) = lock {
        sqlx::query(
            "SELECT user_id FROM budgets WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE",
        )
        .bind(owners)
        .fetch_all(&mut *conn)
        .await?;
    }
    let rows: Vec<UsageRow> = sqlx::query_as(&format!(
        "{USAGE} JOIN budgets b ON b.user_id = u.id ORDER BY u.name"
    ))
    .bind(month_start)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(BudgetUsage::from).collect())
}

/// Writes an audit entry inside the caller's transaction.
pub(super) async fn insert_audit(conn: &mut PgConnection, entry: &AuditEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor_name, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(entry.at)
    .bind(&entry.actor_id)
    .bind(&entry.actor_name)
    .bind(entry.action.as_str())
    .bind(&entry.target)
    .bind(&entry.detail)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl BudgetStore for PostgresStore {
    async fn set_budget(
        &self,
        user_name: &str,
        cap_nanos: Option<i64>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<UserRecord>> {
        let mut tx = self.pool.begin().await?;
        let user: Option<UserRow> =
            sqlx::query_as("SELECT id, name, role, created_at FROM users WHERE name = $1")
                .bind(user_name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(user) = user else {
            return Ok(None);
        };
        match cap_nanos {
            Some(cap) => {
                sqlx::query(
                    "INSERT INTO budgets (user_id, monthly_cap_nanos, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id) DO UPDATE SET monthly_cap_nanos = excluded.monthly_cap_nanos, \
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                )
                .bind(&user.id)
                .bind(cap)
                .bind(audit.at)
                .bind(&audit.actor_name)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM budgets WHERE user_id = $1")
                    .bind(&user.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        user.try_into().map(Some)
    }

    async fn monthly_cap(&self, user_id: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT monthly_cap_nanos FROM budgets WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn budget_usage(
        &self,
        user_id: &str,
        month_start: DateTime<Utc>,
    ) -> StoreResult<BudgetUsage> {
        let row: UsageRow = sqlx::query_as(&format!(
            "{USAGE} LEFT JOIN budgets b ON b.user_id = u.id WHERE u.id = $2"
        ))
        .bind(month_start)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    async fn capped_usages(&self, month_start: DateTime<Utc>) -> StoreResult<Vec<BudgetUsage>> {
        let mut conn = self.pool.acquire().await?;
        capped_usages_in(&mut conn, month_start, None).await
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_audit(&mut conn, entry).await
    }

    async fn audit_log(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT id, at, actor_id, actor_name, action, target, detail FROM audit_log WHERE TRUE",
        );
        if let Some(action) = filter.action {
            query.push(" AND action = ").push_bind(action.as_str());
        }
        if let Some(actor) = &filter.actor_name {
            query.push(" AND actor_name = ").push_bind(actor.clone());
        }
        if let Some(before) = filter.before_id {
            query.push(" AND id < ").push_bind(before);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(filter.limit);
        let rows: Vec<(
            i64,
            DateTime<Utc>,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
        )> = query.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|(id, at, actor_id, actor_name, action, target, detail)| {
                Ok(AuditRecord {
                    id,
                    entry: AuditEntry {
                        at,
                        actor_id,
                        actor_name,
                        action: parse_audit_action(&action)?,
                        target,
                        detail,
                    },
                })
            })
            .collect()
    }
}
