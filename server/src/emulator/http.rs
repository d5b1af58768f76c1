//! The emulator's HTTP surface: Anthropic's batch endpoints, and `/_emulator/` controls.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::faults::{AfterCreate, CallPlan};
use super::listener::CutSwitch;
use super::{Emulator, Faults};
use crate::provider::{
    BatchPage, CreateBatch, DeletedBatch, ErrorResponse, MAX_BATCH_BYTES, MAX_BATCH_REQUESTS,
    MessageBatch, ProcessingStatus, error_kind_for_status, valid_custom_id,
};

type Shared = Arc<Emulator>;

pub fn router(emulator: Shared) -> Router {
    let api = Router::new()
        .route("/v1/messages/batches", post(create).get(list))
        .route("/v1/messages/batches/{id}", get(retrieve).delete(delete))
        .route("/v1/messages/batches/{id}/cancel", post(cancel))
        .route("/v1/messages/batches/{id}/results", get(results))
        .layer(middleware::from_fn_with_state(
            emulator.clone(),
            faults_and_auth,
        ))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES + 1024));
    let control = Router::new()
        .route("/_emulator/faults", put(set_faults).get(get_faults))
        .route("/_emulator/clock/advance", post(advance_clock))
        .route("/_emulator/billing", get(billing))
        .route(
            "/_emulator/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        );
    api.merge(control).with_state(emulator)
}

/// An Anthropic error answer.
fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (status, Json(ErrorResponse::new(kind, message))).into_response()
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!("message_batch {id} not found"),
    )
}

fn endpoint_of(request: &Request) -> &'static str {
    let path = request.uri().path();
    match (request.method().as_str(), path) {
        (_, p) if p.ends_with("/results") => "results",
        (_, p) if p.ends_with("/cancel") => "cancel",
        ("POST", _) => "create",
        ("DELETE", _) => "delete",
        ("GET", "/v1/messages/batches") => "list",
        _ => "retrieve",
    }
}

/// Authentication as Anthropic asks for it, then the call's faults: slowness and refusals
/// here, the rest (after a create, during a download) in the handlers, which get the plan.
async fn faults_and_auth(
    State(emulator): State<Shared>,
    mut request: Request,
    next: Next,
) -> Response {
    // Anthropic takes the key as `x-api-key` or, from newer SDKs, `Authorization: Bearer`.
    let headers = request.headers();
    if !headers.contains_key("x-api-key") && !headers.contains_key(header::AUTHORIZATION) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        );
    }
    let plan = emulator.plan(endpoint_of(&request));
    if let Some(slow) = plan.slow {
        tokio::time::sleep(slow).await;
    }
    if let Some((status, retry_after)) = plan.refuse {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = error(
            code,
            error_kind_for_status(status),
            format!("Injected {status} (emulator fault)"),
        );
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return response;
    }
    request.extensions_mut().insert(plan);
    next.run(request).await
}

/// `results_url` is absolute, built from the address the caller used.
fn with_results_url(mut batch: MessageBatch, headers: &HeaderMap) -> MessageBatch {
    if batch.processing_status == ProcessingStatus::Ended {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        batch.results_url = Some(format!(
            "http://{host}/v1/messages/batches/{}/results",
            batch.id
        ));
    }
    batch
}

async fn create(
    State(emulator): State<Shared>,
    Extension(plan): Extension<CallPlan>,
    ConnectInfo(connection): ConnectInfo<CutSwitch>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("Request exceeds the {MAX_BATCH_BYTES}-byte limit"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                e.body_text(),
            );
        }
    };
    let create: CreateBatch = match serde_json::from_slice(&body) {
        Ok(create) => create,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("Invalid request body: {e}"),
            );
        }
    };
    if create.requests.is_empty() || create.requests.len() > MAX_BATCH_REQUESTS {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("requests: a batch holds 1 to {MAX_BATCH_REQUESTS} requests"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, request) in create.requests.iter().enumerate() {
        if !valid_custom_id(&request.custom_id) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!(
                    "requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                ),
            );
        }
        if !seen.insert(request.custom_id.as_str()) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("requests.{i}.custom_id: duplicate custom_id"),
            );
        }
    }
    if let Some(wait) = plan.before_create {
        tokio::time::sleep(wait).await;
    }
    let batch = emulator.create(create.requests);
    let again = || {
        let requests = emulator.requests_of(&batch.id).unwrap_or_default();
        emulator.create(requests);
    };
    let failed = || {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Internal server error (emulated, after the batch was created)",
        )
    };
    if let Some(answer) = after_create(&plan, &connection, failed, again).await {
        return answer;
    }
    Json(with_results_url(batch, &headers)).into_response()
}

/// What the caller of a create that was applied hears, by the plan's fault: `Some` answer
/// instead of the batch (a 500, a cut connection), or `None` to answer normally (late, or after
/// creating the batch `again`, as a proxy repeating the POST would).
pub(super) async fn after_create(
    plan: &CallPlan,
    connection: &CutSwitch,
    failed: impl FnOnce() -> Response,
    again: impl FnOnce(),
) -> Option<Response> {
    // From here on the batch exists and will be billed, whatever the caller hears.
    match plan.after_create {
        Some(AfterCreate::Error500) => return Some(failed()),
        Some(AfterCreate::Drop) => {
            connection.cut();
            return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        Some(AfterCreate::Late { millis }) => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        }
        Some(AfterCreate::Twice) => again(),
        None => {}
    }
    None
}

async fn retrieve(
    State(emulator): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match emulator.get(&id) {
        Some(batch) => Json(with_results_url(batch, &headers)).into_response(),
        None => not_found(&id),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    before_id: Option<String>,
    after_id: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(emulator): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "limit: Input should be a valid integer",
        );
    };
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "limit: Input should be between 1 and 100",
        );
    }
    let all = emulator.list();
    let position = |id: &str| all.iter().position(|b| b.id == id);
    // Newest first: `after_id` pages towards older batches, `before_id` towards newer ones.
    let (start, end) = match (&query.after_id, &query.before_id) {
        (Some(after), _) => match position(after) {
            Some(i) => (i + 1, (i + 1 + limit as usize).min(all.len())),
            None => return not_found(after),
        },
        (None, Some(before)) => match position(before) {
            Some(i) => (i.saturating_sub(limit as usize), i),
            None => return not_found(before),
        },
        (None, None) => (0, (limit as usize).min(all.len())),
    };
    let has_more = if query.before_id.is_some() && query.after_id.is_none() {
        start > 0
    } else {
        end < all.len()
    };
    let data: Vec<MessageBatch> = all[start..end]
        .iter()
        .cloned()
        .map(|b| with_results_url(b, &headers))
        .collect();
    Json(BatchPage {
        first_id: data.first().map(|b| b.id.clone()),
        last_id: data.last().map(|b| b.id.clone()),
        has_more,
        data,
    })
    .into_response()
}

async fn cancel(
    State(emulator): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match emulator.cancel(&id) {
        Some(batch) => Json(with_results_url(batch, &headers)).into_response(),
        None => not_found(&id),
    }
}

async fn delete(State(emulator): State<Shared>, Path(id): Path<String>) -> Response {
    match emulator.delete(&id) {
        Some(Ok(())) => Json(DeletedBatch {
            id,
            kind: "message_batch_deleted".into(),
        })
        .into_response(),
        Some(Err(_)) => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!(
                "message_batch {id} is still processing; cancel it and wait for it to end before deleting it"
            ),
        ),
        None => not_found(&id),
    }
}

async fn results(
    State(emulator): State<Shared>,
    Extension(plan): Extension<CallPlan>,
    Path(id): Path<String>,
) -> Response {
    let lines = match emulator.results(&id) {
        Some(Ok(lines)) => lines,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("message_batch {id} has not ended; results are not available yet"),
            );
        }
        None => return not_found(&id),
    };
    let faults = plan.download;
    if faults.gone {
        return error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("the results of message_batch {id} are no longer available"),
        );
    }
    let count = lines.len();
    let render = move |i: usize| {
        lines
            .get(i)
            .map(|l| serde_json::to_string(l).unwrap_or_default())
    };
    stream_lines(
        emulator.download_started(),
        &faults,
        count,
        render,
        |text| text.replacen("\"result\":", "\"result\"::", 1),
    )
}

/// Which result the file's `i`-th line sends: each in turn, then (faults) all of them again
/// the last first, then one of them once more.
fn line_at(i: usize, count: usize, mirrored: bool, repeated: Option<usize>) -> Option<usize> {
    let Some(mut past) = i.checked_sub(count) else {
        return Some(i);
    };
    if mirrored {
        if past < count {
            return Some(count - 1 - past);
        }
        past -= count;
    }
    repeated.filter(|_| past == 0)
}

/// A results file of `count` lines, each rendered when sent, with the download's faults:
/// cut, ended short, stalled, one line malformed (by `malform`), padded past a length, all
/// sent again in the opposite order, or one sent again after the last.
pub(super) fn stream_lines(
    downloading: super::Downloading,
    faults: &super::faults::DownloadFaults,
    count: usize,
    render: impl Fn(usize) -> Option<String> + Send + Sync + 'static,
    malform: fn(String) -> String,
) -> Response {
    let at = |p: Option<super::faults::Position>| p.map(|p| p.index(count));
    let cut = at(faults.cut_after);
    let short = at(faults.short_after);
    let stall = faults.stall.map(|(p, d)| (p.index(count), d));
    let malformed = at(faults.malformed_at);
    let long = faults.long_at.map(|(p, bytes)| (p.index(count), bytes));
    let repeated = at(faults.repeated_at);
    let mirrored = faults.mirrored;
    let render = Arc::new(render);
    let stream = futures::stream::unfold(0usize, move |i| {
        // Owned by the stream: the download counts until the stream ends or is dropped.
        let _ = &downloading;
        let render = render.clone();
        async move {
            if cut == Some(i) {
                // Let what was sent reach the client, then fail the body: the server drops the
                // connection without ending the chunked stream, so the client sees a cut
                // download, not a short success.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                return Some((Err(std::io::Error::other("emulated cut")), usize::MAX));
            }
            if short == Some(i) {
                return None;
            }
            if let Some((_, pause)) = stall.filter(|(at, _)| *at == i) {
                tokio::time::sleep(pause).await;
            }
            let line = line_at(i, count, mirrored, repeated)?;
            let mut text = render(line)?;
            if malformed == Some(i) {
                text = malform(text);
            }
            if let Some((_, bytes)) = long.filter(|(at, _)| *at == i) {
                text = pad(text, bytes);
            }
            text.push('\n');
            Some((Ok::<_, std::io::Error>(Bytes::from(text)), i + 1))
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-jsonl")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "could not build the response",
            )
        })
}

/// A line made longer than `bytes` the way a real one would be: a long answer in its content
/// (or, for a result without content, a long field at its end). It stays valid JSON.
fn pad(text: String, bytes: usize) -> String {
    let filler = "x".repeat(bytes);
    if text.contains("\"content\":[") {
        let block = format!("\"content\":[{{\"type\":\"text\",\"text\":\"{filler}\"}},");
        text.replacen("\"content\":[", &block, 1)
    } else {
        let end = text.trim_end().trim_end_matches('}').len();
        let closing = &text[end..];
        format!("{},\"padding\":\"{filler}\"{closing}", &text[..end])
    }
}

async fn billing(State(emulator): State<Shared>) -> Json<Vec<super::BilledBatch>> {
    Json(emulator.billing())
}

async fn set_faults(State(emulator): State<Shared>, Json(faults): Json<Faults>) -> Json<Faults> {
    emulator.set_faults(faults.clone());
    Json(faults)
}

async fn get_faults(State(emulator): State<Shared>) -> Json<Faults> {
    Json(emulator.faults())
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(
    State(emulator): State<Shared>,
    Json(advance): Json<Advance>,
) -> Result<Json<serde_json::Value>, Infallible> {
    emulator.advance_clock(chrono::Duration::seconds(advance.seconds));
    Ok(Json(json!({"now": emulator.now()})))
}

#[cfg(test)]
mod tests {
    use super::line_at;

    fn file(count: usize, mirrored: bool, repeated: Option<usize>) -> Vec<usize> {
        (0..)
            .map_while(|i| line_at(i, count, mirrored, repeated))
            .collect()
    }

    #[test]
    fn a_file_sends_each_result_then_what_its_faults_add() {
        assert_eq!(file(3, false, None), [0, 1, 2]);
        assert_eq!(file(3, false, Some(0)), [0, 1, 2, 0]);
        assert_eq!(file(3, true, None), [0, 1, 2, 2, 1, 0]);
        assert_eq!(file(3, true, Some(1)), [0, 1, 2, 2, 1, 0, 1]);
        assert_eq!(file(0, true, None), Vec::<usize>::new());
    }
}
