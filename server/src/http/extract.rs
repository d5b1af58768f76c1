//! Extractors: authentication, and request bodies and queries read for field-by-field validation.

use app::api::Caller;
use app::api::validation::raw::json_invalid;
use app::api::validation::{FieldError, MAX_BODY_BYTES, MAX_BULK_BODY_BYTES};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde_json::Value;

use crate::access;
use crate::context::Ctx;
use crate::error::Error;
use crate::limits::{Asker, Use};

/// Any signed-in caller, from `Authorization: Bearer …`.
pub struct AuthUser(pub Caller);

/// A caller with the admin role; traders get 403 before any body is read. The use cases check
/// again: this only decides which error a trader sees first.
pub struct AdminUser(pub Caller);

impl FromRequestParts<Ctx> for AuthUser {
    type Rejection = Error;

    /// Authenticates, then counts the call against the token's limit. A failure counts
    /// against the client's address instead; past its limit the answer is 429.
    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, Error> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let authenticated = match token {
            Some(token) => access::authenticate(ctx, token)
                .await
                .map(|caller| (caller, access::token_id(token))),
            None => Err(Error::Unauthenticated),
        };
        let (caller, token_id) = match authenticated {
            Ok(found) => found,
            Err(Error::Unauthenticated) => {
                ctx.limits.failed_auth(client_address(parts))?;
                return Err(Error::Unauthenticated);
            }
            Err(other) => return Err(other),
        };
        // Inside the nested `/api/v1/batch` router the URI has lost its prefix; the original
        // has it.
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(parts.uri.path(), |original| original.0.path());
        let what = if path.starts_with("/api/v1/batch/enqueue") {
            Use::Enqueue
        } else {
            Use::Other
        };
        ctx.limits.check(&Asker::Token(token_id), what)?;
        Ok(AuthUser(caller))
    }
}

/// The address the request came from, when the server was started with connection info.
pub fn client_address(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
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

/// A JSON body's bytes, unparsed, for the validators that measure before they build
/// (`parse_enqueue_bytes`): empty is a 422 `missing`, past the limit a 413.
pub struct RawJsonBody(pub Bytes);

/// A bulk enqueue's body, read only once one of the few places for parsing one is free: a
/// 32 MB body takes a few times that in memory while it is read, so a burst of them waits
/// its turn instead of taking the server's memory. The place is held as long as the value.
pub struct BulkBody {
    pub bytes: Bytes,
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, _: &S) -> Result<Self, Error> {
        match read_json(req).await? {
            Some(value) => Ok(JsonBody(value)),
            None => Err(missing_body()),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, _: &S) -> Result<Self, Error> {
        Ok(OptionalJsonBody(
            read_json(req)
                .await?
                .unwrap_or_else(|| Value::Object(Default::default())),
        ))
    }
}

impl<S: Send + Sync> FromRequest<S> for RawJsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, _: &S) -> Result<Self, Error> {
        read_body(req, MAX_BODY_BYTES)
            .await?
            .map(RawJsonBody)
            .ok_or_else(missing_body)
    }
}

impl FromRequest<Ctx> for BulkBody {
    type Rejection = Error;

    async fn from_request(req: Request, ctx: &Ctx) -> Result<Self, Error> {
        let place = ctx
            .bulk_parsing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::BadInput("the server is stopping".into()))?;
        let bytes = read_body(req, MAX_BULK_BODY_BYTES)
            .await?
            .ok_or_else(missing_body)?;
        Ok(BulkBody {
            bytes,
            _place: place,
        })
    }
}

/// The body, or `None` when it is blank, read into one buffer sized from `Content-Length`
/// (believed up to `expected` bytes; the route's `DefaultBodyLimit` ends a longer body with
/// a 413), each piece freed once copied: collecting the pieces and then joining them holds
/// the body twice at the end, and an allocator that keeps freed pages a while (mimalloc)
/// shows it in the peak of a 32 MB bulk body.
async fn read_body(req: Request, expected: usize) -> Result<Option<Bytes>, Error> {
    use axum::RequestExt;
    use http_body_util::BodyExt;
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0)
        .min(expected);
    let mut body = req.into_limited_body();
    let mut buffer = bytes::BytesMut::with_capacity(announced);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(unread_body)?;
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
    }
    Ok(non_blank(buffer.freeze()))
}

/// Why a body could not be read: past its limit (a 413), or the client's doing (a dropped
/// connection, a broken chunk).
pub fn unread_body(e: axum::Error) -> Error {
    let too_large =
        std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
    if too_large {
        Error::BodyTooLarge
    } else {
        Error::BadInput(format!("the request body could not be read: {e}"))
    }
}

fn missing_body() -> Error {
    Error::Validation(vec![FieldError::missing(vec!["body".into()], Value::Null)])
}

/// `None` for a body of whitespace only: to the validators, a missing body.
fn non_blank(bytes: Bytes) -> Option<Bytes> {
    (!bytes.iter().all(u8::is_ascii_whitespace)).then_some(bytes)
}

async fn read_json(req: Request) -> Result<Option<Value>, Error> {
    let Some(bytes) = read_body(req, MAX_BODY_BYTES).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Validation(vec![json_invalid(&bytes, &e)]))
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

/// An id a path names (its one `{…}` parameter). One that cannot be read as text (bad
/// percent-encoding) names nothing, so it is a JSON 404 like any unknown id, not axum's
/// plain-text 400.
macro_rules! path_id {
    ($(#[$doc:meta])* $name:ident, $param:literal, $not_found:literal) => {
        $(#[$doc])*
        pub struct $name(pub String);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = Error;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
                let axum::extract::Path(id) =
                    axum::extract::Path::<String>::from_request_parts(parts, state)
                        .await
                        .map_err(|_| Error::NotFound($not_found.into()))?;
                Ok($name(app::api::validation::parse_path_text($param, &id)?))
            }
        }
    };
}

path_id!(
    /// The `{job_id}` of a path.
    JobId, "job_id", "Job not found"
);
path_id!(
    /// The `{context_id}` of a path.
    ContextId, "context_id", "Context not found"
);
