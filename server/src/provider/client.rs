//! The HTTP client for Anthropic's Message Batches API (reqwest + rustls).
//!
//! Retries 429 (after `retry-after`), 529, 408, 5xx and transport failures with exponential
//! backoff and jitter, a bounded number of times; never other 4xx. A batch create is retried
//! only after a failure that proves no batch was made (a refusal, or no connection): after a
//! 5xx, a timeout or a dropped connection the batch may exist, and reconciliation decides.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use tokio_util::codec::FramedRead;
use tokio_util::io::StreamReader;

use super::results::{ResultLines, read_line};
use super::{
    BatchBody, BatchPage, DeletedBatch, ErrorResponse, ListParams, MessageBatch, Provider,
    ProviderError, ResultStream, error_kind_for_status,
};

const API_VERSION: &str = "2023-06-01";
/// The longest `retry-after` we wait for inside one call; past it the call fails and its
/// caller (a flush, a poll) tries again later.
const MAX_TOLD_WAIT: Duration = Duration::from_secs(60);

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

/// Which failures a call may retry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads, cancels, deletes: any transient failure.
    Transient,
    /// A create: only failures that prove no batch was made, or it could be made twice.
    OnlyIfNothingCreated,
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
        operation: &'static str,
        build: impl Fn() -> RequestBuilder,
        retry: Retry,
    ) -> Result<Response, ProviderError> {
        let mut attempt = 0;
        loop {
            let started = std::time::Instant::now();
            let error = match build().send().await {
                Ok(response) if response.status().is_success() => {
                    crate::metrics::provider_call(operation, "ok", started.elapsed());
                    return Ok(response);
                }
                Ok(response) => api_error(response).await,
                Err(e) => ProviderError::from_transport(e),
            };
            crate::metrics::provider_call(operation, error.outcome(), started.elapsed());
            let allowed = match retry {
                Retry::Transient => error.retryable(),
                Retry::OnlyIfNothingCreated => error.retryable() && error.proves_nothing_created(),
            };
            if !allowed || attempt >= self.config.max_retries {
                return Err(error);
            }
            let Some(delay) = self.backoff(attempt, &error) else {
                return Err(error);
            };
            tracing::warn!(%error, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, "retrying Anthropic call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// `retry-after` when the provider gave one (`None` if it asks for longer than we wait
    /// inside a call); otherwise exponential with full jitter in [d/2, d].
    fn backoff(&self, attempt: u32, error: &ProviderError) -> Option<Duration> {
        if let ProviderError::Api {
            retry_after: Some(after),
            ..
        } = error
        {
            return (*after <= MAX_TOLD_WAIT).then_some(*after);
        }
        let exp = self
            .config
            .retry_base_delay
            .saturating_mul(2u32.saturating_pow(attempt));
        let capped = exp.min(self.config.retry_max_delay);
        let half = capped / 2;
        Some(half + half.mul_f64(rand::rng().random::<f64>()))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&BatchBody>,
        retry: Retry,
    ) -> Result<T, ProviderError> {
        let url = self.url(path);
        let response = self
            .send(
                operation,
                || {
                    let request = self.request(&self.json, method.clone(), &url);
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

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    parse_retry_after(
        value("retry-after-ms"),
        value("retry-after"),
        chrono::Utc::now(),
    )
}

/// The wait a 429 or 529 asks for: `retry-after-ms`, else `retry-after` in seconds or as an
/// HTTP date. Whatever the header holds (NaN, infinity, negative, huge, garbage), the answer
/// is `None` or a wait between zero and an hour: a header never panics a client.
pub fn parse_retry_after(
    millis: Option<&str>,
    seconds_or_date: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    const LONGEST: f64 = 3600.0;
    let secs = |text: &str, scale: f64| {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| Duration::from_secs_f64((v / scale).clamp(0.0, LONGEST)))
    };
    if let Some(wait) = millis.and_then(|ms| secs(ms, 1000.0)) {
        return Some(wait);
    }
    let raw = seconds_or_date?;
    if let Some(wait) = secs(raw, 1.0) {
        return Some(wait);
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw.trim()).ok()?;
    let wait = (at.with_timezone(&chrono::Utc) - now).num_milliseconds();
    Some(Duration::from_millis(
        wait.clamp(0, (LONGEST * 1000.0) as i64) as u64,
    ))
}

#[async_trait]
impl Provider for AnthropicClient {
    async fn create_batch(&self, body: BatchBody) -> Result<MessageBatch, ProviderError> {
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
        let response = self
            .send(
                "results",
                || self.request(&self.download, Method::GET, &url),
                Retry::Transient,
            )
            .await?;
        let bytes = response.bytes_stream().map_err(io::Error::other);
        let max_len = self.config.max_result_line_bytes;
        let items = FramedRead::new(StreamReader::new(bytes), ResultLines::new(max_len))
            .filter_map(move |raw| {
                futures::future::ready(match raw {
                    Ok(line) => read_line(line, max_len),
                    Err(e) => Some(Err(download_error(e))),
                })
            });
        // A broken download ends the stream: what follows it cannot be trusted.
        let mut failed = false;
        let fused = items.take_while(move |item| {
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
            let d = client.backoff(attempt, &error).unwrap();
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
        assert_eq!(client.backoff(0, &told(3)), Some(Duration::from_secs(3)));
        assert_eq!(
            client.backoff(0, &told(600)),
            None,
            "a long wait is the caller's, not the call's"
        );
    }
}
