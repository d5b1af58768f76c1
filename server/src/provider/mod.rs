//! The one outside system: Anthropic's Message Batches API, behind the `Provider` trait.

mod body;
mod client;
mod error;
mod results;
mod types;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use body::{BatchBody, BatchBodyBuilder};
pub use client::{AnthropicClient, ClientConfig, parse_retry_after};
pub use error::ProviderError;
pub use results::{ResultItem, UnreadableLine};
pub use types::*;

/// Anthropic's limits on one batch.
pub const MAX_BATCH_REQUESTS: usize = 100_000;
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// A batch's results, one item per line; the stream ends at a broken download (its last item
/// is then the error), never at a bad line.
pub type ResultStream = BoxStream<'static, Result<ResultItem, ProviderError>>;

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    async fn create_batch(&self, body: BatchBody) -> Result<MessageBatch, ProviderError>;
    async fn retrieve_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError>;
    async fn list_batches(&self, params: ListParams) -> Result<BatchPage, ProviderError>;
    async fn cancel_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError>;
    async fn delete_batch(&self, batch_id: &str) -> Result<DeletedBatch, ProviderError>;
    /// The results of an ended batch, read from its `results_url`.
    async fn batch_results(&self, batch: &MessageBatch) -> Result<ResultStream, ProviderError>;
}

/// `custom_id` as Anthropic accepts it: `^[a-zA-Z0-9_-]{1,64}$`.
pub fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_follow_anthropics_pattern() {
        assert!(valid_custom_id("job_01-ABC"));
        assert!(valid_custom_id(&"a".repeat(64)));
        assert!(!valid_custom_id(&"a".repeat(65)));
        assert!(!valid_custom_id(""));
        assert!(!valid_custom_id("has space"));
        assert!(!valid_custom_id("ünï"));
    }
}
