//! The request rules of the contract, written once for the REST API and the dashboard.
//!
//! Errors mirror FastAPI (pydantic v2): one entry per invalid field, all reported at once.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The largest accepted `payload`, measured as compact JSON.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// The largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_PRIORITY: i64 = 50;
pub const MAX_PRIORITY: i64 = 100;
pub const DEFAULT_LIST_LIMIT: i64 = 50;
pub const MAX_LIST_LIMIT: i64 = 1000;
pub const DEFAULT_FLUSH_MAX_JOBS: i64 = 100;
pub const MAX_FLUSH_JOBS: i64 = 10_000;
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
pub const MAX_SEARCH_CHARS: usize = 200;
/// The longest accepted webhook address.
pub const MAX_CALLBACK_URL_CHARS: usize = 2048;
/// Most jobs one bulk cancel takes.
pub const MAX_BULK_CANCEL: usize = 1000;
/// Most jobs one bulk enqueue takes.
pub const MAX_BULK_ENQUEUE: usize = 10_000;
/// The largest accepted bulk enqueue body.
pub const MAX_BULK_BODY_BYTES: usize = 32 * 1024 * 1024;
/// The longest shared context, in bytes of UTF-8 (about 250,000 tokens of English).
pub const MAX_CONTEXT_BYTES: usize = 1024 * 1024;
/// The largest accepted body with a context (its text escaped as JSON may grow).
pub const MAX_CONTEXT_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_CONTEXT_NAME_CHARS: usize = 200;
/// Context ids are `ctx_` and a UUID; anything far longer is not one.
pub const MAX_CONTEXT_ID_CHARS: usize = 64;

/// One entry of a 422 `detail` list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: String,
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl FieldError {
    pub fn new(kind: &str, loc: Vec<Value>, msg: impl Into<String>, input: Value) -> Self {
        Self {
            kind: kind.into(),
            loc,
            msg: msg.into(),
            input,
            ctx: None,
        }
    }

    pub fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// The field this error is about, for showing it beside its input.
    pub fn field(&self) -> Option<&str> {
        self.loc.get(1).and_then(Value::as_str)
    }

    pub fn json_invalid(position: usize, error: impl Into<String>) -> Self {
        Self::new(
            "json_invalid",
            vec![json!("body"), json!(position)],
            "JSON decode error",
            json!({}),
        )
        .with_ctx(json!({ "error": error.into() }))
    }

    pub fn missing(loc: Vec<Value>, input: Value) -> Self {
        Self::new("missing", loc, "Field required", input)
    }
}

pub type Validated<T> = Result<T, Vec<FieldError>>;

/// Text no store may keep: PostgreSQL refuses NUL in text and JSON, so neither store takes it
/// (both answer the same 422).
pub fn nul_error(loc: Vec<Value>, input: Value) -> FieldError {
    FieldError::new(
        "string_pattern_mismatch",
        loc,
        "String should not contain the NUL character (\\u0000)",
        input,
    )
    .with_ctx(json!({ "pattern": "^[^\\x00]*$" }))
}

/// Whether a JSON value holds NUL in any string or key.
pub fn value_has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(value_has_nul),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains('\0') || value_has_nul(v)),
        _ => false,
    }
}

/// A path parameter (a job, token or user named in the URL): text a store can look up.
pub fn parse_path_text(name: &str, value: &str) -> Validated<String> {
    if value.contains('\0') {
        Err(vec![nul_error(
            vec![json!("path"), json!(name)],
            Value::String(value.to_owned()),
        )])
    } else {
        Ok(value.to_owned())
    }
}

/// Collects field errors while reading one request.
struct Checker {
    /// Where the fields read are: `["body"]`, `["query"]`, or an item of a list in the body.
    at: Vec<Value>,
    errors: Vec<FieldError>,
}

impl Checker {
    fn new(section: &'static str) -> Self {
        Self::at(vec![json!(section)])
    }

    fn at(at: Vec<Value>) -> Self {
        Self {
            at,
            errors: Vec::new(),
        }
    }

    fn loc(&self, field: &str) -> Vec<Value> {
        let mut loc = self.at.clone();
        loc.push(json!(field));
        loc
    }

    fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// `text` if a store can keep it; otherwise a NUL error at `loc`.
    fn storable<'t>(&mut self, loc: Vec<Value>, text: &'t str) -> Option<&'t str> {
        if text.contains('\0') {
            self.push(nul_error(loc, Value::String(text.to_owned())));
            None
        } else {
            Some(text)
        }
    }

    /// A required field's value, or a `missing` error (which, as in pydantic, shows the body).
    fn required<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        body: &Value,
        name: &str,
    ) -> Option<&'v Value> {
        let value = map.get(name);
        if value.is_none() {
            self.push(FieldError::missing(self.loc(name), body.clone()));
        }
        value
    }

    fn finish<T>(self, value: impl FnOnce() -> T) -> Validated<T> {
        if self.errors.is_empty() {
            Ok(value())
        } else {
            Err(self.errors)
        }
    }

    /// An integer in `[min, max]`, accepting integral floats and numeric strings like pydantic's lax mode.
    fn int_in(&mut self, loc: Vec<Value>, input: &Value, min: i64, max: i64) -> Option<i64> {
        let parsed = match input {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Some(i),
                None => match n.as_f64() {
                    // `as` saturates, so huge integers still fail the range check below.
                    Some(f) if f.fract() == 0.0 => Some(f as i64),
                    Some(_) => {
                        self.push(FieldError::new(
                            "int_from_float",
                            loc,
                            "Input should be a valid integer, got a number with a fractional part",
                            input.clone(),
                        ));
                        return None;
                    }
                    None => None,
                },
            },
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(i) => Some(i),
                Err(_) => {
                    self.push(FieldError::new(
                        "int_parsing",
                        loc,
                        "Input should be a valid integer, unable to parse string as an integer",
                        input.clone(),
                    ));
                    return None;
                }
            },
            _ => None,
        };
        let Some(value) = parsed else {
            self.push(FieldError::new(
                "int_type",
                loc,
                "Input should be a valid integer",
                input.clone(),
            ));
            return None;
        };
        if value < min {
            self.push(
                FieldError::new(
                    "greater_than_equal",
                    loc,
                    format!("Input should be greater than or equal to {min}"),
                    input.clone(),
                )
                .with_ctx(json!({ "ge": min })),
            );
            None
        } else if value > max {
            self.push(
                FieldError::new(
                    "less_than_equal",
                    loc,
                    format!("Input should be less than or equal to {max}"),
                    input.clone(),
                )
                .with_ctx(json!({ "le": max })),
            );
            None
        } else {
            Some(value)
        }
    }

    /// ISO-8601 datetime or date (midnight), or a Unix timestamp (a number, or a number in a
    /// string) read as pydantic reads one; no timezone means UTC. Years 1600–9999 only, so no
    /// later date arithmetic can overflow.
    fn datetime(&mut self, loc: Vec<Value>, input: &Value) -> Option<DateTime<Utc>> {
        let parsed = match input {
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => from_unix_number(number),
                _ => parse_datetime_str(s.trim()),
            },
            Value::Number(n) => n
                .as_f64()
                .map_or_else(|| Err(RunAfterError::TooLate), from_unix_number),
            _ => {
                let msg = "Input should be a valid datetime";
                self.push(FieldError::new("datetime_type", loc, msg, input.clone()));
                return None;
            }
        };
        let parsed = parsed.and_then(|at| {
            if at < earliest_datetime() {
                Err(RunAfterError::TooEarly)
            } else if at > latest_datetime() {
                Err(RunAfterError::TooLate)
            } else {
                Ok(at)
            }
        });
        parsed
            .map_err(|error| {
                let (kind, error) = match error {
                    RunAfterError::Format(e) => ("datetime_from_date_parsing", e),
                    RunAfterError::TooEarly => (
                        "datetime_parsing",
                        "dates before 1600 are not supported".to_string(),
                    ),
                    RunAfterError::TooLate => (
                        "datetime_parsing",
                        "dates after 9999 are not supported".to_string(),
                    ),
                };
                let msg = if kind == "datetime_parsing" {
                    format!("Input should be a valid datetime, {error}")
                } else {
                    format!("Input should be a valid datetime or date, {error}")
                };
                self.push(
                    FieldError::new(kind, loc, msg, input.clone())
                        .with_ctx(json!({ "error": error })),
                )
            })
            .ok()
    }

    fn enum_of<T: Copy>(
        &mut self,
        loc: Vec<Value>,
        input: &Value,
        all: &[T],
        name: impl Fn(T) -> &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        if let Some(found) = input.as_str().and_then(parse) {
            return Some(found);
        }
        let expected = expected_list(all.iter().map(|v| name(*v)));
        self.push(
            FieldError::new(
                "enum",
                loc,
                format!("Input should be {expected}"),
                input.clone(),
            )
            .with_ctx(json!({ "expected": expected })),
        );
        None
    }
}

/// `'a', 'b' or 'c'`, as pydantic words an enum's choices.
fn expected_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("'{n}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

fn as_object<'a>(body: &'a Value, errors: &mut Checker) -> Option<&'a Map<String, Value>> {
    match body {
        Value::Object(map) => Some(map),
        _ => {
            errors.push(FieldError::new(
                "model_attributes_type",
                errors.at.clone(),
                "Input should be a valid dictionary or object to extract fields from",
                body.clone(),
            ));
            None
        }
    }
}

/// A present, non-null field.
fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).filter(|v| !v.is_null())
}

/// Why a `run_after` is refused.
enum RunAfterError {
    Format(String),
    TooEarly,
    TooLate,
}

/// Pydantic's rule for numbers: Unix seconds, or milliseconds when beyond ±2×10¹⁰ (so a
/// JavaScript `Date.now()` means what its sender meant).
const SECONDS_OR_MILLIS: f64 = 2e10;

fn earliest_datetime() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1600, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The latest time the API reads or writes (RFC 3339 has four-digit years).
pub fn latest_datetime() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn from_unix_number(number: f64) -> Result<DateTime<Utc>, RunAfterError> {
    let seconds = if number.abs() > SECONDS_OR_MILLIS {
        number / 1000.0
    } else {
        number
    };
    // Outside this span the value cannot be a supported date; checking first keeps the
    // conversion to integer microseconds from saturating.
    let (lo, hi) = (
        earliest_datetime().timestamp() as f64,
        latest_datetime().timestamp() as f64 + 1.0,
    );
    if seconds < lo {
        return Err(RunAfterError::TooEarly);
    }
    if seconds >= hi {
        return Err(RunAfterError::TooLate);
    }
    DateTime::<Utc>::from_timestamp_micros((seconds * 1e6).round() as i64)
        .ok_or(RunAfterError::TooLate)
}

fn parse_datetime_str(s: &str) -> Result<DateTime<Utc>, RunAfterError> {
    if s.is_empty() {
        return Err(RunAfterError::Format("input is too short".into()));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(Utc.from_utc_datetime(&naive));
        }
    }
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(date) => Ok(Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))),
        Err(e) => Err(RunAfterError::Format(format!(
            "{e} (expected e.g. 2026-01-31T09:30:00Z)"
        ))),
    }
}

mod oversight;
pub mod raw;
mod requests;

pub use oversight::*;
pub use requests::*;

#[cfg(test)]
mod tests;
