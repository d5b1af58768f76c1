//! Extractors: authentication, and request bodies and queries read for field-by-field validation.

use app::api::Caller;
use app::api::validation::FieldError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde_json::Value;

use crate::access;
use crate::context::Ctx;
use crate::error::Error;

/// Any signed-in caller, from `Authorization: Bearer …`.
pub struct AuthUser(pub Caller);

/// A caller with the admin role; traders get 403 before any body is read. The use cases check
/// again: this only decides which error a trader sees first.
pub struct AdminUser(pub Caller);

impl FromRequestParts<Ctx> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, Error> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Error::Unauthenticated)?;
        access::authenticate(ctx, token).await.map(AuthUser)
    }
}

impl FromRequestParts<Ctx> for AdminUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, Error> {
        let AuthUser(caller) = AuthUser::from_request_parts(parts, ctx).await?;
        if caller.is_admin() {
            Ok(AdminUser(caller))
        } else {
            Err(Error::Forbidden)
        }
    }
}

/// A JSON body as a value, for the validators in `app::api::validation`. Malformed JSON is a
/// 422 `json_invalid`, an empty body a 422 `missing`, a body past the limit a 413.
pub struct JsonBody(pub Value);

/// Like [`JsonBody`], but an empty body reads as `{}` (for endpoints whose fields all have defaults).
pub struct OptionalJsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match read_json(req, state).await? {
            Some(value) => Ok(JsonBody(value)),
            None => Err(Error::Validation(vec![FieldError::missing(
                vec!["body".into()],
                Value::Null,
            )])),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        Ok(OptionalJsonBody(
            read_json(req, state)
                .await?
                .unwrap_or_else(|| Value::Object(Default::default())),
        ))
    }
}

async fn read_json<S: Send + Sync>(req: Request, state: &S) -> Result<Option<Value>, Error> {
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::BodyTooLarge
        } else {
            Error::BadInput(rejection.body_text())
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        let position = byte_offset(&bytes, e.line(), e.column());
        Error::Validation(vec![FieldError::json_invalid(position, e.to_string())])
    })
}

/// serde_json reports line and column; FastAPI reports a position in the body.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = bytes
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

/// The raw query pairs, for `app::api::validation::parse_list_query`.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(QueryPairs(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

impl QueryPairs {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The `{job_id}` of a path. One that cannot be read as text (bad percent-encoding) names no
/// job, so it is a JSON 404 like any unknown id, not axum's plain-text 400.
pub struct JobId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| JobId(id))
            .map_err(|_| Error::NotFound("Job not found".into()))
    }
}
