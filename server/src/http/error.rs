//! The one place where errors become HTTP answers, in FastAPI's shapes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{Error, INTERNAL};
use crate::store::StoreError;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::Validation(errors) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({ "detail": errors })),
                )
                    .into_response();
            }
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) | Error::RebillNotConfirmed(_) => StatusCode::CONFLICT,
            Error::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::BadInput(_) => StatusCode::BAD_REQUEST,
            Error::OverBudget(_) => StatusCode::PAYMENT_REQUIRED,
            Error::Store(StoreError::Busy | StoreError::Unavailable(_)) => {
                tracing::warn!(error = %self, "database unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Provider(e) => {
                tracing::warn!(error = %e, "provider call failed");
                if e.is_busy() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::BAD_GATEWAY
                }
            }
            Error::SubmissionUncertain { .. } | Error::Timeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Store(e) => {
                // Internal details go to the log, never to the client.
                tracing::error!(error = %e, "store failure");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut response =
            (status, Json(json!({ "detail": self.public_message() }))).into_response();
        let headers = response.headers_mut();
        if let Error::Unauthenticated = self {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The answer to a request whose handler panicked: the server goes on serving.
pub fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "detail": INTERNAL })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_pool_is_a_503_to_retry_not_a_500() {
        let error = Error::Store(StoreError::from(sqlx::Error::PoolTimedOut));
        assert!(matches!(error, Error::Store(StoreError::Unavailable(_))));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn database_details_never_reach_the_client() {
        let error = Error::Store(StoreError::Corrupt("table jobs: bad row 42".into()));
        assert_eq!(error.public_message(), INTERNAL);
        assert_eq!(
            error.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let busy = Error::Store(StoreError::Unavailable("pool timed out after 30s".into()));
        assert!(!busy.public_message().contains("pool"));
    }
}
