//! Completion webhooks against a real receiver on a loopback port: signed deliveries,
//! retries after failures, and a receiver that never answers holding up nothing else.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::harness::TestApp;

/// What the receiver saw, and how it answers: `fail_first` 500s, or never when `hang`.
#[derive(Default)]
struct Receiver {
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    fail_first: usize,
    hang: bool,
    delivered: Mutex<Vec<(HeaderMap, Bytes)>>,
}

async fn receiver(fail_first: usize, hang: bool) -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver {
        fail_first,
        hang,
        ..Receiver::default()
    });
    let handler = {
        let state = state.clone();
        move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let call = state.calls.fetch_add(1, Ordering::SeqCst);
                if state.hang {
                    state.in_flight.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                if call < state.fail_first {
                    return AxumStatus::INTERNAL_SERVER_ERROR;
                }
                state.delivered.lock().await.push((headers, body));
                AxumStatus::NO_CONTENT
            }
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (state, url)
}

async fn app(timeout_secs: &str) -> TestApp {
    TestApp::start_with(&[
        ("--scheduler", "true"),
        ("--auto-flush", "false"),
        ("--auto-poll", "false"),
        ("--rescuer", "false"),
        ("--tick-ms", "100"),
        ("--webhook-allow-http-loopback", "true"),
        ("--webhook-timeout-secs", timeout_secs),
    ])
    .await
}

/// Enqueues `count` jobs with the callback, flushes them and polls until the results are in.
async fn run_jobs(app: &TestApp, count: usize, callback: &str) -> Vec<String> {
    let mut ids = vec![];
    for i in 0..count {
        ids.push(
            app.alice
                .enqueue(json!({"job_type": "risk_report", "payload": {"i": i}, "callback_url": callback}))
                .await,
        );
    }
    app.flush_and_collect().await;
    ids
}

/// A receiver's verification, written from the specification (not with our signer).
fn standard_webhooks_valid(secret: &str, id: &str, t: &str, body: &[u8], signatures: &str) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{t}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
    signatures.split(' ').any(|s| s == expected)
}

async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    let answer = app
        .alice
        .get(&format!("/api/v1/batch/jobs/{id}/events"))
        .await;
    answer.body.as_array().unwrap().clone()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_webhook_is_delivered_once_signed_with_the_owners_secret() {
    let app = app("5").await;
    let (receiver, url) = receiver(0, false).await;
    // No secret yet: the callback is refused with what to do.
    let refused = app
        .alice
        .post(
            "/api/v1/batch/enqueue",
            json!({"job_type": "risk_report", "payload": {}, "callback_url": url}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("/api/v1/webhooks/secret")
    );

    let secret = app.alice.post("/api/v1/webhooks/secret", json!({})).await;
    assert_eq!(secret.status, StatusCode::OK);
    let secret = secret.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 40);

    let ids = run_jobs(&app, 1, &url).await;
    wait_for("the delivery", async || {
        receiver.calls.load(Ordering::SeqCst) >= 1
    })
    .await;
    let delivered = receiver.delivered.lock().await.clone();
    let (headers, body) = &delivered[0];
    let job: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        (&job["id"], &job["status"]),
        (&json!(ids[0]), &json!("completed"))
    );
    assert!(job["cost_usd"].as_f64().unwrap() > 0.0);

    // The receiver's check, by the Standard Webhooks specification: the HMAC-SHA256 of
    // "{webhook-id}.{webhook-timestamp}.{body}", keyed with the secret's base64 part.
    let header = |name: &str| headers[name].to_str().unwrap().to_string();
    let (id, t) = (header("webhook-id"), header("webhook-timestamp"));
    assert_eq!(id, format!("msg_{}", ids[0]));
    assert!((chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap()).abs() < 60);
    assert!(standard_webhooks_valid(
        &secret,
        &id,
        &t,
        body,
        &header("webhook-signature")
    ));
    assert!(!standard_webhooks_valid(
        "whsec_d3Jvbmc=",
        &id,
        &t,
        body,
        &header("webhook-signature")
    ));
    // The older header, for receivers written against it: HMAC over "{t}.{body}".
    let legacy = header(ai_batch::webhooks::SIGNATURE_HEADER);
    assert_eq!(
        legacy,
        ai_batch::webhooks::sign_legacy(&secret, t.parse().unwrap(), body)
    );

    wait_for("the delivery event", async || {
        events(&app, &ids[0])
            .await
            .iter()
            .any(|e| e["kind"] == "webhook_delivered")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.calls.load(Ordering::SeqCst),
        1,
        "delivered once, not again"
    );
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_third_attempt() {
    let app = app("5").await;
    let (receiver, url) = receiver(2, false).await;
    app.alice.post("/api/v1/webhooks/secret", json!({})).await;
    let ids = run_jobs(&app, 1, &url).await;
    wait_for("three attempts", async || {
        receiver.delivered.lock().await.len() == 1
    })
    .await;
    assert_eq!(receiver.calls.load(Ordering::SeqCst), 3);
    let mut kinds = vec![];
    wait_for("the events", async || {
        kinds = events(&app, &ids[0])
            .await
            .iter()
            .filter_map(|e| {
                e["kind"]
                    .as_str()
                    .filter(|k| k.starts_with("webhook"))
                    .map(String::from)
            })
            .collect();
        kinds.len() == 3
    })
    .await;
    assert_eq!(
        kinds,
        ["webhook_failed", "webhook_failed", "webhook_delivered"]
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_holds_up_neither_ingest_nor_the_books() {
    let app = app("1").await;
    let (receiver, url) = receiver(0, true).await;
    app.alice.post("/api/v1/webhooks/secret", json!({})).await;
    let ids = run_jobs(&app, 40, &url).await;
    // Ingest finished (run_jobs returned) and every job is complete while deliveries hang.
    let stats = app.alice.get("/api/v1/batch/stats").await.body;
    assert_eq!(stats["completed_jobs"], 40);
    wait_for("deliveries to start", async || {
        receiver.in_flight.load(Ordering::SeqCst) > 0
    })
    .await;
    // Each attempt gives up after the timeout and is recorded with a retry planned.
    wait_for("a timed-out attempt", async || {
        events(&app, &ids[0]).await.iter().any(|e| {
            e["kind"] == "webhook_failed"
                && e["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("no answer within 1 s")
        })
    })
    .await;
    // Other requests are served meanwhile.
    let list = app.alice.get("/api/v1/batch/jobs?limit=5").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(receiver.delivered.lock().await.len(), 0);
}

/// Alice enqueues a job calling back `url`, which must be refused (422): the first problem.
async fn refused_callback(app: &TestApp, url: &str) -> Value {
    let answer = app
        .alice
        .post(
            "/api/v1/batch/enqueue",
            json!({"job_type": "risk_report", "payload": {}, "callback_url": url}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{url}: {}",
        answer.body
    );
    answer.body["detail"][0].clone()
}

#[tokio::test]
async fn callbacks_must_be_https_unless_the_server_allows_loopback_http() {
    let app = TestApp::start().await;
    app.alice.post("/api/v1/webhooks/secret", json!({})).await;
    for (url, kind) in [
        ("http://127.0.0.1:9/hook", "url_scheme"),
        ("http://example.com/hook", "url_scheme"),
        ("ftp://example.com/x", "url_scheme"),
        ("https://user:pw@example.com/x", "url_parsing"),
        ("not a url", "url_parsing"),
    ] {
        let problem = refused_callback(&app, url).await;
        assert_eq!(problem["type"], kind, "{url}");
        assert_eq!(problem["loc"], json!(["body", "callback_url"]));
    }
    let https = app
        .alice
        .post("/api/v1/batch/enqueue", json!({"job_type": "risk_report", "payload": {}, "callback_url": "https://hooks.example.com/ai?x=1"}))
        .await;
    assert_eq!(https.status, StatusCode::OK, "{}", https.body);
}

/// Refused at enqueue, never flushed: every literal form of an address that is not public.
#[tokio::test]
async fn callbacks_to_private_addresses_are_refused_at_enqueue() {
    let app = TestApp::start().await;
    app.alice.post("/api/v1/webhooks/secret", json!({})).await;
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.255.255.1/",
        "https://127.0.0.1/",
        "https://[::ffff:127.0.0.1]/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://localhost/",
        "https://0.0.0.0/",
        "https://100.64.1.1/",
        "https://[fd12::1]/",
        "https://[fe80::1]/",
        "https://224.0.0.251/",
    ] {
        assert_eq!(
            refused_callback(&app, url).await["type"],
            "url_host",
            "{url}"
        );
        let bulk = app
            .alice
            .post(
                "/api/v1/batch/enqueue/bulk",
                json!({"jobs": [{"job_type": "risk_report", "payload": {}}, {"job_type": "risk_report", "payload": {}, "callback_url": url}]}),
            )
            .await;
        assert_eq!(
            bulk.body["detail"][0]["loc"],
            json!(["body", "jobs", 1, "callback_url"]),
            "{url}"
        );
    }
    let jobs = app.alice.get("/api/v1/batch/jobs").await;
    assert_eq!(jobs.body["total_count"], 0, "nothing was enqueued");
}

/// A stand-in resolver: every name resolves to these addresses.
struct Resolves(Vec<std::net::IpAddr>);

impl ai_batch::webhooks::Lookup for Resolves {
    fn lookup(
        &self,
        _host: String,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<std::net::IpAddr>>> + Send>>
    {
        let found = self.0.clone();
        Box::pin(async move { Ok(found) })
    }
}

/// A loopback listener that counts the connections it accepts (and answers nothing).
async fn counting_listener() -> (Arc<AtomicUsize>, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (accepted, port)
}

async fn webhook_events(app: &TestApp, id: &str) -> Vec<String> {
    let mut found = vec![];
    wait_for("a delivery attempt", async || {
        found = events(app, id)
            .await
            .iter()
            .filter(|e| {
                e["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("webhook")
            })
            .filter_map(|e| e["detail"].as_str().map(String::from))
            .collect();
        !found.is_empty()
    })
    .await;
    found
}

/// A name that passed the enqueue but resolves to a private or loopback address is refused
/// when the delivery connects: no connection is made. With the network allowed, the same
/// delivery does connect (so the test can tell).
#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_when_dialled() {
    let (accepted, port) = counting_listener().await;
    let schedule = [
        ("--scheduler", "true"),
        ("--auto-flush", "false"),
        ("--auto-poll", "false"),
        ("--rescuer", "false"),
        ("--tick-ms", "100"),
        ("--webhook-timeout-secs", "2"),
        ("--webhook-max-attempts", "1"),
    ];
    for answer in [
        vec!["127.0.0.1".parse().unwrap()],
        vec![
            "::ffff:127.0.0.1".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
        ],
        vec!["10.0.0.7".parse().unwrap()],
    ] {
        let app = TestApp::start_with_lookup(&schedule, Arc::new(Resolves(answer.clone()))).await;
        app.alice.post("/api/v1/webhooks/secret", json!({})).await;
        let url = format!("https://hooks.example.com:{port}/hook");
        let ids = run_jobs(&app, 1, &url).await;
        let details = webhook_events(&app, &ids[0]).await;
        assert!(
            details[0].contains("refused") && details[0].contains("hooks.example.com"),
            "{answer:?}: {details:?}"
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no connection was made");

    let mut allowed = schedule.to_vec();
    allowed.push(("--webhook-allow-networks", "127.0.0.0/8"));
    let app = TestApp::start_with_lookup(
        &allowed,
        Arc::new(Resolves(vec!["127.0.0.1".parse().unwrap()])),
    )
    .await;
    app.alice.post("/api/v1/webhooks/secret", json!({})).await;
    let ids = run_jobs(&app, 1, &format!("https://hooks.example.com:{port}/hook")).await;
    webhook_events(&app, &ids[0]).await;
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "an allowed network is dialled"
    );
}

/// Fifty deliveries to a receiver that never answers hold up another owner's webhook by no
/// more than a few ticks.
#[tokio::test]
async fn one_owners_slow_receiver_does_not_delay_anothers_webhooks() {
    let app = TestApp::start_with(&[
        ("--scheduler", "true"),
        ("--auto-flush", "false"),
        ("--auto-poll", "false"),
        ("--rescuer", "false"),
        ("--tick-ms", "200"),
        ("--webhook-allow-http-loopback", "true"),
        ("--webhook-timeout-secs", "10"),
    ])
    .await;
    let (tarpit, slow_url) = receiver(0, true).await;
    let (fast, fast_url) = receiver(0, false).await;
    app.alice.post("/api/v1/webhooks/secret", json!({})).await;
    app.bob.post("/api/v1/webhooks/secret", json!({})).await;
    run_jobs(&app, 50, &slow_url).await;
    wait_for("the tarpit to hold deliveries", async || {
        tarpit.in_flight.load(Ordering::SeqCst) > 0
    })
    .await;
    let id = app
        .bob
        .enqueue(json!({"job_type": "risk_report", "payload": {}, "callback_url": fast_url}))
        .await;
    app.flush_and_collect().await;
    let ended = std::time::Instant::now();
    wait_for("bob's delivery", async || {
        fast.calls.load(Ordering::SeqCst) > 0
    })
    .await;
    let delay = ended.elapsed();
    assert!(delay < Duration::from_secs(5), "bob waited {delay:?}");
    assert!(
        tarpit.in_flight.load(Ordering::SeqCst) <= ai_batch::webhooks::PER_OWNER,
        "the slow owner holds at most their places"
    );
    let job = app.bob.get(&format!("/api/v1/batch/jobs/{id}")).await;
    assert_eq!(job.body["status"], "completed");
}
