//! OpenAI's side of the emulator: Files (`purpose=batch` JSONL in, output and error files
//! out) and Batches, on the same port as Anthropic's. Its requests run on an engine of their
//! own (the same answers, cache model and faults as Anthropic's side, translated), which also
//! completes half of an expiring batch: OpenAI bills the work done before a batch expires.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::CallPlan;
use super::listener::CutSwitch;
use super::{BilledBatch, BilledRequest, Emulator, Faults};
use crate::provider::openai::wire::{
    Batch, BatchErrors, BatchStatus, CHAT_COMPLETIONS, CreateBatch, DeletedFile, FileObject,
    InputLine, MAX_FILE_BYTES, MAX_REQUESTS, OutputError, OutputLine, OutputResponse,
    RequestCounts,
};
use crate::provider::{BatchRequest, BatchResult, MessageBatch, ProcessingStatus, ResultLine};

type Shared = Arc<Emulator>;

pub struct OpenAiEmulator {
    engine: Emulator,
    files: Mutex<BTreeMap<String, StoredFile>>,
    batches: Mutex<BTreeMap<String, StoredBatch>>,
    /// Every batch create body received, as sent (what tests check against OpenAI's spec).
    creates: Mutex<Vec<Value>>,
}

struct StoredFile {
    object: FileObject,
    lines: Arc<Vec<String>>,
}

struct StoredBatch {
    batch: Batch,
    /// The engine's batch running its requests (none when the input was refused).
    engine_id: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn short_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

impl OpenAiEmulator {
    pub(super) fn new(engine: Emulator) -> Self {
        Self {
            engine,
            files: Mutex::default(),
            batches: Mutex::default(),
            creates: Mutex::default(),
        }
    }

    /// The batch create bodies received so far, in order.
    pub fn create_bodies(&self) -> Vec<Value> {
        lock(&self.creates).clone()
    }

    /// A file's lines as uploaded (or as written, for output and error files).
    pub fn file_content(&self, id: &str) -> Option<Vec<String>> {
        self.file_lines(id).map(|lines| lines.to_vec())
    }

    pub(super) fn engine(&self) -> &Emulator {
        &self.engine
    }

    pub fn set_faults(&self, faults: Faults) {
        self.engine.set_faults(faults);
    }

    pub fn faults(&self) -> Faults {
        self.engine.faults()
    }

    /// Moves OpenAI's clock alone (the Anthropic side's `advance_clock` moves both).
    pub fn advance_clock(&self, by: chrono::Duration) {
        self.engine.advance_clock(by);
    }

    pub fn set_processing_delay(&self, delay: std::time::Duration) {
        self.engine.set_processing_delay(delay);
    }

    fn now(&self) -> DateTime<Utc> {
        self.engine.now()
    }

    fn add_file(&self, filename: &str, purpose: &str, lines: Vec<String>) -> FileObject {
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        let object = FileObject {
            id: format!("file-{}", short_id()),
            object: "file".into(),
            bytes: bytes as i64,
            created_at: self.now().timestamp(),
            filename: filename.into(),
            purpose: purpose.into(),
            status: Some("processed".into()),
        };
        lock(&self.files).insert(
            object.id.clone(),
            StoredFile {
                object: object.clone(),
                lines: Arc::new(lines),
            },
        );
        object
    }

    pub fn file(&self, id: &str) -> Option<FileObject> {
        lock(&self.files).get(id).map(|f| f.object.clone())
    }

    pub fn files(&self) -> Vec<FileObject> {
        lock(&self.files)
            .values()
            .map(|f| f.object.clone())
            .collect()
    }

    fn file_lines(&self, id: &str) -> Option<Arc<Vec<String>>> {
        lock(&self.files).get(id).map(|f| f.lines.clone())
    }

    fn delete_file(&self, id: &str) -> bool {
        lock(&self.files).remove(id).is_some()
    }

    /// Makes a batch of an uploaded file; a file that does not hold valid requests makes a
    /// `failed` batch, as OpenAI's validation does.
    fn create(&self, create: &CreateBatch) -> Result<Batch, String> {
        let lines = self
            .file_lines(&create.input_file_id)
            .ok_or_else(|| format!("No such File object: {}", create.input_file_id))?;
        let now = self.now();
        let mut batch = Batch {
            id: format!("batch_{}", short_id()),
            object: "batch".into(),
            endpoint: create.endpoint.clone(),
            errors: None,
            input_file_id: create.input_file_id.clone(),
            completion_window: create.completion_window.clone(),
            status: BatchStatus::InProgress,
            output_file_id: None,
            error_file_id: None,
            created_at: now.timestamp(),
            in_progress_at: Some(now.timestamp()),
            expires_at: Some((now + chrono::Duration::hours(24)).timestamp()),
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            request_counts: Some(RequestCounts {
                total: lines.len() as i64,
                ..RequestCounts::default()
            }),
            metadata: create.metadata.clone(),
        };
        let engine_id = match requests(&lines, &create.endpoint) {
            Ok(requests) => Some(self.engine.create(requests).id),
            Err(error) => {
                batch.status = BatchStatus::Failed;
                batch.failed_at = Some(now.timestamp());
                batch.errors = Some(BatchErrors {
                    object: Some("list".into()),
                    data: vec![error],
                });
                None
            }
        };
        lock(&self.batches).insert(
            batch.id.clone(),
            StoredBatch {
                batch: batch.clone(),
                engine_id,
            },
        );
        Ok(batch)
    }

    /// The batch as it stands, its output and error files written when it has ended.
    pub fn get(&self, id: &str) -> Option<Batch> {
        let mut batches = lock(&self.batches);
        let stored = batches.get_mut(id)?;
        self.refresh(stored);
        Some(stored.batch.clone())
    }

    /// All batches, newest first.
    pub fn list(&self) -> Vec<Batch> {
        let ids: Vec<String> = lock(&self.batches).keys().cloned().collect();
        let mut all: Vec<Batch> = ids.iter().filter_map(|id| self.get(id)).collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        all
    }

    fn cancel(&self, id: &str) -> Option<Batch> {
        let engine_id = lock(&self.batches).get(id)?.engine_id.clone();
        if let Some(engine_id) = engine_id {
            self.engine.cancel(&engine_id);
        }
        self.get(id)
    }

    fn refresh(&self, stored: &mut StoredBatch) {
        let Some(engine_id) = &stored.engine_id else {
            return;
        };
        if stored.batch.status.is_final() {
            return;
        }
        let Some(remote) = self.engine.get(engine_id) else {
            return;
        };
        let batch = &mut stored.batch;
        match remote.processing_status {
            ProcessingStatus::InProgress => {}
            ProcessingStatus::Canceling => {
                batch.status = BatchStatus::Cancelling;
                batch.cancelling_at = remote.cancel_initiated_at.map(|t| t.timestamp());
            }
            ProcessingStatus::Ended => {
                let Some(Ok(results)) = self.engine.results(engine_id) else {
                    return;
                };
                let ended = remote.ended_at.unwrap_or_else(|| self.now()).timestamp();
                let (status, at) = if remote.cancel_initiated_at.is_some() {
                    (BatchStatus::Cancelled, &mut batch.cancelled_at)
                } else if remote.request_counts.expired > 0
                    && remote.ended_at.is_some_and(|t| t >= remote.expires_at)
                {
                    (BatchStatus::Expired, &mut batch.expired_at)
                } else {
                    (BatchStatus::Completed, &mut batch.completed_at)
                };
                *at = Some(ended);
                batch.status = status;
                batch.finalizing_at = Some(ended);
                let (output, errors): (Vec<_>, Vec<_>) = results
                    .iter()
                    .map(|line| output_line(line, &remote))
                    .partition(|line| line.response.as_ref().is_some_and(|r| r.status_code == 200));
                let counts = RequestCounts {
                    total: results.len() as i64,
                    completed: output.len() as i64,
                    failed: errors.iter().filter(|l| l.response.is_some()).count() as i64,
                };
                batch.request_counts = Some(counts);
                let text = |lines: Vec<OutputLine>| {
                    lines
                        .iter()
                        .map(|l| serde_json::to_string(l).unwrap_or_default())
                        .collect::<Vec<_>>()
                };
                if !output.is_empty() {
                    let file = self.add_file("batch_output.jsonl", "batch_output", text(output));
                    batch.output_file_id = Some(file.id);
                }
                if !errors.is_empty() {
                    let file = self.add_file("batch_errors.jsonl", "batch_output", text(errors));
                    batch.error_file_id = Some(file.id);
                }
            }
        }
        if !batch.status.is_final() {
            batch.request_counts = Some(RequestCounts {
                total: remote.request_counts.total(),
                ..RequestCounts::default()
            });
        }
    }

    /// What OpenAI billed: each batch's completed requests with their usage, in OpenAI's
    /// names (`prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`).
    pub fn billing(&self) -> Vec<BilledBatch> {
        let ids: Vec<String> = lock(&self.batches).keys().cloned().collect();
        let engine_bills: BTreeMap<String, BilledBatch> = self
            .engine
            .billing()
            .into_iter()
            .map(|b| (b.id.clone(), b))
            .collect();
        ids.iter()
            .filter_map(|id| {
                let batch = self.get(id)?;
                let engine_id = lock(&self.batches).get(id)?.engine_id.clone();
                let billed = engine_id
                    .and_then(|e| engine_bills.get(&e).cloned())
                    .map(|b| b.billed)
                    .unwrap_or_default();
                Some(BilledBatch {
                    id: batch.id.clone(),
                    processing_status: if batch.status.is_final() {
                        ProcessingStatus::Ended
                    } else {
                        ProcessingStatus::InProgress
                    },
                    request_count: batch.request_counts.map_or(0, |c| c.total) as usize,
                    billed: billed
                        .into_iter()
                        .map(|b| BilledRequest {
                            usage: openai_usage(&b.usage),
                            ..b
                        })
                        .collect(),
                })
            })
            .collect()
    }
}

/// The input file's requests, as the engine runs them; the first invalid line refuses all.
fn requests(
    lines: &[String],
    endpoint: &str,
) -> Result<Vec<BatchRequest>, crate::provider::openai::wire::BatchError> {
    let refuse =
        |line: usize, code: &str, message: String| crate::provider::openai::wire::BatchError {
            code: Some(code.into()),
            message: Some(message),
            param: None,
            line: Some(line as i64 + 1),
        };
    if lines.is_empty() || lines.len() > MAX_REQUESTS {
        return Err(refuse(
            0,
            "invalid_request",
            format!("a batch holds 1 to {MAX_REQUESTS} requests"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(lines.len());
    for (i, text) in lines.iter().enumerate() {
        let line: InputLine = serde_json::from_str(text).map_err(|e| {
            refuse(
                i,
                "invalid_json_line",
                format!("This line is not parseable as valid JSON: {e}"),
            )
        })?;
        if line.url != endpoint || line.method != "POST" {
            return Err(refuse(
                i,
                "mismatched_endpoint",
                format!(
                    "The url of this line ({}) does not match the batch's endpoint",
                    line.url
                ),
            ));
        }
        if !seen.insert(line.custom_id.clone()) || line.custom_id.is_empty() {
            return Err(refuse(
                i,
                "duplicate_custom_id",
                "The custom_id of this line is empty or appears twice".into(),
            ));
        }
        out.push(BatchRequest::new(
            line.custom_id,
            &messages_params(&line.body),
        ));
    }
    Ok(out)
}

/// A Chat Completions body as the engine's Messages parameters: the system message as a
/// cached block (OpenAI caches long prefixes by itself), the structured output's schema as
/// a forced tool.
fn messages_params(body: &Value) -> Value {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system: Vec<Value> = messages
        .iter()
        .filter(|m| m["role"] == "system" || m["role"] == "developer")
        .map(|m| json!({"type": "text", "text": m["content"], "cache_control": {"type": "ephemeral"}}))
        .collect();
    let rest: Vec<Value> = messages
        .iter()
        .filter(|m| m["role"] != "system" && m["role"] != "developer")
        .cloned()
        .collect();
    let max_tokens = body["max_completion_tokens"]
        .as_i64()
        .or_else(|| body["max_tokens"].as_i64())
        .unwrap_or(4096);
    let mut params = json!({
        "model": body["model"],
        "max_tokens": max_tokens,
        "messages": rest,
    });
    if !system.is_empty() {
        params["system"] = Value::Array(system);
    }
    let format = &body["response_format"];
    if format["type"] == "json_schema" {
        let schema = &format["json_schema"];
        params["tools"] =
            json!([{"name": schema["name"], "input_schema": loosened(&schema["schema"])}]);
        params["tool_choice"] = json!({"type": "tool", "name": schema["name"]});
    }
    params
}

/// A strict schema's nullable types (`["number", "null"]`) as their first type, which is
/// what the engine's answers fill in.
fn loosened(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("type", Value::Array(types)) => types
                            .iter()
                            .find(|t| *t != "null")
                            .cloned()
                            .unwrap_or(Value::Null),
                        _ => loosened(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(loosened).collect()),
        other => other.clone(),
    }
}

/// OpenAI's usage for the engine's (Anthropic-named) usage: every prompt token counts in
/// `prompt_tokens`, cache reads among them as `cached_tokens`.
fn openai_usage(usage: &Value) -> Value {
    let n = |k: &str| usage[k].as_i64().unwrap_or(0);
    let prompt =
        n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens");
    let completion = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": n("cache_read_input_tokens")},
    })
}

/// One engine result as OpenAI writes it to the output or error file.
fn output_line(line: &ResultLine, batch: &MessageBatch) -> OutputLine {
    let id = format!(
        "batch_req_{}",
        &short_hash(&format!("{}{}", batch.id, line.custom_id))
    );
    let (response, error) = match &line.result {
        BatchResult::Succeeded { message } => {
            let content = message["content"]
                .as_array()
                .and_then(|blocks| {
                    blocks.iter().find_map(|b| match b["type"].as_str() {
                        Some("tool_use") => Some(b["input"].to_string()),
                        Some("text") => b["text"].as_str().map(String::from),
                        _ => None,
                    })
                })
                .unwrap_or_default();
            let body = json!({
                "id": format!("chatcmpl-{}", short_hash(&id)),
                "object": "chat.completion",
                "created": batch.created_at.timestamp(),
                "model": message["model"],
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": null},
                    "logprobs": null,
                    "finish_reason": if message["stop_reason"] == "max_tokens" { "length" } else { "stop" },
                }],
                "usage": openai_usage(&message["usage"]),
            });
            (
                Some(OutputResponse {
                    status_code: 200,
                    request_id: Some(short_hash(&id)),
                    body,
                }),
                None,
            )
        }
        BatchResult::Errored { error } => {
            let status = if error.error.kind == "invalid_request_error" {
                400
            } else {
                500
            };
            let body = json!({"error": {"message": error.error.message, "type": error.error.kind, "param": null, "code": null}});
            (
                Some(OutputResponse {
                    status_code: status,
                    request_id: Some(short_hash(&id)),
                    body,
                }),
                None,
            )
        }
        BatchResult::Expired => (
            None,
            Some(OutputError {
                code: Some("batch_expired".into()),
                message: Some(
                    "This request could not be executed before the completion window expired."
                        .into(),
                ),
            }),
        ),
        BatchResult::Canceled => (
            None,
            Some(OutputError {
                code: Some("batch_cancelled".into()),
                message: Some(
                    "This request was not executed because the batch was cancelled.".into(),
                ),
            }),
        ),
    };
    OutputLine {
        id: Some(id),
        custom_id: line.custom_id.clone(),
        response,
        error,
    }
}

fn short_hash(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

// ---- HTTP ----

pub fn router(emulator: Shared) -> Router {
    let api = Router::new()
        .route("/v1/files", post(upload).get(list_files))
        .route("/v1/files/{id}", get(retrieve_file).delete(delete_file))
        .route("/v1/files/{id}/content", get(file_content))
        .route("/v1/batches", post(create).get(list))
        .route("/v1/batches/{id}", get(retrieve))
        .route("/v1/batches/{id}/cancel", post(cancel))
        .layer(middleware::from_fn_with_state(
            emulator.clone(),
            faults_and_auth,
        ))
        .layer(DefaultBodyLimit::max(MAX_FILE_BYTES + 64 * 1024));
    let control = Router::new()
        .route("/_emulator/openai/faults", put(set_faults).get(get_faults))
        .route("/_emulator/openai/billing", get(billing));
    api.merge(control).with_state(emulator)
}

/// An OpenAI error answer.
fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body =
        json!({"error": {"message": message.into(), "type": kind, "param": null, "code": null}});
    (status, Json(body)).into_response()
}

fn not_found(what: &str, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("No {what} found with id '{id}'."),
    )
}

fn endpoint_of(request: &Request) -> &'static str {
    let path = request.uri().path();
    match (request.method().as_str(), path) {
        (_, p) if p.ends_with("/content") => "results",
        (_, p) if p.ends_with("/cancel") => "cancel",
        ("POST", "/v1/files") => "upload",
        ("POST", _) => "create",
        ("DELETE", _) => "delete",
        ("GET", "/v1/batches") | ("GET", "/v1/files") => "list",
        _ => "retrieve",
    }
}

async fn faults_and_auth(
    State(emulator): State<Shared>,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if !bearer {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You didn't provide an API key. Provide it in an Authorization header (Bearer auth).",
        );
    }
    let plan = emulator.openai().engine.plan(endpoint_of(&request));
    if let Some(slow) = plan.slow {
        tokio::time::sleep(slow).await;
    }
    if let Some((status, retry_after)) = plan.refuse {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = if status == 429 {
            "rate_limit_exceeded"
        } else {
            "server_error"
        };
        let mut response = error(code, kind, format!("Injected {status} (emulator fault)"));
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        return response;
    }
    request.extensions_mut().insert(plan);
    next.run(request).await
}

async fn upload(State(emulator): State<Shared>, mut form: Multipart) -> Response {
    let (mut purpose, mut file) = (None, None);
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                let filename = field.file_name().unwrap_or("upload.jsonl").to_string();
                let bytes = match field.bytes().await {
                    Ok(bytes) => bytes,
                    Err(e) => return error(e.status(), "invalid_request_error", e.body_text()),
                };
                match name.as_str() {
                    "purpose" => purpose = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    "file" => file = Some((filename, bytes)),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return error(e.status(), "invalid_request_error", e.body_text()),
        }
    }
    let Some((filename, bytes)) = file else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "file: Field required",
        );
    };
    if purpose.as_deref() != Some("batch") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "purpose: the emulator takes files for `batch` only",
        );
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "The file is not UTF-8 text.",
        );
    };
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    Json(emulator.openai().add_file(&filename, "batch", lines)).into_response()
}

/// Files newest first (OpenAI's default order), by `purpose`, a page of `limit` after `after`.
async fn list_files(
    State(emulator): State<Shared>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let mut all = emulator.openai().files();
    if let Ok(Query(ListQuery {
        purpose: Some(purpose),
        ..
    })) = &query
    {
        all.retain(|f| &f.purpose == purpose);
    }
    all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    page(query, &all, |f| &f.id, "file", (10_000, 10_000))
}

async fn retrieve_file(State(emulator): State<Shared>, Path(id): Path<String>) -> Response {
    match emulator.openai().file(&id) {
        Some(file) => Json(file).into_response(),
        None => not_found("file", &id),
    }
}

async fn delete_file(State(emulator): State<Shared>, Path(id): Path<String>) -> Response {
    if emulator.openai().delete_file(&id) {
        Json(DeletedFile {
            id,
            object: "file".into(),
            deleted: true,
        })
        .into_response()
    } else {
        not_found("file", &id)
    }
}

async fn file_content(
    State(emulator): State<Shared>,
    Extension(plan): Extension<CallPlan>,
    Path(id): Path<String>,
) -> Response {
    let openai = emulator.openai();
    let Some(lines) = openai.file_lines(&id) else {
        return not_found("file", &id);
    };
    if plan.download.gone {
        return not_found("file", &id);
    }
    let count = lines.len();
    super::http::stream_lines(
        openai.engine.download_started(),
        &plan.download,
        count,
        move |i| lines.get(i).cloned(),
        |text| text.replacen("\"response\":", "\"response\"::", 1),
    )
}

async fn create(
    State(emulator): State<Shared>,
    Extension(plan): Extension<CallPlan>,
    axum::extract::ConnectInfo(connection): axum::extract::ConnectInfo<CutSwitch>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "The body is not JSON.",
        );
    };
    {
        let mut creates = lock(&emulator.openai().creates);
        if creates.len() >= 100 {
            creates.remove(0);
        }
        creates.push(body.clone());
    }
    let Ok(create) = serde_json::from_value::<CreateBatch>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "The body is not a valid batch create request.",
        );
    };
    if create.endpoint != CHAT_COMPLETIONS {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("endpoint: the emulator runs {CHAT_COMPLETIONS} batches only"),
        );
    }
    if create.completion_window != "24h" {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "completion_window: only `24h` is supported",
        );
    }
    if let Some(wait) = plan.before_create {
        tokio::time::sleep(wait).await;
    }
    let openai = emulator.openai();
    let batch = match openai.create(&create) {
        Ok(batch) => batch,
        Err(message) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", message),
    };
    let failed = || {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server had an error while processing your request (emulated, after the batch was created)",
        )
    };
    let again = || {
        let _ = openai.create(&create);
    };
    if let Some(answer) = super::http::after_create(&plan, &connection, failed, again).await {
        return answer;
    }
    Json(batch).into_response()
}

async fn retrieve(State(emulator): State<Shared>, Path(id): Path<String>) -> Response {
    match emulator.openai().get(&id) {
        Some(batch) => Json(batch).into_response(),
        None => not_found("batch", &id),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
    /// Files only.
    purpose: Option<String>,
}

async fn list(
    State(emulator): State<Shared>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    page(
        query,
        &emulator.openai().list(),
        |b| &b.id,
        "batch",
        (20, 100),
    )
}

/// A page of a list as OpenAI answers one: `limit` objects (`default` and `max` by list)
/// after the object `after` names.
fn page<T: serde::Serialize>(
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    all: &[T],
    id: fn(&T) -> &String,
    what: &str,
    (default, max): (usize, usize),
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "limit: must be an integer",
        );
    };
    let limit = query.limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("limit: must be between 1 and {max}"),
        );
    }
    let start = match &query.after {
        Some(after) => match all.iter().position(|o| id(o) == after) {
            Some(i) => i + 1,
            None => return not_found(what, after),
        },
        None => 0,
    };
    let end = (start + limit).min(all.len());
    let data = &all[start..end];
    Json(json!({
        "object": "list",
        "first_id": data.first().map(id),
        "last_id": data.last().map(id),
        "has_more": end < all.len(),
        "data": data,
    }))
    .into_response()
}

async fn cancel(State(emulator): State<Shared>, Path(id): Path<String>) -> Response {
    match emulator.openai().cancel(&id) {
        Some(batch) => Json(batch).into_response(),
        None => not_found("batch", &id),
    }
}

async fn billing(State(emulator): State<Shared>) -> Json<Vec<BilledBatch>> {
    Json(emulator.openai().billing())
}

async fn set_faults(State(emulator): State<Shared>, Json(faults): Json<Faults>) -> Json<Faults> {
    emulator.openai().set_faults(faults.clone());
    Json(faults)
}

async fn get_faults(State(emulator): State<Shared>) -> Json<Faults> {
    Json(emulator.openai().faults())
}
