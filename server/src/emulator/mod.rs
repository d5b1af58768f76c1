//! An emulator of Anthropic's Message Batches API, so the product runs and is tested offline.
//! It speaks the provider's HTTP (the official SDK works against it unchanged) and runs
//! in-process behind the real client, or standalone (`ai-batch emulator`).

mod answer;
mod http;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

pub use state::Emulator;

#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a batch stays `in_progress` before it ends.
    pub processing_delay: Duration,
    /// Models the emulator accepts; any other is an `invalid_request_error` result.
    pub known_models: Vec<String>,
    pub faults: Faults,
}

/// Faults to inject, per emulator instance: from configuration or `PUT /_emulator/faults`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The next matching calls fail with these answers, in order.
    pub fail_next: Vec<InjectedFailure>,
    /// Delay before every answer, in milliseconds.
    pub slow_ms: u64,
    /// Cut results downloads after this many lines (without ending the stream properly).
    pub cut_results: Option<StreamFault>,
    /// Stop sending results for `millis` after this many lines.
    pub stall_results: Option<StreamFault>,
    /// Share of requests answered `errored` (`api_error`), in percent.
    pub errored_percent: u8,
    /// Share of requests answered `expired`, in percent.
    pub expired_percent: u8,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectedFailure {
    /// 429, 500, 529, …
    pub status: u16,
    /// Sent as `retry-after` (seconds).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Only for this call: create, retrieve, list, cancel, delete or results; any when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFault {
    pub after_lines: usize,
    /// How many downloads it applies to (then it clears itself); every download when absent.
    #[serde(default)]
    pub times: Option<u32>,
    /// For stalls: how long, in milliseconds.
    #[serde(default)]
    pub millis: u64,
}

/// Serves the emulator on `listener` until the returned task is dropped or aborted.
pub fn spawn(
    listener: TcpListener,
    settings: Settings,
) -> (Arc<Emulator>, tokio::task::JoinHandle<()>) {
    let emulator = Arc::new(Emulator::new(settings));
    let app = http::router(emulator.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the Anthropic emulator stopped");
        }
    });
    (emulator, task)
}

/// Binds `addr` and serves; returns the address actually bound (useful with port 0).
pub async fn start(
    addr: SocketAddr,
    settings: Settings,
) -> std::io::Result<(SocketAddr, Arc<Emulator>, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (emulator, task) = spawn(listener, settings);
    Ok((bound, emulator, task))
}
