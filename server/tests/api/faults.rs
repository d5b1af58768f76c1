//! Faults, with the service talking to a separate emulator exactly as it would to Anthropic
//! (provider `anthropic` + `ANTHROPIC_BASE_URL`).

use std::sync::Arc;
use std::time::Duration;

use ai_batch::emulator::{self, Emulator, Faults, InjectedFailure, Settings, StreamFault};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestApp;

const FLUSH: &str = "/api/v1/batch/internal/flush";
const POLL: &str = "/api/v1/batch/internal/poll";

pub struct Setup {
    pub app: TestApp,
    pub emulator: Arc<Emulator>,
    _task: tokio::task::JoinHandle<()>,
}

async fn setup() -> Setup {
    setup_with(&[]).await
}

/// The service talking to a separate emulator, with configuration `overrides`. The emulator
/// knows only Sonnet: a job routed to another model is an invalid request.
pub async fn setup_with(overrides: &[(&str, &str)]) -> Setup {
    let settings = Settings {
        processing_delay: Duration::from_millis(300),
        known_models: vec!["claude-sonnet-4-5".into()],
        faults: Faults::default(),
        caching: Default::default(),
    };
    let (addr, emulator, task) = emulator::start("127.0.0.1:0".parse().unwrap(), settings)
        .await
        .unwrap();
    let url = format!("http://{addr}");
    let mut flags = vec![
        ("--provider", "anthropic"),
        ("--anthropic-base-url", url.as_str()),
        ("--anthropic-api-key", "test-key"),
        ("--anthropic-max-retries", "3"),
    ];
    flags.extend_from_slice(overrides);
    let app = TestApp::start_with(&flags).await;
    Setup {
        app,
        emulator,
        _task: task,
    }
}

impl Setup {
    /// Alice queues a risk report; its id.
    async fn risk_report(&self) -> String {
        self.app
            .alice
            .enqueue(json!({"job_type": "risk_report", "payload": {}}))
            .await
    }
}

fn fail(status: u16, endpoint: &str, retry_after_secs: Option<u64>) -> InjectedFailure {
    InjectedFailure {
        status,
        retry_after_secs,
        endpoint: Some(endpoint.into()),
    }
}

async fn job(s: &Setup, id: &str) -> Value {
    s.app
        .admin
        .get(&format!("/api/v1/batch/jobs/{id}"))
        .await
        .body
}

/// Polls until the batch ends (tolerating failed polls); returns the last answer.
async fn poll_until_ended(s: &Setup, batch_id: &str) -> Value {
    for _ in 0..60 {
        let answer = s.app.admin.post(POLL, json!({"batch_id": batch_id})).await;
        if answer.status == StatusCode::OK && answer.body["status"] == "ended" {
            return answer.body;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("batch {batch_id} did not end");
}

async fn flush(s: &Setup) -> String {
    let answer = s.app.admin.post(FLUSH, json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["batch_id"]
        .as_str()
        .expect("a batch")
        .to_string()
}

#[tokio::test]
async fn create_and_poll_ride_out_429_529_and_500() {
    let s = setup().await;
    let id = s.risk_report().await;
    s.emulator.set_faults(Faults {
        fail_next: vec![
            fail(429, "create", Some(1)),
            fail(529, "create", None),
            fail(500, "retrieve", None),
            fail(529, "results", None),
        ],
        ..Faults::default()
    });
    let batch = flush(&s).await;
    poll_until_ended(&s, &batch).await;
    assert!(
        s.emulator.faults().fail_next.is_empty(),
        "every injected failure was met and retried"
    );
    assert_eq!(job(&s, &id).await["status"], "completed");
}

#[tokio::test]
async fn a_refused_batch_puts_its_jobs_back() {
    let s = setup().await;
    let id = s.risk_report().await;
    s.emulator.set_faults(Faults {
        fail_next: vec![fail(400, "create", None)],
        ..Faults::default()
    });
    let answer = s.app.admin.post(FLUSH, json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("invalid_request_error")
    );
    let job = job(&s, &id).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    assert_eq!(
        s.app.admin.get("/api/v1/batch/internal/batches").await.body["batches"][0]["status"],
        "failed"
    );
}

#[tokio::test]
async fn a_cut_results_stream_is_retried_and_nothing_is_half_written() {
    let s = setup().await;
    let enqueues = (0..1500).map(|i| {
        s.app
            .alice
            .enqueue(json!({"job_type": "trading_analytics", "payload": {"i": i}}))
    });
    futures::future::join_all(enqueues).await;
    let batch = s
        .app
        .admin
        .post(FLUSH, json!({"max_jobs": 10000}))
        .await
        .body["batch_id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Cut after 1,200 lines: the first 1,000-line chunk is written whole, the next is not begun.
    s.emulator.set_faults(Faults {
        cut_results: Some(StreamFault {
            after_lines: 1200,
            times: Some(1),
            ..StreamFault::default()
        }),
        ..Faults::default()
    });
    let cut = s.app.admin.post(POLL, json!({"batch_id": batch})).await;
    assert_eq!(cut.status, StatusCode::BAD_GATEWAY, "{}", cut.body);
    let stats = s.app.admin.get("/api/v1/batch/stats").await.body;
    assert_eq!(
        (&stats["completed_jobs"], &stats["processing_jobs"]),
        (&json!(1000), &json!(500))
    );
    let processing = s
        .app
        .admin
        .get("/api/v1/batch/jobs?status_filter=processing&limit=1000")
        .await
        .body;
    for job in processing["jobs"].as_array().unwrap() {
        assert_eq!(
            (&job["tokens_used"], &job["completed_at"]),
            (&json!(0), &json!(null)),
            "untouched: {job}"
        );
    }
    let done = poll_until_ended(&s, &batch).await;
    assert_eq!(done["jobs_processed"], 500);
    assert_eq!(done["results"].as_array().unwrap().len(), 500);
    let stats = s.app.admin.get("/api/v1/batch/stats").await.body;
    assert_eq!(
        (&stats["completed_jobs"], &stats["processing_jobs"]),
        (&json!(1500), &json!(0))
    );
}

#[tokio::test]
async fn expired_requests_are_retried_then_failed() {
    let s = setup().await;
    let id = s.risk_report().await;
    s.emulator.set_faults(Faults {
        expired_percent: 100,
        ..Faults::default()
    });
    for attempt in 1..=3 {
        let batch = flush(&s).await;
        let answer = poll_until_ended(&s, &batch).await;
        assert_eq!(answer["results"][0]["status"], "expired");
        let job = job(&s, &id).await;
        assert_eq!(job["attempts"], attempt);
        let expected = if attempt < 3 { "pending" } else { "failed" };
        assert_eq!(job["status"], expected, "after attempt {attempt}: {job}");
    }
    let failed = job(&s, &id).await;
    assert!(
        failed["error_message"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts")
    );
    assert_eq!(
        (&failed["tokens_used"], &failed["cost_usd"]),
        (&json!(0), &json!(0.0)),
        "expired requests cost nothing"
    );
    let kinds: Vec<String> = s
        .app
        .admin
        .get(&format!("/api/v1/batch/jobs/{id}/events"))
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "submitted",
            "retried",
            "submitted",
            "retried",
            "submitted",
            "failed"
        ]
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_invalid_requests_fail_at_once() {
    let s = setup().await;
    let risk = s.risk_report().await;
    // Sentiment runs on Haiku, which this emulator does not know: an invalid request.
    let sentiment = s
        .app
        .alice
        .enqueue(json!({"job_type": "sentiment_analysis", "payload": {"ticker": "AMD"}}))
        .await;
    s.emulator.set_faults(Faults {
        errored_percent: 100,
        ..Faults::default()
    });
    let batch = flush(&s).await;
    poll_until_ended(&s, &batch).await;
    for id in [&risk, &sentiment] {
        let job = job(&s, id).await;
        assert_eq!(
            (job["status"].as_str(), job["attempts"].as_i64()),
            (Some("pending"), Some(1)),
            "{job}"
        );
        assert!(job["error_message"].as_str().unwrap().contains("api_error"));
    }
    s.emulator.set_faults(Faults::default());
    let batch = flush(&s).await;
    poll_until_ended(&s, &batch).await;
    assert_eq!(job(&s, &risk).await["status"], "completed");
    let failed = job(&s, &sentiment).await;
    assert_eq!(
        (failed["status"].as_str(), failed["attempts"].as_i64()),
        (Some("failed"), Some(2))
    );
    assert!(
        failed["error_message"]
            .as_str()
            .unwrap()
            .contains("invalid_request_error")
    );
    assert_eq!(failed["cost_usd"], 0.0, "errored requests cost nothing");
}

#[tokio::test]
async fn a_batch_the_provider_forgot_puts_its_jobs_back() {
    let s = setup().await;
    let id = s.risk_report().await;
    let batch = flush(&s).await;
    s.emulator.set_faults(Faults {
        fail_next: vec![fail(404, "retrieve", None)],
        ..Faults::default()
    });
    let answer = s
        .app
        .admin
        .post(POLL, json!({"batch_id": batch}))
        .await
        .body;
    assert_eq!(answer["status"], "not_found", "{answer}");
    let job = job(&s, &id).await;
    assert_eq!(
        (
            job["status"].as_str(),
            job["attempts"].as_i64(),
            job["batch_id"].as_str()
        ),
        (Some("pending"), Some(0), None)
    );
}

#[tokio::test]
async fn an_admin_retries_a_failed_job_and_it_completes() {
    let s = setup_with(&[("--max-attempts", "1")]).await;
    s.emulator.set_faults(Faults {
        expired_percent: 100,
        ..Faults::default()
    });
    let id = s.risk_report().await;
    s.app.flush_and_collect().await;
    assert_eq!(job(&s, &id).await["status"], "failed");
    // Found by what went wrong, and not by another error.
    let by_error = |text: &str| {
        let path = format!("/api/v1/batch/jobs?status_filter=failed&error={text}");
        let admin = &s.app.admin;
        async move { admin.get(&path).await.body }
    };
    let found = by_error("EXPIRED%20before").await;
    assert_eq!(found["total_count"], 1, "{found}");
    assert_eq!(found["jobs"][0]["id"], id.as_str());
    let error = found["jobs"][0]["error_message"]
        .as_str()
        .unwrap_or_default();
    assert!(error.ends_with("(gave up after 1 attempt)"), "{error}");
    assert_eq!(by_error("unreadable").await["total_count"], 0);

    // A trader may not; an admin sends it back for one more attempt, once.
    let body = json!({"job_ids": [id, "no-such-job"]});
    let refused = s
        .app
        .alice
        .post("/api/v1/batch/internal/jobs/retry", body.clone())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let retried = s
        .app
        .admin
        .post("/api/v1/batch/internal/jobs/retry", body.clone())
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["retried"], 1);
    assert_eq!(retried.body["results"][1]["detail"], "Job not found");
    let again = s
        .app
        .admin
        .post("/api/v1/batch/internal/jobs/retry", body)
        .await;
    assert_eq!(again.body["retried"], 0);
    assert_eq!(
        again.body["results"][0]["detail"],
        "the job is pending, not failed"
    );

    s.emulator.set_faults(Faults::default());
    s.app.flush_and_collect().await;
    let done = job(&s, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempts"], 1, "the failed attempt is still counted");
    let events = s
        .app
        .admin
        .get(&format!("/api/v1/batch/jobs/{id}/events"))
        .await
        .body;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "submitted",
            "failed",
            "requeued",
            "submitted",
            "completed"
        ]
    );
    let stats = s.app.admin.get("/api/v1/batch/stats").await.body;
    assert_eq!(
        (&stats["completed_jobs"], &stats["failed_jobs"]),
        (&json!(1), &json!(0))
    );
}

/// The dashboard's flush and poll run as long as REST's (their leases guard them): a create
/// the provider holds, or a results file it stalls, past the request timeout still ends in
/// the batch sent and its results in, not a timeout that cut the call off half way and left
/// the admin guessing.
#[tokio::test]
async fn a_dashboard_flush_and_poll_slower_than_the_request_timeout_run_to_their_end() {
    let s = setup_with(&[("--api-request-timeout-secs", "1")]).await;
    let id = s.risk_report().await;
    let cookie = s.app.session_cookie(&s.app.admin).await;
    s.emulator.set_faults(Faults {
        before_create_ms: vec![2_500],
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let (status, body) = s
        .app
        .server_fn(
            &cookie,
            "flush_now",
            &[("request[max_jobs]", "10"), ("request[min_priority]", "0")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "held past the timeout"
    );
    let flushed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(flushed["jobs_count"], 1, "{flushed}");
    let batch = flushed["batch_id"].as_str().unwrap();

    // Its results download stalls: the poll that collects them takes 2.5 s.
    s.emulator.set_faults(Faults {
        stall_results: Some(StreamFault {
            after_lines: 0,
            times: Some(1),
            millis: 2_500,
            ..Default::default()
        }),
        ..Default::default()
    });
    for _ in 0..40 {
        let started = std::time::Instant::now();
        let (status, body) = s
            .app
            .server_fn(&cookie, "poll_batch", &[("batch_id", batch)])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let polled: Value = serde_json::from_str(&body).unwrap();
        if polled["status"] == "ended" {
            assert!(
                started.elapsed() > Duration::from_secs(2),
                "held past the timeout"
            );
            assert_eq!(polled["jobs_processed"], 1, "{polled}");
            assert_eq!(job(&s, &id).await["status"], "completed");
            return;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("batch {batch} did not end");
}
