//! The readers of each request: which fields, which rules, which defaults.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::raw::{compact_len, echo, raw_json};
use super::{
    Checker, DEFAULT_FLUSH_MAX_JOBS, DEFAULT_LIST_LIMIT, DEFAULT_PRIORITY, FieldError,
    MAX_BULK_CANCEL, MAX_BULK_ENQUEUE, MAX_CALLBACK_URL_CHARS, MAX_CONTEXT_BYTES,
    MAX_CONTEXT_ID_CHARS, MAX_CONTEXT_NAME_CHARS, MAX_FLUSH_JOBS, MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_LIST_LIMIT, MAX_PAYLOAD_BYTES, MAX_PRIORITY, MAX_SEARCH_CHARS, Validated, as_object, field,
    nul_error, value_has_nul,
};
use crate::api::{
    BulkCancelRequest, ContextRequest, CreateTokenRequest, EnqueueRequest, FlushRequest, JobStatus,
    JobType, ListCursor, ListQuery, PollRequest, ProviderName, RetryRequest, Role,
    ShareContextRequest,
};

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
    read_enqueue(
        Fields {
            map: Cow::Borrowed(map),
            echo: Cow::Borrowed(body),
            oversized: Vec::new(),
        },
        c,
    )
}

/// Reads an enqueue body from its bytes, as `parse_enqueue` reads a value, but sizes are
/// measured on the text: no field is built past its limit.
pub fn parse_enqueue_bytes(bytes: &[u8]) -> Validated<EnqueueRequest> {
    read_enqueue_raw(raw_json(bytes)?, Checker::new("body"))
}

/// A bulk enqueue body's items, unread: `jobs` must be a list of 1 to 10,000. Each item is
/// then read with [`read_bulk_item`], one at a time, so that a caller can keep what it needs
/// of each (its payload as text) and drop the rest before reading the next.
pub fn parse_bulk_items(bytes: &[u8]) -> Validated<Vec<&RawValue>> {
    let body = raw_json(bytes)?;
    let mut c = Checker::new("body");
    let Ok(map) = serde_json::from_str::<BTreeMap<String, &RawValue>>(body.get()) else {
        as_object(&echo(body), &mut c);
        return Err(c.errors);
    };
    let Some(jobs) = map.get("jobs") else {
        c.push(FieldError::missing(c.loc("jobs"), echo(body)));
        return Err(c.errors);
    };
    let problem = match serde_json::from_str::<Vec<&RawValue>>(jobs.get()) {
        Ok(items) if (1..=MAX_BULK_ENQUEUE).contains(&items.len()) => return Ok(items),
        Ok(items) if items.is_empty() => (
            "too_short",
            "List should have at least 1 item after validation, not 0".to_string(),
            Value::Null,
        ),
        Ok(items) => (
            "too_long",
            format!(
                "List should have at most {MAX_BULK_ENQUEUE} items after validation, not {}",
                items.len()
            ),
            Value::Null,
        ),
        Err(_) => (
            "list_type",
            "Input should be a valid list".to_string(),
            echo(jobs),
        ),
    };
    let (kind, msg, input) = problem;
    c.push(FieldError::new(kind, c.loc("jobs"), msg, input));
    Err(c.errors)
}

/// One item of a bulk enqueue, as `parse_enqueue_bytes` reads a body; its errors name it
/// (`["body", "jobs", 3, "priority"]`).
pub fn read_bulk_item(index: usize, item: &RawValue) -> Validated<EnqueueRequest> {
    read_enqueue_raw(
        item,
        Checker::at(vec![json!("body"), json!("jobs"), json!(index)]),
    )
}

/// Fields longer than this (other than the payload) are refused unread: no valid value of
/// theirs comes near it.
const SMALL_FIELD_BYTES: usize = 16 * 1024;

/// The fields of an enqueue body as read so far: values built, and fields left unbuilt
/// because their text is past any valid size (with that size).
struct Fields<'a> {
    map: Cow<'a, Map<String, Value>>,
    /// What a `missing` error shows as its input: the body (or its size, when large).
    echo: Cow<'a, Value>,
    oversized: Vec<(&'static str, usize)>,
}

/// What a body says of one field.
enum Given<'v> {
    Absent,
    /// Present, but too large to have been built.
    TooLarge(usize),
    Value(&'v Value),
}

impl Fields<'_> {
    fn get(&self, name: &str) -> Given<'_> {
        if let Some((_, size)) = self.oversized.iter().find(|(n, _)| *n == name) {
            return Given::TooLarge(*size);
        }
        self.map.get(name).map_or(Given::Absent, Given::Value)
    }

    /// A required field: absent is a `missing` error.
    fn required(&self, c: &mut Checker, name: &str) -> Given<'_> {
        let given = self.get(name);
        if matches!(given, Given::Absent) {
            c.push(FieldError::missing(
                c.loc(name),
                self.echo.clone().into_owned(),
            ));
        }
        given
    }

    /// An optional field: absent or null is `None`.
    fn optional(&self, name: &str) -> Given<'_> {
        match self.get(name) {
            Given::Value(Value::Null) => Given::Absent,
            other => other,
        }
    }
}

const ENQUEUE_FIELDS: [&str; 7] = [
    "job_type",
    "payload",
    "priority",
    "run_after",
    "idempotency_key",
    "callback_url",
    "context_id",
];

fn read_enqueue_raw(raw: &RawValue, mut c: Checker) -> Validated<EnqueueRequest> {
    let Ok(fields) = serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()) else {
        as_object(&echo(raw), &mut c);
        return Err(c.errors);
    };
    let mut map = Map::new();
    let mut oversized = Vec::new();
    for name in ENQUEUE_FIELDS {
        let Some(text) = fields.get(name) else {
            continue;
        };
        let size = if name == "payload" {
            compact_len(text.get())
        } else {
            text.get().len()
        };
        let limit = if name == "payload" {
            MAX_PAYLOAD_BYTES
        } else {
            SMALL_FIELD_BYTES
        };
        if size > limit {
            oversized.push((name, size));
        } else {
            map.insert(
                name.to_string(),
                serde_json::from_str(text.get()).unwrap_or(Value::Null),
            );
        }
    }
    read_enqueue(
        Fields {
            map: Cow::Owned(map),
            echo: Cow::Owned(echo(raw)),
            oversized,
        },
        c,
    )
}

fn read_enqueue(fields: Fields<'_>, mut c: Checker) -> Validated<EnqueueRequest> {
    let too_large = |c: &mut Checker, name: &str, size: usize| {
        let error = if name == "payload" {
            format!("payload is {size} bytes of JSON; the limit is {MAX_PAYLOAD_BYTES}")
        } else {
            format!("{name} is {size} bytes, far longer than any valid value")
        };
        c.push(
            FieldError::new(
                "value_error",
                c.loc(name),
                format!("Value error, {error}"),
                json!({ "size_bytes": size }),
            )
            .with_ctx(json!({ "error": error })),
        );
    };

    let job_type = match fields.required(&mut c, "job_type") {
        Given::Absent => None,
        Given::TooLarge(size) => {
            too_large(&mut c, "job_type", size);
            None
        }
        Given::Value(v) => job_type(&mut c, v),
    };

    let payload = match fields.required(&mut c, "payload") {
        Given::Absent => None,
        Given::TooLarge(size) => {
            too_large(&mut c, "payload", size);
            None
        }
        Given::Value(Value::Object(p)) => {
            let size = serde_json::to_vec(p).map(|b| b.len()).unwrap_or(usize::MAX);
            if size > MAX_PAYLOAD_BYTES {
                too_large(&mut c, "payload", size);
                None
            } else if p.iter().any(|(k, v)| k.contains('\0') || value_has_nul(v)) {
                c.push(nul_error(c.loc("payload"), json!({ "size_bytes": size })));
                None
            } else {
                Some(p.clone())
            }
        }
        Given::Value(other) => {
            c.push(FieldError::new(
                "dict_type",
                c.loc("payload"),
                "Input should be a valid dictionary",
                other.clone(),
            ));
            None
        }
    };

    let priority = match fields.get("priority") {
        Given::Absent => Some(DEFAULT_PRIORITY),
        Given::TooLarge(size) => {
            too_large(&mut c, "priority", size);
            None
        }
        Given::Value(v) => c.int_in(c.loc("priority"), v, 0, MAX_PRIORITY),
    };

    let run_after = match fields.optional("run_after") {
        Given::Absent => Some(None),
        Given::TooLarge(size) => {
            too_large(&mut c, "run_after", size);
            None
        }
        Given::Value(v) => c.datetime(c.loc("run_after"), v).map(Some),
    };

    let idempotency_key = match fields.optional("idempotency_key") {
        Given::Absent => Some(None),
        Given::TooLarge(size) => {
            too_large(&mut c, "idempotency_key", size);
            None
        }
        Given::Value(v) => idempotency_key(&mut c, v).map(Some),
    };

    let callback_url = match fields.optional("callback_url") {
        Given::Absent => Some(None),
        Given::TooLarge(size) => {
            too_large(&mut c, "callback_url", size);
            None
        }
        Given::Value(v) => callback_url(&mut c, v).map(Some),
    };

    let context_id = match fields.optional("context_id") {
        Given::Absent => Some(None),
        Given::TooLarge(size) => {
            too_large(&mut c, "context_id", size);
            None
        }
        Given::Value(v) => bounded_string(&mut c, "context_id", v, MAX_CONTEXT_ID_CHARS).map(Some),
    };

    c.finish(|| EnqueueRequest {
        job_type: job_type.expect("checked"),
        payload: payload.expect("checked"),
        priority: priority.expect("checked"),
        run_after: run_after.expect("checked"),
        idempotency_key: idempotency_key.expect("checked"),
        callback_url: callback_url.expect("checked"),
        context_id: context_id.expect("checked"),
    })
}

/// Hosts an `http://` callback may name: the same machine only (the server must also allow
/// it by a setting); anything else must be `https://`.
pub const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

/// A webhook address: `https://host[:port]/path`, or `http://` to this machine; at most
/// 2,048 characters, no credentials, no spaces.
fn callback_url(c: &mut Checker, input: &Value) -> Option<String> {
    let loc = c.loc("callback_url");
    let Some(url) = input.as_str() else {
        c.push(FieldError::new(
            "url_type",
            loc,
            "URL input should be a string or URL",
            input.clone(),
        ));
        return None;
    };
    let problem = callback_problem(url);
    if let Some((kind, msg)) = problem {
        c.push(FieldError::new(kind, loc, msg, input.clone()));
        return None;
    }
    Some(url.to_string())
}

fn callback_problem(url: &str) -> Option<(&'static str, String)> {
    if url.chars().count() > MAX_CALLBACK_URL_CHARS {
        return Some((
            "url_too_long",
            format!("URL should have at most {MAX_CALLBACK_URL_CHARS} characters"),
        ));
    }
    let invalid = || {
        Some((
            "url_parsing",
            "Input should be a valid URL: https://host/path in ASCII, without spaces or credentials"
                .into(),
        ))
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return invalid();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // ASCII only, as RFC 3986 writes URLs: anything else must be percent-encoded.
    if url.chars().any(|ch| !ch.is_ascii_graphic()) || authority.contains('@') {
        return invalid();
    }
    let Some(host) = host_of(authority) else {
        return invalid();
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" if !is_internet_host(host) => Some((
            "url_host",
            "URL host should be a DNS name on the internet (like hooks.example.com) or a public IP address"
                .into(),
        )),
        "https" => None,
        "http" if LOOPBACK_HOSTS.contains(&host.to_ascii_lowercase().as_str()) => None,
        _ => Some((
            "url_scheme",
            "URL scheme should be 'https' (or 'http' to this machine: 127.0.0.1, localhost, [::1])"
                .into(),
        )),
    }
}

/// An IP address written plainly (whether it is public is the server's to judge), or a
/// dotted DNS name whose last label starts with a letter, as every top-level domain does. A
/// single label (`localhost`, `intranet`) names something on this machine's network, and
/// numbers in other forms (`2130706433`, `0x7f.1`) are addresses in disguise.
fn is_internet_host(host: &str) -> bool {
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    match name.rsplit_once('.') {
        Some((rest, tld)) => {
            !rest.is_empty()
                && tld.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.split('.').all(|label| !label.is_empty())
        }
        None => false,
    }
}

/// The host of `host[:port]` or `[v6][:port]`; `None` when it is not one.
pub fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let end = rest.find(']')? + 2;
            (&authority[..end], &authority[end..])
        }
        None => match authority.find(':') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, ""),
        },
    };
    let port_ok = port.is_empty()
        || (port.len() > 1
            && port.starts_with(':')
            && port[1..].chars().all(|c| c.is_ascii_digit())
            && port[1..].parse::<u16>().is_ok());
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c));
    (port_ok && host_ok).then_some(host)
}

fn idempotency_key(c: &mut Checker, input: &Value) -> Option<String> {
    bounded_string(c, "idempotency_key", input, MAX_IDEMPOTENCY_KEY_CHARS)
}

/// A string field of 1 to `max_chars` characters that a store can keep.
fn bounded_string(c: &mut Checker, name: &str, input: &Value, max_chars: usize) -> Option<String> {
    let loc = c.loc(name);
    let Some(text) = input.as_str() else {
        c.push(FieldError::new(
            "string_type",
            loc,
            "Input should be a valid string",
            input.clone(),
        ));
        return None;
    };
    c.storable(loc.clone(), text)?;
    let chars = text.chars().count();
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
    } else if chars > max_chars {
        c.push(
            FieldError::new(
                "string_too_long",
                loc,
                format!("String should have at most {max_chars} characters"),
                input.clone(),
            )
            .with_ctx(json!({ "max_length": max_chars })),
        );
        None
    } else {
        Some(text.to_owned())
    }
}

/// Reads a shared context: `name` (1–200 characters) and `text` (1 character to 1 MiB of
/// UTF-8), neither with a NUL.
pub fn parse_context_request(body: &Value) -> Validated<ContextRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };
    let name = c
        .required(map, body, "name")
        .and_then(|v| bounded_string(&mut c, "name", v, MAX_CONTEXT_NAME_CHARS));
    let text = match c.required(map, body, "text") {
        None => None,
        Some(Value::String(text)) if text.len() > MAX_CONTEXT_BYTES => {
            let error = format!(
                "text is {} bytes; the limit is {MAX_CONTEXT_BYTES}",
                text.len()
            );
            c.push(
                FieldError::new(
                    "value_error",
                    c.loc("text"),
                    format!("Value error, {error}"),
                    json!({ "size_bytes": text.len() }),
                )
                .with_ctx(json!({ "error": error })),
            );
            None
        }
        Some(v) => bounded_string(&mut c, "text", v, MAX_CONTEXT_BYTES),
    };
    c.finish(|| ContextRequest {
        name: name.expect("checked"),
        text: text.expect("checked"),
    })
}

/// Reads a share toggle: `shared`, a boolean.
pub fn parse_share_context(body: &Value) -> Validated<ShareContextRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };
    let shared = match c.required(map, body, "shared") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            c.push(FieldError::new(
                "bool_type",
                c.loc("shared"),
                "Input should be a valid boolean",
                other.clone(),
            ));
            None
        }
    };
    c.finish(|| ShareContextRequest {
        shared: shared.expect("checked"),
    })
}

/// Reads the list query: `status_filter` one of the job statuses, `limit` 1–1000 (50);
/// and, beyond the contract, `job_type`, `q` (search, at most 200 characters), `offset` (0)
/// and `cursor` (a page's `next_cursor`).
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
            "provider" => {
                query.provider = c.enum_of(
                    c.loc(name),
                    &input,
                    ProviderName::ALL,
                    ProviderName::as_str,
                    ProviderName::parse,
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
            "cursor" if !raw.is_empty() => {
                match ListCursor::decode(raw).filter(|_| !raw.contains('\0')) {
                    Some(cursor) => query.cursor = Some(cursor),
                    None => c.push(FieldError::new(
                        "value_error",
                        c.loc(name),
                        "Value error, not a cursor from a list's next_cursor",
                        input.clone(),
                    )),
                }
            }
            "q" => query.search = search_text(&mut c, name, raw),
            "batch_id" => query.batch_id = search_text(&mut c, name, raw),
            "error" => query.error = search_text(&mut c, name, raw),
            _ => {}
        }
    }
    c.finish(|| query)
}

/// A text to look for, trimmed: `None` when empty, an error past `MAX_SEARCH_CHARS`.
fn search_text(c: &mut Checker, name: &str, raw: &str) -> Option<String> {
    let text = c.storable(c.loc(name), raw)?.trim();
    if text.chars().count() > MAX_SEARCH_CHARS {
        c.push(
            FieldError::new(
                "string_too_long",
                c.loc(name),
                format!("String should have at most {MAX_SEARCH_CHARS} characters"),
                Value::String(raw.to_owned()),
            )
            .with_ctx(json!({ "max_length": MAX_SEARCH_CHARS })),
        );
        None
    } else {
        (!text.is_empty()).then(|| text.to_owned())
    }
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
    // Opaque to the reader: whether it is a preview of these options is the flush's to say.
    let preview_token = match field(map, "preview_token") {
        None => Some(None),
        Some(Value::String(token)) if token.chars().count() <= 200 => c
            .storable(c.loc("preview_token"), token)
            .map(|t| Some(t.to_owned())),
        Some(other) => {
            c.push(FieldError::new(
                "string_type",
                c.loc("preview_token"),
                "Input should be a preview's preview_token (a string of at most 200 characters)",
                other.clone(),
            ));
            None
        }
    };
    c.finish(|| FlushRequest {
        max_jobs: max_jobs.expect("checked"),
        job_types: job_types.expect("checked"),
        min_priority: min_priority.expect("checked"),
        preview_token: preview_token.expect("checked"),
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
        Some(Value::String(s)) => c.storable(c.loc("batch_id"), s).map(str::to_owned),
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
    let ids = job_ids(&mut c, map, body);
    c.finish(|| BulkCancelRequest {
        job_ids: ids.expect("checked"),
    })
}

/// Reads a retry body: `job_ids` as for a bulk cancel, and `confirm_rebill` (false).
pub fn parse_retry(body: &Value) -> Validated<RetryRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };
    let ids = job_ids(&mut c, map, body);
    let confirm_rebill = match map.get("confirm_rebill") {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            c.push(FieldError::new(
                "bool_type",
                c.loc("confirm_rebill"),
                "Input should be a valid boolean",
                other.clone(),
            ));
            None
        }
    };
    c.finish(|| RetryRequest {
        job_ids: ids.expect("checked"),
        confirm_rebill: confirm_rebill.expect("checked"),
    })
}

/// `job_ids`: a list of 1 to 1000 job ids.
fn job_ids(c: &mut Checker, map: &Map<String, Value>, body: &Value) -> Option<Vec<String>> {
    match c.required(map, body, "job_ids") {
        None => None,
        Some(Value::Array(items))
            if items.iter().all(Value::is_string)
                && (1..=MAX_BULK_CANCEL).contains(&items.len()) =>
        {
            let before = c.errors.len();
            let ids: Vec<String> = items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let loc = vec![json!("body"), json!("job_ids"), json!(i)];
                    c.storable(loc, v.as_str()?).map(String::from)
                })
                .collect();
            (c.errors.len() == before).then_some(ids)
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
    }
}

/// Reads a token request: `user` (1–64 characters) and `role` (`trader` or `admin`).
pub fn parse_create_token(body: &Value) -> Validated<CreateTokenRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };
    let user = match c.required(map, body, "user") {
        None => None,
        Some(Value::String(name))
            if (1..=64).contains(&name.trim().chars().count())
                && !name.chars().any(char::is_control) =>
        {
            Some(name.trim().to_string())
        }
        Some(other) => {
            c.push(FieldError::new(
                "string_type",
                c.loc("user"),
                "Input should be a name of 1 to 64 characters, without control characters",
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
/// Reads a context query: `include_text`, a boolean as pydantic reads one in a query
/// (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; false when absent).
pub fn parse_include_text<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Validated<bool> {
    let mut c = Checker::new("query");
    let mut include = false;
    for (name, raw) in pairs {
        if name != "include_text" {
            continue;
        }
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => include = true,
            "false" | "0" | "no" | "off" | "f" | "n" => include = false,
            _ => c.push(FieldError::new(
                "bool_parsing",
                c.loc(name),
                "Input should be a valid boolean, unable to interpret input",
                Value::String(raw.to_owned()),
            )),
        }
    }
    c.finish(|| include)
}

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
