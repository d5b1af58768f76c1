//! Deterministic answers derived from a request: the same request always gets the same result.
//! A forced tool gets an `input` valid against its schema, with values taken from the job's
//! payload where names match, so results look like the job they answer.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::provider::{BatchResult, ErrorResponse};

/// Answers one request of a batch, or says why the request is invalid.
pub fn answer(custom_id: &str, params: &Value, known_models: &[String]) -> BatchResult {
    if let Err(message) = check_params(params, known_models) {
        return BatchResult::Errored {
            error: ErrorResponse::new("invalid_request_error", message),
        };
    }
    let prompt = prompt_text(params);
    let forced_tool = forced_tool(params);
    let (content, stop_reason, output_text) = match forced_tool {
        Some(tool) => {
            let context = payload_context(&last_user_text(params));
            let input = generate(
                &tool["input_schema"],
                "",
                &context,
                &mut Seed::new(custom_id),
            );
            let name = tool["name"].clone();
            let text = input.to_string();
            (
                json!([{"type": "tool_use", "id": format!("toolu_{}", short_hash(custom_id)), "name": name, "input": input}]),
                "tool_use",
                text,
            )
        }
        None => {
            let excerpt: String = last_user_text(params).chars().take(160).collect();
            let text = format!("Emulated answer. You asked: {excerpt}");
            (json!([{"type": "text", "text": text}]), "end_turn", text)
        }
    };
    let max_tokens = params["max_tokens"].as_i64().unwrap_or(1);
    let message = json!({
        "id": format!("msg_{}", short_hash(&format!("msg-{custom_id}"))),
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": params["model"],
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": count_tokens(&prompt),
            "output_tokens": count_tokens(&output_text).min(max_tokens),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0
        }
    });
    BatchResult::Succeeded { message }
}

/// The checks Anthropic makes of a request's parameters, as far as the emulator needs them.
fn check_params(params: &Value, known_models: &[String]) -> Result<(), String> {
    let Some(params) = params.as_object() else {
        return Err("params: Input should be an object".into());
    };
    match params.get("model").and_then(Value::as_str) {
        None => return Err("model: Field required".into()),
        Some(model) if !known_models.iter().any(|m| m == model) => {
            return Err(format!("model: {model}"));
        }
        Some(_) => {}
    }
    match params.get("max_tokens").and_then(Value::as_i64) {
        Some(n) if n >= 1 => {}
        Some(_) => return Err("max_tokens: Input should be greater than or equal to 1".into()),
        None => return Err("max_tokens: Field required".into()),
    }
    match params.get("messages").and_then(Value::as_array) {
        Some(messages) if !messages.is_empty() => Ok(()),
        Some(_) => Err("messages: at least one message is required".into()),
        None => Err("messages: Field required".into()),
    }
}

fn forced_tool(params: &Value) -> Option<&Value> {
    let choice = params.get("tool_choice")?;
    if choice["type"] != "tool" {
        return None;
    }
    params
        .get("tools")?
        .as_array()?
        .iter()
        .find(|t| t["name"] == choice["name"])
}

/// Everything the model would read: system prompt, messages and tools.
fn prompt_text(params: &Value) -> String {
    let mut text = String::new();
    for key in ["system", "messages", "tools"] {
        match params.get(key) {
            Some(Value::String(s)) => text.push_str(s),
            Some(other) => text.push_str(&other.to_string()),
            None => {}
        }
    }
    text
}

fn last_user_text(params: &Value) -> String {
    let last = params["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| &m["content"]);
    match last {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// About four characters per token for ASCII text, as English averages; every byte of any
/// other character a token of its own, the worst a byte-level tokenizer does (emoji and CJK
/// really take one to three tokens a character). So traders' adversarial text costs here at
/// least what it may cost at Anthropic, and the budget's bound is tested against that.
pub fn count_tokens(text: &str) -> i64 {
    let ascii = text.bytes().filter(u8::is_ascii).count() as i64;
    let other = text.len() as i64 - ascii;
    // At least one token, like any real answer.
    ((ascii + 3) / 4 + other).max(1)
}

/// Values of the JSON object after "Input data (JSON):" in the user message, by field name
/// (first one wins).
fn payload_context(prompt: &str) -> HashMap<String, Value> {
    let mut context = HashMap::new();
    let start = prompt
        .find("Input data (JSON):")
        .and_then(|i| prompt[i..].find('{').map(|j| i + j));
    if let Some(start) = start {
        let mut stream = serde_json::Deserializer::from_str(&prompt[start..]).into_iter::<Value>();
        if let Some(Ok(value)) = stream.next() {
            flatten(&value, &mut context);
        }
    }
    context
}

fn flatten(value: &Value, into: &mut HashMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                into.entry(k.clone()).or_insert_with(|| v.clone());
                flatten(v, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| flatten(i, into)),
        _ => {}
    }
}

/// A deterministic sequence of numbers from a request's id.
struct Seed(u64);

impl Seed {
    fn new(text: &str) -> Self {
        let digest = Sha256::digest(text.as_bytes());
        Seed(u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")))
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn generate(
    schema: &Value,
    name: &str,
    context: &HashMap<String, Value>,
    seed: &mut Seed,
) -> Value {
    let from_payload = context.get(name);
    if let Some(choices) = schema
        .get("enum")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        return match from_payload {
            Some(v) if choices.contains(v) => v.clone(),
            _ => choices[(seed.next() % choices.len() as u64) as usize].clone(),
        };
    }
    let min = schema.get("minimum").and_then(Value::as_f64);
    let max = schema.get("maximum").and_then(Value::as_f64);
    match schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string")
    {
        "object" => {
            let mut out = Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in properties {
                    out.insert(key.clone(), generate(sub, key, context, seed));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let items = schema
                .get("items")
                .cloned()
                .unwrap_or(json!({"type": "string"}));
            let lo = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1);
            let hi = schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(3)
                .max(lo);
            let singular = name.trim_end_matches('s');
            match from_payload.and_then(Value::as_array) {
                Some(source) if !source.is_empty() => source
                    .iter()
                    .take(hi as usize)
                    .map(|element| {
                        let mut scoped = context.clone();
                        if let Value::Object(fields) = element {
                            scoped.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                        } else {
                            scoped.insert(singular.to_string(), element.clone());
                        }
                        generate(&items, singular, &scoped, seed)
                    })
                    .collect(),
                _ => {
                    let count = lo.max(2).min(hi);
                    (0..count)
                        .map(|_| generate(&items, singular, context, seed))
                        .collect()
                }
            }
        }
        "integer" => match from_payload.and_then(Value::as_i64) {
            Some(n) => json!(clamp(n as f64, min, max) as i64),
            None => json!(clamp((seed.next() % 100) as f64, min, max) as i64),
        },
        "number" => match from_payload.and_then(Value::as_f64) {
            Some(n) => json!(clamp(n, min, max)),
            None => {
                let (lo, hi) = (min.unwrap_or(0.0), max.unwrap_or(100.0));
                let fraction = (seed.next() % 1000) as f64 / 1000.0;
                json!(((lo + (hi - lo) * fraction) * 100.0).round() / 100.0)
            }
        },
        "boolean" => from_payload
            .filter(|v| v.is_boolean())
            .cloned()
            .unwrap_or(json!(seed.next().is_multiple_of(2))),
        _ => match from_payload {
            Some(Value::String(s)) => json!(s),
            _ => json!(phrase(name, context, seed)),
        },
    }
}

fn clamp(n: f64, min: Option<f64>, max: Option<f64>) -> f64 {
    let n = min.map_or(n, |m| n.max(m));
    max.map_or(n, |m| n.min(m))
}

/// A plausible sentence for a text field, naming a ticker from the payload when there is one.
fn phrase(name: &str, context: &HashMap<String, Value>, seed: &mut Seed) -> String {
    let subject = [
        "ticker",
        "portfolio_id",
        "model_name",
        "strategy",
        "account",
    ]
    .iter()
    .find_map(|k| context.get(*k).and_then(Value::as_str))
    .unwrap_or("the portfolio");
    if name.contains("ticker") {
        return subject.to_string();
    }
    const NOTES: [&str; 4] = [
        "holds up against the stated data",
        "deserves a closer look next review",
        "is the main driver this period",
        "stays within the usual range",
    ];
    format!(
        "{} for {subject} {}",
        name.replace('_', " "),
        NOTES[(seed.next() % 4) as usize]
    )
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_schema;
    use crate::templates;
    use app::api::JobType;
    use app::api::examples::example_payload;

    fn models() -> Vec<String> {
        vec!["claude-sonnet-4-5".to_string()]
    }

    #[test]
    fn forced_tools_get_schema_valid_input_drawn_from_the_payload() {
        for job_type in JobType::ALL {
            let rendered = templates::render(
                *job_type,
                &example_payload(*job_type).to_string(),
                "claude-sonnet-4-5",
                None,
                &templates::CachePlan::NONE,
            );
            let BatchResult::Succeeded { message } = answer(
                "job-1",
                &rendered.request("job-1").params_value(),
                &models(),
            ) else {
                panic!("{job_type} errored");
            };
            let input = &message["content"][0]["input"];
            json_schema::validate(&templates::schema(*job_type), input)
                .unwrap_or_else(|e| panic!("{job_type}: {e}"));
            assert_eq!(message["stop_reason"], "tool_use");
            let used = message["usage"]["input_tokens"].as_i64().unwrap()
                + message["usage"]["output_tokens"].as_i64().unwrap();
            assert!(
                used <= rendered.estimated_tokens,
                "{job_type}: {used} > {}",
                rendered.estimated_tokens
            );
        }
        let rendered = templates::render(
            JobType::SentimentAnalysis,
            &example_payload(JobType::SentimentAnalysis).to_string(),
            "claude-sonnet-4-5",
            None,
            &templates::CachePlan::NONE,
        );
        let params = rendered.request("j").params_value();
        let BatchResult::Succeeded { message } = answer("j", &params, &models()) else {
            panic!()
        };
        assert_eq!(
            message["content"][0]["input"]["ticker"], "NVDA",
            "values come from the payload"
        );
        let again = answer("j", &params, &models());
        assert_eq!(again, BatchResult::Succeeded { message }, "deterministic");
    }

    #[test]
    fn invalid_params_are_errored_results() {
        for params in [
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []}),
            json!({"model": "claude-sonnet-4-5", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "gpt-4", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
        ] {
            match answer("x", &params, &models()) {
                BatchResult::Errored { error } => {
                    assert_eq!(error.error.kind, "invalid_request_error")
                }
                other => panic!("{params}: {other:?}"),
            }
        }
    }

    #[test]
    fn plain_requests_get_text() {
        let params = json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "Summarise AAPL"}]});
        let BatchResult::Succeeded { message } = answer("p", &params, &models()) else {
            panic!()
        };
        assert_eq!(message["content"][0]["type"], "text");
        assert!(
            message["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("Summarise AAPL")
        );
        assert_eq!(message["stop_reason"], "end_turn");
    }
}
