use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// Who runs a batch: each job type is routed to one (the price table says which model,
    /// and each model's provider).
    ProviderName {
        Anthropic => "anthropic",
        Openai => "openai",
    }
);

impl JobType {
    /// The job type as a trader names it (the API keeps its identifier).
    pub fn label(self) -> &'static str {
        match self {
            Self::PortfolioSummary => "Portfolio summary",
            Self::RiskReport => "Risk report",
            Self::StrategyBacktest => "Backtest review",
            Self::SentimentAnalysis => "News sentiment",
            Self::ModelEvaluation => "Model evaluation",
            Self::TradingAnalytics => "Trading analytics",
        }
    }

    /// What a job of this type gives back, in one line.
    pub fn describe(self) -> &'static str {
        match self {
            Self::PortfolioSummary => {
                "A written summary of a portfolio's positions, gains and concentration."
            }
            Self::RiskReport => {
                "Value at risk, drawdown and the main risk drivers of a set of positions."
            }
            Self::StrategyBacktest => {
                "A review of a strategy's backtest: strengths, weaknesses, next steps."
            }
            Self::SentimentAnalysis => "The tone of a ticker's headlines, scored from -1 to 1.",
            Self::ModelEvaluation => {
                "A reading of a forecasting model's metrics and whether to trust it."
            }
            Self::TradingAnalytics => "Patterns in an account's trades: what made and lost money.",
        }
    }
}

impl ProviderName {
    /// The provider as people name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Anthropic => "Anthropic",
            Self::Openai => "OpenAI",
        }
    }
}

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

    /// The cancel rule, for pages and the store alike: a job may be cancelled until it ends.
    /// Cancelling one in flight (`processing`) cannot recall it from the provider, which may
    /// still bill it; the budget counts it until its batch settles.
    pub fn can_cancel(self) -> bool {
        matches!(self, Self::Pending | Self::Processing)
    }

    /// The statuses `can_cancel` admits.
    pub fn cancellable() -> impl Iterator<Item = JobStatus> {
        Self::ALL.iter().copied().filter(|s| s.can_cancel())
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

    /// The scheduler's identity when it flushes and polls: an admin that no token can become
    /// (user ids of people are UUIDs).
    pub fn scheduler() -> Self {
        Caller {
            user_id: "scheduler".into(),
            name: "scheduler".into(),
            role: Role::Admin,
        }
    }

    pub fn is_scheduler(&self) -> bool {
        self.user_id == "scheduler"
    }
}

/// The contract's `job` object, plus the product's extra fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
    /// The provider its model ran on, once a flush sent it.
    #[serde(default)]
    pub provider: Option<ProviderName>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub standard_cost_usd: f64,
    pub savings_usd: f64,
    /// `savings_usd` split by where it came from: the batch discount (against the standard API
    /// without caching) and, on top of it, the provider's cache (negative when cache writes
    /// cost more than reads saved).
    #[serde(default)]
    pub saved_by_batching_usd: f64,
    #[serde(default)]
    pub saved_by_caching_usd: f64,
    /// Of `input_tokens`, those read from the provider's cache and those written to it.
    #[serde(default)]
    pub cache_read_tokens: i64,
    #[serde(default)]
    pub cache_write_tokens: i64,
    /// The shared context the job's request carries.
    #[serde(default)]
    pub context_id: Option<String>,
    /// The part of `tokens_used` and `cost_usd` that duplicate batches ran up.
    pub duplicate_tokens: i64,
    pub duplicate_cost_usd: f64,
    pub price_version: Option<String>,
    pub idempotency_key: Option<String>,
    pub cancel_requested: bool,
    /// Present on single-job answers; left out of lists to keep them small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// What the job is about, from its payload: the first of its `ticker`, `portfolio_id`,
    /// `strategy`, `model_name` or `account` (at most 40 characters), shown beside the id in
    /// lists. Absent for jobs older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// The payload fields that name what a job is about, in the order the first one found wins.
pub const SUBJECT_FIELDS: [&str; 5] = [
    "ticker",
    "portfolio_id",
    "strategy",
    "model_name",
    "account",
];
/// A subject is cut to this many characters.
pub const SUBJECT_CHARS: usize = 40;

impl Job {
    /// How many times the job was sent to Anthropic, as people count: `attempts` holds the
    /// tries that ended without a result, so the one in flight or that completed adds one.
    pub fn tries(&self) -> i64 {
        let current = match self.status {
            JobStatus::Processing | JobStatus::Completed => true,
            JobStatus::Cancelled => self.cancel_requested && self.batch_id.is_some(),
            JobStatus::Pending | JobStatus::Failed => false,
        };
        self.attempts + i64::from(current)
    }
}

/// A valid enqueue request, defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EnqueueRequest {
    pub job_type: JobType,
    /// Any JSON object, at most 256 KB as compact JSON, with no NUL (`\u0000`) in its keys or
    /// strings.
    #[cfg_attr(feature = "ssr", schema(example = json!({"ticker": "NVDA", "horizon_days": 30})))]
    pub payload: serde_json::Map<String, Value>,
    /// Higher goes first.
    #[cfg_attr(
        feature = "ssr",
        schema(required = false, default = 50, minimum = 0, maximum = 100)
    )]
    pub priority: i64,
    /// Never sent before this: ISO-8601 date-time or date (UTC without a zone); REST also
    /// takes a Unix timestamp in seconds, or milliseconds above 2×10¹⁰.
    /// (The pattern documents the common forms; the server reads every valid date from 1600
    /// to 9999.)
    #[cfg_attr(
        feature = "ssr",
        schema(value_type = Option<String>, format = DateTime, pattern = r"^(160[1-9]|16[1-9][0-9]|1[7-9][0-9]{2}|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?$")
    )]
    pub run_after: Option<DateTime<Utc>>,
    /// The same key with the same request returns the first job; with another request, 409.
    /// No NUL (`\u0000`).
    #[cfg_attr(feature = "ssr", schema(min_length = 1, max_length = 255))]
    pub idempotency_key: Option<String>,
    /// Where to POST the job when it ends, signed (see the README): `https://` and a DNS name
    /// (or a public IP address) that does not resolve to a private, loopback or link-local
    /// address; `http://` to this machine only when the server allows it.
    #[serde(default)]
    #[cfg_attr(
        feature = "ssr",
        schema(
            max_length = 2048,
            pattern = r"^https://([A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*\.?(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?([/?#][!-~]*)?$"
        )
    )]
    pub callback_url: Option<String>,
    /// A shared context (`POST /api/v1/batch/contexts`) the job's request carries before its
    /// payload: the caller's own, or one an admin shared. Cached at the provider, so many jobs
    /// pay little for it.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(min_length = 1, max_length = 64))]
    pub context_id: Option<String>,
}

impl EnqueueRequest {
    /// A job of this type with its payload (an object; anything else becomes `{}`) and the
    /// contract's defaults for everything else.
    pub fn new(job_type: JobType, payload: Value, priority: i64) -> Self {
        Self {
            job_type,
            payload: match payload {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
            priority,
            run_after: None,
            idempotency_key: None,
            callback_url: None,
            context_id: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EnqueueResponse {
    pub success: bool,
    pub job: Job,
    pub message: String,
    pub estimated_completion: String,
}

/// A bulk enqueue: each job as the single endpoint takes it; all are enqueued or none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BulkEnqueueRequest {
    #[cfg_attr(feature = "ssr", schema(min_items = 1, max_items = 10000))]
    pub jobs: Vec<EnqueueRequest>,
}

/// The answer to a bulk enqueue: every job, in the order sent (without payloads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
    /// Only jobs a flush sent to this provider.
    #[serde(default)]
    pub provider: Option<ProviderName>,
    /// Only the jobs of this provider batch (`msgbatch_…`, `batch_…`).
    #[serde(default)]
    pub batch_id: Option<String>,
    /// A job id, an idempotency key, or text found in the payload (e.g. a ticker).
    pub search: Option<String>,
    /// Text the job's error message contains (any case): failed jobs by what went wrong.
    #[serde(default)]
    pub error: Option<String>,
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
        (!id.is_empty() && id.chars().count() <= 64).then(|| ListCursor {
            created_at,
            id: id.to_string(),
        })
    }
}

impl ListQuery {
    /// Whether the filters go past what the kept totals can count (a text to match).
    pub fn matches_text(&self) -> bool {
        self.search.is_some()
            || self.error.is_some()
            || self.provider.is_some()
            || self.batch_id.is_some()
    }

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
        if let Some(provider) = self.provider {
            pairs.push(("provider".into(), provider.as_str().into()));
        }
        if let Some(batch) = &self.batch_id {
            pairs.push(("batch_id".into(), batch.clone()));
        }
        if let Some(q) = &self.search {
            pairs.push(("q".into(), q.clone()));
        }
        if let Some(error) = &self.error {
            pairs.push(("error".into(), error.clone()));
        }
        if let Some(cursor) = &self.cursor {
            pairs.push(("cursor".into(), cursor.encode()));
        }
        pairs
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct JobList {
    pub jobs: Vec<Job>,
    /// Jobs matching the filters; for a search (`q`), counted up to 10,000.
    pub total_count: i64,
    /// A search matched more jobs than `total_count` (which stopped at 10,000).
    #[serde(default)]
    pub total_count_capped: bool,
    pub pending_count: i64,
    pub processing_count: i64,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CancelResponse {
    pub success: bool,
    pub cancelled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
    /// `total_savings_usd` by where it came from: the batch discount, and the cache on top.
    #[serde(default)]
    pub total_saved_by_batching_usd: f64,
    #[serde(default)]
    pub total_saved_by_caching_usd: f64,
    /// Prompt tokens read from the provider's cache, and written to it.
    #[serde(default)]
    pub cache_read_tokens: i64,
    #[serde(default)]
    pub cache_write_tokens: i64,
    /// What each provider billed for these jobs, and what that saved.
    #[serde(default)]
    pub by_provider: Vec<ProviderSpend>,
}

/// One provider's share of the books.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ProviderSpend {
    pub provider: ProviderName,
    /// Jobs it billed.
    pub jobs: i64,
    pub tokens_used: i64,
    pub cost_usd: f64,
    pub standard_cost_usd: f64,
    pub savings_usd: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FlushRequest {
    #[cfg_attr(
        feature = "ssr",
        schema(required = false, default = 100, minimum = 1, maximum = 10000)
    )]
    pub max_jobs: i64,
    pub job_types: Option<Vec<JobType>>,
    #[cfg_attr(
        feature = "ssr",
        schema(required = false, default = 0, minimum = 0, maximum = 100)
    )]
    pub min_priority: i64,
    /// The `preview_token` of the preview this flush confirms: the flush then sends only
    /// what that preview promised (the same options, no more jobs and no higher cost), or
    /// answers 409 and sends nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ssr", schema(required = false, max_length = 200))]
    pub preview_token: Option<String>,
}

impl FlushRequest {
    /// The options as a flush with no preview to confirm takes them.
    pub fn options(max_jobs: i64, job_types: Option<Vec<JobType>>, min_priority: i64) -> Self {
        Self {
            max_jobs,
            job_types,
            min_priority,
            preview_token: None,
        }
    }
}

/// What a preview promised: the options it was made with, and at most how many jobs and how
/// much money the flush that confirms it may send. Carried as `preview_token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewToken {
    pub max_jobs: i64,
    pub job_types: Option<Vec<JobType>>,
    pub min_priority: i64,
    pub jobs_count: i64,
    pub cost_nanos: i64,
}

impl PreviewToken {
    /// `v1.<max_jobs>.<min_priority>.<types joined by + , or *>.<jobs>.<cost nanos>`.
    pub fn encode(&self) -> String {
        let types = match &self.job_types {
            None => "*".to_string(),
            Some(types) => types
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join("+"),
        };
        format!(
            "v1.{}.{}.{types}.{}.{}",
            self.max_jobs, self.min_priority, self.jobs_count, self.cost_nanos
        )
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.strip_prefix("v1.")?.split('.');
        let mut number = || parts.next()?.parse::<i64>().ok();
        let (max_jobs, min_priority) = (number()?, number()?);
        let types = parts.next()?;
        let job_types = if types == "*" {
            None
        } else {
            Some(
                types
                    .split('+')
                    .map(JobType::parse)
                    .collect::<Option<Vec<_>>>()?,
            )
        };
        let mut number = || parts.next()?.parse::<i64>().ok();
        let (jobs_count, cost_nanos) = (number()?, number()?);
        parts.next().is_none().then_some(Self {
            max_jobs,
            job_types,
            min_priority,
            jobs_count,
            cost_nanos,
        })
    }

    /// Whether `request` asks for the options this preview was made with.
    pub fn matches(&self, request: &FlushRequest) -> bool {
        self.max_jobs == request.max_jobs
            && self.min_priority == request.min_priority
            && self.job_types == request.job_types
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PollRequest {
    pub batch_id: String,
}

/// Money is stored as integer nano-dollars and shown as USD numbers.
pub fn nanos_to_usd(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// The one way money is shown: exact nano-dollars, in cents, or in millionths of a dollar
/// below a cent (batch jobs often cost less).
pub fn money(nanos: i64) -> String {
    Precision::fitting([nanos]).show(nanos)
}

const NANOS_PER_CENT: i64 = 10_000_000;
const NANOS_PER_MICRO: i64 = 1_000;

/// How finely amounts shown together (a column, a set of cards) are written: all in cents,
/// or all in millionths of a dollar when one of them is a fraction of a cent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Cents,
    Micros,
}

impl Precision {
    /// The coarsest precision that shows every amount given as more than zero.
    pub fn fitting(amounts: impl IntoIterator<Item = i64>) -> Self {
        let tiny = amounts
            .into_iter()
            .any(|a| a != 0 && a.unsigned_abs() < NANOS_PER_CENT as u64);
        if tiny { Self::Micros } else { Self::Cents }
    }

    /// As [`Precision::fitting`], and fine enough that different amounts read differently:
    /// for a sentence that compares them ("may cost up to $0.014900, and $0.010100 is left"
    /// rather than "$0.01, and $0.01").
    pub fn telling_apart(amounts: impl IntoIterator<Item = i64>) -> Self {
        let mut amounts: Vec<i64> = amounts.into_iter().collect();
        amounts.sort_unstable();
        amounts.dedup();
        let fitting = Self::fitting(amounts.iter().copied());
        let merged = amounts
            .windows(2)
            .any(|pair| fitting.round(pair[0]) == fitting.round(pair[1]));
        if merged { Self::Micros } else { fitting }
    }

    fn unit(self) -> i64 {
        match self {
            Self::Cents => NANOS_PER_CENT,
            Self::Micros => NANOS_PER_MICRO,
        }
    }

    /// `nanos` rounded to this precision (half away from zero), still in nano-dollars.
    pub fn round(self, nanos: i64) -> i64 {
        let unit = self.unit();
        let units = (nanos.unsigned_abs() + unit as u64 / 2) / unit as u64;
        nanos.signum() * units as i64 * unit
    }

    /// `nanos` written at this precision: "$1,234.50" or "$0.001488".
    pub fn show(self, nanos: i64) -> String {
        let rounded = self.round(nanos);
        let sign = if rounded < 0 { "-" } else { "" };
        let units = rounded.unsigned_abs() / self.unit() as u64;
        match self {
            Self::Cents => format!(
                "{sign}${}.{:02}",
                thousands((units / 100) as i64),
                units % 100
            ),
            Self::Micros => format!(
                "{sign}${}.{:06}",
                thousands((units / 1_000_000) as i64),
                units % 1_000_000
            ),
        }
    }
}

/// A whole number with thousands separators: 1234567 → "1,234,567". An `i64`: 128-bit
/// formatting would add its own code to every browser bundle.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The word that agrees with a count: `agreeing(1, "stays", "stay")` is "stays".
pub fn agreeing<'a>(n: i64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// A count in words: `count_of(1, "attempt", "attempts")` is "1 attempt", 1234 "1,234 attempts".
pub fn count_of(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), agreeing(n, one, many))
}

/// How many jobs, in words: "1 job", "1,234 jobs".
pub fn count_of_jobs(n: i64) -> String {
    count_of(n, "job", "jobs")
}

/// The contract's flush answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FlushResponse {
    pub success: bool,
    pub batch_id: Option<String>,
    pub jobs_count: i64,
    pub estimated_tokens: i64,
    pub message: String,
}

/// The contract's poll answer. `status` is the provider's `processing_status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct JobEventView {
    pub kind: String,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// How many of a batch's jobs are in a status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct JobOutcome {
    pub status: JobStatus,
    pub jobs: i64,
}

/// A batch as admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BatchView {
    /// The provider's id (Anthropic's `msgbatch_…`, OpenAI's `batch_…`), once it has
    /// accepted the batch.
    pub batch_id: Option<String>,
    /// Who runs it.
    #[serde(default)]
    pub provider: Option<ProviderName>,
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
    /// Its jobs as we recorded them, by status (a job sent again since counts under its later
    /// batch): what tells a trader how the batch went, beside the provider's own counts.
    #[serde(default)]
    pub job_outcomes: Vec<JobOutcome>,
    /// What Anthropic billed for this batch's results, as recorded.
    pub billed_tokens: i64,
    pub billed_cost_usd: f64,
    /// Succeeded requests Anthropic billed whose results could not be read.
    pub unaccounted_results: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BatchList {
    pub batches: Vec<BatchView>,
}

/// A job with everything its page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    pub job: Job,
    pub events: Vec<JobEventView>,
    pub result: Option<Value>,
    /// For a job still waiting: when its result is expected (the same estimate an enqueue
    /// answers).
    pub estimated_completion: Option<DateTime<Utc>>,
    /// For a job not yet billed: the most it may cost at batch prices, what its owner's
    /// budget counts until the bill comes.
    pub cost_bound_nanos: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BulkCancelRequest {
    #[cfg_attr(feature = "ssr", schema(min_items = 1, max_items = 1000))]
    pub job_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BulkCancelResponse {
    pub cancelled: i64,
    pub results: Vec<BulkCancelItem>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BulkCancelItem {
    pub job_id: String,
    pub cancelled: bool,
    pub detail: Option<String>,
}

/// The answer to an admin's retry of failed jobs: each job answers for itself.
/// An admin's retry of failed jobs. A job that was billed already is billed again when it
/// runs again: retrying one needs `confirm_rebill`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RetryRequest {
    #[cfg_attr(feature = "ssr", schema(min_items = 1, max_items = 1000))]
    pub job_ids: Vec<String>,
    /// Retry jobs that were billed already, knowing they will be billed again.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(required = false, default = false))]
    pub confirm_rebill: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RetryResponse {
    pub retried: i64,
    pub results: Vec<RetryItem>,
}

/// The dashboard's retry answer: done, or a question, since some jobs were billed already.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RetryReply {
    Retried(RetryResponse),
    /// Nothing was retried: confirming would bill these jobs again (the message says how much).
    NeedsConfirmation(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RetryItem {
    pub job_id: String,
    pub retried: bool,
    /// Why not, when it was not (not found, or not failed).
    pub detail: Option<String>,
}

/// What a flush with these options would send, before sending it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FlushPreview {
    pub jobs_count: i64,
    pub estimated_tokens: i64,
    /// At batch prices, if every request used its whole `max_tokens`: an upper bound.
    pub estimated_cost_usd: f64,
    /// The same bound with every possible cache read happening (each shared prefix written
    /// once, at the configured time to live): the best the cache can do.
    #[serde(default)]
    pub estimated_cost_with_cache_usd: f64,
    /// The same bound without caching: the batch discount alone.
    #[serde(default)]
    pub estimated_cost_without_cache_usd: f64,
    pub message: String,
    /// Pass it as the flush's `preview_token` to send exactly what this preview promised.
    #[serde(default)]
    pub preview_token: String,
}

/// Cost of the jobs completed on one day, of one type (and owner, for admins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DailyCost {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub job_type: JobType,
    pub owner: String,
    pub jobs: i64,
    pub cost_usd: f64,
    pub standard_cost_usd: f64,
    /// The same two amounts exactly, in nano-dollars: pages add and subtract these.
    #[serde(default)]
    pub cost_nanos: i64,
    #[serde(default)]
    pub standard_cost_nanos: i64,
    /// The same requests in a batch without caching; `standard − uncached` is what batching
    /// saved, `uncached − cost` what caching saved.
    #[serde(default)]
    pub uncached_cost_nanos: i64,
    /// Prompt tokens read from the cache, written to it, and in all.
    #[serde(default)]
    pub cache_read_tokens: i64,
    #[serde(default)]
    pub cache_write_tokens: i64,
    #[serde(default)]
    pub input_tokens: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub tokens: Vec<TokenView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TokenView {
    /// The public part of the token (`aib_<id>_…`).
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreateTokenRequest {
    /// A name of 1 to 64 characters without control characters (spaces around it are dropped).
    #[cfg_attr(
        feature = "ssr",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub user: String,
    pub role: Role,
}

/// A new token: `token` is shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    pub user: String,
    pub role: Role,
    pub token_id: String,
    pub token: String,
}

/// A webhook signing secret, shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WebhookSecret {
    /// HMAC-SHA256 key for the `Bitcain-Signature` header of your webhooks.
    pub secret: String,
}

/// The answer to a revoke.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RevokedToken {
    pub success: bool,
    /// The token's id.
    pub revoked: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PriceView {
    pub version: String,
    pub batch_discount_percent: i64,
    pub default_model: String,
    /// Job type and the model it runs on.
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<Vec<String>>))]
    pub job_models: Vec<(String, String)>,
    /// Model, then USD per million tokens: input, output, cache write (5 minutes), cache read.
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<Vec<Value>>))]
    pub models: Vec<(String, [f64; 4])>,
    /// Each model's cache prices (standard API; the batch discount applies on top) and the
    /// shortest prefix it caches.
    #[serde(default)]
    pub caching: Vec<ModelCacheView>,
    /// Each job type's route: the provider and model its jobs are sent to.
    #[serde(default)]
    pub routes: Vec<RouteView>,
}

/// Where a job type's jobs go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RouteView {
    pub job_type: JobType,
    pub provider: ProviderName,
    pub model: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelCacheView {
    pub model: String,
    /// Who serves the model.
    #[serde(default)]
    pub provider: Option<ProviderName>,
    pub write_5m_usd_per_mtok: f64,
    pub write_1h_usd_per_mtok: f64,
    pub read_usd_per_mtok: f64,
    pub min_cache_tokens: i64,
}

/// The signed-in user and what the whole dashboard needs to know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub caller: Caller,
    /// The built-in emulator stands in for Anthropic.
    pub emulator: bool,
}

/// Who a dashboard request comes from, by its session cookie.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Visitor {
    SignedIn(Session),
    /// The cookie names a session that is over: it expired, or its token was revoked.
    Ended,
    Anonymous,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus, attempts: i64, batch: bool, cancel_requested: bool) -> Job {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        Job {
            id: "j".into(),
            job_type: JobType::RiskReport,
            status,
            priority: 50,
            custom_id: "j".into(),
            batch_id: batch.then(|| "b".into()),
            created_at: now,
            updated_at: now,
            run_after: None,
            completed_at: None,
            tokens_used: 0,
            error_message: None,
            owner: "alice".into(),
            attempts,
            model: None,
            provider: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            standard_cost_usd: 0.0,
            savings_usd: 0.0,
            saved_by_batching_usd: 0.0,
            saved_by_caching_usd: 0.0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            context_id: None,
            duplicate_tokens: 0,
            duplicate_cost_usd: 0.0,
            price_version: None,
            idempotency_key: None,
            cancel_requested,
            payload: None,
            subject: None,
        }
    }

    #[test]
    fn tries_count_the_send_that_is_in_flight_or_completed() {
        assert_eq!(job(JobStatus::Pending, 0, false, false).tries(), 0);
        assert_eq!(job(JobStatus::Processing, 0, true, false).tries(), 1);
        assert_eq!(job(JobStatus::Completed, 0, true, false).tries(), 1);
        assert_eq!(
            job(JobStatus::Completed, 1, true, false).tries(),
            2,
            "after one retry"
        );
        assert_eq!(
            job(JobStatus::Pending, 1, false, false).tries(),
            1,
            "requeued once"
        );
        assert_eq!(
            job(JobStatus::Failed, 3, true, false).tries(),
            3,
            "gave up after three"
        );
        assert_eq!(
            job(JobStatus::Cancelled, 0, true, true).tries(),
            1,
            "cancelled in flight"
        );
        assert_eq!(
            job(JobStatus::Cancelled, 0, false, false).tries(),
            0,
            "cancelled while queued"
        );
    }
}
