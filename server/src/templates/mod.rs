//! Job types → Messages API requests: one template per type, with the answer's JSON schema
//! forced through tool use, so every result is a structured object the dashboard can render.

mod catalog;

use std::sync::OnceLock;

use app::api::JobType;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

pub use catalog::{Template, template};

use crate::provider::BatchRequest;

/// Anthropic adds a hidden system prompt of a few hundred tokens when tools are given.
const TOOL_OVERHEAD_TOKENS: i64 = 350;
/// Conservative bytes per token for English and JSON (the real figure is about 3.5–4).
const BYTES_PER_TOKEN: i64 = 3;

/// A job rendered for a batch, with its local token estimate (input + max output).
#[derive(Clone, Debug)]
pub struct RenderedRequest {
    /// The Messages API parameters, compact JSON.
    pub params: String,
    pub estimated_tokens: i64,
    /// The prompt part of the estimate, and the output allowance.
    pub prompt_tokens: i64,
    pub max_tokens: i64,
    /// The most tokens the prompt can be: every byte of the request one token (a byte-level
    /// tokenizer never makes more tokens than bytes), plus the hidden tool prompt. What a
    /// budget's cost bound counts, so that no text, however strange, costs more than it.
    pub prompt_bound_tokens: i64,
}

impl RenderedRequest {
    /// As one request of a batch, for tools and tests (a flush writes `params` straight into
    /// the body).
    pub fn request(&self, custom_id: &str) -> BatchRequest {
        BatchRequest {
            custom_id: custom_id.to_string(),
            params: RawValue::from_string(self.params.clone())
                .unwrap_or_else(|_| RawValue::NULL.to_owned()),
        }
    }
}

pub fn schema(job_type: JobType) -> Value {
    (template(job_type).schema)()
}

/// Each job type's tool definition, serialized once.
fn tool(job_type: JobType) -> &'static RawValue {
    static TOOLS: OnceLock<Vec<Box<RawValue>>> = OnceLock::new();
    let tools = TOOLS.get_or_init(|| {
        JobType::ALL
            .iter()
            .map(|job_type| {
                let t = template(*job_type);
                let json = serde_json::json!({
                    "name": t.tool_name,
                    "description": t.tool_description,
                    "input_schema": (t.schema)(),
                });
                serde_json::value::to_raw_value(&json).expect("a tool definition serializes")
            })
            .collect()
    });
    let index = JobType::ALL
        .iter()
        .position(|t| *t == job_type)
        .expect("every job type is in ALL");
    &tools[index]
}

#[derive(Serialize)]
struct Params<'a> {
    model: &'a str,
    max_tokens: i64,
    system: &'a str,
    messages: [Message; 1],
    tools: [&'a RawValue; 1],
    tool_choice: ToolChoice<'a>,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: String,
}

#[derive(Serialize)]
struct ToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
}

/// Renders a job's request from its payload as stored (compact JSON text): the task, the
/// payload as it is (never re-indented: a deeply nested payload would grow many times), and
/// the answer's schema forced through tool use.
pub fn render(job_type: JobType, payload_json: &str, model: &str) -> RenderedRequest {
    let t = template(job_type);
    let content = format!(
        "{}\n\nInput data (JSON):\n{payload_json}\n\nAnswer by calling the {} tool.",
        t.task, t.tool_name
    );
    let params = serde_json::to_string(&Params {
        model,
        max_tokens: t.max_tokens,
        system: t.system,
        messages: [Message {
            role: "user",
            content,
        }],
        tools: [tool(job_type)],
        tool_choice: ToolChoice {
            kind: "tool",
            name: t.tool_name,
        },
    })
    .expect("request parameters serialize");
    let prompt_tokens = estimate_prompt_tokens(params.len(), true);
    RenderedRequest {
        estimated_tokens: prompt_tokens + t.max_tokens,
        prompt_tokens,
        max_tokens: t.max_tokens,
        prompt_bound_tokens: params.len() as i64 + TOOL_OVERHEAD_TOKENS,
        params,
    }
}

/// Upper estimate of a prompt's tokens from the size of its request (which also holds the
/// model name and a few keys, so it errs high), plus the hidden tool prompt.
pub fn estimate_prompt_tokens(request_bytes: usize, with_tools: bool) -> i64 {
    let overhead = if with_tools { TOOL_OVERHEAD_TOKENS } else { 0 };
    (request_bytes as i64 + BYTES_PER_TOKEN - 1) / BYTES_PER_TOKEN + overhead
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::examples::example_payload;

    #[test]
    fn every_job_type_renders_a_forced_tool_request() {
        for job_type in JobType::ALL {
            let payload = example_payload(*job_type).to_string();
            let rendered = render(*job_type, &payload, "claude-sonnet-4-5");
            let p: Value = serde_json::from_str(&rendered.params).unwrap();
            assert_eq!(p["tool_choice"]["type"], "tool");
            assert_eq!(p["tool_choice"]["name"], p["tools"][0]["name"]);
            assert_eq!(p["tools"][0]["input_schema"]["type"], "object");
            let text = p["messages"][0]["content"].as_str().unwrap();
            assert!(text.contains("Input data (JSON)"), "{job_type}");
            assert!(text.contains(&payload), "the payload as stored, compact");
            assert!(rendered.estimated_tokens > p["max_tokens"].as_i64().unwrap());
        }
    }

    #[test]
    fn deep_payloads_are_not_re_indented() {
        let mut deep = serde_json::json!(1);
        for _ in 0..120 {
            deep = serde_json::json!({ "k": [deep] });
        }
        let payload = deep.to_string();
        let rendered = render(JobType::RiskReport, &payload, "m");
        // The payload appears once, escaped as a JSON string: about its own size, not tens of times it.
        assert!(
            rendered.params.len() < payload.len() * 2 + 4096,
            "{} bytes for a {}-byte payload",
            rendered.params.len(),
            payload.len()
        );
    }
}
