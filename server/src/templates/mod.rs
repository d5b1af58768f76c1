//! Job types → Messages API requests: one template per type, with the answer's JSON schema
//! forced through tool use, so every result is a structured object the dashboard can render.

mod catalog;

use app::api::JobType;
use serde_json::{Value, json};

pub use catalog::{Template, template};

use crate::provider::{BatchRequest, ProviderError, valid_custom_id};

/// Anthropic adds a hidden system prompt of a few hundred tokens when tools are given.
const TOOL_OVERHEAD_TOKENS: i64 = 350;
/// Conservative characters per token for English and JSON (the real figure is about 3.5–4).
const CHARS_PER_TOKEN: i64 = 3;

/// A job rendered for a batch, with its local token estimate (input + max output).
#[derive(Clone, Debug)]
pub struct RenderedRequest {
    pub request: BatchRequest,
    pub estimated_tokens: i64,
    /// The prompt part of the estimate, and the output allowance.
    pub prompt_tokens: i64,
    pub max_tokens: i64,
    /// Size of the request as JSON, for the batch's 256 MB limit.
    pub bytes: usize,
}

pub fn schema(job_type: JobType) -> Value {
    (template(job_type).schema)()
}

/// The user message: the task, then the job's payload as JSON.
fn user_message(t: &Template, payload: &Value) -> String {
    let data = serde_json::to_string_pretty(payload).unwrap_or_else(|_| payload.to_string());
    format!(
        "{}\n\nInput data (JSON):\n{data}\n\nAnswer by calling the {} tool.",
        t.task, t.tool_name
    )
}

pub fn render(
    job_id: &str,
    job_type: JobType,
    payload: &Value,
    model: &str,
) -> Result<RenderedRequest, ProviderError> {
    if !valid_custom_id(job_id) {
        return Err(ProviderError::InvalidRequest(format!(
            "job id {job_id:?} is not a valid custom_id"
        )));
    }
    let t = template(job_type);
    let params = json!({
        "model": model,
        "max_tokens": t.max_tokens,
        "system": t.system,
        "messages": [{"role": "user", "content": user_message(&t, payload)}],
        "tools": [{"name": t.tool_name, "description": t.tool_description, "input_schema": (t.schema)()}],
        "tool_choice": {"type": "tool", "name": t.tool_name},
    });
    let estimated_tokens = estimate_tokens(&params);
    let request = BatchRequest::new(job_id, &params);
    let bytes = serde_json::to_vec(&request)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    Ok(RenderedRequest {
        estimated_tokens,
        prompt_tokens: estimated_tokens - t.max_tokens,
        max_tokens: t.max_tokens,
        request,
        bytes,
    })
}

/// Upper estimate of what a request will use: its prompt (system, messages, tools) at a
/// conservative characters-per-token rate, plus its `max_tokens`.
pub fn estimate_tokens(params: &Value) -> i64 {
    let prompt_chars: usize = ["system", "messages", "tools"]
        .iter()
        .filter_map(|k| params.get(*k))
        .map(|v| {
            v.as_str()
                .map_or_else(|| v.to_string().chars().count(), |s| s.chars().count())
        })
        .sum();
    let overhead = if params.get("tools").is_some() {
        TOOL_OVERHEAD_TOKENS
    } else {
        0
    };
    let prompt = (prompt_chars as i64 + CHARS_PER_TOKEN - 1) / CHARS_PER_TOKEN + overhead;
    prompt
        + params
            .get("max_tokens")
            .and_then(Value::as_i64)
            .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::examples::example_payload;

    #[test]
    fn every_job_type_renders_a_forced_tool_request() {
        for job_type in JobType::ALL {
            let rendered = render(
                "job-1",
                *job_type,
                &example_payload(*job_type),
                "claude-sonnet-4-5",
            )
            .unwrap();
            let p = &rendered.request.params_value();
            assert_eq!(p["tool_choice"]["type"], "tool");
            assert_eq!(p["tool_choice"]["name"], p["tools"][0]["name"]);
            assert_eq!(p["tools"][0]["input_schema"]["type"], "object");
            let text = p["messages"][0]["content"].as_str().unwrap();
            assert!(text.contains("Input data (JSON)"), "{job_type}");
            assert!(rendered.estimated_tokens > p["max_tokens"].as_i64().unwrap());
            assert!(rendered.bytes > 100);
        }
    }

    #[test]
    fn invalid_ids_are_refused_before_sending() {
        assert!(render(&"x".repeat(65), JobType::RiskReport, &json!({}), "m").is_err());
    }
}
