//! What our clients send, checked against each provider's own OpenAPI description (copied
//! unmodified into `end2end/sdk/`): every job type, with and without a cached shared context,
//! as the emulator received it.

use std::sync::Arc;
use std::time::Duration;

use ai_batch::emulator::{self, Faults, Settings};
use ai_batch::provider::{
    AnthropicClient, BatchBody, BatchRequest, ClientConfig, OpenAiClient, Provider,
};
use ai_batch::templates::{self, CachePlan, CacheTtl, SharedContext};
use app::api::JobType;
use app::api::examples::example_payload;
use serde_json::{Value, json};

const SPECS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/sdk");

fn spec(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{SPECS}/{name}")).expect("the spec is there");
    serde_json::from_str(&text).expect("the spec is JSON")
}

/// A validator for one of the spec's component schemas, its references resolved in the spec.
fn validator(spec: &Value, schema: &str) -> jsonschema::Validator {
    let root = json!({
        "$ref": format!("#/components/schemas/{schema}"),
        "components": spec["components"],
    });
    jsonschema::draft202012::new(&root).expect("the schema compiles")
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{instance:#}");
}

/// Every job type rendered for `model`: plain, and with a shared context long enough to be
/// marked for the cache (an hour's time to live).
fn requests(model: &str) -> Vec<BatchRequest> {
    let context = SharedContext {
        id: "ctx_1".into(),
        name: "Desk playbook".into(),
        text: Arc::from("Rules of the desk, the same for every job. ".repeat(800)),
    };
    let cached = CachePlan {
        ttl: CacheTtl::Hour,
        min_tokens: 1024,
    };
    let mut out = Vec::new();
    for (i, &job_type) in JobType::ALL.iter().enumerate() {
        let payload = example_payload(job_type).to_string();
        let plain = templates::render(job_type, &payload, model, None, &CachePlan::NONE);
        out.push(plain.request(&format!("plain-{i}")));
        let with_context = templates::render(job_type, &payload, model, Some(&context), &cached);
        assert!(with_context.params.contains("cache_control"));
        out.push(with_context.request(&format!("cached-{i}")));
    }
    out
}

pub async fn emulator() -> (String, Arc<emulator::Emulator>, tokio::task::JoinHandle<()>) {
    let settings = Settings {
        processing_delay: Duration::from_secs(600),
        known_models: vec!["claude-sonnet-4-5".into(), "gpt-4.1-mini".into()],
        faults: Faults::default(),
        caching: Default::default(),
    };
    let (addr, emulator, task) = emulator::start("127.0.0.1:0".parse().unwrap(), settings)
        .await
        .unwrap();
    (format!("http://{addr}"), emulator, task)
}

#[tokio::test]
async fn anthropic_batch_creates_validate_against_anthropics_description() {
    let (url, emulator, _task) = emulator().await;
    let client = AnthropicClient::new(ClientConfig::new(&url, "test-key")).unwrap();
    let body = BatchBody::from_requests(&requests("claude-sonnet-4-5")).unwrap();
    let batch = client.create_batch("local-1", body).await.unwrap();
    let sent = emulator.requests_of(&batch.id).unwrap();

    let mut spec = spec("anthropic-openapi.json");
    // Newer than the published file, and documented by Anthropic since: `cache_control`
    // takes a `ttl` ("5m" or "1h"). The schema is extended for it, not the field dropped.
    for name in ["CacheControlEphemeral", "BetaCacheControlEphemeral"] {
        spec["components"]["schemas"][name]["properties"]["ttl"] =
            json!({"type": "string", "enum": ["5m", "1h"]});
    }
    let validator = validator(&spec, "BetaCreateMessageBatchParams");
    assert_valid(&validator, &json!({ "requests": sent }), "the batch create");

    // The check can fail: a request the description forbids is caught.
    let mut wrong = json!({ "requests": sent });
    wrong["requests"][0]["params"]["max_tokens"] = json!("many");
    assert!(!validator.is_valid(&wrong));
}

#[tokio::test]
async fn openai_uploads_and_creates_validate_against_openais_description() {
    let (url, emulator, _task) = emulator().await;
    let client = OpenAiClient::new(ClientConfig::new(&url, "test-key")).unwrap();
    let body = BatchBody::from_requests(&requests("gpt-4.1-mini")).unwrap();
    client.create_batch("local-1", body).await.unwrap();

    let spec = spec("openai-openapi.json");
    let creates = emulator.openai().create_bodies();
    assert_eq!(creates.len(), 1);
    let create = &creates[0];
    assert_valid(
        &validator(&spec, "CreateBatchRequest"),
        create,
        "the batch create",
    );
    assert_eq!(create["metadata"]["ai_batch_id"], "local-1");

    let file = create["input_file_id"].as_str().unwrap();
    let lines = emulator.openai().file_content(file).unwrap();
    assert_eq!(lines.len(), JobType::ALL.len() * 2);
    let chat = validator(&spec, "CreateChatCompletionRequest");
    for text in &lines {
        let line: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            (line["method"].as_str(), line["url"].as_str()),
            (Some("POST"), Some("/v1/chat/completions"))
        );
        let id = line["custom_id"].as_str().unwrap();
        assert_valid(&chat, &line["body"], id);
        let format = &line["body"]["response_format"];
        assert_eq!(format["type"], "json_schema", "{id}");
        assert_eq!(format["json_schema"]["strict"], true, "{id}");
        assert_strict(&format["json_schema"]["schema"], id);
    }
    let mut wrong: Value = serde_json::from_str(&lines[0]).unwrap();
    wrong["body"]["messages"] = json!("not a list");
    assert!(!chat.is_valid(&wrong["body"]), "the check can fail");
}

/// Strict mode's rules: every object closed and every property required.
fn assert_strict(schema: &Value, id: &str) {
    if let Some(properties) = schema["properties"].as_object() {
        assert_eq!(schema["additionalProperties"], false, "{id}: {schema}");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for (name, property) in properties {
            assert!(
                required.contains(&name.as_str()),
                "{id}: {name} not required"
            );
            assert_strict(property, id);
        }
    }
    if schema.get("items").is_some() {
        assert_strict(&schema["items"], id);
    }
}
