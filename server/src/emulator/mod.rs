//! An emulator of Anthropic's Message Batches API and OpenAI's Batch API, so the product runs
//! and is tested offline. It speaks each provider's HTTP on one port (the official SDKs work
//! against it unchanged) and runs in-process behind the real clients, or standalone
//! (`ai-batch emulator`).

mod answer;
mod cache;
mod faults;
mod http;
mod listener;
mod openai;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use cache::CacheModel;
pub use faults::{AfterCreate, Chaos, Faults, InjectedFailure, StreamFault, Times, share_of};
pub use openai::OpenAiEmulator;
pub use state::{BilledBatch, BilledRequest, Downloading, Emulator};

#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a batch stays `in_progress` before it ends.
    pub processing_delay: Duration,
    /// Models the emulator accepts; any other is an `invalid_request_error` result.
    pub known_models: Vec<String>,
    pub faults: Faults,
    /// How the prompt cache behaves.
    pub caching: CacheModel,
}

/// Serves the emulator on `listener` until the returned task is dropped or aborted.
pub fn spawn(
    listener: TcpListener,
    settings: Settings,
) -> (Arc<Emulator>, tokio::task::JoinHandle<()>) {
    let emulator = Arc::new(Emulator::new(settings));
    let app = http::router(emulator.clone())
        .merge(openai::router(emulator.clone()))
        .into_make_service_with_connect_info::<listener::CutSwitch>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener::CuttableListener(listener), app).await {
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
