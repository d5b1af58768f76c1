//! The embedded default: SQLite in WAL mode, writes in `BEGIN IMMEDIATE` transactions so that
//! concurrent writers queue on the busy timeout instead of failing.

use std::str::FromStr;
use std::time::Duration;

use app::api::{JobStatus, JobType, Role};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};

use super::*;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Columns of a job for single-job reads.
const JOB_COLUMNS: &str = "j.id, j.owner_id, u.name AS owner_name, j.job_type, j.status, j.priority, j.payload, \
    j.run_after, j.idempotency_key, j.request_hash, j.batch_id, j.attempts, j.model, j.input_tokens, \
    j.output_tokens, j.cost_nanos, j.standard_cost_nanos, j.price_version, j.result, j.error_message, \
    j.cancel_requested, j.created_at, j.updated_at, j.completed_at";
/// The same without the large payload and result, for lists.
const JOB_SUMMARY_COLUMNS: &str = "j.id, j.owner_id, u.name AS owner_name, j.job_type, j.status, j.priority, \
    NULL AS payload, j.run_after, j.idempotency_key, j.request_hash, j.batch_id, j.attempts, j.model, \
    j.input_tokens, j.output_tokens, j.cost_nanos, j.standard_cost_nanos, j.price_version, NULL AS result, \
    j.error_message, j.cancel_requested, j.created_at, j.updated_at, j.completed_at";
const JOB_FROM: &str = " FROM jobs j JOIN users u ON u.id = j.owner_id";

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
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
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

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

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes.
        let busy = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517"));
        if busy {
            StoreError::Busy
        } else {
            StoreError::Database(error)
        }
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

#[async_trait]
impl Store for SqliteStore {
    async fn count_users(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn ensure_user(
        &self,
        id: &str,
        name: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> StoreResult<UserRecord> {
        sqlx::query("INSERT INTO users (id, name, role, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(id)
            .bind(name)
            .bind(role.as_str())
            .bind(to_micros(now))
            .execute(&self.pool)
            .await?;
        let row: UserRow =
            sqlx::query_as("SELECT id, name, role, created_at FROM users WHERE name = ?")
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
        row.try_into()
    }

    async fn insert_credential(&self, c: NewCredential) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO credentials (id, kind, user_id, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(c.kind.as_str())
        .bind(&c.user_id)
        .bind(&c.secret_hash)
        .bind(to_micros(c.created_at))
        .bind(c.expires_at.map(to_micros))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_credential(
        &self,
        kind: CredentialKind,
        id: &str,
    ) -> StoreResult<Option<CredentialRecord>> {
        let row: Option<CredentialRow> = sqlx::query_as(
            "SELECT c.secret_hash, c.expires_at, c.revoked_at, u.id, u.name, u.role, u.created_at \
             FROM credentials c JOIN users u ON u.id = c.user_id WHERE c.kind = ? AND c.id = ?",
        )
        .bind(kind.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(CredentialRecord::try_from).transpose()
    }

    async fn delete_credential(&self, kind: CredentialKind, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM credentials WHERE kind = ? AND id = ?")
            .bind(kind.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_job(&self, job: NewJob) -> StoreResult<InsertOutcome> {
        let mut tx = self.begin_write().await?;
        let created_at = to_micros(job.created_at);
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, run_after, idempotency_key, \
             request_hash, created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (owner_id, idempotency_key) DO NOTHING",
        )
        .bind(&job.id)
        .bind(&job.owner_id)
        .bind(job.job_type.as_str())
        .bind(job.priority)
        .bind(job.payload.to_string())
        .bind(job.run_after.map(to_micros))
        .bind(&job.idempotency_key)
        .bind(&job.request_hash)
        .bind(created_at)
        .bind(created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            sqlx::query("INSERT INTO job_events (job_id, kind, at) VALUES (?, 'created', ?)")
                .bind(&job.id)
                .bind(created_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;

        let lookup = if inserted {
            self.job_by("j.id = ?", &[&job.id]).await?
        } else {
            let key = job.idempotency_key.as_deref().unwrap_or_default();
            self.job_by(
                "j.owner_id = ? AND j.idempotency_key = ?",
                &[&job.owner_id, key],
            )
            .await?
        };
        let record = lookup
            .ok_or_else(|| StoreError::Corrupt(format!("job {} vanished after insert", job.id)))?;
        Ok(if inserted {
            InsertOutcome::Created(record)
        } else {
            InsertOutcome::Existing(record)
        })
    }

    async fn get_job(&self, id: &str, visibility: &Visibility) -> StoreResult<Option<JobRecord>> {
        match visibility {
            Visibility::Owner(owner_id) => {
                self.job_by("j.id = ? AND j.owner_id = ?", &[id, owner_id])
                    .await
            }
            Visibility::All => self.job_by("j.id = ?", &[id]).await,
        }
    }

    async fn list_jobs(
        &self,
        visibility: &Visibility,
        status: Option<JobStatus>,
        limit: i64,
    ) -> StoreResult<JobPage> {
        let mut query = QueryBuilder::new(format!(
            "SELECT {JOB_SUMMARY_COLUMNS}{JOB_FROM} WHERE 1 = 1"
        ));
        push_visibility(&mut query, visibility);
        if let Some(status) = status {
            query.push(" AND j.status = ").push_bind(status.as_str());
        }
        query
            .push(" ORDER BY j.created_at DESC, j.id DESC LIMIT ")
            .push_bind(limit);
        let rows: Vec<JobRow> = query.build_query_as().fetch_all(&self.pool).await?;
        let jobs = rows
            .into_iter()
            .map(JobRecord::try_from)
            .collect::<StoreResult<Vec<_>>>()?;

        let mut counts = QueryBuilder::new(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN j.status = 'pending' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN j.status = 'processing' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN j.status = ",
        );
        counts
            .push_bind(status.map(JobStatus::as_str))
            .push(" THEN 1 ELSE 0 END), 0) FROM jobs j WHERE 1 = 1");
        push_visibility(&mut counts, visibility);
        let (visible, pending_count, processing_count, matching): (i64, i64, i64, i64) =
            counts.build_query_as().fetch_one(&self.pool).await?;
        Ok(JobPage {
            jobs,
            total_count: if status.is_some() { matching } else { visible },
            pending_count,
            processing_count,
        })
    }

    async fn cancel_job(
        &self,
        id: &str,
        visibility: &Visibility,
        now: DateTime<Utc>,
    ) -> StoreResult<CancelOutcome> {
        let mut tx = self.begin_write().await?;
        let mut find = QueryBuilder::new("SELECT j.status, j.batch_id FROM jobs j WHERE j.id = ");
        find.push_bind(id);
        push_visibility(&mut find, visibility);
        let found: Option<(String, Option<String>)> =
            find.build_query_as().fetch_optional(&mut *tx).await?;
        let Some((status, batch_id)) = found else {
            return Ok(CancelOutcome::NotFound);
        };
        let was = parse_status(&status)?;
        if was.is_terminal() {
            return Ok(CancelOutcome::Terminal(was));
        }
        let micros = to_micros(now);
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', cancel_requested = (status = 'processing'), updated_at = ? \
             WHERE id = ? AND status IN ('pending', 'processing')",
        )
        .bind(micros)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let detail = match (was, batch_id) {
            (JobStatus::Processing, Some(batch)) => format!("while processing in batch {batch}"),
            _ => format!("while {was}"),
        };
        sqlx::query(
            "INSERT INTO job_events (job_id, kind, detail, at) VALUES (?, 'cancelled', ?, ?)",
        )
        .bind(id)
        .bind(detail)
        .bind(micros)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let job = self
            .job_by("j.id = ?", &[id])
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("job {id} vanished")))?;
        Ok(CancelOutcome::Cancelled {
            job: Box::new(job),
            was,
        })
    }

    async fn stats(&self, visibility: &Visibility) -> StoreResult<StatsRecord> {
        let mut query = QueryBuilder::new(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN j.status = 'pending' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN j.status = 'processing' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN j.status = 'completed' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN j.status = 'failed' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(j.input_tokens + j.output_tokens), 0), \
             COALESCE(SUM(j.cost_nanos), 0), \
             COALESCE(SUM(j.standard_cost_nanos), 0), \
             AVG(CASE WHEN j.status = 'completed' AND j.completed_at IS NOT NULL \
                 THEN j.completed_at - j.created_at END) \
             FROM jobs j WHERE 1 = 1",
        );
        push_visibility(&mut query, visibility);
        let row: (i64, i64, i64, i64, i64, i64, i64, i64, Option<f64>) =
            query.build_query_as().fetch_one(&self.pool).await?;
        Ok(StatsRecord {
            total: row.0,
            pending: row.1,
            processing: row.2,
            completed: row.3,
            failed: row.4,
            tokens: row.5,
            cost_nanos: row.6,
            standard_cost_nanos: row.7,
            avg_completion_micros: row.8,
        })
    }

    async fn job_events(&self, job_id: &str) -> StoreResult<Vec<JobEvent>> {
        let rows: Vec<(String, Option<String>, i64)> =
            sqlx::query_as("SELECT kind, detail, at FROM job_events WHERE job_id = ? ORDER BY id")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(kind, detail, at)| {
                Ok(JobEvent {
                    kind,
                    detail,
                    at: from_micros(at)?,
                })
            })
            .collect()
    }
}

fn parse_status(s: &str) -> StoreResult<JobStatus> {
    JobStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown job status {s:?}")))
}

fn parse_role(s: &str) -> StoreResult<Role> {
    Role::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown role {s:?}")))
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
            job_type: JobType::parse(&row.job_type).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown job type {:?}", row.job_type))
            })?,
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
