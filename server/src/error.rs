//! The one error type of the use cases. `http::error` turns it into an HTTP answer.

use app::api::validation::FieldError;

use crate::provider::ProviderError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("request validation failed")]
    Validation(Vec<FieldError>),
    #[error("Not authenticated")]
    Unauthenticated,
    #[error("This action needs the admin role")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(
        "Request body is too large: the limit is 1 MB (4 MB for POST /api/v1/batch/contexts, 32 MB for POST /api/v1/batch/enqueue/bulk)"
    )]
    BodyTooLarge,
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    BadInput(String),
    /// The jobs could take their owner past the monthly budget an admin set.
    #[error("{0}")]
    OverBudget(String),
    /// A retry would send again jobs that were billed already, and nobody confirmed it.
    #[error("{0}")]
    RebillNotConfirmed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// This token sent more requests than its limit allows; it may try again after the wait.
    #[error(
        "Too many requests: this token's limit is {per_second} per second; retry after {retry_after_secs} s"
    )]
    RateLimited {
        per_second: u32,
        retry_after_secs: u64,
    },
    /// The request ran past the server's request timeout.
    #[error(
        "The request took longer than {0} s and was stopped; retry it (an enqueue with an idempotency key is never duplicated)"
    )]
    Timeout(u64),
    /// The create call failed in a way that leaves open whether the batch exists.
    #[error(
        "The batch may or may not have reached {provider} ({reason}); it will be reconciled automatically."
    )]
    SubmissionUncertain {
        provider: &'static str,
        reason: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a person may be told of an internal failure; the details go to the log.
pub const INTERNAL: &str = "Internal server error";

impl Error {
    /// The message for whoever made the request (an API client, a dashboard user): the
    /// error's own words, except for internal failures, whose details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Error::Store(StoreError::Busy | StoreError::Unavailable(_)) => {
                "The database is busy or unavailable; try again in a moment.".into()
            }
            Error::Store(_) => INTERNAL.into(),
            Error::Validation(errors) => errors
                .iter()
                .map(|e| e.msg.clone())
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }

    /// Seconds a client should wait before trying again, for errors that pass by themselves.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::Store(StoreError::Busy | StoreError::Unavailable(_)) => Some(1),
            Error::Provider(e) if e.is_busy() => Some(30),
            Error::SubmissionUncertain { .. } => Some(30),
            Error::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Error::Timeout(_) => Some(1),
            _ => None,
        }
    }
}

impl From<Vec<FieldError>> for Error {
    fn from(errors: Vec<FieldError>) -> Self {
        Error::Validation(errors)
    }
}
