//! Health, unknown routes and the dashboard's first pages.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::TestApp;

#[tokio::test]
async fn healthz_answers_without_auth_and_says_who_leads() {
    let app = TestApp::start().await;
    let answer = app.anonymous.get("/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["status"], "ok");
    assert_eq!(answer.body["leader"], false, "no scheduler, no leadership");
    let engine = if crate::database::on_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(answer.body["database"], engine);
    assert_eq!(answer.body["instance"], &*app.ctx.instance);

    let led = TestApp::start_with(&[("--scheduler", "true"), ("--leader-lease-secs", "2")]).await;
    for _ in 0..50 {
        if led.anonymous.get("/healthz").await.body["leader"] == true {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("a lone instance with a scheduler leads");
}

#[tokio::test]
async fn unknown_api_paths_and_methods_answer_json() {
    let app = TestApp::start().await;
    let answer = app.alice.get("/api/v1/nothing/here").await;
    assert_eq!(
        (answer.status, answer.body),
        (StatusCode::NOT_FOUND, json!({"detail": "Not Found"}))
    );
    let answer = app
        .alice
        .request(Method::DELETE, "/api/v1/batch/stats")
        .await;
    assert_eq!(
        (answer.status, answer.body),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "Method Not Allowed"})
        )
    );
}

#[tokio::test]
async fn the_sign_in_page_renders_and_jobs_needs_a_session() {
    let app = TestApp::start().await;
    let page = app.anonymous.get("/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().unwrap();
    assert!(
        html.contains("Access token") && html.contains("/pkg/ai-batch.js"),
        "{html}"
    );

    // A browser asking for the page is sent to sign in.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let jobs = http
        .get(format!("{}/jobs", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), StatusCode::FOUND);
    assert_eq!(jobs.headers()["location"], "/sign-in");
}

#[tokio::test]
async fn a_job_id_that_is_not_text_is_a_json_404() {
    let app = TestApp::start().await;
    for path in [
        "/api/v1/batch/jobs/%FF%FE",
        "/api/v1/batch/jobs/%FF/result",
        "/api/v1/batch/jobs/%C0/events",
    ] {
        let answer = app.alice.get(path).await;
        assert_eq!(
            (answer.status, &answer.body),
            (StatusCode::NOT_FOUND, &json!({"detail": "Job not found"})),
            "{path}"
        );
    }
    let cancel = app
        .alice
        .post("/api/v1/batch/jobs/%FF/cancel", json!({}))
        .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_answer_carries_a_request_id_the_clients_own_if_it_sent_one() {
    let app = TestApp::start().await;
    let made = app.alice.get("/api/v1/batch/stats").await;
    let id = made.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let refused = app.anonymous.get("/api/v1/batch/stats").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.headers.contains_key("x-request-id"), "errors too");

    let given = reqwest::Client::new()
        .get(format!("{}/healthz", app.url))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-42");
    let page = reqwest::Client::new()
        .get(format!("{}/sign-in", app.url))
        .send()
        .await
        .unwrap();
    assert!(page.headers().contains_key("x-request-id"), "pages too");
}
