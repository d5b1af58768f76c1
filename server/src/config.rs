//! Configuration: flags or environment variables (a `.env` file is read first).

use std::net::SocketAddr;
use std::time::Duration;

/// Anthropic keeps a batch open for at most this long.
pub const PROVIDER_WINDOW: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address the service listens on.
    #[arg(
        long,
        env = "AI_BATCH_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub addr: SocketAddr,

    /// Database: a SQLite file (created if missing) or, later, PostgreSQL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/ai-batch.db",
        global = true
    )]
    pub database_url: String,

    /// How often queued jobs are flushed into a batch, in seconds.
    #[arg(
        long,
        env = "AI_BATCH_FLUSH_INTERVAL_SECS",
        default_value_t = 300,
        global = true
    )]
    pub flush_interval_secs: u64,

    /// Where cargo-leptos put the dashboard's compiled assets.
    #[arg(
        long,
        env = "AI_BATCH_SITE_ROOT",
        default_value = "target/site",
        global = true
    )]
    pub site_root: String,

    /// How long a dashboard sign-in lasts, in hours.
    #[arg(
        long,
        env = "AI_BATCH_SESSION_HOURS",
        default_value_t = 12,
        global = true
    )]
    pub session_hours: i64,

    /// Mark the session cookie `Secure` (set it when served over HTTPS).
    #[arg(
        long,
        env = "AI_BATCH_COOKIE_SECURE",
        default_value_t = false,
        global = true
    )]
    pub cookie_secure: bool,
}

impl Config {
    pub fn flush_interval(&self) -> Duration {
        Duration::from_secs(self.flush_interval_secs)
    }

    pub fn session_lifetime(&self) -> chrono::Duration {
        chrono::Duration::hours(self.session_hours.max(1))
    }
}
