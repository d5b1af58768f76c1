//! The fault soak: the scheduler alone runs the batch loop, half the jobs on Anthropic and
//! half on OpenAI, while each emulator meets 30% of provider calls with a random fault of any
//! kind (refusals, 500s, creates applied and then answered 500, dropped or late, cut, stalled,
//! short, malformed and missing results) and the service is killed with `kill -9` at random
//! moments and restarted. Clients enqueue (with idempotency keys, retrying through the
//! outages) and cancel one job in twenty meanwhile; one job in three carries a shared brief the
//! providers cache. Afterwards every job is terminal, none is lost or duplicated, none was
//! billed twice, the service's books equal both providers', and none of our files is left at
//! OpenAI.
//!
//! The suite runs a short version; `scripts/soak.sh` runs a long one with the same test
//! (`AI_BATCH_SOAK_JOBS`, `AI_BATCH_SOAK_KILLS`, `AI_BATCH_SOAK_SEED`).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ai_batch::emulator::{Chaos, Faults};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::service::{Database, Provider, Service, note};

const CONTEXTS: &str = "/api/v1/batch/contexts";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One client request against whichever service is up, retried through outages.
async fn call(
    url: &RwLock<String>,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    loop {
        let base = url.read().unwrap().clone();
        let sent = reqwest::Client::new()
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status();
            if status.is_success() || status.as_u16() == 409 {
                return response.json().await.unwrap_or(Value::Null);
            }
            assert!(
                status.is_server_error(),
                "{path}: {status} {:?}",
                response.text().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn fault_soak_kill_9_and_random_provider_faults_keep_the_books_straight() {
    let jobs = setting("AI_BATCH_SOAK_JOBS", 300) as usize;
    let kills = setting("AI_BATCH_SOAK_KILLS", 6) as usize;
    let seed = setting("AI_BATCH_SOAK_SEED", 7);
    let started = Instant::now();

    let provider = Provider::start(Duration::from_millis(800)).await;
    let faults = |seed| Faults {
        chaos: Some(Chaos {
            percent: 30,
            seed,
            late_ms: 2500,
        }),
        errored_percent: 5,
        expired_percent: 5,
        ..Faults::default()
    };
    provider.emulator.set_faults(faults(seed));
    provider.emulator.openai().set_faults(faults(seed ^ 0x0a1));
    let db = Database::new().await;
    let env = [
        ("AI_BATCH_SCHEDULER", "true"),
        // Half the jobs (`sentiment_analysis`) go to OpenAI, half to Anthropic.
        ("AI_BATCH_ROUTES", "sentiment_analysis=gpt-4.1-mini"),
        ("AI_BATCH_AUTO_FLUSH_MIN_JOBS", "25"),
        ("AI_BATCH_AUTO_FLUSH_MAX_JOBS", "60"),
        ("AI_BATCH_FLUSH_INTERVAL_SECS", "1"),
        ("AI_BATCH_SCHEDULER_TICK_MS", "100"),
        ("AI_BATCH_POLL_INTERVAL_SECS", "1"),
        ("AI_BATCH_LEASE_SECS", "2"),
        ("AI_BATCH_STRAY_SEARCH_SECS", "2"),
        ("AI_BATCH_LEADER_LEASE_SECS", "2"),
        ("AI_BATCH_ANTHROPIC_REQUEST_TIMEOUT_SECS", "2"),
        ("AI_BATCH_ANTHROPIC_READ_TIMEOUT_SECS", "2"),
        ("AI_BATCH_ANTHROPIC_MAX_RETRIES", "2"),
    ];
    let mut service = Service::start(&db, &provider, &env).await;
    let url = Arc::new(RwLock::new(service.url.clone()));
    let token = db.admin.clone();
    // One job in three carries a shared brief, so cache writes and reads are billed (on both
    // providers) through the same faults and kills.
    let brief = json!({"name": "Soak brief", "text": note(3000)});
    let stored = call(&url, &token, reqwest::Method::POST, CONTEXTS, brief).await;
    let context = stored["context"]["context_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Clients: enqueue every job (each with its own idempotency key, so a retry after an
    // outage is the same job), and cancel one in twenty a moment later.
    let clients = {
        let (url, token, context) = (url.clone(), token.clone(), context.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut to_cancel = std::collections::VecDeque::new();
            let cancel = |id: String| {
                let (url, token) = (url.clone(), token.clone());
                async move {
                    let path = format!("/api/v1/batch/jobs/{id}/cancel");
                    call(&url, &token, reqwest::Method::POST, &path, json!({})).await;
                }
            };
            for i in 0..jobs {
                let job_type = ["risk_report", "sentiment_analysis"][i % 2];
                let mut body = json!({"job_type": job_type, "payload": {"ticker": format!("S{i}")},
                                      "idempotency_key": format!("soak-{i}")});
                if i % 3 == 0 {
                    body["context_id"] = json!(context);
                }
                let answer = call(
                    &url,
                    &token,
                    reqwest::Method::POST,
                    "/api/v1/batch/enqueue",
                    body,
                )
                .await;
                if rng.random_range(0..20) == 0 {
                    to_cancel.push_back(answer["job"]["id"].as_str().unwrap().to_string());
                }
                // A chosen job is cancelled a few enqueues later: pending, or already in flight.
                if to_cancel.len() > 2 {
                    cancel(to_cancel.pop_front().unwrap()).await;
                }
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
                }
            }
            for id in to_cancel {
                cancel(id).await;
            }
        })
    };

    // kill -9 at random moments, then restart on the same database.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3000))).await;
        service.kill();
        service = Service::start(&db, &provider, &env).await;
        *url.write().unwrap() = service.url.clone();
    }
    clients.await.unwrap();

    let (settled, batches) = service
        .settled_with_every_batch(&provider, Duration::from_secs(180.max(jobs as u64 / 10)))
        .await;
    assert_eq!(settled.len(), jobs, "no job lost or duplicated");
    let keys: HashSet<_> = settled
        .iter()
        .map(|j| j["idempotency_key"].clone())
        .collect();
    assert_eq!(keys.len(), jobs);

    let books = provider.books();
    assert_eq!(
        books.billed_twice(),
        Vec::<&String>::new(),
        "no job billed twice"
    );
    let count = |s: &str| settled.iter().filter(|j| j["status"] == s).count();
    println!(
        "soak: {jobs} jobs, {kills} kills, seed {seed}: {} completed, {} failed, {} cancelled; \
         {} local batches, {} provider batches ({} duplicates); {} tokens ({} cache reads, {} cache writes), ${:.4} billed; {:.1} s",
        count("completed"),
        count("failed"),
        count("cancelled"),
        batches
            .iter()
            .filter(|b| b["duplicate_of"].is_null())
            .count(),
        books.batches,
        batches
            .iter()
            .filter(|b| !b["duplicate_of"].is_null())
            .count(),
        books.tokens,
        books.cache_read_tokens,
        books.cache_write_tokens,
        app::api::nanos_to_usd(books.cost_nanos),
        started.elapsed().as_secs_f64()
    );
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for job in settled.iter().filter(|j| j["status"] == "failed") {
        let reason = job["error_message"].as_str().unwrap_or_default();
        // The reason without its details (ids, counts): what kind of failure it was.
        let kind: String = reason
            .split([':', '(', ';'])
            .next()
            .unwrap_or_default()
            .trim()
            .into();
        *reasons.entry(kind).or_default() += 1;
    }
    println!("soak: failed jobs by reason: {reasons:?}");
    // After the run's figures, so a failing run says what it did; a batch missing from one
    // side first, as it would explain the jobs whose books differ.
    provider.assert_no_batch_on_one_side(&batches);
    books.assert_each_job_equal(&settled);
    let stats = service.get("/api/v1/batch/stats").await;
    books.assert_equal_to(&stats);
    println!("soak: recorded = billed, job by job and in total");
    assert!(count("completed") > jobs / 2, "most jobs complete");
    assert!(
        books.cache_read_tokens > 0 && books.cache_write_tokens > 0,
        "the brief was cached: {books:?}"
    );
    provider
        .assert_no_openai_files_left(Duration::from_secs(30))
        .await;
    // Here a duplicate can only come from a create answered after a takeover: cancelled at
    // once, so it never ran. One that billed would be a later batch taken for a copy.
    for duplicate in batches.iter().filter(|b| !b["duplicate_of"].is_null()) {
        assert_eq!(duplicate["billed_tokens"], 0, "{duplicate}");
    }
}
