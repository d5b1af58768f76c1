use std::time::Duration;

/// What can go wrong talking to the provider. `retryable` says whether trying again may help;
/// `proves_nothing_created` whether a failed batch create certainly made no batch.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an error body (`kind` is its error type). The messages
    /// name no provider: these errors come from either, and whoever reports one knows which.
    #[error("the provider answered {status} {kind}: {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No connection was made, so no request reached the provider.
    #[error("could not reach the provider: {0}")]
    Connect(String),
    #[error("the provider did not answer in time: {0}")]
    Timeout(String),
    /// The connection failed after the request may have been sent (reset, closed early).
    #[error("the connection to the provider failed mid-call: {0}")]
    Dropped(String),
    #[error("the results download stopped before its end: {0}")]
    StreamCut(String),
    #[error("the provider's answer could not be read: {0}")]
    Decode(String),
    /// Refused locally, before anything was sent.
    #[error("invalid batch request: {0}")]
    InvalidRequest(String),
}

impl ProviderError {
    /// A short label for metrics: the HTTP status, or what went wrong on the wire.
    pub fn outcome(&self) -> &'static str {
        match self {
            ProviderError::Api { status: 429, .. } => "429",
            ProviderError::Api { status: 529, .. } => "529",
            ProviderError::Api { status, .. } if *status >= 500 => "5xx",
            ProviderError::Api { .. } => "4xx",
            ProviderError::Connect(_) => "connect",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Dropped(_) | ProviderError::StreamCut(_) => "dropped",
            ProviderError::Decode(_) => "decode",
            ProviderError::InvalidRequest(_) => "invalid",
        }
    }

    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Api { status, .. } => matches!(status, 408 | 429) || *status >= 500,
            ProviderError::Connect(_)
            | ProviderError::Timeout(_)
            | ProviderError::Dropped(_)
            | ProviderError::StreamCut(_) => true,
            ProviderError::Decode(_) | ProviderError::InvalidRequest(_) => false,
        }
    }

    /// Whether a failed create certainly left no batch behind: the request never left us, or
    /// Anthropic refused it in a way that creates nothing (a 4xx other than 408 and 409; 429
    /// and 529, which its documentation describes as refusals before any work). A 5xx, a
    /// timeout, a dropped connection or an unreadable success are all *uncertain*.
    pub fn proves_nothing_created(&self) -> bool {
        match self {
            ProviderError::Api { status, .. } => match status {
                408 | 409 => false,
                429 | 529 => true,
                400..=499 => true,
                _ => false,
            },
            ProviderError::Connect(_) | ProviderError::InvalidRequest(_) => true,
            ProviderError::Timeout(_)
            | ProviderError::Dropped(_)
            | ProviderError::StreamCut(_)
            | ProviderError::Decode(_) => false,
        }
    }

    /// The provider no longer knows the batch (or its results).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProviderError::Api { status: 404, .. })
    }

    /// Anthropic asked us to slow down (429, 529): worth a `Retry-After` to our own caller.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            ProviderError::Api {
                status: 429 | 529,
                ..
            }
        )
    }

    pub(crate) fn from_transport(e: reqwest::Error) -> Self {
        // A connect error (timeouts while connecting included) happens before a byte of the
        // request is written; anything later may have reached the provider.
        if e.is_connect() {
            ProviderError::Connect(error_chain(&e))
        } else if e.is_timeout() {
            ProviderError::Timeout(error_chain(&e))
        } else if e.is_body() || e.is_decode() {
            ProviderError::StreamCut(error_chain(&e))
        } else {
            ProviderError::Dropped(error_chain(&e))
        }
    }
}

/// reqwest's message plus its causes ("error sending request: connection closed before …").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> ProviderError {
        ProviderError::Api {
            status,
            kind: crate::provider::error_kind_for_status(status).into(),
            message: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn only_refusals_and_unsent_requests_prove_no_batch_was_made() {
        for status in [400, 401, 403, 404, 413, 422, 429, 529] {
            assert!(api(status).proves_nothing_created(), "{status}");
        }
        for status in [408, 409, 500, 502, 503, 504] {
            assert!(!api(status).proves_nothing_created(), "{status}");
        }
        assert!(ProviderError::Connect("refused".into()).proves_nothing_created());
        assert!(ProviderError::InvalidRequest("empty".into()).proves_nothing_created());
        for uncertain in [
            ProviderError::Timeout("t".into()),
            ProviderError::Dropped("reset".into()),
            ProviderError::StreamCut("cut".into()),
            ProviderError::Decode("bad json".into()),
        ] {
            assert!(!uncertain.proves_nothing_created(), "{uncertain}");
        }
    }
}
