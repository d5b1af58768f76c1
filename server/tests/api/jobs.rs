//! List, get, cancel, result and stats.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestApp;

#[tokio::test]
async fn list_is_newest_first_with_filter_limit_and_counts() {
    let app = TestApp::start().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            app.alice
                .enqueue(json!({"job_type": "trading_analytics", "payload": {"i": i}}))
                .await,
        );
    }
    app.bob
        .enqueue(json!({"job_type": "trading_analytics", "payload": {}}))
        .await;
    app.alice
        .post(&format!("/api/v1/batch/jobs/{}/cancel", ids[0]), json!({}))
        .await;

    let all = app.alice.get("/api/v1/batch/jobs").await;
    assert_eq!(all.status, StatusCode::OK);
    let listed: Vec<_> = all.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(
        (
            &all.body["total_count"],
            &all.body["pending_count"],
            &all.body["processing_count"]
        ),
        (&json!(4), &json!(3), &json!(0))
    );
    assert!(
        all.body["jobs"][0].get("payload").is_none(),
        "lists leave payloads out"
    );

    let limited = app
        .alice
        .get("/api/v1/batch/jobs?status_filter=pending&limit=2")
        .await;
    assert_eq!(limited.body["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(
        limited.body["total_count"], 3,
        "counts what matches before the limit"
    );
    assert_eq!(limited.body["jobs"][0]["id"].as_str().unwrap(), ids[3]);

    let cancelled = app
        .alice
        .get("/api/v1/batch/jobs?status_filter=cancelled")
        .await;
    assert_eq!(cancelled.body["total_count"], 1);
    assert_eq!(cancelled.body["pending_count"], 3);
}

#[tokio::test]
async fn list_query_errors_are_422_at_the_query() {
    let app = TestApp::start().await;
    let answer = app
        .alice
        .get("/api/v1/batch/jobs?status_filter=done&limit=abc")
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        answer.body["detail"][0]["loc"],
        json!(["query", "status_filter"])
    );
    assert_eq!(answer.body["detail"][0]["type"], "enum");
    assert_eq!(
        answer.body["detail"][1],
        json!({"type": "int_parsing", "loc": ["query", "limit"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "abc"})
    );
    for (limit, kind) in [("0", "greater_than_equal"), ("1001", "less_than_equal")] {
        let answer = app
            .alice
            .get(&format!("/api/v1/batch/jobs?limit={limit}"))
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.body["detail"][0]["type"], kind);
    }
    assert_eq!(
        app.alice.get("/api/v1/batch/jobs?limit=1000").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn get_returns_the_job_with_its_payload() {
    let app = TestApp::start().await;
    let id = app.alice.enqueue(json!({"job_type": "strategy_backtest", "payload": {"strategy": "momentum"}, "idempotency_key": "bt-1"})).await;
    let answer = app.alice.get(&format!("/api/v1/batch/jobs/{id}")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["id"], id.as_str());
    assert_eq!(answer.body["payload"], json!({"strategy": "momentum"}));
    assert_eq!(answer.body["idempotency_key"], "bt-1");
    assert_eq!(answer.body["attempts"], 0);
    assert_eq!(
        app.alice.get("/api/v1/batch/jobs/no-such-job").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn cancel_pending_then_terminal_is_a_409() {
    let app = TestApp::start().await;
    let id = app
        .alice
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    let path = format!("/api/v1/batch/jobs/{id}/cancel");
    let first = app.alice.post(&path, json!({})).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, json!({"success": true, "cancelled": true}));
    let job = app
        .alice
        .get(&format!("/api/v1/batch/jobs/{id}"))
        .await
        .body;
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["cancel_requested"], false);

    let again = app.alice.post(&path, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.body["detail"]
            .as_str()
            .unwrap()
            .contains("already cancelled")
    );
    assert_eq!(
        app.alice
            .post("/api/v1/batch/jobs/nope/cancel", json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn result_of_an_unfinished_job_is_a_409() {
    let app = TestApp::start().await;
    let id = app
        .alice
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    let answer = app
        .alice
        .get(&format!("/api/v1/batch/jobs/{id}/result"))
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(
        answer.body["detail"],
        "Job is pending; a result exists only once it is completed."
    );
    assert_eq!(
        app.alice.get("/api/v1/batch/jobs/nope/result").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn stats_have_the_contract_shape_and_count_visible_jobs() {
    let app = TestApp::start().await;
    let empty = app.alice.get("/api/v1/batch/stats").await;
    assert_eq!(
        empty.body,
        json!({"total_jobs_queued": 0, "pending_jobs": 0, "processing_jobs": 0, "completed_jobs": 0, "failed_jobs": 0,
               "total_tokens_used": 0, "total_cost_usd": 0.0, "total_savings_usd": 0.0, "avg_processing_time_hours": 0.0,
               // Beyond the contract: the savings by source, the cache's tokens, each provider's share.
               "total_saved_by_batching_usd": 0.0, "total_saved_by_caching_usd": 0.0,
               "cache_read_tokens": 0, "cache_write_tokens": 0, "by_provider": []})
    );
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    let id = app
        .alice
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    app.alice
        .post(&format!("/api/v1/batch/jobs/{id}/cancel"), json!({}))
        .await;
    app.bob
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    let mine = app.alice.get("/api/v1/batch/stats").await.body;
    assert_eq!(
        (&mine["total_jobs_queued"], &mine["pending_jobs"]),
        (&json!(2), &json!(1))
    );
    let all = app.admin.get("/api/v1/batch/stats").await.body;
    assert_eq!(
        (&all["total_jobs_queued"], &all["pending_jobs"]),
        (&json!(3), &json!(2))
    );
}
