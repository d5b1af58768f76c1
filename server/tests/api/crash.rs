//! Crashes around a create (between writing `submitting` and recording the provider's id, or
//! right after a late copy is cancelled): the real binary, killed by a failpoint, then
//! restarted; the rescuer reconciles with the provider.

use std::time::Duration;

use serde_json::json;

use ai_batch::emulator::Faults;

use crate::service::{Database, Provider, SCHEDULER, Service, Side, on_both_sides};

async fn crash_then_recover(side: Side, failpoint: &str) {
    let provider = Provider::start(Duration::from_millis(200)).await;
    let db = Database::new().await;
    // A short lease: reconciliation may act two seconds after the dead process's last heartbeat.
    let env: Vec<_> = [
        ("AI_BATCH_FAILPOINT", failpoint),
        ("AI_BATCH_LEASE_SECS", "2"),
    ]
    .iter()
    .chain(side.env())
    .copied()
    .collect();
    let mut first = Service::start(&db, &provider, &env).await;
    let ids = first.enqueue(3).await;
    let (status, flush) = first.post("/api/v1/batch/internal/flush", json!({})).await;
    assert_eq!(status, 0, "the process died mid-flush: {flush}");
    assert_eq!(first.exit_code(), Some(86), "it exited at the failpoint");

    // Restarted with the rescuer and auto-poll: the jobs complete, and exactly one batch exists.
    let env: Vec<_> = SCHEDULER.iter().chain(side.env()).copied().collect();
    let second = Service::start(&db, &provider, &env).await;
    let jobs = second.settled(Duration::from_secs(20)).await;
    assert_eq!(jobs.len(), ids.len());
    assert!(jobs.iter().all(|j| j["status"] == "completed"), "{jobs:?}");
    let books = provider.books();
    assert_eq!(books.batches, 1, "at most one copy is ever sent");
    books.assert_each_job_equal(&jobs);
    books.assert_equal_to(&second.get("/api/v1/batch/stats").await);
    let ours = second.batches().await;
    assert_eq!(ours.len(), 1);
    provider.assert_no_batch_on_one_side(&ours);
}

#[tokio::test]
async fn a_crash_after_the_provider_accepted_the_batch_adopts_it() {
    crash_then_recover(Side::Anthropic, "after-submit").await;
}

#[tokio::test]
async fn on_openai_a_crash_after_the_provider_accepted_the_batch_adopts_it() {
    crash_then_recover(Side::OpenAi, "after-submit").await;
}

#[tokio::test]
async fn a_crash_before_the_batch_reached_the_provider_submits_it_once() {
    crash_then_recover(Side::Anthropic, "before-submit").await;
}

#[tokio::test]
async fn on_openai_a_crash_before_the_batch_reached_the_provider_submits_it_once() {
    crash_then_recover(Side::OpenAi, "before-submit").await;
}

#[tokio::test]
async fn kill_9_during_sustained_enqueue_loses_no_answered_job() {
    let provider = Provider::start(Duration::from_secs(60)).await;
    let db = Database::new().await;
    let mut service = Service::start(&db, &provider, &[]).await;
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // Eight clients enqueue as fast as they can, until the service dies under them.
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (url, token, answered) = (service.url.clone(), db.admin.clone(), answered.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0.. {
                    let sent = http
                        .post(format!("{url}/api/v1/batch/enqueue"))
                        .bearer_auth(&token)
                        .json(&json!({"job_type": "risk_report", "payload": {"client": c, "i": i}}))
                        .send()
                        .await;
                    let Ok(response) = sent else { return };
                    let Ok(body) = response.json::<serde_json::Value>().await else {
                        return;
                    };
                    if let Some(id) = body["job"]["id"].as_str() {
                        answered.lock().unwrap().push(id.to_string());
                    }
                }
            })
        })
        .collect();
    // Killed once a sustained load is answered, however slow the machine: a fixed sleep
    // answered fewer than 200 jobs on a debug build sharing its two cores with a compiler.
    let loaded = tokio::time::Instant::now() + Duration::from_secs(60);
    while answered.lock().unwrap().len() < 300 && tokio::time::Instant::now() < loaded {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service.kill();
    for client in clients {
        client.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 300,
        "a sustained load: {} answered in a minute",
        answered.len()
    );

    let service = Service::start(&db, &provider, &[]).await;
    let stored: std::collections::HashSet<String> = service
        .jobs()
        .await
        .into_iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = answered.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} answered jobs lost: {lost:?}",
        lost.len()
    );
}

on_both_sides!(kill_after_a_late_copy_is_cancelled: a_kill_right_after_a_late_copy_is_cancelled_leaves_the_copy_on_the_books,
    on_openai_a_kill_right_after_a_late_copy_is_cancelled_leaves_the_copy_on_the_books);

/// A late copy (its create answered after reconciliation had sent the jobs again) is cancelled,
/// and the process dies right then: the copy is on the books all the same, polled to its end.
async fn kill_after_a_late_copy_is_cancelled(side: Side) {
    let provider = Provider::start(Duration::from_secs(2)).await;
    let db = Database::new().await;
    // A frozen heartbeat: the lease lapses while the first create is still in flight.
    let env: Vec<_> = SCHEDULER
        .iter()
        .chain(side.env())
        .copied()
        .chain([
            (
                "AI_BATCH_FAILPOINT",
                "stall-heartbeat,after-duplicate-cancel",
            ),
            ("AI_BATCH_LEASE_SECS", "1"),
        ])
        .collect();
    let mut first = Service::start(&db, &provider, &env).await;
    let ids = first.enqueue(5).await;
    side.set_faults(
        &provider,
        Faults {
            before_create_ms: vec![2500],
            ..Faults::default()
        },
    );
    let (status, flush) = first.post("/api/v1/batch/internal/flush", json!({})).await;
    assert_eq!(status, 0, "the process died at the failpoint: {flush}");
    assert_eq!(first.exit_code(), Some(86), "it exited at the failpoint");

    let env: Vec<_> = SCHEDULER.iter().chain(side.env()).copied().collect();
    let second = Service::start(&db, &provider, &env).await;
    let (jobs, batches) = second
        .settled_with_every_batch(&provider, Duration::from_secs(30))
        .await;
    assert_eq!(jobs.len(), ids.len());
    assert!(jobs.iter().all(|j| j["status"] == "completed"), "{jobs:?}");
    let books = provider.books();
    assert_eq!(books.batches, 2, "the late copy exists");
    provider.assert_no_batch_on_one_side(&batches);
    assert_eq!(
        books.billed_twice(),
        Vec::<&String>::new(),
        "cancelled before it ran"
    );
    books.assert_equal_to(&second.get("/api/v1/batch/stats").await);
}
