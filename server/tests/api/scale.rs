//! What the speed work must not change: bulk enqueue, keyset paging, and the totals behind
//! stats and counts, which must equal a recount after any mix of changes.

use std::time::Duration;

use ai_batch::emulator::Faults;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::faults::setup_with;
use crate::harness::TestApp;

const BULK: &str = "/api/v1/batch/enqueue/bulk";

fn job(ticker: &str) -> Value {
    json!({"job_type": "risk_report", "payload": {"ticker": ticker}})
}

async fn total(app: &TestApp) -> i64 {
    app.admin.get("/api/v1/batch/stats").await.body["total_jobs_queued"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn bulk_enqueue_takes_thousands_at_once_all_or_nothing() {
    let app = TestApp::start().await;
    let jobs: Vec<Value> = (0..3000).map(|i| job(&format!("T{i}"))).collect();
    let answer = app.alice.post(BULK, json!({ "jobs": jobs })).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        (&answer.body["created"], &answer.body["existing"]),
        (&json!(3000), &json!(0))
    );
    let answered = answer.body["jobs"].as_array().unwrap();
    assert_eq!(answered.len(), 3000);
    assert_eq!(answered[0]["status"], "pending");
    assert_eq!(answered[0]["owner"], "alice");
    let first = answered[0]["id"].as_str().unwrap();
    let stored = app
        .alice
        .get(&format!("/api/v1/batch/jobs/{first}"))
        .await
        .body;
    assert_eq!(
        stored["payload"],
        json!({"ticker": "T0"}),
        "in the order sent"
    );
    assert_eq!(total(&app).await, 3000);

    // One bad item: every error at once, with its item's index, and nothing stored.
    let mut bad: Vec<Value> = (0..5).map(|i| job(&format!("B{i}"))).collect();
    bad[2]["priority"] = json!(101);
    bad[4] = json!({"payload": {}});
    let answer = app.alice.post(BULK, json!({ "jobs": bad })).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let locs: Vec<&Value> = answer.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["loc"])
        .collect();
    assert_eq!(
        locs,
        [
            &json!(["body", "jobs", 2, "priority"]),
            &json!(["body", "jobs", 4, "job_type"])
        ]
    );
    assert_eq!(total(&app).await, 3000);

    // Idempotency keys: the same request again is the same job; a different one, a 409 for all.
    let keyed = |ticker: &str| {
        let mut j = job(ticker);
        j["idempotency_key"] = json!(format!("key-{ticker}"));
        j
    };
    let first = app
        .alice
        .post(BULK, json!({"jobs": [keyed("K1"), keyed("K2")]}))
        .await;
    assert_eq!(first.body["created"], 2);
    let again = app
        .alice
        .post(BULK, json!({"jobs": [keyed("K1"), keyed("K3")]}))
        .await;
    assert_eq!(
        (&again.body["created"], &again.body["existing"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(again.body["jobs"][0]["id"], first.body["jobs"][0]["id"]);
    let mut changed = keyed("K2");
    changed["priority"] = json!(99);
    let conflict = app
        .alice
        .post(BULK, json!({"jobs": [keyed("K4"), changed]}))
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.body);
    assert!(
        conflict.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("jobs[1]")
    );
    assert_eq!(total(&app).await, 3003, "K4 was not enqueued either");
    // A bulk body may pass the single enqueue's 1 MB.
    let big: Vec<Value> = (0..4000)
        .map(|i| json!({"job_type": "risk_report", "payload": {"ticker": "BIG", "notes": "x".repeat(300), "i": i}}))
        .collect();
    let answer = app.bob.post(BULK, json!({ "jobs": big })).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body["message"]);
}

#[tokio::test]
async fn lists_page_by_cursor_as_well_as_by_offset() {
    let app = TestApp::start().await;
    let jobs: Vec<Value> = (0..25).map(|i| job(&format!("P{i}"))).collect();
    app.alice.post(BULK, json!({ "jobs": jobs })).await;
    let mut seen = Vec::new();
    let mut path = "/api/v1/batch/jobs?limit=10".to_string();
    loop {
        let page = app.alice.get(&path).await.body;
        assert_eq!(page["total_count"], 25);
        seen.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/batch/jobs?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    let by_offset: Vec<String> = app.alice.get("/api/v1/batch/jobs?limit=100").await.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, by_offset, "the same jobs, newest first");
    let bad = app.alice.get("/api/v1/batch/jobs?cursor=nonsense").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["detail"][0]["loc"], json!(["query", "cursor"]));
}

#[tokio::test]
async fn totals_equal_a_recount_after_a_random_mix_of_changes() {
    let s = setup_with(&[("--max-attempts", "2")]).await;
    s.emulator.set_faults(Faults {
        errored_percent: 20,
        expired_percent: 10,
        ..Faults::default()
    });
    let mut rng = StdRng::seed_from_u64(2026);
    let clients = [&s.app.alice, &s.app.bob];
    let mut ids = Vec::new();
    for round in 0..6 {
        for _ in 0..rng.random_range(10..40) {
            let client = clients[rng.random_range(0..2)];
            let job_type =
                ["risk_report", "trading_analytics", "sentiment_analysis"][rng.random_range(0..3)];
            ids.push(
                client
                    .enqueue(json!({"job_type": job_type, "payload": {"round": round}, "priority": rng.random_range(0..101)}))
                    .await,
            );
        }
        for _ in 0..rng.random_range(1..6) {
            let id = &ids[rng.random_range(0..ids.len())];
            s.app
                .admin
                .post(&format!("/api/v1/batch/jobs/{id}/cancel"), json!({}))
                .await;
        }
        let flush = s
            .app
            .admin
            .post(
                "/api/v1/batch/internal/flush",
                json!({"max_jobs": rng.random_range(5..50)}),
            )
            .await;
        if let Some(batch) = flush.body["batch_id"].as_str() {
            // Cancel some while they are in flight, then collect.
            for _ in 0..rng.random_range(0..3) {
                let id = &ids[rng.random_range(0..ids.len())];
                s.app
                    .admin
                    .post(&format!("/api/v1/batch/jobs/{id}/cancel"), json!({}))
                    .await;
            }
            for _ in 0..50 {
                let poll = s
                    .app
                    .admin
                    .post("/api/v1/batch/internal/poll", json!({"batch_id": batch}))
                    .await;
                if poll.body["status"] == "ended" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let store = s.app.ctx.store();
        let kept = store
            .totals(&ai_batch::store::Visibility::All)
            .await
            .unwrap();
        assert_eq!(kept, store.recount_totals().await.unwrap(), "round {round}");
    }
    // The stats that admins and traders read are those totals.
    let stats = s.app.admin.get("/api/v1/batch/stats").await.body;
    assert_eq!(stats["total_jobs_queued"], ids.len());
    let alice = s.app.alice.get("/api/v1/batch/stats").await.body["total_jobs_queued"]
        .as_i64()
        .unwrap();
    let bob = s.app.bob.get("/api/v1/batch/stats").await.body["total_jobs_queued"]
        .as_i64()
        .unwrap();
    assert_eq!(alice + bob, ids.len() as i64);
    assert!(stats["completed_jobs"].as_i64().unwrap() > 0, "{stats}");
}

/// A bulk body is read into a buffer sized from its `Content-Length`: past 32 MB it is a 413
/// whether the length is announced or the body streamed without one (chunked), and a
/// streamed body within the limit is read whole.
#[tokio::test]
async fn bulk_bodies_past_32_mb_are_refused_announced_or_streamed() {
    let app = TestApp::start().await;
    let over = format!(
        "{{\"jobs\": [{{\"job_type\": \"risk_report\", \"payload\": {{\"note\": \"{}\"}}}}]}}",
        "x".repeat(32 * 1024 * 1024)
    );
    let answer = app.alice.post_raw(BULK, over.clone()).await;
    let detail = answer.detail(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(detail.contains("32 MB"), "{detail}");

    let streamed = |text: String| {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> = text
            .into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok(c.to_vec()))
            .collect();
        reqwest::Body::wrap_stream(futures::stream::iter(pieces))
    };
    let answer = app.alice.post_raw(BULK, streamed(over)).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );

    let jobs: Vec<Value> = (0..2000).map(|i| job(&format!("S{i}"))).collect();
    let answer = app
        .alice
        .post_raw(BULK, streamed(json!({ "jobs": jobs }).to_string()))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["created"], 2000);
    assert_eq!(total(&app).await, 2000);

    let answer = app.alice.post_raw(BULK, streamed(" \n".into())).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
}
