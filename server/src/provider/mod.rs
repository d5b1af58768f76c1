//! The one outside system: Anthropic's Message Batches API, behind the `Provider` trait.

mod client;
mod error;
mod types;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use client::{AnthropicClient, ClientConfig};
pub use error::ProviderError;
pub use types::*;

/// Anthropic's limits on one batch.
pub const MAX_BATCH_REQUESTS: usize = 100_000;
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// A batch's results, one line at a time; the stream ends at its first error.
pub type ResultStream = BoxStream<'static, Result<ResultLine, ProviderError>>;

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    async fn create_batch(
        &self,
        requests: Vec<BatchRequest>,
    ) -> Result<MessageBatch, ProviderError>;
    async fn retrieve_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError>;
    async fn list_batches(&self, params: ListParams) -> Result<BatchPage, ProviderError>;
    async fn cancel_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError>;
    async fn delete_batch(&self, batch_id: &str) -> Result<DeletedBatch, ProviderError>;
    async fn batch_results(&self, batch_id: &str) -> Result<ResultStream, ProviderError>;
}

/// `custom_id` as Anthropic accepts it: `^[a-zA-Z0-9_-]{1,64}$`.
pub fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a batch locally before anything is sent: ids, uniqueness, count and size.
pub fn validate_requests(requests: &[BatchRequest]) -> Result<usize, ProviderError> {
    if requests.is_empty() || requests.len() > MAX_BATCH_REQUESTS {
        return Err(ProviderError::InvalidRequest(format!(
            "a batch holds 1 to {MAX_BATCH_REQUESTS} requests, not {}",
            requests.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(requests.len());
    for request in requests {
        if !valid_custom_id(&request.custom_id) {
            return Err(ProviderError::InvalidRequest(format!(
                "custom_id {:?} must match ^[a-zA-Z0-9_-]{{1,64}}$",
                request.custom_id
            )));
        }
        if !seen.insert(request.custom_id.as_str()) {
            return Err(ProviderError::InvalidRequest(format!(
                "custom_id {} appears twice",
                request.custom_id
            )));
        }
    }
    // `{"requests":[` + the requests, comma-separated + `]}`, without building the whole body.
    let size = 15
        + requests
            .iter()
            .map(|r| serde_json::to_vec(r).map_or(usize::MAX / 2, |b| b.len() + 1))
            .sum::<usize>();
    if size > MAX_BATCH_BYTES {
        return Err(ProviderError::InvalidRequest(format!(
            "the batch is {size} bytes; the limit is {MAX_BATCH_BYTES}"
        )));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(id: &str) -> BatchRequest {
        BatchRequest::new(id, &json!({}))
    }

    #[test]
    fn custom_ids_follow_anthropics_pattern() {
        assert!(valid_custom_id("job_01-ABC"));
        assert!(valid_custom_id(&"a".repeat(64)));
        assert!(!valid_custom_id(&"a".repeat(65)));
        assert!(!valid_custom_id(""));
        assert!(!valid_custom_id("has space"));
        assert!(!valid_custom_id("ünï"));
    }

    #[test]
    fn batches_are_checked_before_sending() {
        assert!(validate_requests(&[request("a"), request("b")]).is_ok());
        assert!(validate_requests(&[]).is_err());
        assert!(validate_requests(&[request("a"), request("a")]).is_err());
        assert!(validate_requests(&[request(&"x".repeat(65))]).is_err());
    }
}
