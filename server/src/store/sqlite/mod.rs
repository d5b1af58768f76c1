//! The embedded default: SQLite in WAL mode, writes in `BEGIN IMMEDIATE` transactions so that
//! concurrent writers queue on the busy timeout instead of failing.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};

use super::*;

mod access;
mod batches;
mod instances;
mod jobs;
mod oversight;
mod results;
mod webhooks;

/// Rows per multi-row statement: far under SQLite's 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 500;
/// A job as the totals see it, read back from a write with `RETURNING`.
const COUNTED: &str = "id, owner_id, job_type, input_tokens, output_tokens, cost_nanos, standard_cost_nanos, \
    created_at, completed_at";

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Columns of a job for single-job reads.
const JOB_COLUMNS: &str = "j.id, j.owner_id, u.name AS owner_name, j.job_type, j.status, j.priority, j.payload, \
    j.run_after, j.idempotency_key, j.request_hash, j.batch_id, j.attempts, j.model, j.input_tokens, \
    j.output_tokens, j.cost_nanos, j.standard_cost_nanos, j.duplicate_tokens, j.duplicate_cost_nanos, \
    j.price_version, j.result, j.error_message, j.cancel_requested, j.created_at, j.updated_at, j.completed_at";
/// The same without the large payload and result, for lists.
const JOB_SUMMARY_COLUMNS: &str = "j.id, j.owner_id, u.name AS owner_name, j.job_type, j.status, j.priority, \
    NULL AS payload, j.run_after, j.idempotency_key, j.request_hash, j.batch_id, j.attempts, j.model, \
    j.input_tokens, j.output_tokens, j.cost_nanos, j.standard_cost_nanos, j.duplicate_tokens, \
    j.duplicate_cost_nanos, j.price_version, NULL AS result, j.error_message, j.cancel_requested, j.created_at, \
    j.updated_at, j.completed_at";
const JOB_FROM: &str = " FROM jobs j JOIN users u ON u.id = j.owner_id";

#[derive(Clone)]
pub struct SqliteStore {
    /// Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// The one writer. SQLite allows one write at a time; queueing writers here, in order,
    /// beats letting them collide in SQLite's busy handler, which sleeps and retries.
    writer: SqlitePool,
    /// Stops the background checkpoints when the last clone of the store is dropped.
    _checkpointer: Arc<Checkpointer>,
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

struct Checkpointer(tokio::task::JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// PASSIVE checkpoints never wait for the writer or block it; a failed one is retried on the
/// next tick, and the WAL only grows meanwhile.
async fn checkpoint_forever(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(%error, "WAL checkpoint failed; the next tick retries");
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and runs the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::from)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Statement journals in memory and room for a big RETURNING: ingest and flush
            // write thousands of rows per transaction (issue 10's measurements).
            .pragma("temp_store", "memory")
            .row_buffer_size(1024);
        // The writer never checkpoints on commit: an automatic checkpoint would stall the
        // commit that crossed the threshold, and every enqueue waiting behind it (p99 53 ms
        // measured). The checkpointer below does that work beside the writer instead.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", "-65536")
                    .pragma("wal_autocheckpoint", "0"),
            )
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.pragma("cache_size", "-16384"))
            .await?;
        let checkpointer = Arc::new(Checkpointer(tokio::spawn(checkpoint_forever(pool.clone()))));
        Ok(Self {
            pool,
            writer,
            _checkpointer: checkpointer,
        })
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Applies a transaction's changes to the totals, in key order, at its end.
async fn apply_totals(tx: &mut sqlx::Transaction<'_, Sqlite>, deltas: &Deltas) -> StoreResult<()> {
    let rows: Vec<_> = deltas.rows().collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO job_totals (owner_id, status, job_type, jobs, input_tokens, output_tokens, cost_nanos, \
             standard_cost_nanos, completion_micros) ",
        );
        query.push_values(chunk, |mut b, (cell, a)| {
            b.push_bind(cell.owner_id.clone())
                .push_bind(cell.status.as_str())
                .push_bind(cell.job_type.as_str())
                .push_bind(a.jobs)
                .push_bind(a.input_tokens)
                .push_bind(a.output_tokens)
                .push_bind(a.cost_nanos)
                .push_bind(a.standard_cost_nanos)
                .push_bind(a.completion_micros);
        });
        query.push(
            " ON CONFLICT (owner_id, status, job_type) DO UPDATE SET jobs = jobs + excluded.jobs, \
             input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens, \
             cost_nanos = cost_nanos + excluded.cost_nanos, \
             standard_cost_nanos = standard_cost_nanos + excluded.standard_cost_nanos, \
             completion_micros = completion_micros + excluded.completion_micros",
        );
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes the events of a transaction (job, what happened, when), several rows per statement.
async fn insert_events(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    events: &[(&str, &crate::events::Happened, DateTime<Utc>)],
) -> StoreResult<()> {
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut query =
            QueryBuilder::<Sqlite>::new("INSERT INTO job_events (job_id, kind, detail, at) ");
        query.push_values(chunk, |mut b, (job_id, happened, at)| {
            b.push_bind(job_id.to_string())
                .push_bind(happened.kind())
                .push_bind(happened.detail())
                .push_bind(to_micros(*at));
        });
        query.build().execute(&mut **tx).await?;
    }
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
    created_at: i64,
    completed_at: Option<i64>,
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
            created_at: from_micros(self.created_at)?,
            completed_at: self.completed_at.map(from_micros).transpose()?,
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

impl SqliteStore {
    async fn job_by(&self, clause: &str, binds: &[&str]) -> StoreResult<Option<JobRecord>> {
        let sql = format!("SELECT {JOB_COLUMNS}{JOB_FROM} WHERE {clause}");
        let mut query = sqlx::query_as::<_, JobRow>(&sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        query
            .fetch_optional(&self.pool)
            .await?
            .map(JobRecord::try_from)
            .transpose()
    }
}

fn push_visibility(query: &mut QueryBuilder<'_, Sqlite>, visibility: &Visibility) {
    match visibility {
        Visibility::Owner(owner_id) => {
            query.push(" AND j.owner_id = ").push_bind(owner_id.clone());
        }
        Visibility::All => {}
    }
}

fn parse_json(column: &str, text: Option<String>) -> StoreResult<Option<serde_json::Value>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
    })
    .transpose()
}

#[derive(FromRow)]
struct UserRow {
    id: String,
    name: String,
    role: String,
    created_at: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;
    fn try_from(row: UserRow) -> StoreResult<Self> {
        Ok(UserRecord {
            id: row.id,
            name: row.name,
            role: parse_role(&row.role)?,
            created_at: from_micros(row.created_at)?,
        })
    }
}

#[derive(FromRow)]
struct CredentialRow {
    secret_hash: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    #[sqlx(flatten)]
    user: UserRow,
}

impl TryFrom<CredentialRow> for CredentialRecord {
    type Error = StoreError;
    fn try_from(row: CredentialRow) -> StoreResult<Self> {
        Ok(CredentialRecord {
            secret_hash: row.secret_hash,
            expires_at: row.expires_at.map(from_micros).transpose()?,
            revoked_at: row.revoked_at.map(from_micros).transpose()?,
            user: row.user.try_into()?,
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
    payload: Option<String>,
    run_after: Option<i64>,
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
    result: Option<String>,
    error_message: Option<String>,
    cancel_requested: bool,
    created_at: i64,
    updated_at: i64,
    completed_at: Option<i64>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;
    fn try_from(row: JobRow) -> StoreResult<Self> {
        Ok(JobRecord {
            job_type: parse_job_type(&row.job_type)?,
            status: parse_status(&row.status)?,
            payload: parse_json("payload", row.payload)?,
            result: parse_json("result", row.result)?,
            run_after: row.run_after.map(from_micros).transpose()?,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
            completed_at: row.completed_at.map(from_micros).transpose()?,
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

    async fn temp_store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        (SqliteStore::connect(&url).await.unwrap(), dir)
    }

    crate::store::conformance::store_conformance!(temp_store);
}
