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
    #[error("Request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Anthropic: {0}")]
    Provider(#[from] ProviderError),
    /// The create call failed in a way that leaves open whether the batch exists.
    #[error(
        "The batch may or may not have reached Anthropic ({0}); it will be reconciled automatically."
    )]
    SubmissionUncertain(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Vec<FieldError>> for Error {
    fn from(errors: Vec<FieldError>) -> Self {
        Error::Validation(errors)
    }
}
