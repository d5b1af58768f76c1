//! A crash between writing `submitting` and recording the provider's id: the real binary,
//! killed by a failpoint, then restarted; the rescuer reconciles with the provider.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ai_batch::emulator::{self, Faults, Settings};
use ai_batch::provider::{AnthropicClient, ClientConfig, ListParams, Provider};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ai-batch");

struct Service {
    child: Child,
    url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(db: &str, provider_url: &str, extra: &[(&str, &str)]) -> Service {
    let port = free_port();
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env("AI_BATCH_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", db)
        .env("AI_BATCH_PROVIDER", "anthropic")
        .env("ANTHROPIC_BASE_URL", provider_url)
        .env("ANTHROPIC_API_KEY", "test-key")
        .env(
            "AI_BATCH_PRICES",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config/prices.toml"),
        )
        .env("AI_BATCH_SCHEDULER", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra {
        command.env(k, v);
    }
    let service = Service {
        child: command.spawn().expect("the binary starts"),
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if reqwest::get(format!("{}/healthz", service.url))
            .await
            .is_ok()
        {
            return service;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not start");
}

async fn call(
    url: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Result<Value> {
    let mut request = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await?.json().await
}

async fn crash_then_recover(failpoint: &str) {
    let settings = Settings {
        processing_delay: Duration::from_millis(200),
        known_models: vec!["claude-sonnet-4-5".into()],
        faults: Faults::default(),
    };
    let (addr, _emulator, _task) = emulator::start("127.0.0.1:0".parse().unwrap(), settings)
        .await
        .unwrap();
    let provider_url = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let store = ai_batch::store::SqliteStore::connect(&db).await.unwrap();
    let token = ai_batch::access::issue_token(&store, "ops", app::api::Role::Admin)
        .await
        .unwrap()
        .plain;
    drop(store);

    // A short lease: reconciliation may act two seconds after the dead process's last heartbeat.
    let mut first = start(
        &db,
        &provider_url,
        &[
            ("AI_BATCH_FAILPOINT", failpoint),
            ("AI_BATCH_LEASE_SECS", "2"),
        ],
    )
    .await;
    let mut ids = Vec::new();
    for ticker in ["AAPL", "MSFT", "NVDA"] {
        let answer = call(
            &first.url,
            &token,
            reqwest::Method::POST,
            "/api/v1/batch/enqueue",
            Some(json!({"job_type": "risk_report", "payload": {"ticker": ticker}})),
        )
        .await
        .unwrap();
        ids.push(answer["job"]["id"].as_str().unwrap().to_string());
    }
    let flush = call(
        &first.url,
        &token,
        reqwest::Method::POST,
        "/api/v1/batch/internal/flush",
        Some(json!({})),
    )
    .await;
    assert!(flush.is_err(), "the process died mid-flush: {flush:?}");
    assert_eq!(
        first.child.wait().unwrap().code(),
        Some(86),
        "it exited at the failpoint"
    );

    // Restarted with the rescuer and auto-poll: the jobs complete, and exactly one batch exists.
    let second = start(
        &db,
        &provider_url,
        &[
            ("AI_BATCH_SCHEDULER", "true"),
            ("AI_BATCH_AUTO_FLUSH", "false"),
            ("AI_BATCH_SCHEDULER_TICK_MS", "100"),
            ("AI_BATCH_POLL_INTERVAL_SECS", "1"),
            ("AI_BATCH_LEASE_SECS", "2"),
        ],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..150 {
        statuses.clear();
        for id in &ids {
            let job = call(
                &second.url,
                &token,
                reqwest::Method::GET,
                &format!("/api/v1/batch/jobs/{id}"),
                None,
            )
            .await
            .unwrap();
            statuses.push(job["status"].as_str().unwrap_or_default().to_string());
        }
        if statuses.iter().all(|s| s == "completed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(statuses.iter().all(|s| s == "completed"), "{statuses:?}");
    let client = AnthropicClient::new(ClientConfig::new(provider_url, "k")).unwrap();
    let provider_batches = client
        .list_batches(ListParams::default())
        .await
        .unwrap()
        .data;
    assert_eq!(provider_batches.len(), 1, "at most one copy is ever sent");
    let ours = call(
        &second.url,
        &token,
        reqwest::Method::GET,
        "/api/v1/batch/internal/batches",
        None,
    )
    .await
    .unwrap();
    assert_eq!(ours["batches"].as_array().unwrap().len(), 1);
    assert_eq!(
        ours["batches"][0]["batch_id"],
        provider_batches[0].id.as_str()
    );
}

#[tokio::test]
async fn a_crash_after_the_provider_accepted_the_batch_adopts_it() {
    crash_then_recover("after-submit").await;
}

#[tokio::test]
async fn a_crash_before_the_batch_reached_the_provider_submits_it_once() {
    crash_then_recover("before-submit").await;
}
