//! Configuration: flags or environment variables (a `.env` file is read first).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::emulator::Faults;
use crate::provider::ClientConfig;
use crate::templates::CacheTtl;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Anthropic's API at ANTHROPIC_BASE_URL (or a standalone emulator there).
    Anthropic,
    /// The built-in emulator, started in-process on a loopback port.
    Emulator,
}

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address the service listens on.
    #[arg(long, env = "AI_BATCH_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Database: a SQLite file (`sqlite://path`, created if missing) or PostgreSQL
    /// (`postgres://user@host/db`, for several instances).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/ai-batch.db"
    )]
    pub database_url: String,

    /// Most connections to the database (PostgreSQL; SQLite keeps one writer and eight readers).
    #[arg(long, env = "AI_BATCH_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// How long start-up keeps trying to reach the database, in seconds.
    #[arg(long, env = "AI_BATCH_DB_STARTUP_WAIT_SECS", default_value_t = 60)]
    pub db_startup_wait_secs: u64,

    /// How often queued jobs are flushed into a batch, in seconds.
    #[arg(long, env = "AI_BATCH_FLUSH_INTERVAL_SECS", default_value_t = 300)]
    pub flush_interval_secs: u64,

    /// Where cargo-leptos put the dashboard's compiled assets.
    #[arg(long, env = "AI_BATCH_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,

    /// How long a dashboard sign-in lasts, in hours.
    #[arg(long, env = "AI_BATCH_SESSION_HOURS", default_value_t = 12)]
    pub session_hours: i64,

    /// Mark the session cookie `Secure` (set it when served over HTTPS).
    #[arg(long, env = "AI_BATCH_COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,

    /// The price table (TOML); the built-in table is used if the file does not exist.
    #[arg(long, env = "AI_BATCH_PRICES", default_value = "config/prices.toml")]
    pub prices: PathBuf,

    /// Who answers batches. Unset: `anthropic` when ANTHROPIC_API_KEY is set, else `emulator`.
    #[arg(long, env = "AI_BATCH_PROVIDER", value_enum)]
    pub provider: Option<ProviderKind>,

    #[command(flatten)]
    pub anthropic: AnthropicConfig,

    #[command(flatten)]
    pub openai: OpenAiConfig,

    /// Routes overriding the price table's [job_models]: `job_type=model` pairs, comma
    /// separated (`sentiment_analysis=gpt-4.1-mini`). A job type runs on its model's provider.
    #[arg(long, env = "AI_BATCH_ROUTES", value_delimiter = ',')]
    pub routes: Vec<String>,

    #[command(flatten)]
    pub batch: BatchConfig,

    #[command(flatten)]
    pub limits: LimitsConfig,

    #[command(flatten)]
    pub webhooks: WebhookConfig,

    /// Test failpoints, comma-separated: the process exits or stalls at each named point
    /// (`after-submit`, `after-duplicate-cancel`, `stall-heartbeat`, `slow-results-write`).
    #[arg(long, env = "AI_BATCH_FAILPOINT", hide = true)]
    pub failpoint: Option<String>,

    #[command(flatten)]
    pub emulator: EmulatorConfig,
}

/// Completion webhooks: the deliverer runs in the scheduler, on the leader.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookConfig {
    /// Deliver completion webhooks.
    #[arg(id = "webhooks", long = "webhooks", env = "AI_BATCH_WEBHOOKS", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub enabled: bool,

    /// Accept callbacks to this machine (`http://` or `https://` to 127.0.0.1, localhost,
    /// [::1]): for development and tests, never in production.
    #[arg(long = "webhook-allow-http-loopback", env = "AI_BATCH_WEBHOOK_ALLOW_HTTP_LOOPBACK", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_http_loopback: bool,

    /// Networks of internal receivers webhooks may reach although they are not public
    /// (comma-separated CIDRs, e.g. `10.20.0.0/16,fd00:1::/64`). Anything else private,
    /// loopback, link-local or reserved is refused.
    #[arg(
        long = "webhook-allow-networks",
        env = "AI_BATCH_WEBHOOK_ALLOW_NETWORKS",
        value_delimiter = ','
    )]
    pub allow_networks: Vec<ipnet::IpNet>,

    /// Seconds a receiver has to answer one delivery.
    #[arg(
        id = "webhook_timeout_secs",
        long = "webhook-timeout-secs",
        env = "AI_BATCH_WEBHOOK_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub timeout_secs: u64,

    /// Attempts before a webhook is given up (the waits double from 1 s, at most an hour).
    #[arg(
        id = "webhook_max_attempts",
        long = "webhook-max-attempts",
        env = "AI_BATCH_WEBHOOK_MAX_ATTEMPTS",
        default_value_t = 10
    )]
    pub max_attempts: i64,
}

impl WebhookConfig {
    /// Which addresses deliveries may reach besides public ones.
    pub fn destinations(&self) -> crate::webhooks::address::Destinations {
        crate::webhooks::address::Destinations {
            allowed: self.allow_networks.clone(),
            loopback: self.allow_http_loopback,
        }
    }
}

/// What protects the REST API from a runaway client or a stuck request.
#[derive(Clone, Debug, clap::Args)]
pub struct LimitsConfig {
    /// Enqueue requests per second per token (single and bulk each count as one); 0 = no limit.
    #[arg(long, env = "AI_BATCH_ENQUEUE_PER_SEC", default_value_t = 500)]
    pub enqueue_per_sec: u32,

    /// Requests a token may send at once above its enqueue rate before waiting.
    #[arg(long, env = "AI_BATCH_ENQUEUE_BURST", default_value_t = 1000)]
    pub enqueue_burst: u32,

    /// Other API requests (reads, cancels, admin calls) per second per token; 0 = no limit.
    #[arg(long, env = "AI_BATCH_READS_PER_SEC", default_value_t = 100)]
    pub reads_per_sec: u32,

    /// Requests a token may send at once above its read rate before waiting.
    #[arg(long, env = "AI_BATCH_READS_BURST", default_value_t = 200)]
    pub reads_burst: u32,

    /// Failed authentications (a wrong or missing token, a failed sign-in) per second per
    /// client address; past it, 429. 0 = no limit.
    #[arg(long, env = "AI_BATCH_AUTH_FAILURES_PER_SEC", default_value_t = 2)]
    pub auth_failures_per_sec: u32,

    /// Failed authentications an address may make at once before waiting.
    #[arg(long, env = "AI_BATCH_AUTH_FAILURES_BURST", default_value_t = 20)]
    pub auth_failures_burst: u32,

    /// Record request, provider and ingest metrics for `GET /metrics` (admins).
    #[arg(long, env = "AI_BATCH_METRICS", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub metrics: bool,

    /// Also serve `/metrics` without a token on this address (e.g. `127.0.0.1:9464` for a
    /// Prometheus on the same host); unset, only admins read it on the main address.
    #[arg(long, env = "AI_BATCH_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Longest an API request may run, in seconds (flush and poll are exempt: leases guard them).
    #[arg(
        long = "api-request-timeout-secs",
        env = "AI_BATCH_REQUEST_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub api_request_timeout_secs: u64,
}

#[derive(Clone, Debug, clap::Args)]
pub struct AnthropicConfig {
    #[arg(
        long = "anthropic-api-key",
        env = "ANTHROPIC_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    #[arg(
        long = "anthropic-base-url",
        env = "ANTHROPIC_BASE_URL",
        default_value = "https://api.anthropic.com"
    )]
    pub base_url: String,

    /// Seconds to wait for a connection.
    #[arg(
        long = "anthropic-connect-timeout-secs",
        env = "AI_BATCH_ANTHROPIC_CONNECT_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub connect_timeout_secs: u64,

    /// Seconds a JSON call (create, retrieve, list, cancel, delete) may take in all.
    #[arg(
        long = "anthropic-request-timeout-secs",
        env = "AI_BATCH_ANTHROPIC_REQUEST_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub request_timeout_secs: u64,

    /// Seconds a results download may go without receiving data.
    #[arg(
        long = "anthropic-read-timeout-secs",
        env = "AI_BATCH_ANTHROPIC_READ_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub read_timeout_secs: u64,

    /// Retries of a call that failed with 429, 529 or 5xx.
    #[arg(
        long = "anthropic-max-retries",
        env = "AI_BATCH_ANTHROPIC_MAX_RETRIES",
        default_value_t = 4
    )]
    pub max_retries: u32,
}

impl AnthropicConfig {
    pub fn client_config(&self, base_url: &str, api_key: &str) -> ClientConfig {
        ClientConfig {
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            read_timeout: Duration::from_secs(self.read_timeout_secs),
            max_retries: self.max_retries,
            ..ClientConfig::new(base_url, api_key)
        }
    }
}

/// OpenAI's Batch API: used for the job types routed to an OpenAI model. Its timeouts and
/// retries are Anthropic's settings.
#[derive(Clone, Debug, clap::Args)]
pub struct OpenAiConfig {
    #[arg(
        id = "openai_api_key",
        long = "openai-api-key",
        env = "OPENAI_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// The signing secret (`whsec_…`) of OpenAI's batch webhooks, when they are set up to
    /// reach `/webhooks/openai`: an ended batch is then polled at once.
    #[arg(
        id = "openai_webhook_secret",
        long = "openai-webhook-secret",
        env = "OPENAI_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,

    #[arg(
        id = "openai_base_url",
        long = "openai-base-url",
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com"
    )]
    pub base_url: String,
}

/// The batch loop and its scheduler.
#[derive(Clone, Debug, clap::Args)]
pub struct BatchConfig {
    /// Attempts before a job whose request errored on Anthropic's side, or expired, fails.
    #[arg(long, env = "AI_BATCH_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: i64,

    /// Seconds between polls of a running batch (longer as it ages, at most 5 minutes).
    #[arg(long, env = "AI_BATCH_POLL_INTERVAL_SECS", default_value_t = 30)]
    pub poll_interval_secs: u64,

    /// Run the scheduler (auto-flush, auto-poll, rescuer) inside `serve`.
    #[arg(long, env = "AI_BATCH_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub scheduler: bool,

    /// Flush automatically when enough jobs are eligible or the oldest has waited the flush interval.
    #[arg(long, env = "AI_BATCH_AUTO_FLUSH", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub auto_flush: bool,

    /// Eligible jobs that trigger an automatic flush at once.
    #[arg(long, env = "AI_BATCH_AUTO_FLUSH_MIN_JOBS", default_value_t = 100)]
    pub auto_flush_min_jobs: i64,

    /// Most jobs one automatic flush sends.
    #[arg(long, env = "AI_BATCH_AUTO_FLUSH_MAX_JOBS", default_value_t = 10_000)]
    pub auto_flush_max_jobs: i64,

    /// Most requests one batch holds, below its provider's own limit (Anthropic 100,000,
    /// OpenAI 50,000): a batch's results come back when the whole batch ends, so smaller
    /// batches return their first results sooner. Jobs past it wait for the next flush.
    #[arg(long, env = "AI_BATCH_MAX_BATCH_REQUESTS", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_batch_requests: Option<u32>,

    /// Most megabytes (2^20 bytes) of requests one batch grows to, below its provider's own
    /// limit (Anthropic 256; OpenAI's 200 MB file holds about 160 of them): a batch is created
    /// in one upload that must end within the provider's request timeout, so a slow uplink
    /// wants smaller ones. A job larger than it goes in a batch of its own; the rest wait for
    /// the next flush.
    #[arg(long, env = "AI_BATCH_MAX_BATCH_MB", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_batch_mb: Option<u32>,

    /// Poll open batches automatically.
    #[arg(long, env = "AI_BATCH_AUTO_POLL", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub auto_poll: bool,

    /// Reconcile batches left `submitting` (at start-up, then periodically).
    #[arg(long, env = "AI_BATCH_RESCUER", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub rescuer: bool,

    /// Seconds a lease on a batch lasts (renewed every third of it while held): a create in
    /// flight is never reconciled, and after an uncertain create reconciliation waits this long.
    #[arg(long, env = "AI_BATCH_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,

    /// Seconds between searches of the provider's batches of the last two days for one not
    /// on our books (a copy made by a create answered neither in time nor at all); 0 turns
    /// the search off.
    #[arg(long, env = "AI_BATCH_STRAY_SEARCH_SECS", default_value_t = 300)]
    pub stray_search_secs: u64,

    /// Seconds the leadership of the background work (auto-flush, rescuer) lasts without
    /// renewal: when the leader dies, another instance takes over within about this long.
    #[arg(long, env = "AI_BATCH_LEADER_LEASE_SECS", default_value_t = 15)]
    pub leader_lease_secs: u64,

    /// Failed polls in a row after which a batch shows as stuck to admins.
    #[arg(long, env = "AI_BATCH_STUCK_AFTER_FAILURES", default_value_t = 5)]
    pub stuck_after_failures: i64,

    /// How often the scheduler's services wake, in milliseconds.
    #[arg(long, env = "AI_BATCH_SCHEDULER_TICK_MS", default_value_t = 1000)]
    pub tick_ms: u64,

    /// How long a cached prefix (a job type's prompt and a shared context) is written for:
    /// `5m` (1.25× the input price, refreshed by every read) or `1h` (2×; pays when the same
    /// context is read again more than five minutes after its last read, e.g. by flushes
    /// spread over the hour).
    #[arg(long, env = "AI_BATCH_CACHE_TTL", value_enum, default_value_t = CacheTtl::FiveMinutes)]
    pub cache_ttl: CacheTtl,
}

#[derive(Clone, Debug, clap::Args)]
pub struct EmulatorConfig {
    /// Seconds an emulated batch takes to end.
    #[arg(
        long = "emulator-delay-secs",
        env = "AI_BATCH_EMULATOR_DELAY_SECS",
        default_value_t = 20
    )]
    pub delay_secs: u64,

    /// The share of requests that read a cached prefix when one is there to read (written
    /// by a request that finished before they started): Anthropic documents cache hits in
    /// batches as best effort, 30% to 98%; 0.64 is the middle.
    #[arg(
        long = "emulator-cache-hit-rate",
        env = "AI_BATCH_EMULATOR_CACHE_HIT_RATE",
        default_value_t = 0.64
    )]
    pub cache_hit_rate: f64,

    /// Faults to inject, as JSON (see the README), e.g. {"errored_percent": 10}.
    #[arg(long = "emulator-faults", env = "AI_BATCH_EMULATOR_FAULTS", value_parser = parse_faults)]
    pub faults: Option<Faults>,
}

fn parse_faults(text: &str) -> Result<Faults, String> {
    serde_json::from_str(text).map_err(|e| format!("not valid emulator faults: {e}"))
}

impl Config {
    /// Whether the test failpoint `name` is set.
    pub fn at_failpoint(&self, name: &str) -> bool {
        self.failpoint
            .as_deref()
            .is_some_and(|set| set.split(',').any(|point| point.trim() == name))
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_secs(self.flush_interval_secs)
    }

    pub fn session_lifetime(&self) -> chrono::Duration {
        chrono::Duration::hours(self.session_hours.max(1))
    }

    /// The provider in force: as configured, else Anthropic when a key is set, else the emulator.
    pub fn provider_kind(&self) -> ProviderKind {
        self.provider
            .unwrap_or(if self.anthropic.api_key.is_some() {
                ProviderKind::Anthropic
            } else {
                ProviderKind::Emulator
            })
    }
}
