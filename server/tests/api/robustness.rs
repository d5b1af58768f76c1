//! Bad input and bad luck: numbers for `run_after`, a panicking handler, server functions
//! called with arguments no page would send, a batch whose polls keep failing.

use ai_batch::emulator::{Faults, InjectedFailure};
use leptos::server_fn::ServerFn;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestApp;

const ENQUEUE: &str = "/api/v1/batch/enqueue";

#[tokio::test]
async fn run_after_numbers_are_read_as_pydantic_reads_them_and_bounded() {
    let app = TestApp::start().await;
    let at = |run_after: serde_json::Value| json!({"job_type": "risk_report", "payload": {}, "run_after": run_after});
    // A JavaScript timestamp in milliseconds means the same instant as its seconds.
    for run_after in [json!(1_764_300_000), json!(1_764_300_000_000i64)] {
        let answer = app.alice.post(ENQUEUE, at(run_after.clone())).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{run_after}: {}",
            answer.body
        );
        assert_eq!(answer.body["job"]["run_after"], "2025-11-28T03:20:00Z");
    }
    // The number that used to panic the handler after storing the job: year 2230, fine.
    let answer = app
        .alice
        .post(ENQUEUE, at(json!(8_210_266_876_000i64)))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer.body["estimated_completion"]
            .as_str()
            .unwrap()
            .starts_with("2230-")
    );
    // Past the supported range: a 422 in FastAPI's shape, and nothing stored.
    let before = app.alice.get("/api/v1/batch/stats").await.body["total_jobs_queued"].clone();
    for run_after in [json!(8.3e17), json!(-4e13), json!("1e300")] {
        let answer = app.alice.post(ENQUEUE, at(run_after.clone())).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{run_after}"
        );
        let entry = &answer.body["detail"][0];
        assert_eq!(entry["type"], "datetime_parsing", "{entry}");
        assert_eq!(entry["loc"], json!(["body", "run_after"]));
    }
    assert_eq!(
        app.alice.get("/api/v1/batch/stats").await.body["total_jobs_queued"],
        before
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_500_json_and_the_server_goes_on() {
    async fn boom() -> &'static str {
        panic!("a handler bug")
    }
    let boom = axum::Router::new().route("/test/boom", axum::routing::get(boom));
    let app = TestApp::start_with_routes(&[], boom).await;
    for _ in 0..3 {
        let answer = app.alice.get("/test/boom").await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.body, json!({"detail": "Internal server error"}));
    }
    let stats = app.alice.get("/api/v1/batch/stats").await;
    assert_eq!(stats.status, StatusCode::OK, "the server still serves");
}

#[tokio::test]
async fn server_functions_refuse_what_the_rest_api_refuses() {
    let app = TestApp::start().await;
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    let cookie = app.session_cookie(&app.alice).await;
    let call = |path: &'static str, form: &'static str| {
        let cookie = cookie.clone();
        let url = format!("{}{path}", app.url);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let list = <app::server_fns::ListJobs as ServerFn>::PATH;
    let (status, body) = call(list, "query[limit]=50&query[offset]=0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("risk_report"), "{body}");
    // limit = -1 used to reach SQL, where SQLite reads it as "no limit".
    for form in [
        "query[limit]=-1&query[offset]=0",
        "query[limit]=1000000&query[offset]=0",
        "query[limit]=50&query[offset]=-5",
    ] {
        let (status, body) = call(list, form).await;
        assert!(!status.is_success(), "{form}: {status} {body}");
        assert!(body.contains("Input should be"), "{form}: {body}");
        assert!(!body.to_lowercase().contains("sql"), "{body}");
    }
    let savings = <app::server_fns::Savings as ServerFn>::PATH;
    let (status, body) = call(savings, "days=100000").await;
    assert!(
        !status.is_success() && body.contains("less than or equal to 366"),
        "{status} {body}"
    );
    // An admin's function, from a trader: refused by the use case's rule.
    let flush = <app::server_fns::FlushNow as ServerFn>::PATH;
    let (status, body) = call(flush, "request[max_jobs]=10&request[min_priority]=0").await;
    assert!(
        !status.is_success() && body.contains("admin"),
        "{status} {body}"
    );
}

#[tokio::test]
async fn a_batch_whose_polls_keep_failing_shows_as_stuck_with_its_last_error() {
    let setup = crate::faults::setup_with(&[
        ("--anthropic-max-retries", "0"),
        ("--stuck-after-failures", "3"),
    ])
    .await;
    let (app, emulator) = (&setup.app, &setup.emulator);
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    let flush = app
        .admin
        .post("/api/v1/batch/internal/flush", json!({}))
        .await;
    let batch_id = flush.body["batch_id"].as_str().unwrap().to_string();
    emulator.set_faults(Faults {
        fail_next: vec![
            InjectedFailure {
                status: 500,
                retry_after_secs: None,
                endpoint: Some("retrieve".into()),
            };
            10
        ],
        ..Faults::default()
    });
    let batch = || async {
        app.admin.get("/api/v1/batch/internal/batches").await.body["batches"][0].clone()
    };
    for failures in 1..=3 {
        let poll = app
            .admin
            .post("/api/v1/batch/internal/poll", json!({"batch_id": batch_id}))
            .await;
        assert_eq!(poll.status, StatusCode::BAD_GATEWAY, "{}", poll.body);
        let b = batch().await;
        assert_eq!(b["poll_failures"], failures);
        assert_eq!(b["stuck"], failures >= 3, "{b}");
        assert!(b["error"].as_str().unwrap().contains("500"), "{b}");
    }
    // Once polls succeed again, the batch is no longer stuck.
    emulator.set_faults(Faults::default());
    let poll = app
        .admin
        .post("/api/v1/batch/internal/poll", json!({"batch_id": batch_id}))
        .await;
    assert_eq!(poll.status, StatusCode::OK, "{}", poll.body);
    assert_eq!(batch().await["stuck"], false);
}
