//! Job types → Messages API requests: one template per type, with the answer's JSON schema
//! forced through tool use, so every result is a structured object the dashboard can render.
//!
//! Requests are shaped for the provider's cache: what is stable comes first (the tool, the
//! job type's system prompt, then the job's shared context), and the job's own payload last.
//! A `cache_control` breakpoint marks the end of the stable part when it reaches the model's
//! minimum cacheable length; below it a marker would do nothing, so none is written.

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

/// A shared context as a request carries it.
#[derive(Clone, Debug)]
pub struct SharedContext {
    pub id: String,
    pub name: String,
    pub text: std::sync::Arc<str>,
}

/// How long a cache write lasts. Five minutes costs 1.25× the input price and is refreshed
/// by every read; an hour costs 2× and pays only when the same prefix is read again more than
/// five minutes after its last read (`AI_BATCH_CACHE_TTL`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheTtl {
    #[default]
    #[value(name = "5m")]
    FiveMinutes,
    #[value(name = "1h")]
    Hour,
}

impl CacheTtl {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FiveMinutes => "5m",
            Self::Hour => "1h",
        }
    }
}

/// How one model's requests are marked: the write's time to live, and the shortest prefix
/// worth a marker (the model's minimum cacheable length).
#[derive(Clone, Copy, Debug)]
pub struct CachePlan {
    pub ttl: CacheTtl,
    pub min_tokens: i64,
}

impl CachePlan {
    /// Nothing marked (tools and tests that look at a request as such).
    pub const NONE: CachePlan = CachePlan {
        ttl: CacheTtl::FiveMinutes,
        min_tokens: i64::MAX,
    };
}

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
    /// Of those, the most the marked prefix can be (0 when nothing is marked): what a cache
    /// write may be billed for.
    pub cached_bound_tokens: i64,
    /// Requests with the same key share their marked prefix; a flush sends them together.
    pub cache_key: Option<String>,
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
    tools: [&'a RawValue; 1],
    tool_choice: ToolChoice<'a>,
    system: System<'a>,
    messages: [Message; 1],
}

/// The system prompt: plain text, or blocks when a context or a cache breakpoint is there.
#[derive(Serialize)]
#[serde(untagged)]
enum System<'a> {
    Text(&'a str),
    Blocks(Vec<SystemBlock<'a>>),
}

#[derive(Serialize)]
struct SystemBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<CacheControl>,
}

#[derive(Serialize)]
struct CacheControl {
    #[serde(rename = "type")]
    kind: &'static str,
    ttl: &'static str,
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

/// A context as the model reads it, after the job type's system prompt.
fn context_block(context: &SharedContext) -> String {
    format!(
        "Shared context \"{}\" (the same for many jobs; use it where it bears on the input data):\n\n{}",
        context.name, context.text
    )
}

/// Tokens of a text as Anthropic's tokenizer roughly counts them: about four ASCII characters
/// a token, every other byte a token. Used only to decide whether a prefix is long enough to
/// mark (a wrong guess costs nothing: a marker on a short prefix is ignored, and a long prefix
/// left unmarked is billed as plain input).
pub fn estimate_tokens(text: &str) -> i64 {
    let ascii = text.bytes().filter(u8::is_ascii).count() as i64;
    (ascii + 3) / 4 + (text.len() as i64 - ascii)
}

/// Renders a job's request from its payload as stored (compact JSON text): the tool, the
/// system prompt and the shared context first, marked for the cache when long enough, then
/// the task with the payload as it is (never re-indented: a deeply nested payload would grow
/// many times), and the answer's schema forced through tool use.
pub fn render(
    job_type: JobType,
    payload_json: &str,
    model: &str,
    context: Option<&SharedContext>,
    cache: &CachePlan,
) -> RenderedRequest {
    let t = template(job_type);
    let tool = tool(job_type);
    let content = format!(
        "{}\n\nInput data (JSON):\n{payload_json}\n\nAnswer by calling the {} tool.",
        t.task, t.tool_name
    );
    let context_text = context.map(context_block);
    // The stable prefix: what precedes the breakpoint (the hidden tool prompt counts too).
    let prefix_tokens = TOOL_OVERHEAD_TOKENS
        + estimate_tokens(tool.get())
        + estimate_tokens(t.system)
        + context_text.as_deref().map_or(0, estimate_tokens);
    let marked = prefix_tokens >= cache.min_tokens;
    let cache_control = || CacheControl {
        kind: "ephemeral",
        ttl: cache.ttl.as_str(),
    };
    let system = match (&context_text, marked) {
        (None, false) => System::Text(t.system),
        (None, true) => System::Blocks(vec![SystemBlock {
            kind: "text",
            text: t.system.into(),
            cache_control: Some(cache_control()),
        }]),
        (Some(text), _) => System::Blocks(vec![
            SystemBlock {
                kind: "text",
                text: t.system.into(),
                cache_control: None,
            },
            SystemBlock {
                kind: "text",
                text: text.as_str().into(),
                cache_control: marked.then(cache_control),
            },
        ]),
    };
    let params = serde_json::to_string(&Params {
        model,
        max_tokens: t.max_tokens,
        tools: [tool],
        tool_choice: ToolChoice {
            kind: "tool",
            name: t.tool_name,
        },
        system,
        messages: [Message {
            role: "user",
            content,
        }],
    })
    .expect("request parameters serialize");
    let prompt_tokens = estimate_prompt_tokens(params.len(), true);
    // The marked prefix is the request but for the message (bytes as a token bound).
    let prefix_bytes =
        tool.get().len() + t.system.len() + context_text.as_deref().map_or(0, str::len) + 128;
    RenderedRequest {
        estimated_tokens: prompt_tokens + t.max_tokens,
        prompt_tokens,
        max_tokens: t.max_tokens,
        prompt_bound_tokens: params.len() as i64 + TOOL_OVERHEAD_TOKENS,
        cached_bound_tokens: if marked {
            prefix_bytes as i64 + TOOL_OVERHEAD_TOKENS
        } else {
            0
        },
        cache_key: marked.then(|| {
            format!(
                "{model}/{}/{}",
                job_type.as_str(),
                context.map_or("", |c| c.id.as_str())
            )
        }),
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

    const NO_CACHE: CachePlan = CachePlan::NONE;

    fn context(words: usize) -> SharedContext {
        SharedContext {
            id: "ctx_1".into(),
            name: "Market brief".into(),
            text: "rates steady, oil up, tech earnings beat "
                .repeat(words / 7)
                .into(),
        }
    }

    #[test]
    fn a_context_comes_after_the_system_prompt_and_is_marked_once_long_enough() {
        let plan = CachePlan {
            ttl: CacheTtl::Hour,
            min_tokens: 1024,
        };
        let payload = example_payload(JobType::RiskReport).to_string();
        let long = render(
            JobType::RiskReport,
            &payload,
            "m",
            Some(&context(20_000)),
            &plan,
        );
        let p: Value = serde_json::from_str(&long.params).unwrap();
        let system = p["system"].as_array().expect("blocks");
        assert_eq!(system.len(), 2);
        assert!(system[0].get("cache_control").is_none());
        assert!(system[1]["text"].as_str().unwrap().contains("Market brief"));
        assert_eq!(
            system[1]["cache_control"],
            serde_json::json!({"type": "ephemeral", "ttl": "1h"})
        );
        assert!(long.cache_key.is_some());
        assert!(
            long.cached_bound_tokens > 20_000 / 7 * 40 / 4,
            "{}",
            long.cached_bound_tokens
        );
        assert!(long.cached_bound_tokens < long.prompt_bound_tokens);
        // The payload comes last, after everything marked.
        let marker = long.params.find("cache_control").unwrap();
        assert!(long.params.find("\"messages\"").unwrap() > marker);
        assert!(long.params.find("\"tools\"").unwrap() < marker);
    }

    #[test]
    fn a_prefix_under_the_models_minimum_is_not_marked() {
        let plan = CachePlan {
            ttl: CacheTtl::FiveMinutes,
            min_tokens: 4096,
        };
        let payload = example_payload(JobType::SentimentAnalysis).to_string();
        for ctx in [None, Some(context(70))] {
            let short = render(
                JobType::SentimentAnalysis,
                &payload,
                "m",
                ctx.as_ref(),
                &plan,
            );
            assert!(!short.params.contains("cache_control"), "{}", short.params);
            assert_eq!((short.cached_bound_tokens, short.cache_key), (0, None));
        }
        // The same short context on a model that caches from fewer tokens is still too short.
        let small = CachePlan {
            ttl: CacheTtl::FiveMinutes,
            min_tokens: 1024,
        };
        let short = render(
            JobType::SentimentAnalysis,
            &payload,
            "m",
            Some(&context(70)),
            &small,
        );
        assert!(!short.params.contains("cache_control"));
    }

    #[test]
    fn every_job_type_renders_a_forced_tool_request() {
        for job_type in JobType::ALL {
            let payload = example_payload(*job_type).to_string();
            let rendered = render(*job_type, &payload, "claude-sonnet-4-5", None, &NO_CACHE);
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
        let rendered = render(JobType::RiskReport, &payload, "m", None, &NO_CACHE);
        // The payload appears once, escaped as a JSON string: about its own size, not tens of times it.
        assert!(
            rendered.params.len() < payload.len() * 2 + 4096,
            "{} bytes for a {}-byte payload",
            rendered.params.len(),
            payload.len()
        );
    }
}
