//! The request rules of the contract, written once for the REST API and the dashboard.
//!
//! Errors mirror FastAPI (pydantic v2): one entry per invalid field, all reported at once.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    BulkCancelRequest, CreateTokenRequest, EnqueueRequest, FlushRequest, JobStatus, JobType,
    ListQuery, PollRequest, Role,
};

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
/// Most jobs one bulk cancel takes.
pub const MAX_BULK_CANCEL: usize = 1000;

/// One entry of a 422 `detail` list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// Collects field errors while reading one request.
struct Checker {
    section: &'static str,
    errors: Vec<FieldError>,
}

impl Checker {
    fn new(section: &'static str) -> Self {
        Self {
            section,
            errors: Vec::new(),
        }
    }

    fn loc(&self, field: &str) -> Vec<Value> {
        vec![json!(self.section), json!(field)]
    }

    fn push(&mut self, error: FieldError) {
        self.errors.push(error);
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

    /// ISO-8601 datetime or date (midnight), or a Unix timestamp; no timezone means UTC.
    fn datetime(&mut self, loc: Vec<Value>, input: &Value) -> Option<DateTime<Utc>> {
        let parsed = match input {
            Value::String(s) => parse_datetime_str(s.trim()),
            Value::Number(n) => n
                .as_f64()
                .and_then(|secs| DateTime::<Utc>::from_timestamp_micros((secs * 1e6) as i64))
                .ok_or_else(|| "timestamp out of range".to_string()),
            _ => {
                let msg = "Input should be a valid datetime";
                self.push(FieldError::new("datetime_type", loc, msg, input.clone()));
                return None;
            }
        };
        parsed
            .map_err(|error| {
                let msg = format!("Input should be a valid datetime or date, {error}");
                self.push(
                    FieldError::new("datetime_from_date_parsing", loc, msg, input.clone())
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
                vec![json!("body")],
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

fn job_type(c: &mut Checker, input: &Value) -> Option<JobType> {
    c.enum_of(
        c.loc("job_type"),
        input,
        JobType::ALL,
        JobType::as_str,
        JobType::parse,
    )
}

/// Reads an enqueue body: `job_type` and `payload` required; `priority` 0–100 (50);
/// `run_after` ISO-8601 or null (no timezone means UTC); `idempotency_key` 1–255 chars or null.
pub fn parse_enqueue(body: &Value) -> Validated<EnqueueRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };

    let job_type = match c.required(map, body, "job_type") {
        None => None,
        Some(v) => job_type(&mut c, v),
    };

    let payload = match c.required(map, body, "payload") {
        None => None,
        Some(Value::Object(p)) => {
            let size = serde_json::to_vec(p).map(|b| b.len()).unwrap_or(usize::MAX);
            if size > MAX_PAYLOAD_BYTES {
                let error =
                    format!("payload is {size} bytes of JSON; the limit is {MAX_PAYLOAD_BYTES}");
                c.push(
                    FieldError::new(
                        "value_error",
                        c.loc("payload"),
                        format!("Value error, {error}"),
                        json!({ "size_bytes": size }),
                    )
                    .with_ctx(json!({ "error": error })),
                );
                None
            } else {
                Some(p.clone())
            }
        }
        Some(other) => {
            c.push(FieldError::new(
                "dict_type",
                c.loc("payload"),
                "Input should be a valid dictionary",
                other.clone(),
            ));
            None
        }
    };

    let priority = match map.get("priority") {
        None => Some(DEFAULT_PRIORITY),
        Some(v) => c.int_in(c.loc("priority"), v, 0, MAX_PRIORITY),
    };

    let run_after = match field(map, "run_after") {
        None => Some(None),
        Some(v) => c.datetime(c.loc("run_after"), v).map(Some),
    };

    let idempotency_key = match field(map, "idempotency_key") {
        None => Some(None),
        Some(v) => idempotency_key(&mut c, v).map(Some),
    };

    c.finish(|| EnqueueRequest {
        job_type: job_type.expect("checked"),
        payload: payload.expect("checked"),
        priority: priority.expect("checked"),
        run_after: run_after.expect("checked"),
        idempotency_key: idempotency_key.expect("checked"),
    })
}

fn idempotency_key(c: &mut Checker, input: &Value) -> Option<String> {
    let loc = c.loc("idempotency_key");
    let Some(key) = input.as_str() else {
        c.push(FieldError::new(
            "string_type",
            loc,
            "Input should be a valid string",
            input.clone(),
        ));
        return None;
    };
    let chars = key.chars().count();
    if chars < 1 {
        c.push(
            FieldError::new(
                "string_too_short",
                loc,
                "String should have at least 1 character",
                input.clone(),
            )
            .with_ctx(json!({ "min_length": 1 })),
        );
        None
    } else if chars > MAX_IDEMPOTENCY_KEY_CHARS {
        c.push(
            FieldError::new(
                "string_too_long",
                loc,
                format!("String should have at most {MAX_IDEMPOTENCY_KEY_CHARS} characters"),
                input.clone(),
            )
            .with_ctx(json!({ "max_length": MAX_IDEMPOTENCY_KEY_CHARS })),
        );
        None
    } else {
        Some(key.to_owned())
    }
}

fn parse_datetime_str(s: &str) -> Result<DateTime<Utc>, String> {
    if s.is_empty() {
        return Err("input is too short".into());
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
        Ok(date) => Ok(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))),
        Err(e) => Err(format!("{e} (expected e.g. 2026-01-31T09:30:00Z)")),
    }
}

/// Reads the list query: `status_filter` one of the job statuses, `limit` 1–1000 (50);
/// and, beyond the contract, `job_type`, `q` (search, at most 200 characters), `offset` (0).
pub fn parse_list_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Validated<ListQuery> {
    let mut c = Checker::new("query");
    let mut query = ListQuery {
        limit: DEFAULT_LIST_LIMIT,
        ..ListQuery::default()
    };
    for (name, raw) in pairs {
        let input = Value::String(raw.to_owned());
        match name {
            "status_filter" => {
                query.status_filter = c.enum_of(
                    c.loc(name),
                    &input,
                    JobStatus::ALL,
                    JobStatus::as_str,
                    JobStatus::parse,
                )
            }
            "job_type" => {
                query.job_type = c.enum_of(
                    c.loc(name),
                    &input,
                    JobType::ALL,
                    JobType::as_str,
                    JobType::parse,
                )
            }
            "limit" => {
                if let Some(limit) = c.int_in(c.loc(name), &input, 1, MAX_LIST_LIMIT) {
                    query.limit = limit;
                }
            }
            "offset" => {
                if let Some(offset) = c.int_in(c.loc(name), &input, 0, i64::MAX) {
                    query.offset = offset;
                }
            }
            "q" => {
                let text = raw.trim();
                if text.chars().count() > MAX_SEARCH_CHARS {
                    c.push(
                        FieldError::new(
                            "string_too_long",
                            c.loc(name),
                            format!("String should have at most {MAX_SEARCH_CHARS} characters"),
                            input.clone(),
                        )
                        .with_ctx(json!({ "max_length": MAX_SEARCH_CHARS })),
                    );
                } else if !text.is_empty() {
                    query.search = Some(text.to_owned());
                }
            }
            _ => {}
        }
    }
    c.finish(|| query)
}

/// Reads a flush body: `max_jobs` 1–10000 (100), `job_types` null or a list of job types,
/// `min_priority` 0–100 (0).
pub fn parse_flush(body: &Value) -> Validated<FlushRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };
    let max_jobs = match map.get("max_jobs") {
        None => Some(DEFAULT_FLUSH_MAX_JOBS),
        Some(v) => c.int_in(c.loc("max_jobs"), v, 1, MAX_FLUSH_JOBS),
    };
    let min_priority = match map.get("min_priority") {
        None => Some(0),
        Some(v) => c.int_in(c.loc("min_priority"), v, 0, MAX_PRIORITY),
    };
    let job_types = match field(map, "job_types") {
        None => Some(None),
        Some(Value::Array(items)) => {
            let before = c.errors.len();
            let types: Vec<Option<JobType>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let loc = vec![json!("body"), json!("job_types"), json!(i)];
                    c.enum_of(loc, item, JobType::ALL, JobType::as_str, JobType::parse)
                })
                .collect();
            (c.errors.len() == before).then(|| Some(types.into_iter().flatten().collect()))
        }
        Some(other) => {
            c.push(FieldError::new(
                "list_type",
                c.loc("job_types"),
                "Input should be a valid list",
                other.clone(),
            ));
            None
        }
    };
    c.finish(|| FlushRequest {
        max_jobs: max_jobs.expect("checked"),
        job_types: job_types.expect("checked"),
        min_priority: min_priority.expect("checked"),
    })
}

/// Reads a poll body: `batch_id` required, a string.
pub fn parse_poll(body: &Value) -> Validated<PollRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };
    let batch_id = match c.required(map, body, "batch_id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            c.push(FieldError::new(
                "string_type",
                c.loc("batch_id"),
                "Input should be a valid string",
                other.clone(),
            ));
            None
        }
    };
    c.finish(|| PollRequest {
        batch_id: batch_id.expect("checked"),
    })
}

/// Reads a bulk cancel body: `job_ids`, a list of 1 to 1000 job ids.
pub fn parse_bulk_cancel(body: &Value) -> Validated<BulkCancelRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };
    let ids = match c.required(map, body, "job_ids") {
        None => None,
        Some(Value::Array(items))
            if items.iter().all(Value::is_string)
                && (1..=MAX_BULK_CANCEL).contains(&items.len()) =>
        {
            Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
            )
        }
        Some(other) => {
            c.push(FieldError::new(
                "list_type",
                c.loc("job_ids"),
                "Input should be a list of 1 to 1000 job ids",
                other.clone(),
            ));
            None
        }
    };
    c.finish(|| BulkCancelRequest {
        job_ids: ids.expect("checked"),
    })
}

/// Reads a token request: `user` (1–64 characters) and `role` (`trader` or `admin`).
pub fn parse_create_token(body: &Value) -> Validated<CreateTokenRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };
    let user = match c.required(map, body, "user") {
        None => None,
        Some(Value::String(name)) if (1..=64).contains(&name.trim().chars().count()) => {
            Some(name.trim().to_string())
        }
        Some(other) => {
            c.push(FieldError::new(
                "string_type",
                c.loc("user"),
                "Input should be a name of 1 to 64 characters",
                other.clone(),
            ));
            None
        }
    };
    let role = match c.required(map, body, "role") {
        None => None,
        Some(v) => c.enum_of(c.loc("role"), v, Role::ALL, Role::as_str, Role::parse),
    };
    c.finish(|| CreateTokenRequest {
        user: user.expect("checked"),
        role: role.expect("checked"),
    })
}

/// Reads `days` (1–366, default 30) from a query.
pub fn parse_days<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Validated<i64> {
    let mut c = Checker::new("query");
    let mut days = 30;
    for (name, raw) in pairs {
        if name == "days"
            && let Some(d) = c.int_in(c.loc(name), &Value::String(raw.to_owned()), 1, 366)
        {
            days = d;
        }
    }
    c.finish(|| days)
}

#[cfg(test)]
mod tests;
