//! The stray search: a provider batch of ours that no create window holds is found and its
//! bill counted; someone else's is read once and left alone.

use std::collections::BTreeSet;
use std::time::Duration;

use ai_batch::emulator::{AfterCreate, Faults, Times};
use ai_batch::provider::{BatchBody, BatchRequest, ClientConfig, OpenAiClient, Provider as _};
use serde_json::json;

use crate::service::{Books, Database, FROZEN_HOLDER, Provider, SCHEDULER, Service, Side};

const FLUSH: &str = "/api/v1/batch/internal/flush";
/// A search every second, on top of the fault tests' fast scheduler.
const SEARCHING: &[(&str, &str)] = &[("AI_BATCH_STRAY_SEARCH_SECS", "1")];

#[tokio::test]
async fn a_late_copy_whose_answer_was_lost_is_found_and_its_bill_counted() {
    // Anthropic's copy can be proved ours only by its results: it runs to its end.
    let books = late_lost_answer(Side::Anthropic, Duration::from_millis(500)).await;
    assert_eq!(books.billed_twice().len(), JOBS, "the copy ran them all");
}

#[tokio::test]
async fn on_openai_a_late_copy_is_cancelled_while_it_runs_and_no_job_is_paid_twice() {
    // OpenAI keeps our label, which proves the copy ours at once: cancelled long before the
    // provider would have run it (ten seconds here), so it bills nothing.
    let books = late_lost_answer(Side::OpenAi, Duration::from_secs(10)).await;
    assert_eq!(
        books.billed_twice(),
        Vec::<&String>::new(),
        "no job paid twice"
    );
}

const JOBS: usize = 5;

/// A create applied after its caller's lease lapsed and reconciliation sent the jobs again,
/// after that batch's own window was swept, whose answer was lost: no answer and no window
/// names the copy. Only the search of the provider's batches finds it, and it must, or what
/// it was billed is off the books (with the search off, this test fails). `processing` is how
/// long the provider takes to run a batch. The provider's books at the end.
async fn late_lost_answer(side: Side, processing: Duration) -> Books {
    let provider = Provider::start(processing).await;
    let db = Database::new().await;
    let env: Vec<_> = SCHEDULER
        .iter()
        .chain(SEARCHING)
        .chain(FROZEN_HOLDER)
        .chain(side.env())
        .copied()
        .collect();
    let service = Service::start(&db, &provider, &env).await;
    service.enqueue(JOBS).await;
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
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
    books.assert_each_job_equal(&jobs);
    books
}

/// A service searching every second whose one batch of two jobs, on `side`, has run to its end.
struct Settled {
    // Dropped in this order: the service stops before its database goes.
    service: Service,
    _db: Database,
    provider: Provider,
    ids: Vec<String>,
    /// Our books' batches: that one.
    ours: Vec<serde_json::Value>,
}

async fn one_batch_settled(side: Side) -> Settled {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env: Vec<_> = SCHEDULER
        .iter()
        .chain(SEARCHING)
        .chain(side.env())
        .copied()
        .collect();
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue(2).await;
    let (status, answer) = service.post(FLUSH, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    service.settled(Duration::from_secs(30)).await;
    let ours = service.batches().await;
    assert_eq!(ours.len(), 1);
    Settled {
        service,
        _db: db,
        provider,
        ids,
        ours,
    }
}

/// Batches someone else made on the same account, one naming a job of ours among others: never
/// recorded (that would put their bill on our books), and read once, not at every search.
#[tokio::test]
async fn someone_elses_batches_are_read_once_and_never_recorded() {
    let settled = one_batch_settled(Side::Anthropic).await;
    let (provider, service) = (&settled.provider, &settled.service);
    let (ids, ours) = (&settled.ids, &settled.ours);

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
        named(ours),
        "nothing of theirs on our books"
    );
    assert_eq!(provider.batches_on_one_side(&batches), theirs);
}

/// On OpenAI the label alone proves a batch ours or not, running or not: a copy labelled with
/// our batch's id is recorded and cancelled while it runs; a batch another instance made on
/// the same account (its own label, one of our jobs among its requests) is neither recorded
/// nor cancelled, and its results are never downloaded.
#[tokio::test]
async fn on_openai_the_label_alone_proves_a_batch_ours_or_someone_elses() {
    let settled = one_batch_settled(Side::OpenAi).await;
    let (provider, service) = (&settled.provider, &settled.service);
    let (ids, ours) = (&settled.ids, &settled.ours);
    let local_id = ours[0]["local_id"].as_str().unwrap();

    // From here on batches run for a minute: whatever ends them early is a cancel.
    let openai = provider.emulator.openai();
    openai.set_processing_delay(Duration::from_secs(60));
    let client = OpenAiClient::new(ClientConfig::new(&provider.url, "key")).unwrap();
    let params = json!({"model": "gpt-4.1-mini", "max_tokens": 100,
                        "messages": [{"role": "user", "content": "again"}]});
    let requests = |ids: &[&str]| {
        let requests: Vec<_> = ids
            .iter()
            .map(|id| BatchRequest::new(*id, &params))
            .collect();
        BatchBody::from_requests(&requests).unwrap()
    };
    let copy = client
        .create_batch(local_id, requests(&[&ids[0], &ids[1]]))
        .await
        .unwrap();
    let theirs = client
        .create_batch("another-instance-batch", requests(&[&ids[0], "not-ours"]))
        .await
        .unwrap();

    let recorded = service
        .batch_where(
            "for the running copy, recorded and ended",
            Duration::from_secs(20),
            |b| b["batch_id"] == copy.id.as_str() && b["ended_at"].is_string(),
        )
        .await;
    assert_eq!(recorded["duplicate_of"], local_id, "{recorded:#}");
    let status = |id: &str| serde_json::to_value(openai.get(id).unwrap().status).unwrap();
    assert_eq!(status(&copy.id), "cancelled");
    assert_eq!(
        status(&theirs.id),
        "in_progress",
        "theirs is not ours to cancel"
    );

    // Theirs ends now; a download of its results would take the fault.
    openai.set_faults(Faults {
        results_gone: Some(Times { times: Some(1) }),
        ..Faults::default()
    });
    openai.set_processing_delay(Duration::from_millis(300));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(status(&theirs.id), "completed");
    assert!(
        openai.faults().results_gone.is_some(),
        "their results were never downloaded"
    );
    let batches = service.batches().await;
    assert_eq!(batches.len(), 2, "theirs is not on our books: {batches:#?}");
    assert_eq!(
        provider.openai_books().billed_twice(),
        vec![&ids[0]],
        "theirs billed one job of ours again (their business); the copy billed nothing"
    );
}
