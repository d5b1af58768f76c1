use std::sync::Arc;

use crate::config::Config;
use crate::store::Store;

/// What every use case and handler can reach: configuration and the store.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
}

impl Ctx {
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}
