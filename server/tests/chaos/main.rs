//! Several instances on one PostgreSQL: three `ai-batch serve` processes share a database and
//! an emulator (half the jobs on its Anthropic side, half on OpenAI's; one in three carrying a
//! shared brief the providers cache); clients spread enqueues and cancels over all three; the
//! leader is killed with `kill -9` in the middle of a flush and again during an ingest; PostgreSQL itself is restarted while requests flow. Afterwards no
//! job is lost or duplicated, none was billed twice, every job is terminal, the books equal the
//! providers', no file of ours is left at OpenAI, and a new leader took over within the limit
//! each time.
//!
//! The PostgreSQL it restarts is its own (`cluster`: initdb into a temporary directory, on a
//! free port), never the machine's. `scripts/chaos.sh` runs a long version
//! (`AI_BATCH_CHAOS_JOBS`, `AI_BATCH_CHAOS_ROUNDS`).

mod cluster;
#[path = "../api/database.rs"]
mod database;
// The API tests' harness; its macro for both providers' cases is theirs alone.
#[path = "../api/service.rs"]
#[allow(unused_macros, unused_imports)]
mod service;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ai_batch::emulator::{Faults, StreamFault};
use serde_json::{Value, json};

use service::{Database, Provider, Service};

/// Seconds the leadership lasts in this test; takeover must come within it plus a renewal.
const LEADER_LEASE_SECS: u64 = 3;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ENV: &[(&str, &str)] = &[
    ("AI_BATCH_SCHEDULER", "true"),
    // Half the jobs (`sentiment_analysis`) go to OpenAI, half to Anthropic.
    ("AI_BATCH_ROUTES", "sentiment_analysis=gpt-4.1-mini"),
    ("AI_BATCH_AUTO_FLUSH_MIN_JOBS", "25"),
    ("AI_BATCH_AUTO_FLUSH_MAX_JOBS", "100"),
    ("AI_BATCH_FLUSH_INTERVAL_SECS", "1"),
    ("AI_BATCH_SCHEDULER_TICK_MS", "100"),
    ("AI_BATCH_POLL_INTERVAL_SECS", "1"),
    ("AI_BATCH_LEASE_SECS", "2"),
    ("AI_BATCH_STRAY_SEARCH_SECS", "2"),
    ("AI_BATCH_LEADER_LEASE_SECS", "3"),
    ("AI_BATCH_ANTHROPIC_REQUEST_TIMEOUT_SECS", "5"),
    ("AI_BATCH_DB_MAX_CONNECTIONS", "5"),
];

/// One request to whichever instance answers, trying the next on an outage (a 5xx or no
/// answer at all).
async fn call(
    urls: &RwLock<Vec<String>>,
    token: &str,
    turn: usize,
    path: &str,
    body: Value,
) -> Value {
    for attempt in 0.. {
        let url = {
            let urls = urls.read().unwrap();
            urls[(turn + attempt) % urls.len()].clone()
        };
        let sent = reqwest::Client::new()
            .post(format!("{url}{path}"))
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
            assert!(status.is_server_error(), "{path}: {status}");
            assert_ne!(
                status.as_u16(),
                500,
                "{path}: an outage is a 503, never a 500"
            );
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt as u64 % 10 + 1))).await;
    }
    unreachable!()
}

/// The instance that leads now, waiting for one to take over.
async fn leader(instances: &[Service], since: Instant) -> (usize, Duration) {
    loop {
        for (i, instance) in instances.iter().enumerate() {
            if instance.health().await.is_some_and(|h| h["leader"] == true) {
                return (i, since.elapsed());
            }
        }
        assert!(since.elapsed() < Duration::from_secs(60), "nobody leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the leader with `kill -9`, restarts it, and returns how long until another led.
async fn kill_the_leader(
    instances: &mut [Service],
    urls: &RwLock<Vec<String>>,
    db: &Database,
    provider: &Provider,
) -> Duration {
    let (i, _) = leader(instances, Instant::now()).await;
    instances[i].kill();
    let killed = Instant::now();
    instances[i] = Service::start(db, provider, ENV).await;
    urls.write().unwrap()[i] = instances[i].url.clone();
    let (_, took) = leader(instances, killed).await;
    took
}

/// Jobs a round adds of its own when the clients are done: a late round may otherwise find
/// every job flushed and collected, with no flush or ingest left to kill the leader in. How
/// many were added (enough for an automatic flush on each side).
async fn top_up(urls: &RwLock<Vec<String>>, token: &str, clients_done: bool, tag: &str) -> usize {
    if !clients_done {
        return 0;
    }
    const JOBS: usize = 60;
    for i in 0..JOBS {
        let job_type = ["risk_report", "sentiment_analysis"][i % 2];
        let body = json!({"job_type": job_type, "payload": {"ticker": format!("T{i}")},
                          "idempotency_key": format!("chaos-{tag}-{i}")});
        call(urls, token, i, "/api/v1/batch/enqueue", body).await;
    }
    JOBS
}

/// The same faults for both providers' calls.
fn on_both_sides(provider: &Provider, faults: Faults) {
    provider.emulator.openai().set_faults(faults.clone());
    provider.emulator.set_faults(faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_survive_kills_of_the_leader_and_a_postgres_restart() {
    let jobs = setting("AI_BATCH_CHAOS_JOBS", 400) as usize;
    let rounds = setting("AI_BATCH_CHAOS_ROUNDS", 1) as usize;
    let started = Instant::now();
    let provider = Provider::start(Duration::from_millis(1500)).await;
    on_both_sides(
        &provider,
        Faults {
            errored_percent: 3,
            ..Faults::default()
        },
    );
    let cluster = Arc::new(cluster::PrivateCluster::start());
    let db = Database::at(&cluster.url).await;
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Service::start(&db, &provider, ENV).await);
    }
    let urls = Arc::new(RwLock::new(
        instances.iter().map(|s| s.url.clone()).collect::<Vec<_>>(),
    ));

    // One job in three carries a shared brief, so cache writes and reads are billed too.
    let brief = json!({"name": "Chaos brief", "text": service::note(3000)});
    let stored = call(&urls, &db.admin, 0, "/api/v1/batch/contexts", brief).await;
    let context = stored["context"]["context_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Clients: every job through the next instance in turn (the same key if retried), and
    // one in twenty cancelled a few jobs later through yet another.
    let clients = {
        let (urls, token) = (urls.clone(), db.admin.clone());
        tokio::spawn(async move {
            let mut to_cancel = std::collections::VecDeque::new();
            for i in 0..jobs {
                let job_type = ["risk_report", "sentiment_analysis"][i % 2];
                let mut body = json!({"job_type": job_type, "payload": {"ticker": format!("C{i}")},
                                      "idempotency_key": format!("chaos-{i}")});
                if i % 3 == 0 {
                    body["context_id"] = json!(context);
                }
                let answer = call(&urls, &token, i, "/api/v1/batch/enqueue", body).await;
                if i % 20 == 7 {
                    to_cancel.push_back(answer["job"]["id"].as_str().unwrap().to_string());
                }
                if to_cancel.len() > 2 {
                    let id = to_cancel.pop_front().unwrap();
                    call(
                        &urls,
                        &token,
                        i + 1,
                        &format!("/api/v1/batch/jobs/{id}/cancel"),
                        json!({}),
                    )
                    .await;
                }
                // Paced, so requests are still flowing when PostgreSQL restarts.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };

    // A reader on every instance throughout: outages must answer 503, never 500.
    let stop_reading = tokio_util::sync::CancellationToken::new();
    let reader = {
        let (urls, token, stop) = (urls.clone(), db.admin.clone(), stop_reading.clone());
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::<u16, usize>::new();
            let mut turn = 0;
            while !stop.is_cancelled() {
                let url = {
                    let urls = urls.read().unwrap();
                    urls[turn % urls.len()].clone()
                };
                turn += 1;
                let answer = reqwest::Client::new()
                    .get(format!("{url}/api/v1/batch/stats"))
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                if let Ok(response) = answer {
                    let status = response.status().as_u16();
                    if status == 503 {
                        assert!(
                            response.headers().contains_key("retry-after"),
                            "503 without Retry-After"
                        );
                    }
                    *seen.entry(status).or_default() += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        })
    };

    let mut takeovers = Vec::new();
    let mut added = 0;
    for round in 0..rounds {
        // The leader dies in the middle of a flush: its create is slow to be applied.
        on_both_sides(
            &provider,
            Faults {
                before_create_ms: vec![2500],
                errored_percent: 3,
                ..Faults::default()
            },
        );
        let tag = format!("flush-{round}");
        added += top_up(&urls, &db.admin, clients.is_finished(), &tag).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let batches = instances[0].batches().await;
            if batches.iter().any(|b| b["status"] == "submitting") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no flush began (too few jobs for the rounds?)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        takeovers.push(kill_the_leader(&mut instances, &urls, &db, &provider).await);

        // The leader dies during an ingest: its results download stalls midway.
        on_both_sides(
            &provider,
            Faults {
                stall_results: Some(StreamFault {
                    after_lines: 5,
                    times: Some(1),
                    millis: 4000,
                    ..StreamFault::default()
                }),
                errored_percent: 3,
                ..Faults::default()
            },
        );
        let tag = format!("ingest-{round}");
        added += top_up(&urls, &db.admin, clients.is_finished(), &tag).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while provider.emulator.downloads_in_flight() == 0 {
            assert!(Instant::now() < deadline, "no ingest began");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        takeovers.push(kill_the_leader(&mut instances, &urls, &db, &provider).await);

        // PostgreSQL crashes while requests flow, and is back six seconds later.
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            cluster.down();
            std::thread::sleep(Duration::from_secs(6));
            cluster.up();
        })
        .await
        .unwrap();
    }
    clients.await.unwrap();
    let jobs = jobs + added;
    stop_reading.cancel();
    let reads = reader.await.unwrap();
    assert!(!reads.contains_key(&500), "reads answered 500: {reads:?}");
    assert!(
        reads.contains_key(&503),
        "the outage was seen as 503s: {reads:?}"
    );

    let (settled, batches) = instances[1]
        .settled_with_every_batch(&provider, Duration::from_secs(120.max(jobs as u64 / 5)))
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
    books.assert_each_job_equal(&settled);
    books.assert_equal_to(&instances[2].get("/api/v1/batch/stats").await);
    assert!(
        books.cache_read_tokens > 0 && books.cache_write_tokens > 0,
        "the brief was cached: {books:?}"
    );
    provider.assert_no_batch_on_one_side(&batches);
    provider
        .assert_no_openai_files_left(Duration::from_secs(30))
        .await;
    let limit = Duration::from_secs(LEADER_LEASE_SECS + 2);
    for took in &takeovers {
        assert!(
            *took <= limit,
            "a new leader took {took:?}, more than {limit:?}"
        );
    }
    // One leader at the end, and every instance answers.
    let mut leaders = 0;
    for instance in &instances {
        let health = instance.health().await.expect("every instance answers");
        assert_eq!(health["database"], "postgres");
        leaders += usize::from(health["leader"] == true);
    }
    assert_eq!(leaders, 1, "exactly one leader");
    let count = |s: &str| settled.iter().filter(|j| j["status"] == s).count();
    println!(
        "chaos: {jobs} jobs over 3 instances, {rounds} rounds (leader killed mid-flush and mid-ingest, \
         PostgreSQL restarted): {} completed, {} failed, {} cancelled; {} provider batches; \
         takeovers {:?}; reads by status {:?}; {} tokens ({} cache reads, {} cache writes), \
         ${:.4} billed = recorded; {:.1} s",
        count("completed"),
        count("failed"),
        count("cancelled"),
        books.batches,
        takeovers,
        reads,
        books.tokens,
        books.cache_read_tokens,
        books.cache_write_tokens,
        app::api::nanos_to_usd(books.cost_nanos),
        started.elapsed().as_secs_f64()
    );
}
