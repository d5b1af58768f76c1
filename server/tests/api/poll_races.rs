//! Two polls of one batch at once, and a cancel in the middle of one: whatever lands first,
//! the results are collected once, what the provider billed is on the books once, and no
//! poll answers with something that did not happen. Each runs on both providers (`Side`).

use std::pin::pin;
use std::time::Duration;

use ai_batch::emulator::{Faults, InjectedFailure};
use futures::future::select;
use serde_json::json;

use crate::money::{count, flush};
use crate::service::{Database, Provider, Service, Side, on_both_sides};

const POLL: &str = "/api/v1/batch/internal/poll";

/// Results writes wait three seconds after they are decided.
const SLOW_WRITES: &[(&str, &str)] = &[("AI_BATCH_FAILPOINT", "slow-results-write")];

/// A frozen poller: three seconds between its retrieve and its read of the results, with no
/// heartbeat and a one-second lease, so its lease lapses in that pause.
const FROZEN_READER: &[(&str, &str)] = &[
    ("AI_BATCH_FAILPOINT", "stall-heartbeat,slow-results-read"),
    ("AI_BATCH_LEASE_SECS", "1"),
];

/// Three jobs flushed into a batch that has ended at the provider, on a service started with
/// `failpoints`: the provider, the database (kept for the service's life), the service, the
/// jobs and the batch.
async fn ended_batch_under(
    side: Side,
    failpoints: &[(&str, &str)],
) -> (Provider, Database, Service, Vec<String>, String) {
    let provider = Provider::start(Duration::from_millis(200)).await;
    let db = Database::new().await;
    let env: Vec<_> = failpoints.iter().chain(side.env()).copied().collect();
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue(3).await;
    let (status, answer) = flush(&service).await;
    assert_eq!(status, 200, "{answer}");
    let batch = answer["batch_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(800)).await;
    (provider, db, service, ids, batch)
}

on_both_sides!(cancel_before_write: a_cancel_between_a_results_decision_and_its_write_keeps_the_bill,
    on_openai_a_cancel_between_a_results_decision_and_its_write_keeps_the_bill);

/// A job cancelled after its result was read and decided, before it was written: the cancel
/// stands, and what the provider billed for the result is on the books, once.
async fn cancel_before_write(side: Side) {
    let (provider, _db, service, ids, batch) = ended_batch_under(side, SLOW_WRITES).await;
    // The poll reads and decides at once, then waits three seconds before it writes; the
    // cancel lands a second into that wait.
    let poll = service.post(POLL, json!({ "batch_id": batch }));
    let cancel = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let path = format!("/api/v1/batch/jobs/{}/cancel", ids[0]);
        service.post(&path, json!({})).await
    };
    let ((poll_status, polled), (status, cancelled)) = tokio::join!(poll, cancel);
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(poll_status, 200, "{polled}");
    assert_eq!(polled["jobs_processed"], 3, "{polled}");
    let report = polled["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["job_id"] == ids[0].as_str())
        .unwrap_or_else(|| panic!("the cancelled job is reported: {polled}"));
    assert!(report["result"].is_null(), "{report}");
    assert_eq!(report["error"], "cancelled in flight; result discarded");

    let jobs = service.settled(Duration::from_secs(20)).await;
    let books = provider.books();
    assert_eq!(books.batches, 1);
    books.assert_each_job_equal(&jobs);
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
    let job = service.get(&format!("/api/v1/batch/jobs/{}", ids[0])).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(job["tokens_used"].as_i64().unwrap() > 0, "billed: {job}");
    assert_eq!(count(&jobs, "completed"), 2);
}

on_both_sides!(polled_twice_at_once: a_poll_that_waited_for_another_finds_the_results_collected,
    on_openai_a_poll_that_waited_for_another_finds_the_results_collected);

/// Two admins poll one ended batch at once: the second waits for the first's lease, then
/// finds the results collected. It read the batch before the first let go of the provider's
/// copy, and must not collect again from a copy that is gone.
async fn polled_twice_at_once(side: Side) {
    let (provider, _db, service, _ids, batch) = ended_batch_under(side, SLOW_WRITES).await;
    // The first poll holds the batch three seconds before it writes; the second comes in
    // half a second after it and waits (up to five seconds) for the lease.
    one_collects(&service, &batch, Duration::from_millis(500)).await;
    assert_collected_once(&provider, &service, &batch).await;
}

on_both_sides!(polled_by_a_frozen_worker: a_poll_whose_lease_lapsed_finds_the_results_collected_by_the_next,
    on_openai_a_poll_whose_lease_lapsed_finds_the_results_collected_by_the_next);

/// A poller freezes between its retrieve and its read of the results; its lease lapses, a
/// second poll takes the batch and freezes the same way, and the first comes back, collects
/// and lets go of the provider's copy. The second then reads a file that is gone (OpenAI) or
/// again (Anthropic), and must answer that the results were collected, change nothing and
/// note nothing on the batch.
async fn polled_by_a_frozen_worker(side: Side) {
    let (provider, _db, service, _ids, batch) = ended_batch_under(side, FROZEN_READER).await;
    // The second comes in after the first's lease has lapsed.
    one_collects(&service, &batch, Duration::from_millis(1500)).await;
    assert_collected_once(&provider, &service, &batch).await;
}

on_both_sides!(late_read_fails: a_poll_whose_lease_lapsed_and_whose_read_fails_finds_the_results_collected,
    on_openai_a_poll_whose_lease_lapsed_and_whose_read_fails_finds_the_results_collected);

/// As above, but the late poller's read of the results fails (500s past its retries) after
/// the other has collected them: its answer is that they were collected, not its error, and
/// nothing is noted on the batch.
async fn late_read_fails(side: Side) {
    let (provider, _db, service, _ids, batch) = ended_batch_under(side, FROZEN_READER).await;
    let first = pin!(service.post(POLL, json!({ "batch_id": batch })));
    // The second comes in after the first's lease lapsed and reads 2.5 s after the first.
    let second = pin!(async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        service.post(POLL, json!({ "batch_id": batch })).await
    });
    let refuse_results = || {
        let refusal = InjectedFailure {
            status: 500,
            retry_after_secs: Some(0),
            endpoint: Some("results".into()),
        };
        let fail_next = vec![refusal; 5];
        side.set_faults(
            &provider,
            Faults {
                fail_next,
                ..Faults::default()
            },
        );
    };
    // Whichever answers first collected; the other is still reading.
    let ((collector_status, collector), late) = select(first, second).await.factor_first();
    refuse_results();
    let (late_status, late) = late.await;
    assert_eq!(collector_status, 200, "{collector}");
    assert_eq!(collector["jobs_processed"], 3, "{collector}");
    assert!(
        side.faults(&provider).fail_next.is_empty(),
        "the late read met the 500s (it read after the collector answered): {late}"
    );
    assert_eq!(late_status, 200, "{late}");
    assert_eq!(
        late["message"], "The results were already collected; nothing changed.",
        "{late}"
    );
    assert_collected_once(&provider, &service, &batch).await;
}

/// Two admins poll `batch`, the second `after` the first: one collects its three results, the
/// other finds them collected. Which one reads first is the machine's (on a loaded one the
/// second may take the batch before the first has).
async fn one_collects(service: &Service, batch: &str, after: Duration) {
    let first = service.post(POLL, json!({ "batch_id": batch }));
    let second = async {
        tokio::time::sleep(after).await;
        service.post(POLL, json!({ "batch_id": batch })).await
    };
    let ((first_status, first), (second_status, second)) = tokio::join!(first, second);
    assert_eq!(
        (first_status, second_status),
        (200, 200),
        "{first} {second}"
    );
    let (collector, late) = if first["jobs_processed"] == 0 {
        (second, first)
    } else {
        (first, second)
    };
    assert_eq!(collector["jobs_processed"], 3, "{collector}");
    assert_eq!(late["jobs_processed"], 0, "{late}");
    assert_eq!(
        late["message"], "The results were already collected; nothing changed.",
        "{late}"
    );
}

/// The batch is collected with nothing noted on it, its three jobs completed, and the books
/// equal to the bill, job by job.
async fn assert_collected_once(provider: &Provider, service: &Service, batch: &str) {
    let batches = service.batches().await;
    let ours = batches
        .iter()
        .find(|b| b["batch_id"] == batch)
        .unwrap_or_else(|| panic!("the batch is listed: {batches:?}"));
    assert_eq!(ours["status"], "ended", "{ours}");
    assert_eq!(ours["results_collected"], true, "{ours}");
    assert!(ours["error"].is_null(), "no short read noted: {ours}");
    let jobs = service.settled(Duration::from_secs(20)).await;
    assert_eq!(count(&jobs, "completed"), 3);
    let books = provider.books();
    assert_eq!(books.batches, 1);
    books.assert_each_job_equal(&jobs);
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
}
