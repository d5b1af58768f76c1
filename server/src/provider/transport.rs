//! HTTP to a provider, whichever it is (reqwest + rustls): timeouts, and retries of 429
//! (after `retry-after`), 529, 408, 5xx and transport failures with exponential backoff and
//! jitter, a bounded number of times; never other 4xx. A create is retried only after a
//! failure that proves nothing was made (a refusal, or no connection): after a 5xx, a timeout
//! or a dropped connection it may exist, and reconciliation decides.

use std::io;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use tokio_util::codec::FramedRead;
use tokio_util::io::StreamReader;

use super::results::{RawLine, ResultLines};
use super::{ErrorResponse, ProviderError, ResultItem, ResultStream, error_kind_for_status};

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

/// Which failures a call may retry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Reads, cancels, deletes: any transient failure.
    Transient,
    /// A create: only failures that prove nothing was made, or it could be made twice.
    OnlyIfNothingCreated,
}

/// How a provider wants its key.
#[derive(Clone, Copy)]
pub(super) enum Auth {
    /// `x-api-key` and `anthropic-version`.
    Anthropic,
    /// `Authorization: Bearer`.
    Bearer,
}

pub(super) struct Transport {
    pub config: ClientConfig,
    auth: Auth,
    /// The provider's name in logs.
    name: &'static str,
    json: reqwest::Client,
    download: reqwest::Client,
}

impl Transport {
    pub fn new(
        config: ClientConfig,
        auth: Auth,
        name: &'static str,
    ) -> Result<Self, ProviderError> {
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
            auth,
            name,
            json,
            download,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// A JSON call's request (whole-request timeout), authenticated.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.authenticated(self.json.request(method, url))
    }

    /// A download's request (a timeout on silence, not on the whole), authenticated.
    pub fn download_request(&self, url: &str) -> RequestBuilder {
        self.authenticated(self.download.get(url))
    }

    fn authenticated(&self, request: RequestBuilder) -> RequestBuilder {
        match self.auth {
            Auth::Anthropic => request
                .header("x-api-key", &self.config.api_key)
                .header("anthropic-version", "2023-06-01"),
            Auth::Bearer => request.bearer_auth(&self.config.api_key),
        }
    }

    /// Sends with retries and returns the successful response.
    pub async fn send(
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
            tracing::warn!(%error, provider = self.name, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, "retrying a provider call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Sends with retries and reads the answer as JSON.
    pub async fn json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        build: impl Fn() -> RequestBuilder,
        retry: Retry,
    ) -> Result<T, ProviderError> {
        let response = self.send(operation, build, retry).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(ProviderError::from_transport)?;
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::Decode(e.to_string()))
    }

    /// `retry-after` when the provider gave one (`None` if it asks for longer than we wait
    /// inside a call); otherwise exponential with full jitter in [d/2, d].
    pub(super) fn backoff(&self, attempt: u32, error: &ProviderError) -> Option<Duration> {
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

    /// A downloaded file, line by line: each line read by `read`; a broken download ends the
    /// stream (its last item is then the error), never a bad line.
    pub async fn lines(
        &self,
        operation: &'static str,
        url: &str,
        read: impl Fn(RawLine, usize) -> Option<Result<ResultItem, ProviderError>> + Send + 'static,
    ) -> Result<ResultStream, ProviderError> {
        let response = self
            .send(operation, || self.download_request(url), Retry::Transient)
            .await?;
        let bytes = response.bytes_stream().map_err(io::Error::other);
        let max_len = self.config.max_result_line_bytes;
        let items = FramedRead::new(StreamReader::new(bytes), ResultLines::new(max_len))
            .filter_map(move |raw| {
                futures::future::ready(match raw {
                    Ok(line) => read(line, max_len),
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

/// Reads the provider's error body and `retry-after` from a failed response: Anthropic's
/// `{"type": "error", "error": {"type", "message"}}` or OpenAI's `{"error": {"type", "message"}}`.
async fn api_error(response: Response) -> ProviderError {
    #[derive(serde::Deserialize)]
    struct OpenAiError {
        error: OpenAiErrorDetail,
    }
    #[derive(serde::Deserialize)]
    struct OpenAiErrorDetail {
        message: String,
        #[serde(rename = "type", default)]
        kind: Option<String>,
    }
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    let fallback = || error_kind_for_status(status.as_u16()).to_string();
    let (kind, message) = if let Ok(body) = serde_json::from_str::<ErrorResponse>(&text) {
        (body.error.kind, body.error.message)
    } else if let Ok(body) = serde_json::from_str::<OpenAiError>(&text) {
        (body.error.kind.unwrap_or_else(fallback), body.error.message)
    } else {
        (fallback(), text.chars().take(500).collect())
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

fn download_error(e: io::Error) -> ProviderError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
    {
        Some(inner) if inner.is_timeout() => ProviderError::Timeout(inner.to_string()),
        _ => ProviderError::StreamCut(e.to_string()),
    }
}
