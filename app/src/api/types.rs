use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Declares a string enum of the contract once: its variants, wire names and listing.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// The kinds of work the contract accepts.
    JobType {
        PortfolioSummary => "portfolio_summary",
        RiskReport => "risk_report",
        StrategyBacktest => "strategy_backtest",
        SentimentAnalysis => "sentiment_analysis",
        ModelEvaluation => "model_evaluation",
        TradingAnalytics => "trading_analytics",
    }
);

wire_enum!(
    /// `pending` → `processing` → `completed` | `failed` | `cancelled`.
    JobStatus {
        Pending => "pending",
        Processing => "processing",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

wire_enum!(
    Role {
        Trader => "trader",
        Admin => "admin",
    }
);

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// Who is asking: every use case takes one, and visibility follows from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: String,
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The contract's `job` object, plus the product's extra fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub job_type: JobType,
    pub status: JobStatus,
    pub priority: i64,
    pub custom_id: String,
    pub batch_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub run_after: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub tokens_used: i64,
    pub error_message: Option<String>,
    pub owner: String,
    pub attempts: i64,
    pub model: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub standard_cost_usd: f64,
    pub savings_usd: f64,
    /// The part of `tokens_used` and `cost_usd` that duplicate batches ran up.
    pub duplicate_tokens: i64,
    pub duplicate_cost_usd: f64,
    pub price_version: Option<String>,
    pub idempotency_key: Option<String>,
    pub cancel_requested: bool,
    /// Present on single-job answers; left out of lists to keep them small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// A valid enqueue request, defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnqueueRequest {
    pub job_type: JobType,
    pub payload: serde_json::Map<String, Value>,
    pub priority: i64,
    pub run_after: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnqueueResponse {
    pub success: bool,
    pub job: Job,
    pub message: String,
    pub estimated_completion: String,
}

/// The answer to a bulk enqueue: every job, in the order sent (without payloads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BulkEnqueueResponse {
    pub success: bool,
    pub jobs: Vec<Job>,
    /// Jobs made by this request, and jobs that existed already with their idempotency keys.
    pub created: i64,
    pub existing: i64,
    pub message: String,
    pub estimated_completion: String,
}

/// What to list: the contract's `status_filter` and `limit`, plus the dashboard's type
/// filter, text search and paging (by `offset`, or by `cursor` from a page's `next_cursor`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    pub status_filter: Option<JobStatus>,
    pub job_type: Option<JobType>,
    /// A job id, an idempotency key, or text found in the payload (e.g. a ticker).
    pub search: Option<String>,
    pub limit: i64,
    pub offset: i64,
    /// Continue after this job (newest first): keyset paging, as fast on the last page as on the first.
    #[serde(default)]
    pub cursor: Option<ListCursor>,
}

/// Where a list continues: after the job created at `created_at` with this `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

impl ListCursor {
    /// The cursor as a URL-safe string: `<microseconds>.<id>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at.timestamp_micros(), self.id)
    }

    pub fn decode(text: &str) -> Option<ListCursor> {
        let (micros, id) = text.split_once('.')?;
        let created_at = DateTime::<Utc>::from_timestamp_micros(micros.parse().ok()?)?;
        (!id.is_empty() && id.len() <= 64).then(|| ListCursor {
            created_at,
            id: id.to_string(),
        })
    }
}

impl ListQuery {
    /// The query as the pairs of a URL, to be read by `validation::parse_list_query`.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("limit".to_string(), self.limit.to_string()),
            ("offset".to_string(), self.offset.to_string()),
        ];
        if let Some(s) = self.status_filter {
            pairs.push(("status_filter".into(), s.as_str().into()));
        }
        if let Some(t) = self.job_type {
            pairs.push(("job_type".into(), t.as_str().into()));
        }
        if let Some(q) = &self.search {
            pairs.push(("q".into(), q.clone()));
        }
        if let Some(cursor) = &self.cursor {
            pairs.push(("cursor".into(), cursor.encode()));
        }
        pairs
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<Job>,
    pub total_count: i64,
    pub pending_count: i64,
    pub processing_count: i64,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CancelResponse {
    pub success: bool,
    pub cancelled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub total_jobs_queued: i64,
    pub pending_jobs: i64,
    pub processing_jobs: i64,
    pub completed_jobs: i64,
    pub failed_jobs: i64,
    pub total_tokens_used: i64,
    pub total_cost_usd: f64,
    pub total_savings_usd: f64,
    pub avg_processing_time_hours: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlushRequest {
    pub max_jobs: i64,
    pub job_types: Option<Vec<JobType>>,
    pub min_priority: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PollRequest {
    pub batch_id: String,
}

/// Money is stored as integer nano-dollars and shown as USD numbers.
pub fn nanos_to_usd(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// The contract's flush answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlushResponse {
    pub success: bool,
    pub batch_id: Option<String>,
    pub jobs_count: i64,
    pub estimated_tokens: i64,
    pub message: String,
}

/// The contract's poll answer. `status` is the provider's `processing_status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PollResponse {
    pub success: bool,
    pub batch_id: String,
    pub status: String,
    /// What this call changed, capped at [`POLL_RESULTS_CAP`] entries.
    pub results: Vec<PollResult>,
    pub jobs_processed: i64,
    pub jobs_remaining: i64,
    pub message: String,
}

pub const POLL_RESULTS_CAP: usize = 1000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PollResult {
    pub job_id: String,
    pub job_type: JobType,
    /// The provider's result type: `succeeded`, `errored`, `expired` or `canceled`.
    pub status: String,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub tokens_used: i64,
    /// From the batch's submission to this result.
    pub processing_time_ms: i64,
}

/// One entry of a job's history, for the dashboard's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEventView {
    pub kind: String,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// A batch as admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchView {
    /// Anthropic's id (`msgbatch_…`), once the provider has accepted the batch.
    pub batch_id: Option<String>,
    pub local_id: String,
    pub status: String,
    pub jobs_count: i64,
    pub estimated_tokens: i64,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The provider's settled counts, once the batch has ended.
    pub request_counts: Option<Value>,
    pub results_collected: bool,
    pub error: Option<String>,
    /// Seconds since submission (or creation), when the list was read.
    pub age_seconds: i64,
    /// Polls that failed in a row.
    pub poll_failures: i64,
    /// Polls keep failing (past the configured count): an admin should look at `error`.
    pub stuck: bool,
    /// For a duplicate (a provider batch that ran another batch's jobs again): that batch's `local_id`.
    pub duplicate_of: Option<String>,
    /// What Anthropic billed for this batch's results, as recorded.
    pub billed_tokens: i64,
    pub billed_cost_usd: f64,
    /// Succeeded requests Anthropic billed whose results could not be read.
    pub unaccounted_results: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchList {
    pub batches: Vec<BatchView>,
}

/// A job with everything its page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    pub job: Job,
    pub events: Vec<JobEventView>,
    pub result: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BulkCancelRequest {
    pub job_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BulkCancelResponse {
    pub cancelled: i64,
    pub results: Vec<BulkCancelItem>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BulkCancelItem {
    pub job_id: String,
    pub cancelled: bool,
    pub detail: Option<String>,
}

/// What a flush with these options would send, before sending it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlushPreview {
    pub jobs_count: i64,
    pub estimated_tokens: i64,
    /// At batch prices, if every request used its whole `max_tokens`: an upper bound.
    pub estimated_cost_usd: f64,
    pub message: String,
}

/// Cost of the jobs completed on one day, of one type (and owner, for admins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyCost {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub job_type: JobType,
    pub owner: String,
    pub jobs: i64,
    pub cost_usd: f64,
    pub standard_cost_usd: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub tokens: Vec<TokenView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    /// The public part of the token (`aib_<id>_…`).
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateTokenRequest {
    pub user: String,
    pub role: Role,
}

/// A new token: `token` is shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IssuedToken {
    pub user: String,
    pub role: Role,
    pub token_id: String,
    pub token: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceView {
    pub version: String,
    pub batch_discount_percent: i64,
    pub default_model: String,
    pub job_models: Vec<(String, String)>,
    /// Model, then USD per million tokens: input, output, cache write, cache read.
    pub models: Vec<(String, [f64; 4])>,
}

/// The signed-in user and what the whole dashboard needs to know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub caller: Caller,
    /// The built-in emulator stands in for Anthropic.
    pub emulator: bool,
}
