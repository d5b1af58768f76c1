use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Config, ProviderKind};
use crate::pricing::PriceTable;
use crate::provider::Providers;
use crate::store::{GroupCommit, Store};

/// What every use case and handler can reach: configuration, store, provider and prices.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    /// Enqueues go through one writer that commits whatever arrived together.
    pub enqueuer: GroupCommit,
    /// Anthropic always; OpenAI when configured. A batch goes to its `provider`.
    pub providers: Providers,
    pub provider_kind: ProviderKind,
    pub prices: Arc<PriceTable>,
    /// This process, in lease owners and logs.
    pub instance: Arc<str>,
    /// Whether this instance leads the background work (auto-flush, rescuer) right now.
    pub leading: Arc<AtomicBool>,
    pub caches: crate::caches::Caches,
    /// Told to open dashboards as things change.
    pub changes: crate::changes::Changes,
    /// Completion webhooks in flight, and the client that sends them.
    pub webhooks: Arc<crate::webhooks::deliveries::Deliveries>,
    /// What each client may ask of this instance.
    pub limits: Arc<crate::limits::Limits>,
    /// Places for parsing bulk enqueue bodies: a burst of large bodies waits its turn.
    pub bulk_parsing: Arc<tokio::sync::Semaphore>,
}

/// Bulk bodies (up to 32 MB each) parsed at once.
pub const BULK_BODIES_AT_ONCE: usize = 2;

impl Ctx {
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The client of a batch's provider.
    pub fn provider(
        &self,
        name: app::api::ProviderName,
    ) -> std::result::Result<&dyn crate::provider::Provider, crate::provider::ProviderError> {
        self.providers.get(name)
    }

    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }
}
