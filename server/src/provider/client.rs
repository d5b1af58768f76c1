//! The HTTP client for Anthropic's Message Batches API (reqwest + rustls).
//!
//! Retries 429 (after `retry-after`), 529 and 5xx with exponential backoff and jitter, a
//! bounded number of times; never other 4xx. A batch create is not retried after a transport
//! failure, since the provider may have created it: the flush's reconciliation handles that.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::io::StreamReader;

use super::{
    BatchPage, BatchRequest, CreateBatch, DeletedBatch, ErrorResponse, ListParams, MessageBatch,
    Provider, ProviderError, ResultLine, ResultStream, error_kind_for_status, validate_requests,
};

const API_VERSION: &str = "2023-06-01";

#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub base_url: String,
    pub api_key: String,
    pub connect_timeout: Duration,
    /// Whole-request limit for JSON calls.
    pub request_timeout: Duration,
    /// Longest silence while downloading results (not a limit on the whole download).
    pub read_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    pub max_result_line_bytes: usize,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: api_key.into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            max_retries: 4,
            retry_base_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(30),
            max_result_line_bytes: 8 * 1024 * 1024,
        }
    }
}

pub struct AnthropicClient {
    config: ClientConfig,
    json: reqwest::Client,
    download: reqwest::Client,
}

/// Whether a failure before any answer may be retried: not for a create, which may have landed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnTransportError {
    Retry,
    Fail,
}

impl AnthropicClient {
    pub fn new(config: ClientConfig) -> Result<Self, ProviderError> {
        let build = |b: reqwest::ClientBuilder| {
            b.connect_timeout(config.connect_timeout)
                .user_agent(concat!("bitcain-ai-batch/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| ProviderError::Connect(e.to_string()))
        };
        let json = build(reqwest::Client::builder().timeout(config.request_timeout))?;
        let download = build(reqwest::Client::builder().read_timeout(config.read_timeout))?;
        Ok(Self {
            config,
            json,
            download,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    fn request(&self, client: &reqwest::Client, method: Method, url: &str) -> RequestBuilder {
        client
            .request(method, url)
            .header("x-api-key", &self.config.api_key)
            .header("anthropic-version", API_VERSION)
    }

    /// Sends with retries and returns the successful response.
    async fn send(
        &self,
        build: impl Fn() -> RequestBuilder,
        on_transport_error: OnTransportError,
    ) -> Result<Response, ProviderError> {
        let mut attempt = 0;
        loop {
            let error = match build().send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => api_error(response).await,
                Err(e) => {
                    let error = ProviderError::from_transport(e);
                    if on_transport_error == OnTransportError::Fail {
                        return Err(error);
                    }
                    error
                }
            };
            if !error.retryable() || attempt >= self.config.max_retries {
                return Err(error);
            }
            let delay = self.backoff(attempt, &error);
            tracing::warn!(%error, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, "retrying Anthropic call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// `retry-after` when the provider gave one; otherwise exponential with full jitter in [d/2, d].
    fn backoff(&self, attempt: u32, error: &ProviderError) -> Duration {
        if let ProviderError::Api {
            retry_after: Some(after),
            ..
        } = error
        {
            return *after;
        }
        let exp = self
            .config
            .retry_base_delay
            .saturating_mul(2u32.saturating_pow(attempt));
        let capped = exp.min(self.config.retry_max_delay);
        let half = capped / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&CreateBatch>,
        on_transport_error: OnTransportError,
    ) -> Result<T, ProviderError> {
        let url = self.url(path);
        let response = self
            .send(
                || {
                    let request = self.request(&self.json, method.clone(), &url);
                    match body {
                        Some(body) => request.json(body),
                        None => request,
                    }
                },
                on_transport_error,
            )
            .await?;
        let bytes = response
            .bytes()
            .await
            .map_err(ProviderError::from_transport)?;
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::Decode(e.to_string()))
    }
}

/// Reads Anthropic's error body and `retry-after` from a failed response.
async fn api_error(response: Response) -> ProviderError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    let (kind, message) = match serde_json::from_str::<ErrorResponse>(&text) {
        Ok(body) => (body.error.kind, body.error.message),
        Err(_) => (
            error_kind_for_status(status.as_u16()).to_string(),
            text.chars().take(500).collect(),
        ),
    };
    ProviderError::Api {
        status: status.as_u16(),
        kind,
        message,
        retry_after,
    }
}

/// `retry-after-ms`, or `retry-after` in seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = value("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    let raw = value("retry-after")?;
    if let Ok(secs) = raw.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

#[async_trait]
impl Provider for AnthropicClient {
    async fn create_batch(
        &self,
        requests: Vec<BatchRequest>,
    ) -> Result<MessageBatch, ProviderError> {
        validate_requests(&requests)?;
        let body = CreateBatch { requests };
        self.call(
            Method::POST,
            "/v1/messages/batches",
            Some(&body),
            OnTransportError::Fail,
        )
        .await
    }

    async fn retrieve_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError> {
        self.call(
            Method::GET,
            &format!("/v1/messages/batches/{batch_id}"),
            None,
            OnTransportError::Retry,
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
        self.call(Method::GET, &path, None, OnTransportError::Retry)
            .await
    }

    async fn cancel_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError> {
        self.call(
            Method::POST,
            &format!("/v1/messages/batches/{batch_id}/cancel"),
            None,
            OnTransportError::Retry,
        )
        .await
    }

    async fn delete_batch(&self, batch_id: &str) -> Result<DeletedBatch, ProviderError> {
        self.call(
            Method::DELETE,
            &format!("/v1/messages/batches/{batch_id}"),
            None,
            OnTransportError::Retry,
        )
        .await
    }

    async fn batch_results(&self, batch_id: &str) -> Result<ResultStream, ProviderError> {
        let batch = self.retrieve_batch(batch_id).await?;
        let url = batch.results_url.ok_or_else(|| ProviderError::Api {
            status: 400,
            kind: "invalid_request_error".into(),
            message: format!("batch {batch_id} has not ended; its results are not ready"),
            retry_after: None,
        })?;
        let response = self
            .send(
                || self.request(&self.download, Method::GET, &url),
                OnTransportError::Retry,
            )
            .await?;
        let bytes = response.bytes_stream().map_err(io::Error::other);
        let lines = FramedRead::new(
            StreamReader::new(bytes),
            LinesCodec::new_with_max_length(self.config.max_result_line_bytes),
        );
        let limit = self.config.max_result_line_bytes;
        let parsed = lines
            .try_filter(|line| futures::future::ready(!line.trim().is_empty()))
            .map(move |line| match line {
                Ok(line) => serde_json::from_str::<ResultLine>(&line)
                    .map_err(|e| ProviderError::Decode(e.to_string())),
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    Err(ProviderError::LineTooLong { limit })
                }
                Err(LinesCodecError::Io(e)) => Err(download_error(e)),
            });
        // Stop at the first error: after a cut or an oversized line the rest cannot be trusted.
        let mut failed = false;
        let fused = parsed.take_while(move |item| {
            let keep = !failed;
            failed |= item.is_err();
            futures::future::ready(keep)
        });
        Ok(fused.boxed())
    }
}

fn download_error(e: io::Error) -> ProviderError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
    {
        Some(inner) if inner.is_timeout() => ProviderError::Timeout(inner.to_string()),
        _ => ProviderError::StreamCut(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None, "a date in the past means no wait");
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
            let d = client.backoff(attempt, &error);
            let full =
                Duration::from_millis(100 * 2u64.pow(attempt)).min(Duration::from_millis(500));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        let told = ProviderError::Api {
            status: 429,
            kind: "rate_limit_error".into(),
            message: String::new(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(client.backoff(0, &told), Duration::from_secs(3));
    }
}
