//! The one place where errors become HTTP answers, in FastAPI's shapes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;
use crate::provider::ProviderError;
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
            Error::Unauthenticated => {
                let mut response = (StatusCode::UNAUTHORIZED, detail(&self)).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::BadInput(_) => StatusCode::BAD_REQUEST,
            Error::Store(StoreError::Busy) => {
                let mut response = (StatusCode::SERVICE_UNAVAILABLE, detail(&self)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            Error::Provider(e) => {
                tracing::warn!(error = %e, "provider call failed");
                let busy = matches!(
                    e,
                    ProviderError::Api {
                        status: 429 | 529,
                        ..
                    }
                );
                let mut response = (
                    if busy {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::BAD_GATEWAY
                    },
                    detail(&self),
                )
                    .into_response();
                if busy {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
                }
                return response;
            }
            Error::SubmissionUncertain(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(e) => {
                // Internal details go to the log, never to the client.
                tracing::error!(error = %e, "store failure");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "detail": "Internal server error" })),
                )
                    .into_response();
            }
        };
        (status, detail(&self)).into_response()
    }
}

fn detail(error: &Error) -> Json<serde_json::Value> {
    Json(json!({ "detail": error.to_string() }))
}
