//! Anthropic's Message Batches objects, as `reference/anthropic-openapi.json` describes them.
//! The client reads them and the emulator writes them: one definition for both sides.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingStatus {
    InProgress,
    Canceling,
    Ended,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub processing: i64,
    pub succeeded: i64,
    pub errored: i64,
    pub canceled: i64,
    pub expired: i64,
}

impl RequestCounts {
    pub fn total(&self) -> i64 {
        self.processing + self.succeeded + self.errored + self.canceled + self.expired
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageBatch {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub processing_status: ProcessingStatus,
    pub request_counts: RequestCounts,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    pub cancel_initiated_at: Option<DateTime<Utc>>,
    pub results_url: Option<String>,
    /// Our batch's id, as a provider that keeps labels returned it (OpenAI's metadata); never
    /// on Anthropic's wire.
    #[serde(skip)]
    pub label: Option<String>,
}

/// A file of ours the provider keeps: its id, the label (our batch's id) it was uploaded for,
/// and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
}

/// One request of a batch: our job id as `custom_id`, and Messages API parameters, kept as
/// JSON text (a flush holds thousands; as `Value` trees they would take several times more).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchRequest {
    pub custom_id: String,
    pub params: Box<RawValue>,
}

impl BatchRequest {
    pub fn new(custom_id: impl Into<String>, params: &Value) -> Self {
        let params =
            serde_json::value::to_raw_value(params).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self {
            custom_id: custom_id.into(),
            params,
        }
    }

    /// The parameters as a JSON value (`null` if they are not valid JSON).
    pub fn params_value(&self) -> Value {
        serde_json::from_str(self.params.get()).unwrap_or(Value::Null)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateBatch {
    pub requests: Vec<BatchRequest>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchPage {
    pub data: Vec<MessageBatch>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletedBatch {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Paging of the batch list: newest first; `after_id` pages towards older batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListParams {
    pub before_id: Option<String>,
    pub after_id: Option<String>,
    pub limit: Option<u32>,
}

/// One line of a batch's results file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultLine {
    pub custom_id: String,
    pub result: BatchResult,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "ResultFields")]
pub enum BatchResult {
    Succeeded { message: Value },
    Errored { error: ErrorResponse },
    Canceled,
    Expired,
}

/// A result's fields as a line carries them, read in one pass: serde's tagged enum would
/// first copy the whole message into a buffer of its own, then read it again (the ingest's
/// reading and deciding took 11% more CPU so; BENCHMARKS.md).
#[derive(Deserialize)]
struct ResultFields {
    #[serde(rename = "type")]
    kind: String,
    message: Option<Value>,
    error: Option<ErrorResponse>,
}

impl TryFrom<ResultFields> for BatchResult {
    type Error = String;

    fn try_from(fields: ResultFields) -> Result<Self, Self::Error> {
        match (fields.kind.as_str(), fields.message, fields.error) {
            ("succeeded", Some(message), _) => Ok(Self::Succeeded { message }),
            ("errored", _, Some(error)) => Ok(Self::Errored { error }),
            ("canceled", ..) => Ok(Self::Canceled),
            ("expired", ..) => Ok(Self::Expired),
            ("succeeded", None, _) => Err("a succeeded result without its message".into()),
            ("errored", _, None) => Err("an errored result without its error".into()),
            (kind, ..) => Err(format!("unknown result type {kind:?}")),
        }
    }
}

/// Anthropic's error body: `{"type": "error", "error": {"type": …, "message": …}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    #[serde(rename = "type")]
    pub kind: String,
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// Anthropic's error type for an HTTP status, as its errors documentation pairs them.
pub fn error_kind_for_status(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

impl ErrorResponse {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: "error".into(),
            error: ErrorDetail {
                kind: kind.into(),
                message: message.into(),
            },
        }
    }
}
