//! Completion webhooks against a real receiver on a loopback port: signed deliveries,
//! retries after failures, and a receiver that never answers holding up nothing else.

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

    // The receiver's check: recompute the HMAC over "{t}.{body}" with the secret.
    let signature = headers[ai_batch::webhooks::SIGNATURE_HEADER]
        .to_str()
        .unwrap();
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - t).abs() < 60);
    assert_eq!(signature, ai_batch::webhooks::sign(&secret, t, body));
    assert_ne!(signature, ai_batch::webhooks::sign("whsec_wrong", t, body));

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
        assert_eq!(answer.body["detail"][0]["type"], kind, "{url}");
        assert_eq!(
            answer.body["detail"][0]["loc"],
            json!(["body", "callback_url"])
        );
    }
    let https = app
        .alice
        .post("/api/v1/batch/enqueue", json!({"job_type": "risk_report", "payload": {}, "callback_url": "https://hooks.example.com/ai?x=1"}))
        .await;
    assert_eq!(https.status, StatusCode::OK, "{}", https.body);
}
