use std::time::Duration;

/// What can go wrong talking to the provider. `retryable` says whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Anthropic answered with an error body (`kind` is its `error.type`).
    #[error("Anthropic answered {status} {kind}: {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("could not reach Anthropic: {0}")]
    Connect(String),
    #[error("Anthropic did not answer in time: {0}")]
    Timeout(String),
    #[error("the results download stopped before its end: {0}")]
    StreamCut(String),
    #[error("a results line is longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("Anthropic's answer could not be read: {0}")]
    Decode(String),
    /// Refused locally, before anything was sent.
    #[error("invalid batch request: {0}")]
    InvalidRequest(String),
}

impl ProviderError {
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Api { status, .. } => *status == 429 || *status >= 500,
            ProviderError::Connect(_) | ProviderError::Timeout(_) | ProviderError::StreamCut(_) => {
                true
            }
            ProviderError::LineTooLong { .. }
            | ProviderError::Decode(_)
            | ProviderError::InvalidRequest(_) => false,
        }
    }

    /// The provider no longer knows the batch.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProviderError::Api { status: 404, .. })
    }

    pub(crate) fn from_transport(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            ProviderError::Timeout(e.to_string())
        } else if e.is_connect() {
            ProviderError::Connect(e.to_string())
        } else if e.is_body() || e.is_decode() {
            ProviderError::StreamCut(e.to_string())
        } else {
            ProviderError::Connect(e.to_string())
        }
    }
}
