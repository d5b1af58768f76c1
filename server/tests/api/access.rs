//! Authentication, roles and the visibility rule (BOLA matrix).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::TestApp;

const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/api/v1/batch/jobs/some-id/events"),
    ("GET", "/api/v1/batch/internal/batches"),
    ("POST", "/api/v1/batch/enqueue"),
    ("GET", "/api/v1/batch/jobs"),
    ("GET", "/api/v1/batch/jobs/some-id"),
    ("POST", "/api/v1/batch/jobs/some-id/cancel"),
    ("GET", "/api/v1/batch/jobs/some-id/result"),
    ("GET", "/api/v1/batch/stats"),
    ("POST", "/api/v1/batch/internal/flush"),
    ("POST", "/api/v1/batch/internal/poll"),
];

#[tokio::test]
async fn every_endpoint_needs_a_valid_bearer_token() {
    let app = TestApp::start().await;
    let forged = "aib_AAAAAAAAAAAA_notthesecret";
    for client in [
        app.anonymous.clone(),
        app.with_token(forged),
        app.with_token("garbage"),
    ] {
        for (method, path) in ENDPOINTS {
            let answer = client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), path)
                .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(
                answer.headers["www-authenticate"], "Bearer",
                "{method} {path}"
            );
            assert_eq!(
                answer.body,
                json!({"detail": "Not authenticated"}),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn a_real_token_id_with_a_wrong_secret_is_refused() {
    let app = TestApp::start().await;
    let token = app.alice.token().to_string();
    let (head, _) = token.rsplit_once('_').unwrap();
    let wrong = format!("{head}_{}", "x".repeat(40));
    assert_eq!(
        app.with_token(&wrong)
            .get("/api/v1/batch/stats")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.with_token(&token)
            .get("/api/v1/batch/stats")
            .await
            .status,
        StatusCode::OK
    );
    // Scheme names are case-insensitive (RFC 7235); other schemes are refused.
    let http = reqwest::Client::new();
    let stats = format!("{}/api/v1/batch/stats", app.url);
    let lower = http
        .get(&stats)
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), StatusCode::OK);
    let basic = http
        .get(&stats)
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn internal_endpoints_are_admin_only() {
    let app = TestApp::start().await;
    for path in [
        "/api/v1/batch/internal/flush",
        "/api/v1/batch/internal/poll",
    ] {
        let answer = app
            .alice
            .post(path, json!({"batch_id": "msgbatch_x"}))
            .await;
        let detail = answer.detail(StatusCode::FORBIDDEN);
        assert!(detail.contains("admin"), "{path}: {detail}");
    }
}

#[tokio::test]
async fn flush_and_poll_validate_their_input() {
    let app = TestApp::start().await;
    let flush = app
        .admin
        .post(
            "/api/v1/batch/internal/flush",
            json!({"max_jobs": 0, "job_types": ["nope"]}),
        )
        .await;
    assert_eq!(flush.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(flush.body["detail"].as_array().unwrap().len(), 2);
    // An empty body takes the defaults; with nothing queued, nothing is sent and it says why.
    let flush = app.admin.post_raw("/api/v1/batch/internal/flush", "").await;
    assert_eq!(flush.status, StatusCode::OK);
    assert_eq!(flush.body["success"], true);
    assert_eq!(flush.body["jobs_count"], 0);
    assert_eq!(flush.body["batch_id"], json!(null));
    assert_eq!(
        flush.body["message"],
        "Nothing to flush: no jobs are pending."
    );

    let poll = app
        .admin
        .post("/api/v1/batch/internal/poll", json!({}))
        .await;
    assert_eq!(poll.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(poll.body["detail"][0]["loc"], json!(["body", "batch_id"]));
    let poll = app
        .admin
        .post(
            "/api/v1/batch/internal/poll",
            json!({"batch_id": "msgbatch_unknown"}),
        )
        .await;
    assert_eq!(
        (poll.status, poll.body),
        (StatusCode::NOT_FOUND, json!({"detail": "Batch not found"}))
    );
}

#[tokio::test]
async fn bola_matrix_trader_a_trader_b_admin() {
    let app = TestApp::start().await;
    let job = app
        .alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "NVDA"}}))
        .await;
    let paths = [
        format!("/api/v1/batch/jobs/{job}"),
        format!("/api/v1/batch/jobs/{job}/result"),
    ];

    // Alice (owner): sees it; the result is not ready (409, so she knows it exists).
    assert_eq!(app.alice.get(&paths[0]).await.status, StatusCode::OK);
    assert_eq!(app.alice.get(&paths[1]).await.status, StatusCode::CONFLICT);
    // Bob: for him it does not exist, on every path.
    for path in &paths {
        let answer = app.bob.get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.body, json!({"detail": "Job not found"}));
    }
    let cancel = format!("/api/v1/batch/jobs/{job}/cancel");
    assert_eq!(
        app.bob.post(&cancel, json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.bob.get("/api/v1/batch/jobs").await.body["total_count"],
        0
    );
    assert_eq!(
        app.bob.get("/api/v1/batch/stats").await.body["total_jobs_queued"],
        0
    );
    // Admin: sees it with its owner, and everyone's counts.
    let seen = app.admin.get(&paths[0]).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body["owner"], "alice");
    assert_eq!(
        app.admin.get("/api/v1/batch/jobs").await.body["total_count"],
        1
    );
    assert_eq!(
        app.admin.get("/api/v1/batch/stats").await.body["total_jobs_queued"],
        1
    );
    // Bob's failed cancel changed nothing; the admin's works.
    assert_eq!(app.alice.get(&paths[0]).await.body["status"], "pending");
    assert_eq!(
        app.admin.post(&cancel, json!({})).await.body,
        json!({"success": true, "cancelled": true})
    );
    assert_eq!(app.alice.get(&paths[0]).await.body["status"], "cancelled");
}
