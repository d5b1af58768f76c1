//! The stray search: a provider batch of ours that no create window holds is found and its
//! bill counted; someone else's is read once and left alone.

use std::collections::BTreeSet;
use std::time::Duration;

use ai_batch::emulator::{AfterCreate, Faults, Times};
use ai_batch::provider::BatchRequest;
use serde_json::json;

use crate::service::{Database, FROZEN_HOLDER, Provider, SCHEDULER, Service, Side};

const FLUSH: &str = "/api/v1/batch/internal/flush";
/// A search every second, on top of the fault tests' fast scheduler.
const SEARCHING: &[(&str, &str)] = &[("AI_BATCH_STRAY_SEARCH_SECS", "1")];

#[tokio::test]
async fn a_late_copy_whose_answer_was_lost_is_found_and_its_bill_counted() {
    late_lost_answer(Side::Anthropic).await;
}

#[tokio::test]
async fn on_openai_a_late_copy_whose_answer_was_lost_is_found_and_its_bill_counted() {
    late_lost_answer(Side::OpenAi).await;
}

/// A create applied after its caller's lease lapsed and reconciliation sent the jobs again,
/// after that batch's own window was swept, whose answer was lost: no answer and no window
/// names the copy. Only the search of the provider's batches finds it, and it must, or what
/// it was billed is off the books (with the search off, this test fails).
async fn late_lost_answer(side: Side) {
    let provider = Provider::start(Duration::from_millis(500)).await;
    let db = Database::new().await;
    let env: Vec<_> = SCHEDULER
        .iter()
        .chain(SEARCHING)
        .chain(FROZEN_HOLDER)
        .chain(side.env())
        .copied()
        .collect();
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue(5).await;
    side.set_faults(
        &provider,
        Faults {
            before_create_ms: vec![6000],
            after_create: vec![AfterCreate::Drop],
            ..Faults::default()
        },
    );
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert_ne!(status, 200, "the first create's answer was lost: {answer}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let batches = loop {
        let batches = service.batches().await;
        if provider.books().batches == 2 && batches.len() == 2 {
            break batches;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the late copy is on the books within 30 s: the provider has {} batches, we {batches:#?}",
            provider.books().batches
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        batches.iter().any(|b| !b["duplicate_of"].is_null()),
        "the late copy is recorded as a duplicate: {batches:#?}"
    );
    let jobs = service.settled(Duration::from_secs(30)).await;
    assert!(jobs.iter().all(|j| j["status"] == "completed"), "{jobs:?}");
    let books = provider.books();
    assert_eq!(
        books.billed_twice().len(),
        ids.len(),
        "the copy ran them all"
    );
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
    books.assert_each_job_equal(&jobs);
}

/// Batches someone else made on the same account, one naming a job of ours among others: never
/// recorded (that would put their bill on our books), and read once, not at every search.
#[tokio::test]
async fn someone_elses_batches_are_read_once_and_never_recorded() {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env: Vec<_> = SCHEDULER.iter().chain(SEARCHING).copied().collect();
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue(2).await;
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    service.settled(Duration::from_secs(30)).await;
    let ours = service.batches().await;
    assert_eq!(ours.len(), 1);

    // Each first read finds the results gone, so both are looked at more than once.
    provider.emulator.set_faults(Faults {
        results_gone: Some(Times { times: Some(2) }),
        ..Faults::default()
    });
    let params = json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
                        "messages": [{"role": "user", "content": "theirs"}]});
    let theirs: BTreeSet<String> = [
        vec![BatchRequest::new("not-ours-1", &params)],
        vec![
            BatchRequest::new(ids[0].as_str(), &params),
            BatchRequest::new("not-ours-2", &params),
        ],
    ]
    .into_iter()
    .map(|requests| provider.emulator.create(requests).id)
    .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while provider.emulator.faults().results_gone.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the search reads their results"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The next searches read them whole and remember them; after that, none reads them again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    provider.emulator.set_faults(Faults {
        results_gone: Some(Times { times: Some(1) }),
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        provider.emulator.faults().results_gone.is_some(),
        "no results were downloaded again"
    );
    let batches = service.batches().await;
    let named = |batches: &[serde_json::Value]| -> Vec<String> {
        batches.iter().map(|b| b["batch_id"].to_string()).collect()
    };
    assert_eq!(
        named(&batches),
        named(&ours),
        "nothing of theirs on our books"
    );
    assert_eq!(provider.batches_on_one_side(&batches), theirs);
}
