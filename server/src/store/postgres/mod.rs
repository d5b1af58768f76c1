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
mod oversight;
mod results;
mod webhooks;

/// A job as the totals see it, read back from a write with `RETURNING`.
const COUNTED: &str = "id, owner_id, job_type, input_tokens, output_tokens, cost_nanos, standard_cost_nanos, \
    created_at, completed_at";

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

/// Totals changes as columns, bound as arrays.
#[derive(Default)]
struct TotalsColumns<'a> {
    owners: Vec<&'a str>,
    statuses: Vec<&'static str>,
    types: Vec<&'static str>,
    jobs: Vec<i64>,
    input_tokens: Vec<i64>,
    output_tokens: Vec<i64>,
    cost_nanos: Vec<i64>,
    standard_cost_nanos: Vec<i64>,
    completion_micros: Vec<i64>,
}

/// Applies a transaction's changes to the totals, in key order, at its end: concurrent
/// transactions lock the same rows in the same order, after all their job rows.
async fn apply_totals(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    deltas: &Deltas,
) -> StoreResult<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut c = TotalsColumns::default();
    for (cell, a) in deltas.rows() {
        c.owners.push(cell.owner_id.as_str());
        c.statuses.push(cell.status.as_str());
        c.types.push(cell.job_type.as_str());
        c.jobs.push(a.jobs);
        c.input_tokens.push(a.input_tokens);
        c.output_tokens.push(a.output_tokens);
        c.cost_nanos.push(a.cost_nanos);
        c.standard_cost_nanos.push(a.standard_cost_nanos);
        c.completion_micros.push(a.completion_micros);
    }
    sqlx::query(
        "INSERT INTO job_totals (owner_id, status, job_type, jobs, input_tokens, output_tokens, cost_nanos, \
         standard_cost_nanos, completion_micros) \
         SELECT o, s, t, j, it, ot, c, sc, cm \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], \
                     $7::bigint[], $8::bigint[], $9::bigint[]) WITH ORDINALITY AS d(o, s, t, j, it, ot, c, sc, cm, n) \
         ORDER BY n \
         ON CONFLICT (owner_id, status, job_type) DO UPDATE SET jobs = job_totals.jobs + excluded.jobs, \
         input_tokens = job_totals.input_tokens + excluded.input_tokens, \
         output_tokens = job_totals.output_tokens + excluded.output_tokens, \
         cost_nanos = job_totals.cost_nanos + excluded.cost_nanos, \
         standard_cost_nanos = job_totals.standard_cost_nanos + excluded.standard_cost_nanos, \
         completion_micros = job_totals.completion_micros + excluded.completion_micros",
    )
    .bind(&c.owners)
    .bind(&c.statuses)
    .bind(&c.types)
    .bind(&c.jobs)
    .bind(&c.input_tokens)
    .bind(&c.output_tokens)
    .bind(&c.cost_nanos)
    .bind(&c.standard_cost_nanos)
    .bind(&c.completion_micros)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the events of a transaction (job, what happened, when) in one statement.
async fn insert_events(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    events: &[(&str, &crate::events::Happened, DateTime<Utc>)],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = events.iter().map(|e| e.0).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.1.kind()).collect();
    let details: Vec<Option<String>> = events.iter().map(|e| e.1.detail()).collect();
    let ats: Vec<DateTime<Utc>> = events.iter().map(|e| e.2).collect();
    sqlx::query(
        "INSERT INTO job_events (job_id, kind, detail, at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&details)
    .bind(&ats)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct CountedRow {
    id: String,
    owner_id: String,
    job_type: String,
    input_tokens: i64,
    output_tokens: i64,
    cost_nanos: i64,
    standard_cost_nanos: i64,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl CountedRow {
    fn counted(&self) -> StoreResult<Counted> {
        Ok(Counted {
            owner_id: self.owner_id.clone(),
            job_type: parse_job_type(&self.job_type)?,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_nanos: self.cost_nanos,
            standard_cost_nanos: self.standard_cost_nanos,
            created_at: self.created_at,
            completed_at: self.completed_at,
        })
    }
}

#[derive(FromRow)]
struct TotalsDbRow {
    owner_id: String,
    status: String,
    job_type: String,
    jobs: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost_nanos: i64,
    standard_cost_nanos: i64,
    completion_micros: i64,
}

impl TryFrom<TotalsDbRow> for TotalsRow {
    type Error = StoreError;
    fn try_from(r: TotalsDbRow) -> StoreResult<Self> {
        Ok(TotalsRow {
            status: parse_status(&r.status)?,
            job_type: parse_job_type(&r.job_type)?,
            owner_id: r.owner_id,
            jobs: r.jobs,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_nanos: r.cost_nanos,
            standard_cost_nanos: r.standard_cost_nanos,
            completion_micros: r.completion_micros,
        })
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
