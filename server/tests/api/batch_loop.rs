//! The batch loop end to end over HTTP, with the in-process emulator (1 s per batch).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Client, TestApp, usd_nanos};

const FLUSH: &str = "/api/v1/batch/internal/flush";
const POLL: &str = "/api/v1/batch/internal/poll";
const PREVIEW: &str = "/api/v1/batch/internal/flush/preview";

async fn enqueue(client: &Client, job_type: &str, priority: i64, extra: Value) -> String {
    let mut body = json!({"job_type": job_type, "payload": {"ticker": "NVDA", "note": job_type}, "priority": priority});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    client.enqueue(body).await
}

/// Polls until the batch has ended and its results are in; returns every answer.
async fn poll_until_ended(admin: &Client, batch_id: &str) -> Vec<Value> {
    let mut answers = Vec::new();
    for _ in 0..60 {
        let answer = admin.post(POLL, json!({"batch_id": batch_id})).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let ended = answer.body["status"] == "ended";
        answers.push(answer.body);
        if ended {
            return answers;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("batch {batch_id} did not end: {answers:?}");
}

#[tokio::test]
async fn flush_with_filters_then_poll_until_every_job_is_done() {
    let app = TestApp::start().await;
    let risk = enqueue(&app.alice, "risk_report", 90, json!({})).await;
    let sentiment = enqueue(&app.alice, "sentiment_analysis", 80, json!({})).await;
    let trading = enqueue(&app.bob, "trading_analytics", 70, json!({})).await;
    let evaluation = enqueue(&app.alice, "model_evaluation", 60, json!({})).await;
    let summary = enqueue(&app.bob, "portfolio_summary", 10, json!({})).await;
    let later = enqueue(
        &app.alice,
        "risk_report",
        100,
        json!({"run_after": "2099-01-01T00:00:00Z"}),
    )
    .await;

    // Filters: three types, priority ≥ 50, two jobs: the two highest-priority matches.
    let flush = app
        .admin
        .post(FLUSH, json!({"max_jobs": 2, "job_types": ["risk_report", "sentiment_analysis", "trading_analytics"], "min_priority": 50}))
        .await;
    assert_eq!(flush.status, StatusCode::OK, "{}", flush.body);
    assert_eq!(flush.body["jobs_count"], 2);
    assert!(flush.body["estimated_tokens"].as_i64().unwrap() > 1000);
    let first_batch = flush.body["batch_id"].as_str().unwrap().to_string();
    assert!(first_batch.starts_with("msgbatch_"));
    for id in [&risk, &sentiment] {
        let job = app
            .admin
            .get(&format!("/api/v1/batch/jobs/{id}"))
            .await
            .body;
        assert_eq!(
            (job["status"].as_str(), job["batch_id"].as_str()),
            (Some("processing"), Some(first_batch.as_str()))
        );
    }
    for id in [&trading, &evaluation, &summary, &later] {
        assert_eq!(
            app.admin
                .get(&format!("/api/v1/batch/jobs/{id}"))
                .await
                .body["status"],
            "pending"
        );
    }

    // Cancelled in flight: stays cancelled, its result discarded, its tokens still spent.
    let cancel = app
        .alice
        .post(&format!("/api/v1/batch/jobs/{sentiment}/cancel"), json!({}))
        .await;
    assert_eq!(cancel.body, json!({"success": true, "cancelled": true}));

    let answers = poll_until_ended(&app.admin, &first_batch).await;
    let last = answers.last().unwrap();
    assert_eq!(last["jobs_remaining"], 0);
    assert_eq!(last["jobs_processed"], 2);
    let results = last["results"].as_array().unwrap();
    let risk_result = results
        .iter()
        .find(|r| r["job_id"] == risk.as_str())
        .expect("risk result reported");
    assert_eq!(risk_result["status"], "succeeded");
    assert_eq!(risk_result["job_type"], "risk_report");
    assert!(risk_result["result"].is_object());
    assert!(risk_result["tokens_used"].as_i64().unwrap() > 0);
    assert!(risk_result["processing_time_ms"].as_i64().unwrap() >= 0);

    let done = app
        .alice
        .get(&format!("/api/v1/batch/jobs/{risk}"))
        .await
        .body;
    assert_eq!(done["status"], "completed");
    assert!(done["completed_at"].is_string());
    assert!(
        done["input_tokens"].as_i64().unwrap() > 0 && done["output_tokens"].as_i64().unwrap() > 0
    );
    assert_eq!(done["price_version"], "2026-12-01");
    let result = app
        .alice
        .get(&format!("/api/v1/batch/jobs/{risk}/result"))
        .await;
    assert_eq!(result.status, StatusCode::OK);
    assert!(
        ["low", "moderate", "elevated", "high"]
            .contains(&result.body["risk_level"].as_str().unwrap())
    );
    assert_eq!(
        risk_result["result"], result.body,
        "the poll reports the answer the job stores"
    );

    let cancelled = app
        .alice
        .get(&format!("/api/v1/batch/jobs/{sentiment}"))
        .await
        .body;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(
        cancelled["tokens_used"].as_i64().unwrap() > 0,
        "tokens of a cancelled-in-flight job count as spent"
    );
    assert!(usd_nanos(&cancelled["cost_usd"]) > 0);
    assert_eq!(
        app.alice
            .get(&format!("/api/v1/batch/jobs/{sentiment}/result"))
            .await
            .status,
        StatusCode::CONFLICT
    );

    // Polling an ended batch again changes nothing.
    let again = app
        .admin
        .post(POLL, json!({"batch_id": first_batch}))
        .await
        .body;
    assert_eq!(
        (&again["jobs_processed"], &again["results"]),
        (&json!(0), &json!([]))
    );

    // The rest, without filters: everything eligible, but never the job due in 2099.
    let flush = app.admin.post(FLUSH, json!({})).await.body;
    assert_eq!(flush["jobs_count"], 3, "{flush}");
    let second_batch = flush["batch_id"].as_str().unwrap().to_string();
    poll_until_ended(&app.admin, &second_batch).await;
    for id in [&trading, &evaluation, &summary] {
        let job = app
            .admin
            .get(&format!("/api/v1/batch/jobs/{id}"))
            .await
            .body;
        assert_eq!(job["status"], "completed", "{job}");
        assert!(
            app.admin
                .get(&format!("/api/v1/batch/jobs/{id}/result"))
                .await
                .body
                .is_object()
        );
    }
    assert_eq!(
        app.admin
            .get(&format!("/api/v1/batch/jobs/{later}"))
            .await
            .body["status"],
        "pending"
    );
    let nothing = app.admin.post(FLUSH, json!({})).await.body;
    assert_eq!(nothing["jobs_count"], 0);
    assert!(
        nothing["message"].as_str().unwrap().contains("run_after"),
        "{nothing}"
    );

    // Cost truth: totals are the exact sums of the jobs; savings are the 50% discount.
    let jobs = app.admin.get("/api/v1/batch/jobs?limit=1000").await.body;
    let jobs = jobs["jobs"].as_array().unwrap();
    let paid: i64 = jobs.iter().map(|j| usd_nanos(&j["cost_usd"])).sum();
    let standard: i64 = jobs
        .iter()
        .map(|j| usd_nanos(&j["standard_cost_usd"]))
        .sum();
    let tokens: i64 = jobs
        .iter()
        .map(|j| j["tokens_used"].as_i64().unwrap())
        .sum();
    for job in jobs.iter().filter(|j| usd_nanos(&j["cost_usd"]) > 0) {
        assert!(
            (usd_nanos(&job["standard_cost_usd"]) - 2 * usd_nanos(&job["cost_usd"])).abs() <= 1,
            "{job}"
        );
        assert_eq!(
            usd_nanos(&job["savings_usd"]),
            usd_nanos(&job["standard_cost_usd"]) - usd_nanos(&job["cost_usd"])
        );
    }
    let stats = app.admin.get("/api/v1/batch/stats").await.body;
    assert_eq!(usd_nanos(&stats["total_cost_usd"]), paid);
    assert_eq!(usd_nanos(&stats["total_savings_usd"]), standard - paid);
    assert_eq!(stats["total_tokens_used"], tokens);
    assert_eq!(
        (
            &stats["completed_jobs"],
            &stats["pending_jobs"],
            &stats["processing_jobs"]
        ),
        (&json!(4), &json!(1), &json!(0))
    );
    assert!(stats["avg_processing_time_hours"].as_f64().unwrap() > 0.0);
    let alice = app.alice.get("/api/v1/batch/stats").await.body;
    assert!(
        usd_nanos(&alice["total_cost_usd"]) < paid,
        "a trader's stats are their own"
    );

    // The timeline and the batch list.
    let events = app
        .alice
        .get(&format!("/api/v1/batch/jobs/{risk}/events"))
        .await
        .body;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "submitted", "completed"]);
    assert!(events[1]["detail"].as_str().unwrap().contains(&first_batch));
    let batches = app.admin.get("/api/v1/batch/internal/batches").await.body;
    let batches = batches["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2);
    assert!(
        batches
            .iter()
            .all(|b| b["status"] == "ended" && b["results_collected"] == true)
    );
    assert_eq!(batches[1]["request_counts"]["succeeded"], 2);
}

#[tokio::test]
async fn the_estimate_learns_from_finished_batches() {
    let app = TestApp::start().await;
    enqueue(&app.alice, "risk_report", 50, json!({})).await;
    let batch = app.admin.post(FLUSH, json!({})).await.body["batch_id"]
        .as_str()
        .unwrap()
        .to_string();
    poll_until_ended(&app.admin, &batch).await;
    let before = chrono::Utc::now();
    let answer = app
        .alice
        .post(
            "/api/v1/batch/enqueue",
            json!({"job_type": "risk_report", "payload": {}}),
        )
        .await
        .body;
    let eta: chrono::DateTime<chrono::Utc> = answer["estimated_completion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // One batch of about a second: the flush interval (300 s) plus seconds, not the 1 h prior.
    let ahead = (eta - before).num_seconds();
    assert!((299..=320).contains(&ahead), "{ahead} s ahead");
}

#[tokio::test]
async fn the_scheduler_alone_takes_jobs_from_pending_to_completed() {
    let app = TestApp::start_with(&[
        ("--scheduler", "true"),
        ("--auto-flush-min-jobs", "3"),
        ("--tick-ms", "100"),
        ("--poll-interval-secs", "1"),
    ])
    .await;
    let ids = [
        enqueue(&app.alice, "risk_report", 50, json!({})).await,
        enqueue(&app.bob, "sentiment_analysis", 50, json!({})).await,
        enqueue(&app.alice, "trading_analytics", 50, json!({})).await,
    ];
    for _ in 0..100 {
        let mut statuses = Vec::new();
        for id in &ids {
            statuses.push(
                app.admin
                    .get(&format!("/api/v1/batch/jobs/{id}"))
                    .await
                    .body["status"]
                    .clone(),
            );
        }
        if statuses.iter().all(|s| s == "completed") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the scheduler did not complete the jobs in 10 s");
}

/// `AI_BATCH_MAX_BATCH_MB` stops a batch at its size: the preview and the flush confirming it
/// both say how many wait and why (the flush stops at the promise, so only reading one job
/// past it tells it the batch is full), and a job larger than the cap goes in a batch of its
/// own instead of keeping every job behind it waiting.
#[tokio::test]
async fn a_batch_stops_at_its_size_cap_and_a_larger_job_goes_alone() {
    let app = TestApp::start_with(&[("--max-batch-mb", "1")]).await;
    // About 200 KB each once rendered: five fit in a megabyte, a sixth does not.
    let wide = |i: usize| json!({"ticker": format!("W{i}"), "note": "x".repeat(200_000)});
    for i in 0..7 {
        app.alice
            .enqueue(json!({"job_type": "risk_report", "payload": wide(i)}))
            .await;
    }
    let waits = "2 more would wait: the batch would reach the limit of 1 MB a batch to Anthropic.";
    let preview = app.admin.post(PREVIEW, json!({"max_jobs": 100})).await.body;
    assert_eq!(preview["jobs_count"], 5, "{preview}");
    assert!(
        preview["message"].as_str().unwrap().contains(waits),
        "{preview}"
    );
    let confirmed = json!({"max_jobs": 100, "preview_token": preview["preview_token"]});
    let sent = app.admin.post(FLUSH, confirmed).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(sent.body["jobs_count"], 5, "{}", sent.body);
    let stopped = "Stopped at the limit of 1 MB a batch to Anthropic: 2 more eligible jobs stay \
                   pending for the next flush.";
    let said = sent.body["message"].as_str().unwrap();
    assert!(said.contains(stopped), "{said}");

    // First in line: a job that alone is larger than the cap (a megabyte of shared context).
    let context = app
        .bob
        .post(
            "/api/v1/batch/contexts",
            json!({"name": "Whole-book brief", "text": "y".repeat(1_000_000)}),
        )
        .await;
    assert_eq!(context.status, StatusCode::OK, "{}", context.body);
    let large = app
        .bob
        .enqueue(
            json!({"job_type": "risk_report", "payload": wide(9), "priority": 100,
            "context_id": context.body["context"]["context_id"]}),
        )
        .await;
    let alone = app.admin.post(FLUSH, json!({"max_jobs": 100})).await;
    assert_eq!(alone.status, StatusCode::OK, "{}", alone.body);
    assert_eq!(alone.body["jobs_count"], 1, "{}", alone.body);
    let said = alone.body["message"].as_str().unwrap();
    assert!(said.contains("2 more eligible jobs stay pending"), "{said}");
    let job = app
        .admin
        .get(&format!("/api/v1/batch/jobs/{large}"))
        .await
        .body;
    assert_eq!(job["status"], "processing", "{job}");
    let rest = app.admin.post(FLUSH, json!({"max_jobs": 100})).await;
    assert_eq!(rest.body["jobs_count"], 2, "{}", rest.body);
    assert!(
        !rest.body["message"].as_str().unwrap().contains("Stopped"),
        "{}",
        rest.body
    );
}
