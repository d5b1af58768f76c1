//! The dashboard's use cases over REST: search, bulk cancel, flush preview, daily costs,
//! users and tokens, prices.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::TestApp;

#[tokio::test]
async fn search_filters_by_type_text_and_pages() {
    let app = TestApp::start().await;
    let nvda = app.alice.enqueue(json!({"job_type": "sentiment_analysis", "payload": {"ticker": "NVDA"}, "idempotency_key": "morning-nvda"})).await;
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "AAPL"}}))
        .await;
    app.bob
        .enqueue(json!({"job_type": "sentiment_analysis", "payload": {"ticker": "NVDA"}}))
        .await;

    let found = app.alice.get("/api/v1/batch/jobs?q=NVDA").await.body;
    assert_eq!(
        (
            found["total_count"].as_i64(),
            found["jobs"][0]["id"].as_str()
        ),
        (Some(1), Some(nvda.as_str())),
        "only her own"
    );
    assert_eq!(
        app.alice
            .get("/api/v1/batch/jobs?q=morning-nvda")
            .await
            .body["total_count"],
        1
    );
    assert_eq!(
        app.alice
            .get(&format!("/api/v1/batch/jobs?q={nvda}"))
            .await
            .body["total_count"],
        1
    );
    assert_eq!(
        app.admin
            .get("/api/v1/batch/jobs?q=NVDA&job_type=sentiment_analysis")
            .await
            .body["total_count"],
        2
    );
    let page = app
        .admin
        .get("/api/v1/batch/jobs?limit=1&offset=1")
        .await
        .body;
    assert_eq!(
        (
            page["jobs"].as_array().unwrap().len(),
            page["total_count"].as_i64()
        ),
        (1, Some(3))
    );
    let bad = app
        .admin
        .get("/api/v1/batch/jobs?job_type=nope&offset=-1")
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["detail"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bulk_cancel_answers_per_job_and_respects_visibility() {
    let app = TestApp::start().await;
    let mine = app
        .alice
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    let theirs = app
        .bob
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    let answer = app
        .alice
        .post(
            "/api/v1/batch/jobs/cancel",
            json!({"job_ids": [mine, theirs]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["cancelled"], 1);
    assert_eq!(
        answer.body["results"][0],
        json!({"job_id": mine, "cancelled": true, "detail": null})
    );
    assert_eq!(
        answer.body["results"][1],
        json!({"job_id": theirs, "cancelled": false, "detail": "Job not found"})
    );
    assert_eq!(
        app.bob
            .get(&format!("/api/v1/batch/jobs/{theirs}"))
            .await
            .body["status"],
        "pending"
    );
    let invalid = app
        .alice
        .post("/api/v1/batch/jobs/cancel", json!({"job_ids": []}))
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn flush_preview_sends_nothing() {
    let app = TestApp::start().await;
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "AAPL"}}))
        .await;
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "MSFT"}, "priority": 10}))
        .await;
    let preview = app
        .admin
        .post(
            "/api/v1/batch/internal/flush/preview",
            json!({"min_priority": 20}),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["jobs_count"], 1);
    assert!(preview.body["estimated_tokens"].as_i64().unwrap() > 1000);
    // At most: the prompt estimate at $1.50/MTok and 1500 output tokens at $7.50/MTok (Sonnet, halved).
    let cost = preview.body["estimated_cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0112 && cost < 0.02, "{cost}");
    assert_eq!(
        app.admin.get("/api/v1/batch/stats").await.body["pending_jobs"],
        2,
        "nothing was claimed"
    );
    assert_eq!(
        app.alice
            .post("/api/v1/batch/internal/flush/preview", json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn daily_costs_sum_to_the_stats() {
    let app = TestApp::start().await;
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    app.bob
        .enqueue(json!({"job_type": "sentiment_analysis", "payload": {}}))
        .await;
    let batch = app
        .admin
        .post("/api/v1/batch/internal/flush", json!({}))
        .await
        .body["batch_id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..50 {
        if app
            .admin
            .post("/api/v1/batch/internal/poll", json!({"batch_id": batch}))
            .await
            .body["status"]
            == "ended"
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let daily = app.admin.get("/api/v1/batch/stats/daily?days=7").await.body;
    let rows = daily.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{daily}");
    let paid: f64 = rows.iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum();
    let stats = app.admin.get("/api/v1/batch/stats").await.body;
    assert!((paid - stats["total_cost_usd"].as_f64().unwrap()).abs() < 1e-9);
    assert!(rows.iter().all(|r| r["day"].as_str().unwrap().len() == 10));
    let alices = app.alice.get("/api/v1/batch/stats/daily").await.body;
    assert_eq!(alices.as_array().unwrap().len(), 1);
    assert_eq!(alices[0]["owner"], "alice");
    assert_eq!(
        app.alice
            .get("/api/v1/batch/stats/daily?days=0")
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn admins_manage_tokens_and_read_prices() {
    let app = TestApp::start().await;
    let issued = app
        .admin
        .post(
            "/api/v1/admin/tokens",
            json!({"user": "zoe", "role": "trader"}),
        )
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let token = issued.body["token"].as_str().unwrap().to_string();
    let zoe = app.with_token(&token);
    assert_eq!(zoe.get("/api/v1/batch/stats").await.status, StatusCode::OK);

    let users = app.admin.get("/api/v1/admin/users").await.body;
    let entry = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "zoe")
        .unwrap();
    assert_eq!(entry["tokens"][0]["id"], issued.body["token_id"]);
    assert!(
        !users.to_string().contains(&token),
        "secrets are never listed"
    );

    let path = format!(
        "/api/v1/admin/tokens/{}",
        issued.body["token_id"].as_str().unwrap()
    );
    assert_eq!(
        app.admin.request(Method::DELETE, &path).await.status,
        StatusCode::OK
    );
    assert_eq!(
        zoe.get("/api/v1/batch/stats").await.status,
        StatusCode::UNAUTHORIZED,
        "a revoked token is refused"
    );
    assert_eq!(
        app.admin.request(Method::DELETE, &path).await.status,
        StatusCode::NOT_FOUND
    );

    let prices = app.admin.get("/api/v1/admin/prices").await.body;
    assert_eq!(
        (
            prices["version"].as_str(),
            prices["batch_discount_percent"].as_i64()
        ),
        (Some("2026-12-01"), Some(50))
    );
    for path in ["/api/v1/admin/users", "/api/v1/admin/prices"] {
        assert_eq!(app.alice.get(path).await.status, StatusCode::FORBIDDEN);
    }
    let bad = app
        .admin
        .post("/api/v1/admin/tokens", json!({"user": "", "role": "boss"}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["detail"].as_array().unwrap().len(), 2);
}
