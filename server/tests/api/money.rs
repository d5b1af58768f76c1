//! The books equal the provider's bill, whatever the provider does: the real binary against
//! an emulator that applies a create and then answers 500, drops the connection or answers too
//! late; sends a malformed line; ends a results file short; loses a results file; creates a
//! batch twice. Each test ends with every job terminal, no job billed twice that could have
//! been avoided, and the service's tokens and cost equal to what the emulator billed. Each
//! runs twice: its jobs routed to Anthropic, then to OpenAI (`Side`).

use std::time::Duration;

use ai_batch::emulator::{AfterCreate, Faults, StreamFault, Times, share_of};
use serde_json::{Value, json};

use crate::service::{Database, FROZEN_HOLDER, Provider, SCHEDULER, Service, Side, on_both_sides};

const FLUSH: &str = "/api/v1/batch/internal/flush";

/// Flushes everything pending and returns the status and answer.
pub(crate) async fn flush(service: &Service) -> (u16, Value) {
    service.post(FLUSH, json!({"max_jobs": 10000})).await
}

pub(crate) fn count(jobs: &[Value], status: &str) -> usize {
    jobs.iter().filter(|j| j["status"] == status).count()
}

/// A create applied by the provider whose answer never arrives intact: the flush says it is
/// uncertain, the jobs stay in the batch (not pending), and reconciliation adopts the one
/// batch the provider holds. Nothing is sent twice.
async fn uncertain_create(side: Side, after: AfterCreate, extra: &[(&str, &str)]) {
    let faults = Faults {
        after_create: vec![after],
        ..Faults::default()
    };
    uncertain_create_with(side, faults, extra).await;
}

/// The same, with `faults` (an `after_create` among them) set before the flush.
async fn uncertain_create_with(side: Side, faults: Faults, extra: &[(&str, &str)]) {
    let provider = Provider::start(Duration::from_millis(500)).await;
    let db = Database::new().await;
    let env: Vec<_> = SCHEDULER
        .iter()
        .chain(extra)
        .chain(side.env())
        .copied()
        .collect();
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue(20).await;
    side.set_faults(&provider, faults);
    let (status, answer) = flush(&service).await;
    assert_eq!(
        status, 503,
        "an uncertain create is not a refusal: {answer}"
    );
    assert!(
        answer["detail"].as_str().unwrap().contains("reconciled"),
        "{answer}"
    );
    let jobs = service.jobs().await;
    assert_eq!(
        count(&jobs, "processing"),
        20,
        "no job went back to pending"
    );

    let jobs = service.settled(Duration::from_secs(30)).await;
    assert_eq!(count(&jobs, "completed"), ids.len());
    let books = provider.books();
    assert_eq!(books.batches, 1, "the create was never retried blindly");
    assert_eq!(books.billed_twice(), Vec::<&String>::new());
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
    let batches = service.batches().await;
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0]["status"], "ended");
}

async fn answered_500(side: Side) {
    uncertain_create(side, AfterCreate::Error500, &[]).await;
}
on_both_sides!(answered_500: a_create_applied_then_answered_500_is_adopted_not_repeated,
    on_openai_a_create_applied_then_answered_500_is_adopted_not_repeated);

async fn dropped(side: Side) {
    uncertain_create(side, AfterCreate::Drop, &[]).await;
}
on_both_sides!(dropped: a_create_applied_then_dropped_is_adopted_not_repeated,
    on_openai_a_create_applied_then_dropped_is_adopted_not_repeated);

async fn answered_late(side: Side) {
    uncertain_create(
        side,
        AfterCreate::Late { millis: 2500 },
        &[("AI_BATCH_ANTHROPIC_REQUEST_TIMEOUT_SECS", "1")],
    )
    .await;
}
on_both_sides!(answered_late: a_create_answered_after_the_timeout_is_adopted_not_repeated,
    on_openai_a_create_answered_after_the_timeout_is_adopted_not_repeated);

/// Each provider keeps its own clock, so a create's window is placed by that provider's
/// samples alone. A soak with jobs on both found an Anthropic create, applied and answered
/// 500, sent again: the newest clock sample was OpenAI's, whose clock reads whole seconds.
/// Here OpenAI's clock is half an hour behind; before the samples were kept apart, the lost
/// create was looked for half an hour too early and its jobs were billed twice.
#[tokio::test]
async fn a_lost_create_is_found_whatever_another_providers_clock_says() {
    let provider = Provider::start(Duration::from_millis(500)).await;
    provider
        .emulator
        .openai()
        .advance_clock(chrono::Duration::minutes(-30));
    let db = Database::new().await;
    let routes = [("AI_BATCH_ROUTES", "sentiment_analysis=gpt-4.1-mini")];
    let env: Vec<_> = SCHEDULER.iter().chain(&routes).copied().collect();
    let service = Service::start(&db, &provider, &env).await;
    service.enqueue_of("sentiment_analysis", 3).await;
    let (status, answer) = flush(&service).await;
    assert_eq!(
        status, 200,
        "OpenAI's create is answered: a sample of its clock: {answer}"
    );
    service.settled(Duration::from_secs(30)).await;

    let ids = service.enqueue(5).await;
    Side::Anthropic.set_faults(
        &provider,
        Faults {
            after_create: vec![AfterCreate::Error500],
            ..Faults::default()
        },
    );
    let (status, answer) = flush(&service).await;
    assert_eq!(status, 503, "Anthropic's answer is lost: {answer}");
    let jobs = service.settled(Duration::from_secs(30)).await;
    assert_eq!(count(&jobs, "completed"), 3 + ids.len(), "{jobs:?}");
    let books = provider.anthropic_books();
    assert_eq!(books.batches, 1, "the create was adopted, not sent again");
    assert_eq!(provider.books().billed_twice(), Vec::<&String>::new());
    provider
        .books()
        .assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

/// Reconciliation reads a candidate's results to prove it ours; a first read that ends before
/// its first line names no job, which proves nothing: the candidate is read again, not taken
/// for someone else's (which would send the jobs a second time). Anthropic only: OpenAI's
/// batches carry our label, so their results are not read to prove them.
#[tokio::test]
async fn a_lost_create_whose_results_first_read_empty_is_adopted_not_repeated() {
    let faults = Faults {
        after_create: vec![AfterCreate::Error500],
        short_results: Some(StreamFault {
            after_lines: 0,
            times: Some(1),
            ..StreamFault::default()
        }),
        ..Faults::default()
    };
    uncertain_create_with(Side::Anthropic, faults, &[]).await;
}

/// Flushes twenty jobs with the given results faults and waits until everything settles. The
/// database comes back too: it must outlive the service.
async fn run_with_results_faults(
    side: Side,
    faults: Faults,
) -> (Provider, Service, Vec<Value>, Database) {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let env: Vec<_> = SCHEDULER.iter().chain(side.env()).copied().collect();
    let service = Service::start(&db, &provider, &env).await;
    service.enqueue(20).await;
    side.set_faults(&provider, faults);
    let (status, answer) = flush(&service).await;
    assert_eq!(status, 200, "{answer}");
    let jobs = service.settled(Duration::from_secs(30)).await;
    (provider, service, jobs, db)
}

on_both_sides!(malformed_line: a_malformed_line_fails_its_job_counts_its_bill_and_ingest_goes_on,
    on_openai_a_malformed_line_fails_its_job_counts_its_bill_and_ingest_goes_on);

async fn malformed_line(side: Side) {
    let (provider, service, jobs, _db) = run_with_results_faults(
        side,
        Faults {
            malformed_results: Some(StreamFault {
                after_lines: 5,
                ..StreamFault::default()
            }),
            ..Faults::default()
        },
    )
    .await;
    assert_eq!((count(&jobs, "completed"), count(&jobs, "failed")), (19, 1));
    let failed = jobs.iter().find(|j| j["status"] == "failed").unwrap();
    let error = failed["error_message"].as_str().unwrap();
    assert!(
        error.contains("could not be read") && error.contains("not sent again"),
        "{error}"
    );
    assert!(
        failed["tokens_used"].as_i64().unwrap() > 0,
        "its bill is counted: {failed}"
    );
    let events = service
        .get(&format!(
            "/api/v1/batch/jobs/{}/events",
            failed["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(events.as_array().unwrap().last().unwrap()["kind"], "failed");
    // The batch says what became of its jobs, not only what the provider counted (which
    // calls the unreadable line a success), and its jobs can be listed.
    let batch = &service.batches().await[0];
    assert_eq!(
        batch["job_outcomes"],
        json!([{"status": "completed", "jobs": 19}, {"status": "failed", "jobs": 1}]),
        "{batch}"
    );
    let id = batch["batch_id"].as_str().unwrap();
    let listed = service
        .get(&format!(
            "/api/v1/batch/jobs?batch_id={id}&status_filter=failed"
        ))
        .await;
    assert_eq!(listed["total_count"], 1, "{listed}");
    assert_eq!(listed["jobs"][0]["id"], failed["id"]);
    // A search for the batch's id finds its jobs too (the id as the provider shows it).
    let searched = service
        .get(&format!("/api/v1/batch/jobs?q={id}&limit=100"))
        .await;
    assert_eq!(searched["total_count"], 20, "{searched}");
    let books = provider.books();
    assert_eq!(books.batches, 1);
    assert_eq!(books.billed_twice(), Vec::<&String>::new());
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

on_both_sides!(repeated_line: a_result_repeated_past_the_first_chunk_is_billed_once,
    on_openai_a_result_repeated_past_the_first_chunk_is_billed_once);

/// A file that sends its first result again after its last. With more results than one chunk
/// (1,000), the repeat is read and decided while the first chunk may still be being written:
/// its update is guarded by the state it was decided on, so it changes nothing.
async fn repeated_line(side: Side) {
    results_repeated(
        side,
        Faults {
            repeated_results: Some(StreamFault {
                after_lines: 0,
                ..StreamFault::default()
            }),
            ..Faults::default()
        },
    )
    .await;
}

on_both_sides!(mirrored_lines: a_file_repeating_every_result_last_first_bills_each_once,
    on_openai_a_file_repeating_every_result_last_first_bills_each_once);

/// A file that sends all its results again, the last first. On PostgreSQL two chunks are
/// written at once, and here the second repeats the first's rows in the opposite order: the
/// two can deadlock, and the one PostgreSQL stops is written again. Either way each job is
/// completed and billed once.
async fn mirrored_lines(side: Side) {
    results_repeated(
        side,
        Faults {
            mirrored_results: Some(Times { times: None }),
            ..Faults::default()
        },
    )
    .await;
}

/// 1,200 jobs in one batch whose results file repeats lines as `faults` say: every job ends
/// completed once and the books equal the provider's bill.
async fn results_repeated(side: Side, faults: Faults) {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    // Not a test of leases: a lease long enough that a slow upload of 1,200 requests in a
    // debug build is never taken over by reconciliation (which answers the flush 409).
    let env: Vec<_> = SCHEDULER
        .iter()
        .chain(side.env())
        .copied()
        .chain([("AI_BATCH_LEASE_SECS", "15")])
        .collect();
    let service = Service::start(&db, &provider, &env).await;
    for part in 0..2 {
        let jobs: Vec<Value> = (0..600)
            .map(|i| json!({"job_type": "risk_report", "payload": {"ticker": format!("R{part}-{i}")}}))
            .collect();
        let (status, body) = service
            .post("/api/v1/batch/enqueue/bulk", json!({ "jobs": jobs }))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    side.set_faults(&provider, faults);
    let (status, answer) = flush(&service).await;
    assert_eq!(status, 200, "{answer}");
    let jobs = service.settled(Duration::from_secs(60)).await;
    assert_eq!(count(&jobs, "completed"), 1_200);
    let batch = &service.batches().await[0];
    assert_eq!(
        batch["job_outcomes"],
        json!([{"status": "completed", "jobs": 1200}]),
        "{batch}"
    );
    let books = provider.books();
    assert_eq!(books.batches, 1);
    assert_eq!(books.billed_twice(), Vec::<&String>::new());
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

on_both_sides!(cut_cleanly_short: a_results_file_cut_cleanly_short_is_read_again_not_requeued,
    on_openai_a_results_file_cut_cleanly_short_is_read_again_not_requeued);

async fn cut_cleanly_short(side: Side) {
    let (provider, service, jobs, _db) = run_with_results_faults(
        side,
        Faults {
            short_results: Some(StreamFault {
                after_lines: 12,
                times: Some(1),
                ..StreamFault::default()
            }),
            ..Faults::default()
        },
    )
    .await;
    assert_eq!(count(&jobs, "completed"), 20);
    let books = provider.books();
    assert_eq!(books.batches, 1, "the missing jobs were not sent again");
    assert_eq!(books.billed_twice(), Vec::<&String>::new());
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

/// A batch that completed can hold requests that expired on their own, in OpenAI's error file:
/// neither completed nor failed. An output file that ends early by as many lines as expired
/// is still a short read, read again; it must not pass for a whole one and fail the jobs it
/// left out with their bills unrecorded (what the soak found in CI).
#[tokio::test]
async fn on_openai_an_output_file_short_by_as_many_lines_as_expired_is_read_again() {
    let provider = Provider::start(Duration::from_millis(300)).await;
    let db = Database::new().await;
    let side = Side::OpenAi;
    let env: Vec<_> = SCHEDULER.iter().chain(side.env()).copied().collect();
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue(20).await;
    // The share that takes exactly `expiring` of these jobs: where their rolls have a gap.
    let mut shares: Vec<u8> = ids.iter().map(|id| share_of(id)).collect();
    shares.sort_unstable();
    let expiring = (2..10)
        .find(|&k| shares[k - 1] < shares[k])
        .expect("twenty rolls of 0-99 are not all equal");
    side.set_faults(
        &provider,
        Faults {
            expired_percent: shares[expiring],
            short_results: Some(StreamFault {
                after_lines: 20 - 2 * expiring,
                times: Some(1),
                ..StreamFault::default()
            }),
            ..Faults::default()
        },
    );
    let (status, answer) = flush(&service).await;
    assert_eq!(status, 200, "{answer}");
    let batch = service
        .batch_where("collected", Duration::from_secs(30), |b| {
            b["results_collected"] == true
        })
        .await;
    // Every job the output file held is read, none failed as missing; the expired wait to
    // be sent again.
    assert_eq!(batch["unaccounted_results"], 0, "{batch}");
    let jobs = service.jobs().await;
    assert_eq!(
        (count(&jobs, "completed"), count(&jobs, "pending")),
        (20 - expiring, expiring),
        "{jobs:#?}"
    );
    side.set_faults(&provider, Faults::default());
    let (status, answer) = flush(&service).await;
    assert_eq!(status, 200, "{answer}");
    let jobs = service.settled(Duration::from_secs(30)).await;
    assert_eq!(count(&jobs, "completed"), 20);
    let books = provider.books();
    assert_eq!(books.batches, 2);
    assert_eq!(books.billed_twice(), Vec::<&String>::new());
    books.assert_each_job_equal(&jobs);
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

on_both_sides!(stays_short: a_file_that_stays_short_fails_the_missing_jobs_and_reports_the_gap,
    on_openai_a_file_that_stays_short_fails_the_missing_jobs_and_reports_the_gap);

async fn stays_short(side: Side) {
    let (provider, service, jobs, _db) = run_with_results_faults(
        side,
        Faults {
            short_results: Some(StreamFault {
                after_lines: 15,
                ..StreamFault::default()
            }),
            ..Faults::default()
        },
    )
    .await;
    assert_eq!((count(&jobs, "completed"), count(&jobs, "failed")), (15, 5));
    let books = provider.books();
    assert_eq!(books.batches, 1, "the missing jobs were not sent again");
    assert_eq!(books.billed_twice(), Vec::<&String>::new());
    // The five billed but unread results are not in the service's totals; the batch says so,
    // and the service's books are the provider's less exactly those five.
    let batch = &service.batches().await[0];
    assert_eq!(batch["unaccounted_results"], 5, "{batch}");
    let unread: Vec<&str> = jobs
        .iter()
        .filter(|j| j["status"] == "failed")
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    let stats = service.get("/api/v1/batch/stats").await;
    assert_eq!(
        stats["total_tokens_used"].as_i64().unwrap(),
        books.tokens
            - unread
                .iter()
                .map(|id| books.tokens_per_job[*id])
                .sum::<i64>()
    );
    assert_eq!(
        stats["total_cost_usd"].as_f64().unwrap(),
        app::api::nanos_to_usd(
            books.cost_nanos
                - unread
                    .iter()
                    .map(|id| books.cost_nanos_per_job[*id])
                    .sum::<i64>()
        )
    );
}

on_both_sides!(results_gone: results_gone_mark_the_batch_lost_and_send_nothing_twice,
    on_openai_results_gone_mark_the_batch_lost_and_send_nothing_twice);

async fn results_gone(side: Side) {
    let (provider, service, jobs, _db) = run_with_results_faults(
        side,
        Faults {
            results_gone: Some(Times { times: None }),
            ..Faults::default()
        },
    )
    .await;
    assert_eq!(
        count(&jobs, "failed"),
        20,
        "billed, unreadable: not sent again"
    );
    assert!(
        jobs[0]["error_message"].as_str().unwrap().contains("404"),
        "{}",
        jobs[0]
    );
    let batch = &service.batches().await[0];
    assert_eq!(
        (
            batch["status"].as_str(),
            batch["unaccounted_results"].as_i64()
        ),
        (Some("lost"), Some(20)),
        "{batch}"
    );
    assert!(batch["error"].as_str().unwrap().contains("404"), "{batch}");
    let books = provider.books();
    assert_eq!((books.batches, books.billed_twice().len()), (1, 0));
}

on_both_sides!(passing_404: a_results_404_that_passes_loses_nothing,
    on_openai_a_results_404_that_passes_loses_nothing);

async fn passing_404(side: Side) {
    let (provider, service, jobs, _db) = run_with_results_faults(
        side,
        Faults {
            results_gone: Some(Times { times: Some(1) }),
            ..Faults::default()
        },
    )
    .await;
    assert_eq!(count(&jobs, "completed"), 20);
    provider
        .books()
        .assert_equal_to(&service.get("/api/v1/batch/stats").await);
}

on_both_sides!(created_twice: a_batch_created_twice_is_found_polled_and_billed_as_a_duplicate,
    on_openai_a_batch_created_twice_is_found_polled_and_billed_as_a_duplicate);

async fn created_twice(side: Side) {
    let provider = Provider::start(Duration::from_millis(500)).await;
    let db = Database::new().await;
    let env: Vec<_> = SCHEDULER.iter().chain(side.env()).copied().collect();
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue(10).await;
    // A proxy that repeats the POST: the provider makes two batches; we hear of one.
    side.set_faults(
        &provider,
        Faults {
            after_create: vec![AfterCreate::Twice],
            ..Faults::default()
        },
    );
    let (status, answer) = flush(&service).await;
    assert_eq!(status, 200, "{answer}");
    // The sweep proves the second batch ours once it ends, and it is polled like any other.
    let duplicate = service
        .batch_where(
            "recorded as a duplicate and collected",
            Duration::from_secs(30),
            |b| !b["duplicate_of"].is_null() && b["results_collected"] == true,
        )
        .await;
    let jobs = service.settled(Duration::from_secs(30)).await;
    assert_eq!(count(&jobs, "completed"), ids.len());
    let books = provider.books();
    assert_eq!(books.batches, 2);
    if side == Side::Anthropic {
        // Anthropic's batches carry no label: the copy is proved ours only by its results,
        // once it has run.
        assert_eq!(
            books.billed_twice().len(),
            ids.len(),
            "the proxy's copy was billed"
        );
    }
    // Every cent billed is on the books, and shown as duplicate spend to owners and admins
    // (OpenAI's copy carries our label, so it may be cancelled before it ran: then nothing).
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
    let twice = books.billed_twice();
    assert_eq!(
        duplicate["billed_cost_usd"].as_f64().unwrap() > 0.0,
        !twice.is_empty(),
        "{duplicate}"
    );
    for job in &jobs {
        let billed_twice = twice.contains(&&job["id"].as_str().unwrap().to_string());
        assert_eq!(
            job["duplicate_tokens"].as_i64().unwrap() > 0,
            billed_twice,
            "{job}"
        );
        assert_eq!(
            job["duplicate_cost_usd"].as_f64().unwrap() > 0.0,
            billed_twice,
            "{job}"
        );
    }
}

on_both_sides!(late_answer: a_late_answer_after_reconciliation_took_over_is_cancelled_at_once,
    on_openai_a_late_answer_after_reconciliation_took_over_is_cancelled_at_once);

async fn late_answer(side: Side) {
    let provider = Provider::start(Duration::from_secs(3)).await;
    let db = Database::new().await;
    let env: Vec<_> = SCHEDULER
        .iter()
        .chain(FROZEN_HOLDER)
        .chain(side.env())
        .copied()
        .collect();
    let service = Service::start(&db, &provider, &env).await;
    let ids = service.enqueue(5).await;
    side.set_faults(
        &provider,
        Faults {
            before_create_ms: vec![2500],
            ..Faults::default()
        },
    );
    let (status, answer) = flush(&service).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("duplicate"),
        "{answer}"
    );
    let jobs = service.settled(Duration::from_secs(30)).await;
    assert_eq!(count(&jobs, "completed"), ids.len());
    let books = provider.books();
    assert_eq!(books.batches, 2, "the late copy exists");
    assert_eq!(
        books.billed_twice(),
        Vec::<&String>::new(),
        "it was cancelled before it ran"
    );
    books.assert_equal_to(&service.get("/api/v1/batch/stats").await);
    let batches = service.batches().await;
    assert!(
        batches.iter().any(|b| !b["duplicate_of"].is_null()),
        "the late copy is on record: {batches:?}"
    );
}
