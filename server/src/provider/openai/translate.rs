//! The batch loop speaks Anthropic's shapes; OpenAI's are translated here, both ways:
//! a rendered request (Messages parameters with a forced tool) becomes a Chat Completions
//! body with a strict JSON-schema `response_format`; an OpenAI batch becomes a
//! `MessageBatch`; an output or error line becomes a result line with Anthropic's `usage`
//! names (`prompt_tokens` less `cached_tokens` as `input_tokens`, `cached_tokens` as
//! `cache_read_input_tokens`: OpenAI charges nothing extra to write its cache).

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::wire::{Batch, BatchStatus, OutputLine};
use crate::provider::results::{RawLine, salvage};
use crate::provider::{
    BatchResult, ErrorResponse, MessageBatch, ProcessingStatus, ProviderError, RequestCounts,
    ResultItem, ResultLine, UnreadableLine,
};

/// A Chat Completions body for Messages parameters: the system prompt first (so the stable
/// prefix OpenAI caches by itself comes first), the user's message, and the forced tool's
/// schema as a strict structured output.
pub fn chat_body(params: &Value) -> Result<Value, String> {
    let model = params["model"].as_str().ok_or("model: Field required")?;
    let mut messages = Vec::new();
    let system = text_of(&params["system"]);
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in params["messages"]
        .as_array()
        .ok_or("messages: Field required")?
    {
        messages.push(json!({"role": message["role"], "content": text_of(&message["content"])}));
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_completion_tokens": params["max_tokens"],
    });
    if let Some(tool) = forced_tool(params) {
        let mut format = Map::new();
        format.insert("name".into(), tool["name"].clone());
        if let Some(description) = tool.get("description") {
            format.insert("description".into(), description.clone());
        }
        format.insert("schema".into(), strict_schema(&tool["input_schema"]));
        format.insert("strict".into(), Value::Bool(true));
        body["response_format"] = json!({"type": "json_schema", "json_schema": format});
    }
    Ok(body)
}

/// Text of a string or of content blocks, blocks joined by a blank line.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

fn forced_tool(params: &Value) -> Option<&Value> {
    let choice = params.get("tool_choice")?;
    params
        .get("tools")?
        .as_array()?
        .iter()
        .find(|t| t["name"] == choice["name"])
}

/// A schema as strict mode accepts it: every object closed, every property required (an
/// optional one may be `null` instead).
pub fn strict_schema(schema: &Value) -> Value {
    let Value::Object(object) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        let value = match key.as_str() {
            "properties" => Value::Object(
                value
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(name, prop)| (name.clone(), strict_schema(prop)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" => strict_schema(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if let Some(props) = out.get("properties").and_then(Value::as_object).cloned() {
        let required: Vec<String> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut strict_props = Map::new();
        for (name, prop) in props {
            let prop = if required.contains(&name) {
                prop
            } else {
                nullable(prop)
            };
            strict_props.insert(name, prop);
        }
        out.insert(
            "required".into(),
            Value::Array(strict_props.keys().cloned().map(Value::String).collect()),
        );
        out.insert("properties".into(), Value::Object(strict_props));
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

fn nullable(mut prop: Value) -> Value {
    match prop.get("type").cloned() {
        Some(Value::String(t)) => prop["type"] = json!([t, "null"]),
        Some(Value::Array(mut types)) if !types.contains(&json!("null")) => {
            types.push(json!("null"));
            prop["type"] = Value::Array(types);
        }
        _ => {}
    }
    prop
}

fn at(seconds: Option<i64>) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(seconds?, 0).single()
}

/// An OpenAI batch as the batch loop reads batches. Its counts settle as Anthropic's do: at
/// the end, what neither completed nor failed was refused, cancelled or expired (in a batch
/// that completed, its requests' own expiries). They always add up to OpenAI's `total`: a
/// read of the results is complete only with that many lines.
pub fn message_batch(batch: &Batch) -> MessageBatch {
    let counts = batch.request_counts.unwrap_or_default();
    let ended = batch.status.is_final();
    let rest = (counts.total - counts.completed - counts.failed).max(0);
    let rest_when = |this: bool| if ended && this { rest } else { 0 };
    let (refused, cancelled) = (
        batch.status == BatchStatus::Failed,
        batch.status == BatchStatus::Cancelled,
    );
    let request_counts = RequestCounts {
        processing: if ended { 0 } else { rest },
        succeeded: counts.completed,
        errored: counts.failed + rest_when(refused),
        canceled: rest_when(cancelled),
        expired: rest_when(!refused && !cancelled),
    };
    let created_at = at(Some(batch.created_at)).unwrap_or_else(Utc::now);
    MessageBatch {
        id: batch.id.clone(),
        kind: "message_batch".into(),
        processing_status: match batch.status {
            s if s.is_final() => ProcessingStatus::Ended,
            BatchStatus::Cancelling => ProcessingStatus::Canceling,
            _ => ProcessingStatus::InProgress,
        },
        request_counts,
        ended_at: at(batch
            .completed_at
            .or(batch.failed_at)
            .or(batch.expired_at)
            .or(batch.cancelled_at))
        .filter(|_| ended),
        created_at,
        expires_at: at(batch.expires_at).unwrap_or(created_at + chrono::Duration::hours(24)),
        archived_at: None,
        cancel_initiated_at: at(batch.cancelling_at),
        results_url: None,
        label: batch.label().map(str::to_owned),
    }
}

/// Anthropic's `usage` names for OpenAI's usage object.
pub fn usage(openai: &Value) -> Value {
    let prompt = openai["prompt_tokens"].as_i64().unwrap_or(0);
    let cached = openai["prompt_tokens_details"]["cached_tokens"]
        .as_i64()
        .unwrap_or(0)
        .clamp(0, prompt.max(0));
    json!({
        "input_tokens": prompt - cached,
        "output_tokens": openai["completion_tokens"].as_i64().unwrap_or(0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    })
}

/// A completion as a message: the structured answer as the forced tool's input when it is a
/// JSON object, the text otherwise.
fn message(body: &Value) -> Value {
    let choice = &body["choices"][0];
    let text = choice["message"]["content"]
        .as_str()
        .or_else(|| choice["message"]["refusal"].as_str())
        .unwrap_or_default();
    let content = match serde_json::from_str::<Value>(text) {
        Ok(input @ Value::Object(_)) => {
            json!([{"type": "tool_use", "id": body["id"], "name": "structured_output", "input": input}])
        }
        _ => json!([{"type": "text", "text": text}]),
    };
    json!({
        "id": body["id"],
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": if choice["finish_reason"] == "length" { "max_tokens" } else { "end_turn" },
        "usage": usage(&body["usage"]),
    })
}

/// An output or error file's line as a result.
pub fn result_line(line: OutputLine) -> ResultLine {
    let result = match (&line.response, &line.error) {
        (Some(response), _) if response.status_code == 200 => BatchResult::Succeeded {
            message: message(&response.body),
        },
        (Some(response), _) => {
            let error = &response.body["error"];
            BatchResult::Errored {
                error: ErrorResponse::new(
                    error["type"].as_str().unwrap_or("api_error"),
                    error["message"]
                        .as_str()
                        .unwrap_or("OpenAI answered this request with an error"),
                ),
            }
        }
        (None, Some(error)) => match error.code.as_deref() {
            Some("batch_expired") => BatchResult::Expired,
            Some("batch_cancelled") => BatchResult::Canceled,
            code => BatchResult::Errored {
                error: ErrorResponse::new(
                    code.unwrap_or("api_error"),
                    error.message.clone().unwrap_or_default(),
                ),
            },
        },
        (None, None) => BatchResult::Errored {
            error: ErrorResponse::new(
                "api_error",
                "the line holds neither a response nor an error",
            ),
        },
    };
    ResultLine {
        custom_id: line.custom_id,
        result,
    }
}

/// One raw line of an output or error file as an item; a bad line keeps what can be read of
/// it (its `custom_id`, whether it succeeded, its usage in Anthropic's names).
pub(crate) fn read_output_line(
    raw: RawLine,
    max_len: usize,
) -> Option<Result<ResultItem, ProviderError>> {
    let (head, tail, reason) = match raw {
        RawLine::Whole(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => return None,
        RawLine::Whole(bytes) => match serde_json::from_slice::<OutputLine>(&bytes) {
            Ok(line) if crate::provider::valid_custom_id(&line.custom_id) => {
                return Some(Ok(ResultItem::Line(result_line(line))));
            }
            Ok(_) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                (
                    text.clone(),
                    text,
                    "its output line names no valid custom_id".to_string(),
                )
            }
            Err(e) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                (
                    text.clone(),
                    text,
                    format!("its output line is not a readable result ({e})"),
                )
            }
        },
        RawLine::Long { head, tail, len } => (
            String::from_utf8_lossy(&head).into_owned(),
            String::from_utf8_lossy(&tail).into_owned(),
            format!("its output line is {len} bytes, past the {max_len}-byte limit"),
        ),
        RawLine::Unterminated => {
            return Some(Err(ProviderError::StreamCut(
                "the output file ended in the middle of a line".into(),
            )));
        }
    };
    Some(Ok(ResultItem::Unreadable(salvaged(&head, &tail, reason))))
}

fn salvaged(head: &str, tail: &str, reason: String) -> UnreadableLine {
    let mut line = salvage(head, tail, reason);
    let compact: String = head.chars().filter(|c| !c.is_whitespace()).collect();
    line.result_type = if compact.contains("\"status_code\":200") {
        Some("succeeded".into())
    } else if compact.contains("\"error\":{") {
        Some("errored".into())
    } else {
        None
    };
    line.usage = line.usage.map(|u| usage(&u));
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::openai::wire::{OutputError, OutputResponse};

    #[test]
    fn a_forced_tool_becomes_a_strict_json_schema() {
        let params = json!({
            "model": "gpt-4.1-mini", "max_tokens": 300,
            "system": [{"type": "text", "text": "You are careful."}, {"type": "text", "text": "Context.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "Rate NVDA."}],
            "tools": [{"name": "record", "description": "Record it.", "input_schema": {
                "type": "object", "required": ["score"],
                "properties": {"score": {"type": "number"}, "notes": {"type": "string"},
                               "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}}}}}],
            "tool_choice": {"type": "tool", "name": "record"}
        });
        let body = chat_body(&params).unwrap();
        assert_eq!(
            body["messages"][0]["content"],
            "You are careful.\n\nContext."
        );
        assert_eq!(body["messages"][1]["content"], "Rate NVDA.");
        assert_eq!(body["max_completion_tokens"], 300);
        let format = &body["response_format"]["json_schema"];
        assert_eq!(format["strict"], true);
        let schema = &format["schema"];
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], json!(["items", "notes", "score"]));
        assert_eq!(
            schema["properties"]["notes"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(schema["properties"]["score"]["type"], "number");
        let inner = &schema["properties"]["items"]["items"];
        assert_eq!(inner["additionalProperties"], false);
        assert_eq!(inner["required"], json!(["a"]));
    }

    #[test]
    fn usage_takes_cached_tokens_out_of_the_prompt() {
        let u = usage(&json!({"prompt_tokens": 2000, "completion_tokens": 50,
            "prompt_tokens_details": {"cached_tokens": 1536}}));
        assert_eq!(
            u,
            json!({"input_tokens": 464, "output_tokens": 50, "cache_read_input_tokens": 1536, "cache_creation_input_tokens": 0})
        );
        let odd = usage(&json!({"prompt_tokens": 10, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 99}}));
        assert_eq!(
            odd["input_tokens"], 0,
            "cached tokens never exceed the prompt"
        );
    }

    #[test]
    fn output_and_error_lines_become_results() {
        let ok = OutputLine {
            id: Some("batch_req_1".into()),
            custom_id: "a".into(),
            response: Some(OutputResponse {
                status_code: 200,
                request_id: None,
                body: json!({"id": "chatcmpl-1", "model": "gpt-4.1-mini",
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "{\"score\": 7}"}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 5}}),
            }),
            error: None,
        };
        let BatchResult::Succeeded { message } = result_line(ok).result else {
            panic!()
        };
        assert_eq!(message["content"][0]["input"], json!({"score": 7}));
        assert_eq!(message["usage"]["input_tokens"], 100);
        let expired = OutputLine {
            id: None,
            custom_id: "b".into(),
            response: None,
            error: Some(OutputError {
                code: Some("batch_expired".into()),
                message: Some(
                    "This request could not be executed before the completion window expired."
                        .into(),
                ),
            }),
        };
        assert_eq!(result_line(expired).result, BatchResult::Expired);
    }

    #[test]
    fn an_ended_batchs_counts_add_up_to_its_total() {
        let batch = |status: &str, total: i64, completed: i64, failed: i64| {
            message_batch(
                &serde_json::from_value(json!({
                    "id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions",
                    "input_file_id": "file_1", "completion_window": "24h", "status": status,
                    "created_at": 1_700_000_000,
                    "request_counts": {"total": total, "completed": completed, "failed": failed}
                }))
                .unwrap(),
            )
            .request_counts
        };
        // A completed batch whose error file also holds requests that expired: a read that
        // ends two lines short must not pass for a whole one.
        let completed = batch("completed", 10, 7, 1);
        assert_eq!((completed.total(), completed.expired), (10, 2));
        for status in ["failed", "cancelled", "expired"] {
            assert_eq!(batch(status, 10, 7, 1).total(), 10, "{status}");
        }
        let running = batch("in_progress", 10, 7, 1);
        assert_eq!((running.total(), running.processing), (10, 2));
    }

    #[test]
    fn a_bad_output_line_keeps_its_id_and_its_bill() {
        let raw = r#"{"custom_id":"job-1","response":{"status_code":200,"body":{"choices":[NaN],"usage":{"prompt_tokens":40,"completion_tokens":2}}}}"#;
        let item = read_output_line(RawLine::Whole(raw.as_bytes().into()), 1 << 20)
            .unwrap()
            .unwrap();
        let ResultItem::Unreadable(line) = item else {
            panic!("{item:?}")
        };
        assert_eq!(line.custom_id.as_deref(), Some("job-1"));
        assert_eq!(line.result_type.as_deref(), Some("succeeded"));
        assert_eq!(line.usage.unwrap()["input_tokens"], 40);
    }
}
