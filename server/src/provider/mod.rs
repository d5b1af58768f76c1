//! The outside systems: Anthropic's Message Batches API and OpenAI's Batch API, each behind
//! the `Provider` trait. The batch loop speaks Anthropic's shapes (`MessageBatch`, result
//! lines); the OpenAI client translates its requests and answers to and from them.

mod body;
mod client;
mod error;
pub mod openai;
mod results;
mod transport;
mod types;

use std::sync::Arc;

use app::api::ProviderName;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

pub use body::{BatchBody, BatchBodyBuilder, BodyLimits, MEGABYTE};
pub use client::AnthropicClient;
pub use error::ProviderError;
pub use openai::OpenAiClient;
pub use results::{ResultItem, UnreadableLine};
pub use transport::{ClientConfig, parse_retry_after};
pub use types::*;

/// Anthropic's limits on one batch.
pub const MAX_BATCH_REQUESTS: usize = 100_000;
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// A batch's results, one item per line; the stream ends at a broken download (its last item
/// is then the error), never at a bad line.
pub type ResultStream = BoxStream<'static, Result<ResultItem, ProviderError>>;

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Creates a batch of `body`'s requests; `label` is our batch's id, kept with it by a
    /// provider that labels batches.
    async fn create_batch(
        &self,
        label: &str,
        body: BatchBody,
    ) -> Result<MessageBatch, ProviderError>;
    async fn retrieve_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError>;
    async fn list_batches(&self, params: ListParams) -> Result<BatchPage, ProviderError>;
    async fn cancel_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError>;
    async fn delete_batch(&self, batch_id: &str) -> Result<DeletedBatch, ProviderError>;
    /// The results of an ended batch, read from its `results_url`.
    async fn batch_results(&self, batch: &MessageBatch) -> Result<ResultStream, ProviderError>;

    /// Every result of the batch is stored: let go of what the provider keeps for us. Anthropic
    /// keeps a batch and its results for its own retention period; nothing to do.
    async fn ingested(&self, _batch_id: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Our uploads the provider keeps apart from any batch (OpenAI's input files), created
    /// since `since`, each with the label it was uploaded for. Anthropic takes a batch's
    /// requests in its create: none.
    async fn uploads_since(&self, _since: DateTime<Utc>) -> Result<Vec<Upload>, ProviderError> {
        Ok(Vec::new())
    }

    /// Deletes one of our uploads; one already gone counts as deleted.
    async fn delete_upload(&self, _id: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Whether the provider keeps the `label` a batch was created with and lists it
    /// (`MessageBatch::label`): its batches are then proved ours or not by the label, running
    /// or not. Anthropic keeps none, so only a batch's results can prove it ours.
    fn keeps_labels(&self) -> bool {
        false
    }
}

/// The providers this instance can send to: Anthropic always, OpenAI when configured.
#[derive(Clone)]
pub struct Providers {
    pub anthropic: Arc<dyn Provider>,
    pub openai: Option<Arc<dyn Provider>>,
}

impl Providers {
    /// The client for `name`, or why there is none.
    pub fn get(&self, name: ProviderName) -> Result<&dyn Provider, ProviderError> {
        match name {
            ProviderName::Anthropic => Ok(self.anthropic.as_ref()),
            ProviderName::Openai => self.openai.as_deref().ok_or_else(|| {
                ProviderError::InvalidRequest(
                    "OpenAI is not configured on this instance (set OPENAI_API_KEY)".into(),
                )
            }),
        }
    }

    pub fn has(&self, name: ProviderName) -> bool {
        self.get(name).is_ok()
    }
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
