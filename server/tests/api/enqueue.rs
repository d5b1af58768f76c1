use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestApp;

const ENQUEUE: &str = "/api/v1/batch/enqueue";

#[tokio::test]
async fn enqueue_answers_the_contract_job_with_defaults() {
    let app = TestApp::start().await;
    let before = Utc::now();
    let answer = app
        .alice
        .post(
            ENQUEUE,
            json!({"job_type": "portfolio_summary", "payload": {"tickers": ["AAPL"]}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let body = &answer.body;
    assert_eq!(body["success"], true);
    assert!(body["message"].as_str().unwrap().contains("queued"));
    let job = &body["job"];
    assert_eq!(job["job_type"], "portfolio_summary");
    assert_eq!(job["status"], "pending");
    assert_eq!(job["priority"], 50);
    assert_eq!(job["custom_id"], job["id"]);
    assert!(regex_like_custom_id(job["custom_id"].as_str().unwrap()));
    assert_eq!(job["batch_id"], json!(null));
    assert_eq!(job["run_after"], json!(null));
    assert_eq!(job["completed_at"], json!(null));
    assert_eq!(job["tokens_used"], 0);
    assert_eq!(job["error_message"], json!(null));
    assert_eq!(job["owner"], "alice");
    assert_eq!(job["payload"], json!({"tickers": ["AAPL"]}));
    let created: DateTime<Utc> = job["created_at"].as_str().unwrap().parse().unwrap();
    assert!(created >= before - Duration::seconds(1) && created <= Utc::now());

    // No batch history yet: next flush (300 s in the harness) plus the 1 h prior (no batch history yet).
    let eta: DateTime<Utc> = body["estimated_completion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = before + Duration::seconds(300) + Duration::hours(1);
    assert!(
        (eta - expected).num_seconds().abs() <= 5,
        "eta {eta}, expected about {expected}"
    );
}

fn regex_like_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[tokio::test]
async fn run_after_is_stored_in_utc_and_delays_the_estimate() {
    let app = TestApp::start().await;
    let answer = app
        .alice
        .post(ENQUEUE, json!({"job_type": "risk_report", "payload": {}, "priority": 90, "run_after": "2099-05-01T12:00:00"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let run_after: DateTime<Utc> = answer.body["job"]["run_after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        run_after,
        "2099-05-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(answer.body["job"]["priority"], 90);
    let eta: DateTime<Utc> = answer.body["estimated_completion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(eta, run_after + Duration::seconds(300) + Duration::hours(1));
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once() {
    let app = TestApp::start().await;
    let body = json!({"job_type": "x", "payload": "nope", "priority": 101, "run_after": "not a date", "idempotency_key": ""});
    let answer = app.alice.post(ENQUEUE, body).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = answer.body["detail"].as_array().unwrap();
    let locs: Vec<_> = detail
        .iter()
        .map(|e| e["loc"][1].as_str().unwrap())
        .collect();
    assert_eq!(
        locs,
        [
            "job_type",
            "payload",
            "priority",
            "run_after",
            "idempotency_key"
        ]
    );
    for entry in detail {
        assert_eq!(entry["loc"][0], "body");
        assert!(
            entry["msg"].is_string() && entry["type"].is_string() && entry.get("input").is_some(),
            "{entry}"
        );
    }
    assert_eq!(
        detail[2],
        json!({"type": "less_than_equal", "loc": ["body", "priority"], "msg": "Input should be less than or equal to 100", "input": 101, "ctx": {"le": 100}})
    );
    assert_eq!(detail[0]["type"], "enum");
    assert_eq!(detail[3]["type"], "datetime_from_date_parsing");

    let missing = app.alice.post(ENQUEUE, json!({"priority": 1})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        missing.body["detail"][0],
        json!({"type": "missing", "loc": ["body", "job_type"], "msg": "Field required", "input": {"priority": 1}})
    );
    assert_eq!(missing.body["detail"][1]["loc"], json!(["body", "payload"]));
}

#[tokio::test]
async fn malformed_or_missing_json_is_a_422() {
    let app = TestApp::start().await;
    let answer = app.alice.post_raw(ENQUEUE, "{\"job_type\": ").await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let entry = &answer.body["detail"][0];
    assert_eq!(entry["type"], "json_invalid");
    assert_eq!(entry["loc"][0], "body");
    assert!(entry["loc"][1].is_u64());
    assert_eq!(entry["msg"], "JSON decode error");
    assert!(entry["ctx"]["error"].is_string());

    let empty = app.alice.post_raw(ENQUEUE, "").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.body["detail"][0]["type"], "missing");
    assert_eq!(empty.body["detail"][0]["loc"], json!(["body"]));

    let list = app.alice.post(ENQUEUE, json!([1, 2])).await;
    assert_eq!(list.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(list.body["detail"][0]["type"], "model_attributes_type");
}

#[tokio::test]
async fn size_limits_body_413_and_payload_422() {
    let app = TestApp::start().await;
    let huge = format!(
        "{{\"job_type\": \"risk_report\", \"payload\": {{\"note\": \"{}\"}}}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let answer = app.alice.post_raw(ENQUEUE, huge).await;
    let detail = answer.detail(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(detail.contains("1 MB"), "{detail}");

    let payload = json!({"job_type": "risk_report", "payload": {"note": "x".repeat(300 * 1024)}});
    let answer = app.alice.post(ENQUEUE, payload).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.body["detail"][0]["loc"], json!(["body", "payload"]));
    assert_eq!(answer.body["detail"][0]["type"], "value_error");

    // Nothing was stored by the refused requests.
    assert_eq!(
        app.alice.get("/api/v1/batch/jobs").await.body["total_count"],
        0
    );
}

#[tokio::test]
async fn many_concurrent_writers_never_get_a_500() {
    let app = TestApp::start().await;
    let clients = [app.alice.clone(), app.bob.clone(), app.admin.clone()];
    let requests = (0..150).map(|i| {
        let client = clients[i % 3].clone();
        async move {
            client
                .post(ENQUEUE, json!({"job_type": "sentiment_analysis", "payload": {"ticker": "MSFT", "i": i}, "priority": i % 101}))
                .await
                .status
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        app.admin.get("/api/v1/batch/stats").await.body["total_jobs_queued"],
        150
    );
}
