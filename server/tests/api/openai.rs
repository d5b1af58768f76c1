//! A second provider: job types routed to OpenAI go there in their own batch, and the books
//! equal each provider's bill. The real binary against the emulator, which speaks both APIs.

use std::time::Duration;

use ai_batch::emulator::Faults;
use serde_json::{Value, json};

use crate::service::{Database, Provider, SCHEDULER, Service};

const FLUSH: &str = "/api/v1/batch/internal/flush";
const PREVIEW: &str = "/api/v1/batch/internal/flush/preview";
const ROUTE_SENTIMENT: (&str, &str) = ("AI_BATCH_ROUTES", "sentiment_analysis=gpt-4.1-mini");

/// Each refused call fails at once, so a test counts the refusals it sets.
const NO_RETRIES: (&str, &str) = ("AI_BATCH_ANTHROPIC_MAX_RETRIES", "0");

/// The scheduler's settings with sentiment analyses routed to OpenAI, and `extra`.
fn routed(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    SCHEDULER
        .iter()
        .copied()
        .chain([ROUTE_SENTIMENT])
        .chain(extra.iter().copied())
        .collect()
}

fn count(jobs: &[Value], key: &str, value: &str) -> usize {
    jobs.iter().filter(|j| j[key] == value).count()
}

#[tokio::test]
async fn a_flush_sends_one_batch_per_provider_and_the_books_equal_both_bills() {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env = routed(&[]);
    let service = Service::start(&db, &provider, &env).await;
    service.enqueue_of("risk_report", 6).await;
    service.enqueue_of("sentiment_analysis", 4).await;

    let (status, answer) = service.post(FLUSH, json!({"max_jobs": 100})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["jobs_count"], 10, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("6 jobs to Anthropic") && message.contains("4 jobs to OpenAI"),
        "{message}"
    );

    let jobs = service.settled(Duration::from_secs(30)).await;
    assert_eq!(count(&jobs, "status", "completed"), 10);
    assert_eq!(count(&jobs, "provider", "openai"), 4);
    assert_eq!(count(&jobs, "provider", "anthropic"), 6);
    for job in jobs.iter().filter(|j| j["provider"] == "openai") {
        assert_eq!(job["job_type"], "sentiment_analysis");
        assert_eq!(job["model"], "gpt-4.1-mini");
        assert!(job["cost_usd"].as_f64().unwrap() > 0.0, "{job}");
    }
    let batches = service.batches().await;
    let providers: Vec<&str> = batches
        .iter()
        .map(|b| b["provider"].as_str().unwrap())
        .collect();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert!(providers.contains(&"anthropic") && providers.contains(&"openai"));

    let (anthropic, openai) = (provider.anthropic_books(), provider.openai_books());
    assert_eq!((anthropic.batches, openai.batches), (1, 1));
    assert_eq!(openai.billed_per_job.len(), 4);
    assert_eq!(anthropic.billed_per_job.len(), 6);
    let books = provider.books();
    assert_eq!(books.billed_twice(), Vec::<&String>::new());
    let stats = service.get("/api/v1/batch/stats").await;
    books.assert_equal_to(&stats);
    // Each provider's share of the books is its own bill.
    let share = |name: &str| {
        stats["by_provider"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["provider"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
    };
    for (name, bill) in [("anthropic", &anthropic), ("openai", &openai)] {
        let share = share(name);
        assert_eq!(share["tokens_used"].as_i64(), Some(bill.tokens), "{share}");
        assert_eq!(
            share["cost_usd"].as_f64(),
            Some(app::api::nanos_to_usd(bill.cost_nanos)),
            "{share}"
        );
    }

    // Lists and exports filter by provider.
    let openai_jobs = service
        .get("/api/v1/batch/jobs?provider=openai&limit=100")
        .await;
    assert_eq!(openai_jobs["total_count"], 4, "{openai_jobs}");
    let (status, refused) = service
        .call(
            reqwest::Method::GET,
            "/api/v1/batch/jobs?provider=mistral",
            None,
        )
        .await;
    assert_eq!(status, 422, "{refused}");

    // Ingested: our files at OpenAI are deleted (input, output, errors).
    assert_eq!(provider.emulator.openai().files(), vec![]);
}

/// A cap on the requests a batch holds splits a backlog across flushes on both providers: the
/// preview and the flush say which limit stopped them and how many wait, the jobs past it stay
/// pending, the next flush sends them, and the books equal both bills.
#[tokio::test]
async fn a_batch_stops_at_its_request_cap_and_the_rest_go_in_the_next_flush() {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env = routed(&[("AI_BATCH_MAX_BATCH_REQUESTS", "3")]);
    let service = Service::start(&db, &provider, &env).await;
    service.enqueue_of("risk_report", 5).await;
    service.enqueue_of("sentiment_analysis", 4).await;

    let (status, preview) = service.post(PREVIEW, json!({"max_jobs": 100})).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["jobs_count"], 6, "{preview}");
    let said = preview["message"].as_str().unwrap();
    for waiting in [
        " 2 more would wait: the batch would reach the limit of 3 requests a batch to Anthropic.",
        " 1 more would wait: the batch would reach the limit of 3 requests a batch to OpenAI.",
    ] {
        assert!(said.contains(waiting), "{said}");
    }

    let confirmed = json!({"max_jobs": 100, "preview_token": preview["preview_token"]});
    let (status, first) = service.post(FLUSH, confirmed).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["jobs_count"], 6, "{first}");
    let said = first["message"].as_str().unwrap();
    for stopped in [
        " Stopped at the limit of 3 requests a batch to Anthropic: 2 more eligible jobs stay \
         pending for the next flush.",
        " Stopped at the limit of 3 requests a batch to OpenAI: 1 more eligible job stays \
         pending for the next flush.",
    ] {
        assert!(said.contains(stopped), "{said}");
    }
    assert_eq!(count(&service.jobs().await, "status", "pending"), 3);

    let (status, second) = service.post(FLUSH, json!({"max_jobs": 100})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["jobs_count"], 3, "{second}");
    assert!(
        !second["message"].as_str().unwrap().contains("Stopped"),
        "{second}"
    );

    let jobs = service.settled(Duration::from_secs(30)).await;
    assert_eq!(count(&jobs, "status", "completed"), 9);
    let batches = service.batches().await;
    let sizes: Vec<i64> = batches
        .iter()
        .map(|b| b["jobs_count"].as_i64().unwrap())
        .collect();
    assert_eq!(batches.len(), 4, "{batches:?}");
    assert!(sizes.iter().all(|&n| n <= 3), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<i64>(), 9);
    let (anthropic, openai) = (provider.anthropic_books(), provider.openai_books());
    assert_eq!((anthropic.batches, openai.batches), (2, 2));
    let books = provider.books();
    assert_eq!(books.billed_twice(), Vec::<&String>::new());
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

/// `AI_BATCH_MAX_BATCH_MB` caps the file OpenAI receives, not the body as Anthropic would
/// receive it: OpenAI's JSONL is larger (3–11% for our job types), so a batch filled to the
/// cap as measured for Anthropic went past it by a tenth.
#[tokio::test]
async fn a_size_cap_holds_for_the_file_openai_receives() {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env = [ROUTE_SENTIMENT, ("AI_BATCH_MAX_BATCH_MB", "1")];
    let service = Service::start(&db, &provider, &env).await;
    let jobs: Vec<Value> = (0..1_200)
        .map(|i| json!({"job_type": "sentiment_analysis", "payload": {"ticker": format!("T{i}")}}))
        .collect();
    let (status, queued) = service
        .post("/api/v1/batch/enqueue/bulk", json!({"jobs": jobs}))
        .await;
    assert_eq!(status, 200, "{queued}");

    let (status, flushed) = service.post(FLUSH, json!({"max_jobs": 10_000})).await;
    assert_eq!(status, 200, "{flushed}");
    let said = flushed["message"].as_str().unwrap();
    assert!(
        said.contains("Stopped at the limit of 1 MB a batch to OpenAI"),
        "{said}"
    );
    let files = provider.emulator.openai().files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].bytes <= 1 << 20,
        "{} bytes uploaded",
        files[0].bytes
    );
    assert!(
        files[0].bytes > (1 << 20) / 2,
        "the batch was filled: {} bytes",
        files[0].bytes
    );
    let sent = flushed["jobs_count"].as_i64().unwrap();
    let (status, rest) = service.post(FLUSH, json!({"max_jobs": 10_000})).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["jobs_count"].as_i64().unwrap(), 1_200 - sent, "{rest}");
}

#[tokio::test]
async fn an_expired_openai_batch_bills_its_completed_work_and_the_books_hold() {
    // Batches never end on their own here: only the 24 h window closes them.
    let provider = Provider::start(Duration::from_secs(3600)).await;
    let db = Database::new().await;
    let env = routed(&[]);
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue_of("sentiment_analysis", 10).await;
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    provider.emulator.advance_clock(chrono::Duration::hours(25));

    // Half completed before the window closed (billed, kept); the rest expired and go
    // again in a later flush, which the test lets end normally.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = service.jobs().await;
        if count(&jobs, "status", "completed") == 5 && count(&jobs, "status", "pending") == 5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            jobs.iter().map(|j| &j["status"]).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let books = provider.books();
    assert_eq!(
        books.billed_per_job.len(),
        5,
        "OpenAI billed the completed half"
    );
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);

    provider
        .emulator
        .openai()
        .set_processing_delay(Duration::from_millis(200));
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let jobs = service.settled(Duration::from_secs(30)).await;
    assert_eq!(count(&jobs, "status", "completed"), ids.len());
    let books = provider.books();
    assert_eq!(
        books.billed_twice(),
        Vec::<&String>::new(),
        "none paid twice"
    );
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

#[tokio::test]
async fn a_refused_upload_sends_nothing_and_the_jobs_wait() {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env = routed(&[]);
    let service = Service::start(&db, &provider, &env).await;
    service.enqueue_of("sentiment_analysis", 3).await;
    let refusal: Faults = serde_json::from_value(json!({
        "fail_next": [{"status": 400, "endpoint": "upload"}]
    }))
    .unwrap();
    provider.emulator.openai().set_faults(refusal);
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert!(status >= 400, "{status} {answer}");
    let jobs = service.jobs().await;
    assert_eq!(count(&jobs, "status", "pending"), 3, "{jobs:?}");
    assert_eq!(provider.openai_books().batches, 0, "no batch was made");
}

/// Our files at OpenAI (the traders' prompts and answers) are deleted once a batch is
/// ingested; a delete the provider refuses is tried again by the rescuer until it is done.
#[tokio::test]
async fn files_whose_delete_was_refused_are_deleted_by_a_later_round() {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env = routed(&[NO_RETRIES]);
    let service = Service::start(&db, &provider, &env).await;
    service.enqueue_of("sentiment_analysis", 3).await;
    let refusal = json!({"status": 500, "endpoint": "delete"});
    let refusals: Faults =
        serde_json::from_value(json!({ "fail_next": vec![refusal; 3] })).unwrap();
    provider.emulator.openai().set_faults(refusals);
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let jobs = service.settled(Duration::from_secs(30)).await;
    assert_eq!(count(&jobs, "status", "completed"), 3, "{jobs:?}");

    let openai = provider.emulator.openai();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !openai.files().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "files left at OpenAI: {:?}",
            openai.files()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(openai.faults().fail_next, vec![], "every refusal was met");
    provider
        .books()
        .assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

/// A delete OpenAI refuses for good (a 403) is not tried again: the copy is left there, with
/// an error in the log and a note on the batch for admins, rather than called for every
/// rescuer round; the input file, named after our batch, is still found by the stray search
/// once the batch has settled.
#[tokio::test]
async fn a_delete_refused_for_good_is_not_tried_again() {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env = routed(&[NO_RETRIES, ("AI_BATCH_STRAY_SEARCH_SECS", "1")]);
    let service = Service::start(&db, &provider, &env).await;
    service.enqueue_of("sentiment_analysis", 3).await;
    let refusal: Faults = serde_json::from_value(json!({
        "fail_next": [{"status": 403, "endpoint": "delete"}]
    }))
    .unwrap();
    let openai = provider.emulator.openai();
    openai.set_faults(refusal);
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    service.settled(Duration::from_secs(30)).await;
    assert_eq!(openai.faults().fail_next, vec![], "the delete was refused");

    // Three rescuer rounds and two searches later: only the output file is left.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left: Vec<String> = openai.files().into_iter().map(|f| f.filename).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        !left[0].starts_with("ai-batch-"),
        "ours was found: {left:?}"
    );
    let batches = service.batches().await;
    let note = batches[0]["error"].as_str().unwrap_or_default();
    assert!(
        note.starts_with("OpenAI refused to delete this batch's files (")
            && note.ends_with("they stay at OpenAI until deleted by hand"),
        "{batches:?}"
    );
}

/// An input file no batch took (here: a create refused, and the delete that would clean up
/// after it refused too) is deleted by the stray search once its batch has settled; a file of
/// another deployment on the same account, named like ours, is left alone.
#[tokio::test]
async fn an_upload_no_batch_took_is_deleted_and_another_deployments_is_left() {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env = routed(&[NO_RETRIES, ("AI_BATCH_STRAY_SEARCH_SECS", "1")]);
    let service = Service::start(&db, &provider, &env).await;
    let line =
        json!({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {}});
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part(
            "file",
            reqwest::multipart::Part::text(line.to_string())
                .file_name("ai-batch-01a2b3c4-0000-7000-8000-000000000000.jsonl"),
        );
    let theirs: Value = reqwest::Client::new()
        .post(format!("{}/v1/files", provider.url))
        .bearer_auth("test-key")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    service.enqueue_of("sentiment_analysis", 3).await;
    let refusals: Faults = serde_json::from_value(json!({"fail_next": [
        {"status": 400, "endpoint": "create"},
        {"status": 500, "endpoint": "delete"},
    ]}))
    .unwrap();
    provider.emulator.openai().set_faults(refusals);
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert!(status >= 400, "{status} {answer}");
    let openai = provider.emulator.openai();
    assert_eq!(openai.faults().fail_next, vec![], "the cleanup was refused");
    assert_eq!(openai.files().len(), 2, "ours is left behind, for now");

    let ids = || openai.files().into_iter().map(|f| f.id).collect::<Vec<_>>();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ids().len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "ours not deleted: {:?}",
            openai.files()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Three more searches: the other deployment's file stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(ids(), [theirs["id"].as_str().unwrap()]);
    assert_eq!(provider.openai_books().batches, 0, "no batch was made");
}

#[tokio::test]
async fn a_route_to_an_unpriced_model_or_an_unconfigured_provider_stops_the_start() {
    let db = Database::new().await;
    for (routes, key, expected) in [
        ("sentiment_analysis=gpt-9", "test-key", "has no price"),
        ("sentiment_analysis=gpt-4.1-mini", "", "OPENAI_API_KEY"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ai-batch"))
            .arg("serve")
            .env("AI_BATCH_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", &db.url)
            .env("AI_BATCH_PROVIDER", "anthropic")
            .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("OPENAI_API_KEY", key)
            .env("AI_BATCH_ROUTES", routes)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{routes}: started");
        assert!(stderr.contains(expected), "{routes}: {stderr}");
    }
}

/// A signed event as OpenAI sends it (Standard Webhooks), or with another secret.
async fn send_event(service: &Service, secret: &str, timestamp: i64, event: &Value) -> u16 {
    let body = event.to_string();
    let id = "msg_test_1";
    reqwest::Client::new()
        .post(format!("{}/webhooks/openai", service.url))
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            ai_batch::webhooks::sign(secret, id, timestamp, body.as_bytes()),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_signed_batch_completed_webhook_polls_the_batch_at_once_and_a_forged_one_is_refused() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let provider = Provider::start(Duration::from_millis(200)).await;
    let db = Database::new().await;
    // Polls an hour apart: only the webhook can bring the results in within the test.
    let env = routed(&[
        ("AI_BATCH_POLL_INTERVAL_SECS", "3600"),
        ("OPENAI_WEBHOOK_SECRET", SECRET),
    ]);
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue_of("sentiment_analysis", 3).await;
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let batch = answer["batch_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let event = json!({"object": "event", "id": "evt_1", "type": "batch.completed",
                       "created_at": chrono::Utc::now().timestamp(), "data": {"id": batch}});
    let now = chrono::Utc::now().timestamp();

    assert_eq!(
        send_event(&service, "whsec_b3RoZXI=", now, &event).await,
        401,
        "another secret"
    );
    assert_eq!(
        send_event(&service, SECRET, now - 3600, &event).await,
        401,
        "an old replay"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&service.jobs().await, "status", "processing"),
        ids.len(),
        "refused events poll nothing"
    );

    assert_eq!(send_event(&service, SECRET, now, &event).await, 200);
    let jobs = service.settled(Duration::from_secs(10)).await;
    assert_eq!(count(&jobs, "status", "completed"), ids.len());
    provider
        .books()
        .assert_equal_to(&service.get("/api/v1/batch/stats").await);
}
