//! Shared contexts and the provider's cache: contexts are private until an admin shares them
//! and cannot be deleted while jobs wait for them; a job carrying one is billed for what the
//! cache read and wrote, exactly; the books equal the emulator's bill for a flush of 1,000
//! jobs sharing a context, under the faults the batch loop is tested with.

use std::time::Duration;

use ai_batch::emulator::{AfterCreate, Faults, StreamFault};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::TestApp;
use crate::service::{Database, Provider, SCHEDULER, Service, note};

const CONTEXTS: &str = "/api/v1/batch/contexts";
const ENQUEUE: &str = "/api/v1/batch/enqueue";

fn job(job_type: &str, ticker: &str, context: &str) -> Value {
    json!({"job_type": job_type, "payload": {"ticker": ticker}, "context_id": context})
}

#[tokio::test]
async fn contexts_are_private_until_shared_and_kept_while_jobs_wait_for_them() {
    let app = TestApp::start().await;
    let text = note(3000);
    let stored = app
        .alice
        .post(CONTEXTS, json!({"name": "Morning brief", "text": text}))
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
    assert_eq!(stored.body["created"], true);
    let context = &stored.body["context"];
    let id = context["context_id"].as_str().unwrap().to_string();
    assert_eq!(
        context["sha256"],
        hex::encode(Sha256::digest(text.as_bytes()))
    );
    assert_eq!(context["bytes"], text.len());
    assert!(context["tokens_estimate"].as_i64().unwrap() > 2900);
    assert!(context.get("text").is_none(), "no text unless asked");
    let again = app
        .alice
        .post(CONTEXTS, json!({"name": "Same text", "text": text}))
        .await;
    assert_eq!(
        (
            again.body["created"].clone(),
            again.body["context"]["context_id"].clone()
        ),
        (json!(false), json!(id)),
        "the same text is the same context"
    );

    // Bob neither sees nor uses it.
    let path = format!("{CONTEXTS}/{id}");
    assert_eq!(app.bob.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.bob.get(CONTEXTS).await.body["contexts"], json!([]));
    let refused = app.bob.post(ENQUEUE, job("risk_report", "IBM", &id)).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(
        refused.body["detail"][0]["loc"],
        json!(["body", "context_id"])
    );
    let bulk = app
        .bob
        .post(
            "/api/v1/batch/enqueue/bulk",
            json!({"jobs": [{"job_type": "risk_report", "payload": {}}, job("risk_report", "X", &id)]}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bulk.body["detail"][0]["loc"],
        json!(["body", "jobs", 1, "context_id"])
    );
    assert_eq!(
        app.bob.request(Method::DELETE, &path).await.status,
        StatusCode::NOT_FOUND
    );

    // Alice's job carries it; while it waits, the context stays.
    let mine = app
        .alice
        .post(ENQUEUE, job("risk_report", "NVDA", &id))
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(mine.body["job"]["context_id"], json!(id));
    let in_use = app.alice.request(Method::DELETE, &path).await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{}", in_use.body);
    assert!(
        in_use.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("1 job that has not ended carries this context")
    );

    // Shared by an admin, Bob may read it and use it; a trader may not share.
    let share = format!("{path}/shared");
    assert_eq!(
        app.bob.put(&share, json!({"shared": true})).await.status,
        StatusCode::FORBIDDEN
    );
    let shared = app.admin.put(&share, json!({"shared": true})).await;
    assert_eq!(shared.body["shared"], true, "{}", shared.body);
    let read = app.bob.get(&format!("{path}?include_text=true")).await;
    assert_eq!(read.body["text"], json!(text));
    let theirs = app.bob.post(ENQUEUE, job("risk_report", "IBM", &id)).await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.body);
    let audit = app
        .admin
        .get("/api/v1/admin/audit?action=context_share")
        .await;
    assert_eq!(audit.body["entries"][0]["target"], json!(id));

    // Only once no job waits for it may it go.
    let cancel = |client: &crate::harness::Client, job: &Value| {
        let client = client.clone();
        let path = format!(
            "/api/v1/batch/jobs/{}/cancel",
            job["job"]["id"].as_str().unwrap()
        );
        async move { client.post(&path, json!({})).await }
    };
    cancel(&app.alice, &mine.body).await;
    assert_eq!(
        app.alice.request(Method::DELETE, &path).await.status,
        StatusCode::CONFLICT
    );
    cancel(&app.bob, &theirs.body).await;
    let deleted = app.alice.request(Method::DELETE, &path).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(app.alice.get(&path).await.status, StatusCode::NOT_FOUND);
    let job = app
        .alice
        .get(&format!(
            "/api/v1/batch/jobs/{}",
            mine.body["job"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(job.body["context_id"], json!(id), "its jobs keep naming it");
}

#[tokio::test]
async fn contexts_refuse_what_cannot_be_stored_with_the_contracts_answers() {
    let app = TestApp::start().await;
    let cases = [
        (json!({"name": "", "text": "x"}), "string_too_short", "name"),
        (
            json!({"name": "n\u{0}", "text": "x"}),
            "string_type",
            "name",
        ),
        (json!({"name": "n", "text": ""}), "string_too_short", "text"),
        (
            json!({"name": "n", "text": "a".repeat(1024 * 1024 + 1)}),
            "value_error",
            "text",
        ),
        (json!({"text": "x"}), "missing", "name"),
    ];
    for (body, kind, field) in cases {
        let answer = app.alice.post(CONTEXTS, body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.body
        );
        let detail = &answer.body["detail"][0];
        assert_eq!(detail["loc"], json!(["body", field]), "{detail}");
        if kind != "string_type" {
            assert_eq!(detail["type"], kind, "{detail}");
        }
    }
    let huge = format!(
        r#"{{"name": "n", "text": "{}"}}"#,
        "a".repeat(4 * 1024 * 1024)
    );
    assert_eq!(
        app.alice.post_raw(CONTEXTS, huge).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let path = format!("{CONTEXTS}/ctx_1?include_text=maybe");
    assert_eq!(
        app.alice.get(&path).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

/// Jobs carrying a 20,000-token context through the in-process emulator (reads at 0.64):
/// every job reads the context from the cache or writes it, and what it saved is split by
/// source exactly.
#[tokio::test]
async fn jobs_sharing_a_context_read_it_from_the_cache_and_say_what_that_saved() {
    let app = TestApp::start().await;
    let stored = app
        .alice
        .post(
            CONTEXTS,
            json!({"name": "Risk methodology", "text": note(20_000)}),
        )
        .await;
    let id = stored.body["context"]["context_id"]
        .as_str()
        .unwrap()
        .to_string();
    let jobs: Vec<Value> = (0..48)
        .map(|i| job("risk_report", &format!("T{i}"), &id))
        .collect();
    let queued = app
        .alice
        .post("/api/v1/batch/enqueue/bulk", json!({"jobs": jobs}))
        .await;
    assert_eq!(queued.status, StatusCode::OK, "{}", queued.body);
    // The preview prices the flush three ways: the worst case bounds the other two, and with
    // every read happening (one write, 47 reads of 20,000 tokens) it is far below the
    // batch discount alone.
    let preview = app
        .admin
        .post(
            "/api/v1/batch/internal/flush/preview",
            json!({"max_jobs": 100}),
        )
        .await
        .body;
    let usd = |k: &str| preview[k].as_f64().unwrap();
    assert!(
        usd("estimated_cost_with_cache_usd") < 0.3 * usd("estimated_cost_without_cache_usd"),
        "{preview}"
    );
    assert!(
        usd("estimated_cost_without_cache_usd") <= usd("estimated_cost_usd"),
        "{preview}"
    );
    app.flush_and_collect().await;
    let listed = app.alice.get("/api/v1/batch/jobs?limit=100").await.body;
    let jobs = listed["jobs"].as_array().unwrap();
    assert!(jobs.iter().all(|j| j["status"] == "completed"), "{listed}");
    let reads = jobs
        .iter()
        .filter(|j| j["cache_read_tokens"].as_i64().unwrap() > 20_000)
        .count();
    let writes = jobs
        .iter()
        .filter(|j| j["cache_write_tokens"].as_i64().unwrap() > 20_000)
        .count();
    assert_eq!(reads + writes, 48, "each job read the prefix or wrote it");
    // The first wave of 16 can read nothing; of the 32 after it, about 64% read.
    assert!((10..=30).contains(&reads), "{reads} reads");
    let stats = app.alice.get("/api/v1/batch/stats").await.body;
    let usd = |k: &str| stats[k].as_f64().unwrap();
    assert!(usd("total_saved_by_caching_usd") > 0.0, "{stats}");
    let days = app.alice.get("/api/v1/batch/stats/daily").await.body;
    let (mut cost, mut uncached, mut standard) = (0i64, 0i64, 0i64);
    for day in days.as_array().unwrap() {
        cost += day["cost_nanos"].as_i64().unwrap();
        uncached += day["uncached_cost_nanos"].as_i64().unwrap();
        standard += day["standard_cost_nanos"].as_i64().unwrap();
    }
    assert_eq!(usd("total_cost_usd"), app::api::nanos_to_usd(cost));
    assert_eq!(
        usd("total_saved_by_batching_usd"),
        app::api::nanos_to_usd(standard - uncached)
    );
    assert_eq!(
        usd("total_saved_by_caching_usd"),
        app::api::nanos_to_usd(uncached - cost)
    );
    // More than half off: caching on top of the batch discount.
    assert!(cost * 2 < standard, "{cost} of {standard}");
}

/// A context too short for its model's minimum is sent without a cache marker: Haiku caches
/// from 4,096 tokens, Sonnet from 1,024, and a 2,000-token context sits between.
#[tokio::test]
async fn a_prefix_under_its_models_minimum_is_sent_unmarked() {
    let provider = Provider::start(Duration::from_millis(200)).await;
    let db = Database::new().await;
    let service = Service::start(&db, &provider, SCHEDULER).await;
    let (status, stored) = service
        .post(CONTEXTS, json!({"name": "Short note", "text": note(2000)}))
        .await;
    assert_eq!(status, 200, "{stored}");
    let id = stored["context"]["context_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (job_type, ticker) in [("sentiment_analysis", "HAIKU"), ("risk_report", "SONNET")] {
        let (status, body) = service.post(ENQUEUE, job(job_type, ticker, &id)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, answer) = service
        .post("/api/v1/batch/internal/flush", json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let batch = answer["batch_id"].as_str().unwrap();
    let requests = provider.emulator.requests_of(batch).unwrap();
    for request in &requests {
        let params = request.params_value();
        let marked = params.to_string().contains("cache_control");
        let model = params["model"].as_str().unwrap();
        assert_eq!(
            marked,
            model == "claude-sonnet-4-5",
            "{model}: marked {marked}"
        );
        assert!(
            params.to_string().contains("Short note"),
            "both carry the context"
        );
    }
    let jobs = service.settled(Duration::from_secs(30)).await;
    let haiku = jobs
        .iter()
        .find(|j| j["job_type"] == "sentiment_analysis")
        .unwrap();
    assert_eq!(
        (
            haiku["cache_read_tokens"].as_i64(),
            haiku["cache_write_tokens"].as_i64()
        ),
        (Some(0), Some(0))
    );
    provider
        .books()
        .assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

/// The books equal the emulator's bill for 1,000 jobs sharing a context whose create is
/// applied and then answered 500, whose results file has a malformed line and ends short once.
#[tokio::test]
async fn a_thousand_jobs_sharing_a_context_are_billed_exactly_under_faults() {
    let provider = Provider::start(Duration::from_millis(500)).await;
    let db = Database::new().await;
    let service = Service::start(&db, &provider, SCHEDULER).await;
    let (_, stored) = service
        .post(CONTEXTS, json!({"name": "Day brief", "text": note(5000)}))
        .await;
    let id = stored["context"]["context_id"]
        .as_str()
        .unwrap()
        .to_string();
    let jobs: Vec<Value> = (0..1000)
        .map(|i| job("risk_report", &format!("T{i}"), &id))
        .collect();
    let (status, body) = service
        .post("/api/v1/batch/enqueue/bulk", json!({"jobs": jobs}))
        .await;
    assert_eq!(status, 200, "{body}");
    provider.emulator.set_faults(Faults {
        after_create: vec![AfterCreate::Error500],
        malformed_results: Some(StreamFault {
            after_lines: 300,
            ..StreamFault::default()
        }),
        short_results: Some(StreamFault {
            after_lines: 700,
            times: Some(1),
            ..StreamFault::default()
        }),
        ..Faults::default()
    });
    let (status, answer) = service
        .post("/api/v1/batch/internal/flush", json!({"max_jobs": 10000}))
        .await;
    assert_eq!(status, 503, "an uncertain create: {answer}");
    let jobs = service.settled(Duration::from_secs(90)).await;
    let completed = jobs.iter().filter(|j| j["status"] == "completed").count();
    assert_eq!(completed, 999, "all but the malformed line's job");
    let books = provider.books();
    assert_eq!(books.batches, 1, "the create was adopted, not repeated");
    assert_eq!(books.billed_twice(), Vec::<&String>::new());
    assert!(
        books.cache_read_tokens > 0 && books.cache_write_tokens > 0,
        "{books:?}"
    );
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

/// Deleting a context once its jobs failed is allowed; retrying such a job would send a prompt
/// without its text, so the job stays failed and the answer says why.
#[tokio::test]
async fn a_failed_job_whose_context_is_gone_is_not_retried() {
    let s = crate::faults::setup_with(&[("--max-attempts", "1")]).await;
    s.emulator.set_faults(Faults {
        expired_percent: 100,
        ..Faults::default()
    });
    let stored = s
        .app
        .alice
        .post(CONTEXTS, json!({"name": "Brief", "text": note(1500)}))
        .await;
    let context = stored.body["context"]["context_id"]
        .as_str()
        .unwrap()
        .to_string();
    let enqueued = s
        .app
        .alice
        .post(ENQUEUE, job("risk_report", "NVDA", &context))
        .await;
    let id = enqueued.body["job"]["id"].as_str().unwrap().to_string();
    s.app.flush_and_collect().await;
    let path = format!("/api/v1/batch/jobs/{id}");
    assert_eq!(s.app.alice.get(&path).await.body["status"], "failed");

    let deleted = s
        .app
        .alice
        .request(Method::DELETE, &format!("{CONTEXTS}/{context}"))
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let retried = s
        .app
        .admin
        .post(
            "/api/v1/batch/internal/jobs/retry",
            json!({"job_ids": [id]}),
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["retried"], 0, "{}", retried.body);
    assert_eq!(
        retried.body["results"][0]["detail"],
        "its context was deleted"
    );
    assert_eq!(s.app.alice.get(&path).await.body["status"], "failed");
}
