//! PostgreSQL, for several instances on one database. Writes run concurrently, each guarded
//! by the state it expects; claims skip rows another transaction holds (`FOR UPDATE SKIP
//! LOCKED`); sets of rows move in one statement (`unnest`). Times are `timestamptz`, money
//! `bigint`, payloads and results `jsonb`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};

use super::*;

mod access;
mod batches;
mod instances;
mod jobs;

/// How long a request waits for a connection before it is told to come back (503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Columns of a job for single-job reads.
const JOB_COLUMNS: &str = "j.id, j.owner_id, u.name AS owner_name, j.job_type, j.status, j.priority, j.payload, \
    j.run_after, j.idempotency_key, j.request_hash, j.batch_id, j.attempts, j.model, j.input_tokens, \
    j.output_tokens, j.cost_nanos, j.standard_cost_nanos, j.duplicate_tokens, j.duplicate_cost_nanos, \
    j.price_version, j.result, j.error_message, j.cancel_requested, j.created_at, j.updated_at, j.completed_at";
/// The same without the large payload and result, for lists.
const JOB_SUMMARY_COLUMNS: &str = "j.id, j.owner_id, u.name AS owner_name, j.job_type, j.status, j.priority, \
    NULL::jsonb AS payload, j.run_after, j.idempotency_key, j.request_hash, j.batch_id, j.attempts, j.model, \
    j.input_tokens, j.output_tokens, j.cost_nanos, j.standard_cost_nanos, j.duplicate_tokens, \
    j.duplicate_cost_nanos, j.price_version, NULL::jsonb AS result, j.error_message, j.cancel_requested, \
    j.created_at, j.updated_at, j.completed_at";
const JOB_FROM: &str = " FROM jobs j JOIN users u ON u.id = j.owner_id";

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects with a pool of at most `max_connections` and runs the migrations. Several
    /// instances starting at once run them once: sqlx holds an advisory lock while migrating.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The one job `filter` (SQL after `WHERE`, with its binds) selects.
    async fn job_where(
        &self,
        filter: impl FnOnce(&mut QueryBuilder<'_, Postgres>),
    ) -> StoreResult<Option<JobRecord>> {
        let mut query =
            QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS}{JOB_FROM} WHERE "));
        filter(&mut query);
        query
            .build_query_as::<JobRow>()
            .fetch_optional(&self.pool)
            .await?
            .map(JobRecord::try_from)
            .transpose()
    }
}

fn push_visibility(query: &mut QueryBuilder<'_, Postgres>, visibility: &Visibility) {
    match visibility {
        Visibility::Owner(owner_id) => {
            query.push(" AND j.owner_id = ").push_bind(owner_id.clone());
        }
        Visibility::All => {}
    }
}

#[derive(FromRow)]
struct UserRow {
    id: String,
    name: String,
    role: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;
    fn try_from(row: UserRow) -> StoreResult<Self> {
        Ok(UserRecord {
            id: row.id,
            name: row.name,
            role: parse_role(&row.role)?,
            created_at: row.created_at,
        })
    }
}

#[derive(FromRow)]
struct JobRow {
    id: String,
    owner_id: String,
    owner_name: String,
    job_type: String,
    status: String,
    priority: i64,
    payload: Option<Json<serde_json::Value>>,
    run_after: Option<DateTime<Utc>>,
    idempotency_key: Option<String>,
    request_hash: String,
    batch_id: Option<String>,
    attempts: i64,
    model: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    cost_nanos: i64,
    standard_cost_nanos: i64,
    duplicate_tokens: i64,
    duplicate_cost_nanos: i64,
    price_version: Option<String>,
    result: Option<Json<serde_json::Value>>,
    error_message: Option<String>,
    cancel_requested: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;
    fn try_from(row: JobRow) -> StoreResult<Self> {
        Ok(JobRecord {
            job_type: parse_job_type(&row.job_type)?,
            status: parse_status(&row.status)?,
            payload: row.payload.map(|p| p.0),
            result: row.result.map(|r| r.0),
            run_after: row.run_after,
            created_at: row.created_at,
            updated_at: row.updated_at,
            completed_at: row.completed_at,
            id: row.id,
            owner_id: row.owner_id,
            owner_name: row.owner_name,
            priority: row.priority,
            idempotency_key: row.idempotency_key,
            request_hash: row.request_hash,
            batch_id: row.batch_id,
            attempts: row.attempts,
            model: row.model,
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
            cost_nanos: row.cost_nanos,
            standard_cost_nanos: row.standard_cost_nanos,
            duplicate_tokens: row.duplicate_tokens,
            duplicate_cost_nanos: row.duplicate_cost_nanos,
            price_version: row.price_version,
            error_message: row.error_message,
            cancel_requested: row.cancel_requested,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempPostgres;

    async fn temp_store() -> (PostgresStore, TempPostgres) {
        let db = TempPostgres::create().await;
        (PostgresStore::connect(&db.url, 8).await.expect("store"), db)
    }

    crate::store::conformance::store_conformance!(temp_store);
}
