//! Batches from the poll's side: results applied once, in the state they were decided on;
//! charges counted once; the records of polls, short reads, ends and losses.

use super::*;
use crate::events::Happened;

pub(super) const BATCH: &str = "msgbatch_r";

pub(super) fn update(
    job_id: &str,
    attempts: i64,
    transition: Transition,
    event: Happened,
) -> JobUpdate {
    JobUpdate {
        job_id: job_id.into(),
        expected_attempts: attempts,
        transition,
        event,
    }
}

/// A completed job's answer as the deciding stage writes it.
fn risk_low() -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&json!({"risk_level": "low"})).unwrap()
}

pub(super) fn completed(tokens: i64) -> (Transition, Happened) {
    (
        Transition::Complete {
            result: risk_low(),
            spend: spend(tokens),
        },
        Happened::Completed {
            batch: BATCH.into(),
        },
    )
}

pub async fn results_apply_once_in_the_state_they_were_decided_on(store: Arc<impl Store>) {
    submitted_batch(
        store.as_ref(),
        "b",
        BATCH,
        &["ok", "bad", "again", "odd", "gone"],
    )
    .await;
    let states = store
        .job_states(BATCH, &["ok".into(), "bad".into(), "elsewhere".into()])
        .await
        .unwrap();
    assert_eq!(states.len(), 2, "only this batch's jobs");
    assert!(
        states
            .iter()
            .all(|s| s.status == JobStatus::Processing && !s.charged)
    );
    assert_eq!(states[0].model.as_deref(), Some("claude-sonnet-4-5"));

    let (complete, done) = completed(1000);
    let updates = [
        update("ok", 0, complete.clone(), done.clone()),
        update(
            "bad",
            0,
            Transition::Fail {
                error: "unreadable".into(),
                attempts: 1,
                spend: Some(spend(500)),
            },
            Happened::Failed {
                reason: "unreadable".into(),
            },
        ),
        update(
            "again",
            0,
            Transition::Requeue {
                reason: "expired".into(),
                attempts: 1,
            },
            Happened::Retried {
                reason: "expired".into(),
            },
        ),
        // Decided on a state the job is not in (attempts moved on): changes nothing.
        update("odd", 5, complete.clone(), done.clone()),
    ];
    let updated = store.apply_updates(BATCH, &updates, at(30)).await.unwrap();
    assert_eq!(
        (updated.changed, updated.discarded),
        (vec!["ok".into(), "bad".into(), "again".into()], vec![])
    );
    let ok = job(store.as_ref(), "ok").await;
    assert_eq!(
        (
            ok.status,
            ok.result.clone(),
            ok.completed_at,
            ok.error_message.clone()
        ),
        (
            JobStatus::Completed,
            Some(json!({"risk_level": "low"})),
            Some(at(30)),
            None
        )
    );
    assert_eq!(
        (
            ok.bill.input_tokens,
            ok.bill.output_tokens,
            ok.bill.cost_nanos,
            ok.bill.standard_cost_nanos,
            ok.price_version.as_deref()
        ),
        (1000, 100, 1_000_000, 2_000_000, Some("v1"))
    );
    assert_eq!(
        kinds(&store.job_events("ok").await.unwrap()).last(),
        Some(&"completed")
    );
    let bad = job(store.as_ref(), "bad").await;
    assert_eq!(
        (
            bad.status,
            bad.attempts,
            bad.error_message.as_deref(),
            bad.bill.input_tokens
        ),
        (JobStatus::Failed, 1, Some("unreadable"), 500),
        "failed, and what was billed counts"
    );
    let again = job(store.as_ref(), "again").await;
    assert_eq!(
        (again.status, again.attempts, again.batch_id.clone()),
        (JobStatus::Pending, 1, None)
    );
    assert_eq!(
        job(store.as_ref(), "odd").await.status,
        JobStatus::Processing
    );

    // The same results again (a re-poll): nothing changes, nothing is charged twice.
    assert_eq!(
        store.apply_updates(BATCH, &updates, at(31)).await.unwrap(),
        Updated::default()
    );
    assert_eq!(job(store.as_ref(), "ok").await.bill.input_tokens, 1000);
    assert_eq!(job(store.as_ref(), "ok").await.completed_at, Some(at(30)));
    assert_eq!(store.charged_results(BATCH).await.unwrap(), 2);
    let states = store.job_states(BATCH, &["ok".into()]).await.unwrap();
    assert!(states[0].charged);
    assert_eq!(
        store.batch_remaining(BATCH).await.unwrap(),
        2,
        "odd and gone"
    );
    // What the batch was billed, from its charges.
    let batch = store.find_batch(BATCH).await.unwrap().unwrap();
    assert_eq!(
        (batch.billed_tokens, batch.billed_cost_nanos),
        (1650, 1_500_000)
    );
    let stats = store.stats(&Visibility::All).await.unwrap();
    assert_eq!(
        (
            stats.bill.tokens(),
            stats.bill.cost_nanos,
            stats.bill.standard_cost_nanos
        ),
        (1650, 1_500_000, 3_000_000)
    );
    assert_eq!(
        (
            stats.completed,
            stats.failed,
            stats.pending,
            stats.processing
        ),
        (1, 1, 1, 2)
    );
    assert_eq!(
        stats.avg_completion_micros,
        Some(30.0 * 60e6),
        "created at 0, completed at 30"
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn a_cancel_racing_an_ingest_keeps_the_cancel_and_the_bill(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", BATCH, &["c", "f"]).await;
    // Both results were decided on `processing`; the cancels land before they are written.
    for id in ["c", "f"] {
        store
            .cancel_job(id, &Visibility::All, at(20))
            .await
            .unwrap();
    }
    let (complete, done) = completed(800);
    let unreadable = Transition::Fail {
        error: "unreadable".into(),
        attempts: 1,
        spend: Some(spend(300)),
    };
    let failed = Happened::Failed {
        reason: "unreadable".into(),
    };
    let late = [
        update("c", 0, complete, done),
        update("f", 0, unreadable, failed),
    ];
    // The cancels stand, and what the provider billed counts: the results are discarded.
    assert_eq!(
        store.apply_updates(BATCH, &late, at(21)).await.unwrap(),
        Updated {
            changed: vec![],
            discarded: vec!["c".into(), "f".into()],
        }
    );
    for (id, tokens) in [("c", 800), ("f", 300)] {
        let j = job(store.as_ref(), id).await;
        assert_eq!(
            (
                j.status,
                j.cancel_requested,
                j.result,
                j.error_message,
                j.bill.input_tokens
            ),
            (JobStatus::Cancelled, true, None, None, tokens),
            "{id}"
        );
        let state = &store.job_states(BATCH, &[id.into()]).await.unwrap()[0];
        assert!(state.charged, "{id}");
        assert_eq!(
            kinds(&store.job_events(id).await.unwrap()),
            ["created", "submitted", "cancelled", "result_discarded"]
        );
    }
    // Read again, the line decides a discard, and changes nothing: recorded once.
    let discard = update(
        "c",
        0,
        Transition::RecordSpend { spend: spend(800) },
        Happened::ResultDiscarded {
            batch: BATCH.into(),
        },
    );
    for u in [&discard, &late[0]] {
        assert_eq!(
            store
                .apply_updates(BATCH, std::slice::from_ref(u), at(22))
                .await
                .unwrap(),
            Updated::default(),
            "once"
        );
    }
    let c = job(store.as_ref(), "c").await;
    assert_eq!((c.bill.input_tokens, c.bill.cost_nanos), (800, 800_000));
    assert_eq!(store.charged_results(BATCH).await.unwrap(), 2);
    assert_eq!(
        store.stats(&Visibility::All).await.unwrap().bill.tokens(),
        880 + 330
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn duplicate_charges_are_counted_once_and_shown_apart(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", BATCH, &["d1", "d2"]).await;
    let (complete, done) = completed(1000);
    store
        .apply_updates(BATCH, &[update("d1", 0, complete, done)], at(20))
        .await
        .unwrap();
    let charges = [
        DuplicateCharge {
            job_id: "d1".into(),
            spend: spend(1000),
        },
        DuplicateCharge {
            job_id: "d2".into(),
            spend: spend(300),
        },
        DuplicateCharge {
            job_id: "not ours".into(),
            spend: spend(5),
        },
    ];
    let charged = store
        .record_duplicate_charges("msgbatch_copy", &charges, at(25))
        .await
        .unwrap();
    assert_eq!(charged, ["d1", "d2"], "only our jobs");
    assert!(
        store
            .record_duplicate_charges("msgbatch_copy", &charges, at(26))
            .await
            .unwrap()
            .is_empty(),
        "once"
    );
    let d1 = job(store.as_ref(), "d1").await;
    assert_eq!(
        (
            d1.status,
            d1.bill.input_tokens,
            d1.bill.cost_nanos,
            d1.duplicate_tokens,
            d1.duplicate_cost_nanos
        ),
        (JobStatus::Completed, 2000, 2_000_000, 1100, 1_000_000)
    );
    let d2 = job(store.as_ref(), "d2").await;
    assert_eq!(
        (d2.status, d2.duplicate_tokens, d2.price_version.as_deref()),
        (JobStatus::Processing, 330, None),
        "a duplicate's bill does not touch the job's own state"
    );
    assert_eq!(
        kinds(&store.job_events("d2").await.unwrap()).last(),
        Some(&"billed_again")
    );
    assert_eq!(store.charged_results("msgbatch_copy").await.unwrap(), 2);
    assert_eq!(
        store.stats(&Visibility::All).await.unwrap().bill.tokens(),
        2200 + 330
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn polls_short_reads_finishes_and_losses_are_recorded(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", BATCH, &["p1", "p2"]).await;
    store
        .update_batch_progress(
            "b",
            BatchStatus::Canceling,
            Some(at(40)),
            3,
            Some("500 api_error"),
        )
        .await
        .unwrap();
    assert!(
        store
            .update_batch_progress("b", BatchStatus::Canceling, Some(at(41)), 4, None)
            .await
            .unwrap()
    );
    let batch = store.find_batch(BATCH).await.unwrap().unwrap();
    assert_eq!(
        (
            batch.status,
            batch.next_poll_at,
            batch.poll_failures,
            batch.error.as_deref()
        ),
        (
            BatchStatus::Canceling,
            Some(at(41)),
            4,
            Some("500 api_error")
        ),
        "the last error stays until another"
    );
    assert!(
        store.due_batches(at(40)).await.unwrap().is_empty(),
        "not due yet"
    );
    assert_eq!(store.due_batches(at(41)).await.unwrap().len(), 1);
    assert_eq!(
        store.record_short_read("b", at(45), "short").await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.record_short_read("b", at(46), "short").await.unwrap(),
        Some(2)
    );
    let batch = store.find_batch(BATCH).await.unwrap().unwrap();
    assert_eq!(
        (
            batch.short_reads,
            batch.poll_failures,
            batch.next_poll_at,
            batch.error.as_deref()
        ),
        (2, 0, Some(at(46)), Some("short"))
    );
    let counts =
        json!({"succeeded": 2, "errored": 0, "canceled": 0, "expired": 0, "processing": 0});
    assert!(
        store
            .finish_batch(
                "b",
                BatchStatus::Ended,
                &counts,
                at(50),
                1,
                Some("1 unreadable"),
            )
            .await
            .unwrap(),
        "the first finish writes"
    );
    let batch = store.find_batch(BATCH).await.unwrap().unwrap();
    assert_eq!(
        (
            batch.status,
            batch.results_collected,
            batch.ended_at,
            batch.unaccounted_results
        ),
        (BatchStatus::Ended, true, Some(at(50)), 1)
    );
    assert_eq!(
        (batch.request_counts, batch.next_poll_at),
        (Some(counts), None)
    );
    assert!(
        store.due_batches(at(99)).await.unwrap().is_empty(),
        "collected"
    );
    // A collected batch is as it was after any late writer (one whose lease lapsed): its
    // progress, a short read, a second finish, or its copy found gone.
    assert!(
        !store
            .update_batch_progress("b", BatchStatus::InProgress, Some(at(60)), 1, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.record_short_read("b", at(61), "gone").await.unwrap(),
        None
    );
    assert!(
        !store
            .finish_batch("b", BatchStatus::Lost, &json!({}), at(62), 2, Some("gone"))
            .await
            .unwrap(),
        "a second finish writes nothing"
    );
    let gone = Happened::Returned {
        reason: "unknown".into(),
    };
    assert_eq!(
        store
            .lose_batch("b", "unknown to the provider", &gone, at(63))
            .await
            .unwrap(),
        0
    );
    let batch = store.find_batch(BATCH).await.unwrap().unwrap();
    assert_eq!(
        (
            batch.status,
            batch.ended_at,
            batch.unaccounted_results,
            batch.short_reads,
            batch.next_poll_at,
            batch.error.as_deref()
        ),
        (
            BatchStatus::Ended,
            Some(at(50)),
            1,
            2,
            None,
            Some("1 unreadable")
        )
    );
    assert_eq!(
        store.recent_batch_durations(5).await.unwrap(),
        [39.0 * 60.0]
    );

    // A batch the provider no longer knows: its unfinished jobs go back to pending.
    submitted_batch(store.as_ref(), "b2", "msgbatch_lost", &["l1", "l2"]).await;
    store
        .cancel_job("l2", &Visibility::All, at(20))
        .await
        .unwrap();
    let event = Happened::Returned {
        reason: "unknown".into(),
    };
    assert_eq!(
        store
            .lose_batch("b2", "unknown to the provider", &event, at(21))
            .await
            .unwrap(),
        1
    );
    let l1 = job(store.as_ref(), "l1").await;
    assert_eq!(
        (l1.status, l1.attempts, l1.batch_id),
        (JobStatus::Pending, 0, None)
    );
    assert_eq!(
        kinds(&store.job_events("l1").await.unwrap()).last(),
        Some(&"returned")
    );
    let lost = store.find_batch("msgbatch_lost").await.unwrap().unwrap();
    assert_eq!(
        (lost.status, lost.error.as_deref()),
        (BatchStatus::Lost, Some("unknown to the provider"))
    );
    assert_eq!(store.batch_remaining("msgbatch_lost").await.unwrap(), 0);
    assert_eq!(
        store.recent_batch_durations(5).await.unwrap().len(),
        1,
        "only ended ones"
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn daily_costs_come_from_the_charges(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", BATCH, &["x1", "x2"]).await;
    let day = Duration::days(1);
    let (complete, done) = completed(1000);
    store
        .apply_updates(BATCH, &[update("x1", 0, complete, done)], t0() + day)
        .await
        .unwrap();
    store
        .record_duplicate_charges(
            "msgbatch_copy",
            &[DuplicateCharge {
                job_id: "x1".into(),
                spend: spend(1000),
            }],
            t0() + day * 2,
        )
        .await
        .unwrap();
    let rows = store.daily_costs(&Visibility::All, t0()).await.unwrap();
    let days: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.day, r.jobs, r.bill.cost_nanos))
        .collect();
    let first = t0().timestamp() / 86_400 + 1;
    assert_eq!(days, [(first, 1, 1_000_000), (first + 1, 1, 1_000_000)]);
    assert_eq!(
        (rows[0].job_type, rows[0].owner_name.as_str()),
        (JobType::RiskReport, "trader")
    );
    assert_eq!(rows[0].bill.standard_cost_nanos, 2_000_000);
    assert_eq!(
        store
            .daily_costs(&Visibility::All, t0() + day * 2)
            .await
            .unwrap()
            .len(),
        1
    );
    let other = user(store.as_ref(), "other", Role::Trader).await;
    assert!(
        store
            .daily_costs(&Visibility::Owner(other.id), t0())
            .await
            .unwrap()
            .is_empty()
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn an_admin_retry_sends_failed_jobs_back_once(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", BATCH, &["bad", "ok"]).await;
    let (complete, done) = completed(1000);
    let failed = Transition::Fail {
        error: "unreadable".into(),
        attempts: 1,
        spend: Some(spend(500)),
    };
    let updates = [
        update(
            "bad",
            0,
            failed,
            Happened::Failed {
                reason: "unreadable".into(),
            },
        ),
        update("ok", 0, complete, done),
    ];
    store.apply_updates(BATCH, &updates, at(30)).await.unwrap();
    let billed = job(store.as_ref(), "bad").await;
    assert!(billed.bill.cost_nanos > 0);
    let requeued = Happened::Requeued { by: "ops".into() };
    let ids = ["bad".to_string(), "ok".to_string(), "nope".to_string()];
    let ops = user(store.as_ref(), "ops", Role::Admin).await;
    let retried = store
        .retry_failed(
            &ids,
            &requeued,
            at(31),
            &audited(&ops, AuditAction::Retry, "bad", 31),
        )
        .await
        .unwrap();
    assert_eq!(retried, ["bad"], "only the failed job");
    let bad = job(store.as_ref(), "bad").await;
    assert_eq!(bad.status, JobStatus::Pending);
    assert_eq!((bad.error_message, bad.batch_id), (None, None));
    assert_eq!(bad.attempts, 1, "its attempts stay");
    assert_eq!(
        (
            bad.bill.input_tokens,
            bad.bill.output_tokens,
            bad.bill.cost_nanos
        ),
        (
            billed.bill.input_tokens,
            billed.bill.output_tokens,
            billed.bill.cost_nanos
        ),
        "what it was billed stays"
    );
    assert_eq!(job(store.as_ref(), "ok").await.status, JobStatus::Completed);
    let events = store.job_events("bad").await.unwrap();
    assert_eq!(kinds(&events).last(), Some(&"requeued"));
    assert!(
        store
            .retry_failed(
                &ids,
                &requeued,
                at(32),
                &audited(&ops, AuditAction::Retry, "bad", 32)
            )
            .await
            .unwrap()
            .is_empty(),
        "once"
    );
    let log = store
        .audit_log(&AuditFilter {
            action: Some(AuditAction::Retry),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 2, "each retry is recorded with it");
    assert_eq!(log[0].entry.at, at(32));
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn failed_jobs_are_found_by_their_error(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", BATCH, &["e1", "e2", "ok"]).await;
    let fail = |id: &str, error: &str| {
        update(
            id,
            0,
            Transition::Fail {
                error: error.into(),
                attempts: 1,
                spend: None,
            },
            Happened::Failed {
                reason: error.into(),
            },
        )
    };
    let (complete, done) = completed(1000);
    let updates = [
        fail("e1", "Unreadable result line"),
        fail("e2", "expired after 50%_of the window"),
        update("ok", 0, complete, done),
    ];
    store.apply_updates(BATCH, &updates, at(30)).await.unwrap();
    let found = |error: &str, status: Option<JobStatus>| {
        let store = store.clone();
        let query = app::api::ListQuery {
            error: Some(error.into()),
            status_filter: status,
            limit: 10,
            ..app::api::ListQuery::default()
        };
        async move {
            let page = store.list_jobs(&Visibility::All, &query).await.unwrap();
            let ids: Vec<String> = page.jobs.into_iter().map(|j| j.id).collect();
            (ids, page.total_count)
        }
    };
    assert_eq!(
        found("unreadable", None).await,
        (vec!["e1".into()], 1),
        "any case"
    );
    assert_eq!(
        found("50%_of", Some(JobStatus::Failed)).await,
        (vec!["e2".into()], 1)
    );
    assert_eq!(
        found("5_%", None).await,
        (vec![], 0),
        "wildcards are literal"
    );
    assert_eq!(
        found("unreadable", Some(JobStatus::Completed)).await,
        (vec![], 0)
    );
}

/// The bill of a job with cache reads and 5-minute and 1-hour writes, as `pricing` computes it
/// by hand (`cache_reads_and_writes_of_both_lives_cost_exactly_their_prices`: 1,234 input,
/// 10,000 + 20,000 written, 250,000 read, 567 output on Sonnet), comes back to the nano-dollar
/// from the job, the day's costs and the kept totals.
pub async fn a_cached_jobs_bill_is_kept_to_the_nano(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", BATCH, &["cached"]).await;
    let bill = Bill {
        input_tokens: 281_234,
        output_tokens: 567,
        cache_read_tokens: 250_000,
        cache_write_tokens: 30_000,
        cost_nanos: 122_353_500,
        uncached_cost_nanos: 426_103_500,
        standard_cost_nanos: 852_207_000,
    };
    let transition = Transition::Complete {
        result: risk_low(),
        spend: Spend {
            bill,
            cache_write_1h_tokens: 20_000,
            price_version: "2026-12-01".into(),
        },
    };
    let done = Happened::Completed {
        batch: BATCH.into(),
    };
    store
        .apply_updates(BATCH, &[update("cached", 0, transition, done)], at(30))
        .await
        .unwrap();
    let job = store
        .get_job("cached", &Visibility::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.bill, bill);
    let days = store.daily_costs(&Visibility::All, t0()).await.unwrap();
    assert_eq!(days.iter().map(|d| d.bill).collect::<Vec<_>>(), [bill]);
    let totals = store.totals(&Visibility::All).await.unwrap();
    let completed: Vec<Bill> = totals
        .iter()
        .filter(|t| t.status == JobStatus::Completed)
        .map(|t| t.bill)
        .collect();
    assert_eq!(completed, [bill]);
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn provider_costs_count_every_charge_by_the_jobs_provider(store: Arc<impl Store>) {
    // `submitted_batch` claims as Anthropic: the job records the provider of its claim.
    submitted_batch(store.as_ref(), "b", BATCH, &["p1", "p2"]).await;
    let (complete, done) = completed(1000);
    store
        .apply_updates(BATCH, &[update("p1", 0, complete, done)], t0())
        .await
        .unwrap();
    store
        .record_duplicate_charges(
            "msgbatch_copy",
            &[DuplicateCharge {
                job_id: "p1".into(),
                spend: spend(1000),
            }],
            t0(),
        )
        .await
        .unwrap();
    let rows = store.provider_costs(&Visibility::All).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].provider, rows[0].jobs, rows[0].bill.cost_nanos),
        (app::api::ProviderName::Anthropic, 1, 2_000_000),
        "one job, billed twice (its duplicate included)"
    );
    let other = user(store.as_ref(), "other", Role::Trader).await;
    assert!(
        store
            .provider_costs(&Visibility::Owner(other.id))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn an_ended_batchs_provider_copy_waits_for_its_release(store: Arc<impl Store>) {
    let store = store.as_ref();
    submitted_batch(store, "b1", "batch_1", &["j1"]).await;
    submitted_batch(store, "b2", "batch_2", &["j2"]).await;
    submitted_batch(store, "b3", "batch_3", &["j3"]).await;
    let pending = || async {
        let batches = store.pending_releases(10).await.unwrap();
        batches
            .into_iter()
            .filter_map(|b| b.provider_batch_id)
            .collect::<Vec<_>>()
    };
    assert!(pending().await.is_empty(), "nothing before a batch ends");
    let counts = json!({});
    for (batch, status, ended) in [
        ("b2", BatchStatus::Ended, 31),
        ("b1", BatchStatus::Ended, 32),
        ("b3", BatchStatus::Lost, 30),
    ] {
        store
            .finish_batch(batch, status, &counts, at(ended), 0, None)
            .await
            .unwrap();
    }
    assert_eq!(
        pending().await,
        ["batch_2", "batch_1"],
        "ended ones, longest ended first; a lost one's file is left"
    );
    assert_eq!(store.pending_releases(1).await.unwrap().len(), 1);
    store.mark_released("batch_2", None).await.unwrap();
    assert_eq!(pending().await, ["batch_1"]);
    // Refused for good: no longer pending, and the batch says so.
    store
        .mark_released("batch_1", Some("delete these by hand"))
        .await
        .unwrap();
    assert!(pending().await.is_empty());
    let notes = |id| async move { store.find_batch(id).await.unwrap().unwrap().error };
    assert_eq!(
        notes("batch_1").await.as_deref(),
        Some("delete these by hand")
    );
    assert_eq!(notes("batch_2").await, None, "a release notes nothing");
}

pub async fn a_batch_has_settled_once_it_and_every_copy_have(store: Arc<impl Store>) {
    let store = store.as_ref();
    submitted_batch(store, "b", "batch_1", &["j1"]).await;
    assert!(!store.batch_settled("b").await.unwrap(), "running");
    assert!(!store.batch_settled("none").await.unwrap(), "no such batch");
    let finish = |batch: &'static str| async move {
        store
            .finish_batch(batch, BatchStatus::Ended, &json!({}), at(30), 0, None)
            .await
            .unwrap();
    };
    finish("b").await;
    assert!(store.batch_settled("b").await.unwrap(), "collected");
    let copy = NewDuplicate {
        id: "copy".into(),
        provider_batch_id: "batch_2".into(),
        of: "b".into(),
        job_count: 1,
        created_at: at(11),
        expires_at: at(11 + 24 * 60),
        status: BatchStatus::Canceling,
        note: "a copy".into(),
    };
    assert!(store.record_duplicate(&copy).await.unwrap());
    assert!(
        !store.batch_settled("b").await.unwrap(),
        "its copy still runs"
    );
    finish("copy").await;
    assert!(store.batch_settled("b").await.unwrap());
}
