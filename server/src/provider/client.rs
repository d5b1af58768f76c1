//! The HTTP client for Anthropic's Message Batches API, over the shared [`Transport`].

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;

use super::results::read_line;
use super::transport::{Auth, ClientConfig, Retry, Transport};
use super::{
    BatchBody, BatchPage, DeletedBatch, ListParams, MessageBatch, Provider, ProviderError,
    ResultStream,
};

pub struct AnthropicClient {
    http: Transport,
}

impl AnthropicClient {
    pub fn new(config: ClientConfig) -> Result<Self, ProviderError> {
        Ok(Self {
            http: Transport::new(config, Auth::Anthropic, "anthropic")?,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&BatchBody>,
        retry: Retry,
    ) -> Result<T, ProviderError> {
        let url = self.http.url(path);
        self.http
            .json(
                operation,
                || {
                    let request = self.http.request(method.clone(), &url);
                    match body {
                        // Slices of one buffer: a retry sends the same bytes, never a copy.
                        Some(body) => {
                            let chunks = body.chunks().into_iter().map(Ok::<_, std::io::Error>);
                            request
                                .header(reqwest::header::CONTENT_TYPE, "application/json")
                                .header(reqwest::header::CONTENT_LENGTH, body.len())
                                .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
                        }
                        None => request,
                    }
                },
                retry,
            )
            .await
    }
}

#[async_trait]
impl Provider for AnthropicClient {
    async fn create_batch(
        &self,
        _label: &str,
        body: BatchBody,
    ) -> Result<MessageBatch, ProviderError> {
        self.call(
            "create",
            Method::POST,
            "/v1/messages/batches",
            Some(&body),
            Retry::OnlyIfNothingCreated,
        )
        .await
    }

    async fn retrieve_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError> {
        self.call(
            "retrieve",
            Method::GET,
            &format!("/v1/messages/batches/{batch_id}"),
            None,
            Retry::Transient,
        )
        .await
    }

    async fn list_batches(&self, params: ListParams) -> Result<BatchPage, ProviderError> {
        let mut query = Vec::new();
        if let Some(id) = &params.before_id {
            query.push(format!("before_id={id}"));
        }
        if let Some(id) = &params.after_id {
            query.push(format!("after_id={id}"));
        }
        if let Some(limit) = params.limit {
            query.push(format!("limit={limit}"));
        }
        let path = if query.is_empty() {
            "/v1/messages/batches".to_string()
        } else {
            format!("/v1/messages/batches?{}", query.join("&"))
        };
        self.call("list", Method::GET, &path, None, Retry::Transient)
            .await
    }

    async fn cancel_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError> {
        self.call(
            "cancel",
            Method::POST,
            &format!("/v1/messages/batches/{batch_id}/cancel"),
            None,
            Retry::Transient,
        )
        .await
    }

    async fn delete_batch(&self, batch_id: &str) -> Result<DeletedBatch, ProviderError> {
        self.call(
            "delete",
            Method::DELETE,
            &format!("/v1/messages/batches/{batch_id}"),
            None,
            Retry::Transient,
        )
        .await
    }

    async fn batch_results(&self, batch: &MessageBatch) -> Result<ResultStream, ProviderError> {
        let url = batch
            .results_url
            .clone()
            .ok_or_else(|| ProviderError::Api {
                status: 400,
                kind: "invalid_request_error".into(),
                message: format!(
                    "batch {} has not ended; its results are not ready",
                    batch.id
                ),
                retry_after: None,
            })?;
        self.http.lines("results", &url, read_line).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::transport::parse_retry_after;
    use std::time::Duration;

    #[test]
    fn retry_after_forms() {
        let now = chrono::Utc::now();
        let wait = |ms, s| parse_retry_after(ms, s, now);
        assert_eq!(wait(None, Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            wait(Some("150"), Some("2")),
            Some(Duration::from_millis(150))
        );
        assert_eq!(
            wait(None, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO),
            "a date in the past means no wait"
        );
        let soon = (now + chrono::Duration::seconds(30)).to_rfc2822();
        let told = wait(None, Some(&soon)).unwrap();
        assert!(told > Duration::from_secs(28) && told <= Duration::from_secs(30));
    }

    #[test]
    fn retry_after_never_panics_and_stays_bounded() {
        let now = chrono::Utc::now();
        let hour = Some(Duration::from_secs(3600));
        for (ms, s, expected) in [
            (Some("NaN"), None, None),
            (Some("inf"), None, None),
            (Some("-inf"), Some("NaN"), None),
            (None, Some("nan"), None),
            (None, Some("-5"), Some(Duration::ZERO)),
            (Some("-1"), None, Some(Duration::ZERO)),
            (None, Some("1e300"), hour),
            (Some("1e308"), None, hour),
            (None, Some("Fri, 31 Dec 9999 23:59:59 GMT"), hour),
            (None, Some("soon"), None),
            (None, Some(""), None),
            (Some("abc"), Some("3"), Some(Duration::from_secs(3))),
        ] {
            assert_eq!(parse_retry_after(ms, s, now), expected, "{ms:?} {s:?}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut config = ClientConfig::new("http://x", "k");
        config.retry_base_delay = Duration::from_millis(100);
        config.retry_max_delay = Duration::from_millis(500);
        let client = AnthropicClient::new(config).unwrap();
        let error = ProviderError::Api {
            status: 529,
            kind: "overloaded_error".into(),
            message: String::new(),
            retry_after: None,
        };
        for attempt in 0..8 {
            let d = client.http.backoff(attempt, &error).unwrap();
            let full =
                Duration::from_millis(100 * 2u64.pow(attempt)).min(Duration::from_millis(500));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        let told = |secs| ProviderError::Api {
            status: 429,
            kind: "rate_limit_error".into(),
            message: String::new(),
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            client.http.backoff(0, &told(3)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            client.http.backoff(0, &told(600)),
            None,
            "a long wait is the caller's, not the call's"
        );
    }
}
