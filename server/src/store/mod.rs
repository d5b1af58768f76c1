//! Persistence behind one trait: one implementation (`sql`) over an engine per database
//! (`engine`), one conformance suite for both.

use app::api::{JobStatus, JobType, ProviderName, Role};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

mod audit;
mod batches;
mod budgets;
#[cfg(test)]
pub(crate) mod conformance;
mod contexts;
pub(crate) mod engine;
mod group_commit;
mod results;
mod search;
mod sql;
mod totals;
mod webhooks;

pub use audit::*;
pub use batches::*;
pub use budgets::*;
pub use contexts::*;
pub use group_commit::{GroupCommit, MAX_GROUP};
pub use results::*;
pub use search::{
    MOST_WORDS_BEGUN, SEARCH_COUNT_CAP, SEARCH_WINDOW, capped_count, contains_pattern, search_words,
};
pub use sql::SqlStore;
pub use totals::{Amounts, Bill, Cell, Counted, Deltas, TotalsRow};
pub use webhooks::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite stayed locked past the busy timeout; the caller may retry.
    #[error("the database is busy; retry shortly")]
    Busy,
    /// No connection could be had in time (pool exhausted, database down); retry shortly.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// (`KeyConflicts::Refuse`) The job at this index reuses an idempotency key its owner
    /// already used for a different request; nothing was inserted.
    #[error("job {index} reuses an idempotency key for a different request")]
    KeyConflict { index: usize },
    /// The job at this index names a context deleted since it was checked; nothing inserted.
    #[error("job {index} names a context that was deleted")]
    ContextGone { index: usize },
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    /// Errors that pass by themselves are told apart from the rest, for both engines.
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => return StoreError::Unavailable(error.to_string()),
            _ => {}
        }
        let code = error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned())
            .unwrap_or_default();
        match code.as_str() {
            // SQLite: SQLITE_BUSY and SQLITE_LOCKED with their extended codes. PostgreSQL:
            // serialization failure, deadlock: retrying the request succeeds.
            "5" | "6" | "261" | "262" | "517" | "40001" | "40P01" => StoreError::Busy,
            // PostgreSQL: too many connections, shutting down or starting up, connection lost.
            c if c == "53300" || c.starts_with("57P") || c.starts_with("08") => {
                StoreError::Unavailable(error.to_string())
            }
            _ => StoreError::Database(error),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// A bearer token for the REST API.
    Token,
    /// A dashboard session behind an HttpOnly cookie.
    Session,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Session => "session",
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewCredential {
    pub id: String,
    pub kind: CredentialKind,
    pub user_id: String,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// For a session: the id of the token it was opened with.
    pub opened_with: Option<String>,
    /// The admin who issued it, written to the audit log with the credential.
    pub audit: Option<AuditEntry>,
}

#[derive(Clone, Debug)]
pub struct CredentialRecord {
    pub secret_hash: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub user: UserRecord,
}

/// Which jobs a caller may see: the one visibility rule, applied in SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visibility {
    Owner(String),
    All,
}

#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: String,
    pub owner_id: String,
    /// The owner's name, for the job record answered without reading it back.
    pub owner_name: String,
    pub job_type: JobType,
    pub priority: i64,
    /// The payload as compact JSON text (a JSON object), as it is stored.
    pub payload: String,
    pub run_after: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    /// Fingerprint of the request after defaults, to tell a retry from a different request.
    pub request_hash: String,
    /// Where to POST the job when it ends (a webhook row is made with the job).
    pub callback_url: Option<String>,
    /// What the job may cost at most at batch prices: what a budget counts until it is billed.
    pub cost_bound_nanos: i64,
    /// The shared context its request carries, if any.
    pub context_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl NewJob {
    /// The job as stored once inserted: what a list would give back (without its payload:
    /// a bulk insert answers thousands of jobs, and their payloads stay text).
    pub fn record(&self) -> JobRecord {
        JobRecord {
            id: self.id.clone(),
            owner_id: self.owner_id.clone(),
            owner_name: self.owner_name.clone(),
            job_type: self.job_type,
            status: JobStatus::Pending,
            priority: self.priority,
            payload: None,
            run_after: self.run_after,
            idempotency_key: self.idempotency_key.clone(),
            request_hash: self.request_hash.clone(),
            batch_id: None,
            attempts: 0,
            model: None,
            provider: None,
            context_id: self.context_id.clone(),
            bill: Bill::default(),
            duplicate_tokens: 0,
            duplicate_cost_nanos: 0,
            price_version: None,
            result: None,
            error_message: None,
            cancel_requested: false,
            // The insert reads it from the payload, and answers it.
            subject: None,
            created_at: self.created_at,
            updated_at: self.created_at,
            completed_at: None,
        }
    }

    /// The new job as the totals count it.
    pub fn counted(&self) -> Counted {
        Counted {
            owner_id: self.owner_id.clone(),
            job_type: self.job_type,
            bill: Bill::default(),
            created_at: self.created_at,
            completed_at: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub owner_id: String,
    pub owner_name: String,
    pub job_type: JobType,
    pub status: JobStatus,
    pub priority: i64,
    /// Loaded for single jobs, not for lists.
    pub payload: Option<serde_json::Value>,
    pub run_after: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    pub batch_id: Option<String>,
    pub attempts: i64,
    pub model: Option<String>,
    /// The provider its model ran on, once a flush claimed it.
    pub provider: Option<ProviderName>,
    pub context_id: Option<String>,
    /// Its tokens and money: every charge of it (duplicates' included).
    pub bill: Bill,
    /// The part of the tokens and cost that duplicate batches ran up.
    pub duplicate_tokens: i64,
    pub duplicate_cost_nanos: i64,
    pub price_version: Option<String>,
    /// Loaded for single jobs, not for lists.
    pub result: Option<serde_json::Value>,
    pub error_message: Option<String>,
    pub cancel_requested: bool,
    /// What the job is about, from its payload (`app::api::SUBJECT_FIELDS`).
    pub subject: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// What inserting does with a job whose owner already used its idempotency key for a
/// different request (the same request is simply the existing job).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyConflicts {
    /// Answer the existing job; the caller tells its client.
    Answer,
    /// Insert nothing at all and fail with `StoreError::KeyConflict`.
    Refuse,
}

#[derive(Clone, Debug, PartialEq)]
pub enum InsertOutcome {
    Created(JobRecord),
    /// A job with this owner and idempotency key already exists.
    Existing(JobRecord),
}

#[derive(Clone, Debug, PartialEq)]
pub enum CancelOutcome {
    Cancelled { job: Box<JobRecord>, was: JobStatus },
    NotFound,
    Terminal(JobStatus),
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<JobRecord>,
    /// Jobs matching the filter, before the limit; a search's count stops at the cap.
    pub total_count: i64,
    /// A search matched more jobs than `total_count` says (it reached `SEARCH_COUNT_CAP`).
    pub total_count_capped: bool,
    pub pending_count: i64,
    pub processing_count: i64,
    /// Where the next page starts, when this one is full.
    pub next_cursor: Option<app::api::ListCursor>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsRecord {
    pub total: i64,
    pub pending: i64,
    pub processing: i64,
    pub completed: i64,
    pub failed: i64,
    pub bill: Bill,
    /// Mean of `completed_at - created_at` over completed jobs, in microseconds.
    pub avg_completion_micros: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderCostRecord {
    pub provider: ProviderName,
    /// Jobs with a charge from it.
    pub jobs: i64,
    pub bill: Bill,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyCostRecord {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub job_type: JobType,
    pub owner_name: String,
    pub jobs: i64,
    pub bill: Bill,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    pub kind: String,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// Users and their credentials.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    async fn count_users(&self) -> StoreResult<i64>;
    /// Creates the user if no user has this name; returns the stored user either way.
    async fn ensure_user(
        &self,
        id: &str,
        name: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> StoreResult<UserRecord>;
    async fn insert_credential(&self, credential: NewCredential) -> StoreResult<()>;
    async fn find_credential(
        &self,
        kind: CredentialKind,
        id: &str,
    ) -> StoreResult<Option<CredentialRecord>>;
    async fn delete_credential(&self, kind: CredentialKind, id: &str) -> StoreResult<()>;
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Bearer tokens (not sessions) of every user.
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>>;
    /// Marks a credential revoked, and for a token every live session opened with it, with
    /// the audit entry, in one transaction; `false` (and nothing written) if there is no such
    /// live credential.
    async fn revoke_credential(
        &self,
        kind: CredentialKind,
        id: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;
}

/// Jobs as their owners see them.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Inserts jobs and their `created` events in one transaction (all or none), each unless
    /// its owner already used its idempotency key (then the existing job is its outcome, or,
    /// for a different request and `Refuse`, nothing is inserted); outcomes in order of `jobs`.
    /// The jobs are taken whole, so their payloads are bound without a copy.
    async fn insert_jobs(
        &self,
        jobs: Vec<NewJob>,
        conflicts: KeyConflicts,
    ) -> StoreResult<Vec<InsertOutcome>>;
    /// One job, as `insert_jobs` inserts it.
    async fn insert_job(&self, job: NewJob) -> StoreResult<InsertOutcome> {
        let id = job.id.clone();
        self.insert_jobs(vec![job], KeyConflicts::Answer)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("inserting job {id} answered nothing")))
    }
    async fn get_job(&self, id: &str, visibility: &Visibility) -> StoreResult<Option<JobRecord>>;
    /// The jobs `owner_id` made with any of these idempotency keys (without payloads).
    async fn jobs_by_keys(&self, owner_id: &str, keys: &[String]) -> StoreResult<Vec<JobRecord>>;
    /// Visible jobs matching the filter, newest first, with counts.
    async fn list_jobs(
        &self,
        visibility: &Visibility,
        filter: &app::api::ListQuery,
    ) -> StoreResult<JobPage>;
    /// Cancels a pending or processing job and records the event, atomically.
    async fn cancel_job(
        &self,
        id: &str,
        visibility: &Visibility,
        now: DateTime<Utc>,
    ) -> StoreResult<CancelOutcome>;
    /// Puts failed jobs back to pending for one more attempt (their attempts, charges and
    /// history stay), each with the event and the audit entry, atomically; returns the ids
    /// that were failed.
    async fn retry_failed(
        &self,
        ids: &[String],
        happened: &crate::events::Happened,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<Vec<String>>;
    /// Read from the totals, never by scanning jobs.
    async fn stats(&self, visibility: &Visibility) -> StoreResult<StatsRecord>;
    /// The totals the store keeps, per owner, status and job type, in key order.
    async fn totals(&self, visibility: &Visibility) -> StoreResult<Vec<TotalsRow>>;
    /// The same figures counted from every job: what `totals` must always equal (tests).
    async fn recount_totals(&self) -> StoreResult<Vec<TotalsRow>>;
    async fn job_events(&self, job_id: &str) -> StoreResult<Vec<JobEvent>>;
    /// What was billed per UTC day (of the charge), job type and owner.
    async fn daily_costs(
        &self,
        visibility: &Visibility,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DailyCostRecord>>;
    /// What each provider billed for the visible jobs (every charge, duplicates' included).
    async fn provider_costs(&self, visibility: &Visibility)
    -> StoreResult<Vec<ProviderCostRecord>>;
}

/// What instances sharing the database coordinate through: who leads the background work,
/// and whether the database answers at all.
#[async_trait]
pub trait InstanceStore: Send + Sync + 'static {
    /// A round trip to the database.
    async fn ping(&self) -> StoreResult<()>;
    /// Takes the named lease if it is free or has lapsed, or renews it if `owner` holds it;
    /// `true` if `owner` holds it until `until` afterwards.
    async fn lead(
        &self,
        name: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Gives the lease up, if `owner` holds it.
    async fn resign(&self, name: &str, owner: &str) -> StoreResult<()>;
    /// Tells every instance listening on this database (this one too) `message`; nothing
    /// where one process owns the database.
    async fn announce(&self, message: &str) -> StoreResult<()>;
    /// What instances announce, as it comes (a lost connection is made again, and what was
    /// announced meanwhile is missed); `None` where one process owns the database.
    async fn announcements(&self) -> StoreResult<Option<BoxStream<'static, String>>>;
}

/// The store on the embedded SQLite database.
pub type SqliteStore = SqlStore<engine::Sqlite>;
/// The store on PostgreSQL, for several instances on one database.
pub type PostgresStore = SqlStore<engine::Postgres>;

/// Everything the service stores: one implementation over each database's engine, one
/// conformance suite.
pub trait Store:
    AccessStore
    + JobStore
    + BatchStore
    + ResultStore
    + InstanceStore
    + WebhookStore
    + BudgetStore
    + AuditStore
    + ContextStore
{
}

impl<T> Store for T where
    T: AccessStore
        + JobStore
        + BatchStore
        + ResultStore
        + InstanceStore
        + WebhookStore
        + BudgetStore
        + AuditStore
        + ContextStore
{
}

/// Opens the store a database URL names (`sqlite:` or `postgres:`), running its migrations.
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(
            PostgresStore::connect(url, max_connections).await?,
        ))
    } else {
        Ok(std::sync::Arc::new(SqliteStore::connect(url).await?))
    }
}

pub(crate) fn parse_job_type(s: &str) -> StoreResult<JobType> {
    JobType::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown job type {s:?}")))
}

pub(crate) fn parse_status(s: &str) -> StoreResult<JobStatus> {
    JobStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown job status {s:?}")))
}

pub(crate) fn parse_role(s: &str) -> StoreResult<Role> {
    Role::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown role {s:?}")))
}

pub(crate) fn parse_audit_action(s: &str) -> StoreResult<app::api::AuditAction> {
    app::api::AuditAction::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown audit action {s:?}")))
}

pub(crate) fn parse_provider(s: &str) -> StoreResult<ProviderName> {
    ProviderName::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown provider {s:?}")))
}

pub(crate) fn parse_batch_status(s: &str) -> StoreResult<BatchStatus> {
    BatchStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown batch status {s:?}")))
}

/// Stats of the visible jobs from their totals.
pub(crate) fn stats_from(rows: &[TotalsRow]) -> StatsRecord {
    let mut stats = StatsRecord::default();
    let mut completion_micros = 0i64;
    for row in rows {
        stats.total += row.jobs;
        stats.bill.add(&row.bill, 1);
        match row.status {
            JobStatus::Pending => stats.pending += row.jobs,
            JobStatus::Processing => stats.processing += row.jobs,
            JobStatus::Completed => {
                stats.completed += row.jobs;
                completion_micros += row.completion_micros;
            }
            JobStatus::Failed => stats.failed += row.jobs,
            JobStatus::Cancelled => {}
        }
    }
    stats.avg_completion_micros =
        (stats.completed > 0).then(|| completion_micros as f64 / stats.completed as f64);
    stats
}

/// How many visible jobs the totals count that match a status and type filter.
pub(crate) fn count_from(
    rows: &[TotalsRow],
    status: Option<JobStatus>,
    job_type: Option<JobType>,
) -> i64 {
    rows.iter()
        .filter(|r| {
            status.is_none_or(|s| s == r.status) && job_type.is_none_or(|t| t == r.job_type)
        })
        .map(|r| r.jobs)
        .sum()
}
