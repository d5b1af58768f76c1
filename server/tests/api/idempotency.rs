use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestApp;

const ENQUEUE: &str = "/api/v1/batch/enqueue";

#[tokio::test]
async fn same_key_and_request_returns_the_first_job() {
    let app = TestApp::start().await;
    let first = app.alice.post(ENQUEUE, json!({"job_type": "risk_report", "payload": {"a": 1, "b": 2}, "idempotency_key": "k1"})).await;
    // Same request after defaults, keys in another order: the same job.
    let again = app
        .alice
        .post(ENQUEUE, json!({"payload": {"b": 2, "a": 1}, "priority": 50, "job_type": "risk_report", "idempotency_key": "k1"}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["job"]["id"], first.body["job"]["id"]);
    assert!(
        again.body["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    // Another owner may use the same key for their own job.
    let bobs = app.bob.post(ENQUEUE, json!({"job_type": "risk_report", "payload": {"a": 1, "b": 2}, "idempotency_key": "k1"})).await;
    assert_eq!(bobs.status, StatusCode::OK);
    assert_ne!(bobs.body["job"]["id"], first.body["job"]["id"]);
    assert_eq!(
        app.admin.get("/api/v1/batch/jobs").await.body["total_count"],
        2
    );
}

#[tokio::test]
async fn same_key_with_a_different_request_is_a_409() {
    let app = TestApp::start().await;
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"a": 1}, "idempotency_key": "k"}))
        .await;
    for changed in [
        json!({"job_type": "risk_report", "payload": {"a": 2}, "idempotency_key": "k"}),
        json!({"job_type": "sentiment_analysis", "payload": {"a": 1}, "idempotency_key": "k"}),
        json!({"job_type": "risk_report", "payload": {"a": 1}, "priority": 51, "idempotency_key": "k"}),
        json!({"job_type": "risk_report", "payload": {"a": 1}, "run_after": "2030-01-01", "idempotency_key": "k"}),
    ] {
        let answer = app.alice.post(ENQUEUE, changed.clone()).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{changed}");
        assert!(
            answer.body["detail"]
                .as_str()
                .unwrap()
                .contains("idempotency key")
        );
    }
    assert_eq!(
        app.alice.get("/api/v1/batch/jobs").await.body["total_count"],
        1
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_exactly_one_job() {
    let app = TestApp::start().await;
    let requests = (0..64).map(|_| {
        let client = app.alice.clone();
        async move {
            client.post(ENQUEUE, json!({"job_type": "model_evaluation", "payload": {"model": "m1"}, "idempotency_key": "race"})).await
        }
    });
    let answers = futures::future::join_all(requests).await;
    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|a| a.body["job"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        app.alice.get("/api/v1/batch/jobs").await.body["total_count"],
        1
    );
}
