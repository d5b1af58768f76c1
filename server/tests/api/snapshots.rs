//! The error bodies clients depend on, as snapshots: a change of their shape or wording shows
//! up in review as a changed file under `snapshots/` (`cargo insta review`), on both stores.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Answer, TestApp};

/// `status` and body of each answer, one after another, as the snapshot keeps them.
fn shown(answers: &[(&str, Answer)]) -> String {
    answers
        .iter()
        .map(|(what, answer)| {
            let body = serde_json::to_string_pretty(&answer.body).unwrap();
            format!("## {what}: {}\n{body}\n", answer.status.as_u16())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn risk(ticker: &str) -> Value {
    json!({"job_type": "risk_report", "payload": {"ticker": ticker}})
}

#[tokio::test]
async fn error_bodies_keep_their_shape() {
    let app = TestApp::start().await;
    let mut answers = Vec::new();

    answers.push(("no token", app.anonymous.get("/api/v1/batch/jobs").await));
    answers.push((
        "a token that is not one",
        app.with_token("not-a-token")
            .get("/api/v1/batch/jobs")
            .await,
    ));
    answers.push((
        "a trader on an admin endpoint",
        app.alice.get("/api/v1/admin/users").await,
    ));
    answers.push((
        "another trader's job, or none",
        app.alice.get("/api/v1/batch/jobs/job-of-nobody").await,
    ));
    answers.push((
        "a path that is not the API's",
        app.alice.get("/api/v1/nothing").await,
    ));
    answers.push((
        "a method the path does not take",
        app.alice
            .request(Method::DELETE, "/api/v1/batch/stats")
            .await,
    ));
    answers.push((
        "fields wrong, all at once",
        app.alice
            .post(
                "/api/v1/batch/enqueue",
                json!({"job_type": "poetry", "payload": [], "priority": 101}),
            )
            .await,
    ));
    answers.push((
        "a body that is not JSON",
        app.alice
            .post_raw("/api/v1/batch/enqueue", "{not json")
            .await,
    ));
    answers.push((
        "a body past 1 MB",
        app.alice
            .post_raw("/api/v1/batch/enqueue", "x".repeat(1024 * 1024 + 1))
            .await,
    ));
    let mut keyed = risk("AAPL");
    keyed["idempotency_key"] = json!("k-1");
    app.alice.enqueue(keyed.clone()).await;
    keyed["payload"]["ticker"] = json!("MSFT");
    answers.push((
        "an idempotency key reused for another request",
        app.alice.post("/api/v1/batch/enqueue", keyed).await,
    ));
    let capped = app
        .admin
        .put("/api/v1/admin/budgets/bob", json!({"monthly_cap_usd": 0}))
        .await;
    assert_eq!(capped.status, StatusCode::OK, "{}", capped.body);
    answers.push((
        "over the monthly budget",
        app.bob.post("/api/v1/batch/enqueue", risk("IBM")).await,
    ));
    answers.push((
        "a retry of a job that does not exist",
        app.admin
            .post(
                "/api/v1/batch/internal/jobs/retry",
                json!({"job_ids": ["nope"]}),
            )
            .await,
    ));
    insta::assert_snapshot!(shown(&answers));
}

#[tokio::test]
async fn past_a_rate_limit_the_body_says_when_to_come_back() {
    let app = TestApp::start_with(&[("--reads-per-sec", "1"), ("--reads-burst", "1")]).await;
    let mut limited = None;
    for _ in 0..3 {
        let answer = app.alice.get("/api/v1/batch/stats").await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("a 429 once the burst of 1 is spent");
    assert!(limited.headers.contains_key("retry-after"));
    insta::assert_snapshot!(shown(&[("past the read limit", limited)]));
}
