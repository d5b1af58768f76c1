//! Batches from the flush's side: candidates, claims, leases, the create's outcomes, and the
//! records reconciliation works from.

use std::collections::HashSet;

use super::*;
use crate::events::Happened;

fn ids(jobs: &[QueuedJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

pub async fn flush_candidates_come_in_flush_order_and_page_by_cursor(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    for (id, priority, minutes, job_type, run_after) in [
        ("low-old", 10, 0, JobType::RiskReport, None),
        ("high-new", 90, 5, JobType::RiskReport, None),
        ("high-old", 90, 1, JobType::SentimentAnalysis, None),
        ("mid", 50, 2, JobType::RiskReport, None),
        ("later", 99, 3, JobType::RiskReport, Some(at(60))),
    ] {
        let mut job = new_job(id, &a, minutes, None);
        job.priority = priority;
        job.job_type = job_type;
        job.run_after = run_after;
        created(store.as_ref(), job).await;
    }
    store
        .cancel_job("mid", &Visibility::All, at(6))
        .await
        .unwrap();
    let filter = FlushFilter::due(at(10));
    let all = store.eligible_jobs(&filter, None, 100).await.unwrap();
    assert_eq!(ids(&all), ["high-old", "high-new", "low-old"]);
    assert_eq!(
        all[0].payload,
        json!({"ticker": "AAPL", "n": 1}).to_string(),
        "compact text"
    );
    assert_eq!((all[0].priority, all[0].created_at), (90, at(1)));
    // Paged by cursor, the same order.
    let first = store.eligible_jobs(&filter, None, 2).await.unwrap();
    let rest = store
        .eligible_jobs(&filter, Some(&first[1].cursor()), 2)
        .await
        .unwrap();
    assert_eq!(
        (ids(&first), ids(&rest)),
        (vec!["high-old", "high-new"], vec!["low-old"])
    );
    let picky = FlushFilter {
        job_types: Some(vec![JobType::RiskReport]),
        min_priority: 50,
        ..FlushFilter::due(at(10))
    };
    assert_eq!(
        ids(&store.eligible_jobs(&picky, None, 100).await.unwrap()),
        ["high-new"]
    );
    let due = FlushFilter {
        now: at(61),
        ..filter.clone()
    };
    assert_eq!(
        store.eligible_jobs(&due, None, 1).await.unwrap()[0].id,
        "later"
    );
    // How many are eligible, and since when the longest-waiting one has been.
    assert_eq!(
        store.eligible_summary(&filter).await.unwrap(),
        (3, Some(at(0)))
    );
    assert_eq!(
        store.eligible_summary(&due).await.unwrap(),
        (4, Some(at(0)))
    );
    // The same filter counts what it lists: types and priority, and owners left out or alone.
    assert_eq!(store.eligible_summary(&picky).await.unwrap().0, 1);
    let b = user(store.as_ref(), "b", Role::Trader).await;
    created(store.as_ref(), new_job("theirs", &b, 2, None)).await;
    let without_b = FlushFilter {
        exclude_owners: vec![b.id.clone()],
        ..filter.clone()
    };
    assert_eq!(
        ids(&store.eligible_jobs(&without_b, None, 100).await.unwrap()),
        ["high-old", "high-new", "low-old"]
    );
    assert_eq!(store.eligible_summary(&without_b).await.unwrap().0, 3);
    let only_b = FlushFilter {
        owner: Some(b.id.clone()),
        ..filter.clone()
    };
    assert_eq!(
        ids(&store.eligible_jobs(&only_b, None, 100).await.unwrap()),
        ["theirs"]
    );
    assert_eq!(
        store.eligible_summary(&only_b).await.unwrap(),
        (1, Some(at(2)))
    );
    // Pages that end inside a priority go on with its rest, then the lower ones; a tie on the
    // time goes by id. Walked one and two at a time, the order of one read.
    let c = user(store.as_ref(), "c", Role::Trader).await;
    for (id, priority, minutes) in [
        ("c-3", 70, 1),
        ("c-1", 70, 1),
        ("c-2", 70, 2),
        ("c-5", 20, 3),
        ("c-4", 20, 0),
    ] {
        let mut job = new_job(id, &c, minutes, None);
        job.priority = priority;
        created(store.as_ref(), job).await;
    }
    let only_c = FlushFilter {
        owner: Some(c.id.clone()),
        ..filter.clone()
    };
    let whole = store.eligible_jobs(&only_c, None, 100).await.unwrap();
    assert_eq!(ids(&whole), ["c-1", "c-3", "c-2", "c-4", "c-5"]);
    for size in [1, 2] {
        let (mut walked, mut cursor) = (Vec::new(), None);
        loop {
            let page = store
                .eligible_jobs(&only_c, cursor.as_ref(), size)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            cursor = Some(last.cursor());
            walked.extend(page.iter().map(|j| j.id.clone()));
        }
        assert_eq!(walked, ids(&whole), "pages of {size}");
    }
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn claims_take_pending_jobs_write_members_and_hold_a_lease(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    for (i, id) in ["j1", "j2", "j3"].iter().enumerate() {
        created(store.as_ref(), new_job(id, &a, i as i64, None)).await;
    }
    store
        .cancel_job("j2", &Visibility::All, at(5))
        .await
        .unwrap();
    let claimed = store
        .claim_jobs(
            new_batch("b1", "flush-1", 10),
            &claims(&["j1", "j2", "j3", "nope"]),
        )
        .await
        .unwrap();
    assert_eq!(
        claimed,
        ["j1", "j3"],
        "only pending jobs, in the order asked"
    );
    let j1 = job(store.as_ref(), "j1").await;
    assert_eq!(
        (
            j1.status,
            j1.batch_id.as_deref(),
            j1.model.as_deref(),
            j1.updated_at
        ),
        (
            JobStatus::Processing,
            None,
            Some("claude-sonnet-4-5"),
            at(10)
        )
    );
    assert_eq!(store.batch_members("b1").await.unwrap(), ["j1", "j3"]);
    let batch = &store.list_batches(10).await.unwrap()[0];
    assert_eq!(
        (
            batch.id.as_str(),
            batch.status,
            batch.job_count,
            batch.estimated_tokens,
            batch.request_bytes
        ),
        ("b1", BatchStatus::Submitting, 2, 1000, 5000)
    );
    assert_eq!(
        (
            batch.lease_owner.as_deref(),
            batch.lease_expires_at,
            batch.submit_started_at
        ),
        (Some("flush-1"), Some(at(11)), Some(at(10)))
    );
    // Nothing left to claim: no batch is written at all.
    let none = store
        .claim_jobs(new_batch("b2", "flush-2", 12), &claims(&["j1", "j2"]))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(store.list_batches(10).await.unwrap().len(), 1);
    assert!(store.batch_members("b2").await.unwrap().is_empty());
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn concurrent_claims_never_share_a_job(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let ids: Vec<String> = (0..60).map(|i| format!("c{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        created(store.as_ref(), new_job(id, &a, i as i64, None)).await;
    }
    let claims: Vec<Claim> = claims(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (store, claims) = (store.clone(), claims.clone());
            tokio::spawn(async move {
                store
                    .claim_jobs(new_batch(&format!("b{i}"), &format!("f{i}"), 100), &claims)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 60, "every job claimed once");
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn leases_are_taken_renewed_and_released_by_their_owner(store: Arc<impl Store>) {
    claimed_batch(store.as_ref(), "b", "flush", &["j"]).await;
    // Held by the flush until minute 11.
    assert!(
        !store
            .take_lease("b", &lease("rescuer", 20), at(10))
            .await
            .unwrap()
    );
    assert!(store.renew_lease("b", &lease("flush", 15)).await.unwrap());
    assert!(
        !store.renew_lease("b", &lease("rescuer", 15)).await.unwrap(),
        "not its lease"
    );
    assert!(
        !store
            .take_lease("b", &lease("rescuer", 20), at(14))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_lease("b", &lease("rescuer", 20), at(16))
            .await
            .unwrap(),
        "lapsed"
    );
    assert!(
        !store.renew_lease("b", &lease("flush", 30)).await.unwrap(),
        "the flush lost it"
    );
    assert!(
        store
            .take_lease("b", &lease("rescuer", 25), at(17))
            .await
            .unwrap(),
        "its own"
    );
    store.release_lease("b", "flush").await.unwrap();
    assert_eq!(
        store.list_batches(1).await.unwrap()[0]
            .lease_owner
            .as_deref(),
        Some("rescuer"),
        "only the holder releases"
    );
    store.release_lease("b", "rescuer").await.unwrap();
    let batch = &store.list_batches(1).await.unwrap()[0];
    assert_eq!(
        (batch.lease_owner.as_deref(), batch.lease_expires_at),
        (None, None)
    );
    assert!(
        store
            .take_lease("b", &lease("poller", 30), at(17))
            .await
            .unwrap(),
        "free"
    );
    assert!(
        !store
            .take_lease("missing", &lease("poller", 30), at(17))
            .await
            .unwrap()
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn a_submission_is_recorded_once_under_its_lease(store: Arc<impl Store>) {
    claimed_batch(store.as_ref(), "b", "flush", &["j1", "j2"]).await;
    store
        .cancel_job("j2", &Visibility::All, at(10))
        .await
        .unwrap();
    let event = Happened::Submitted {
        batch: "msgbatch_1".into(),
    };
    let s = submission("msgbatch_1", 11);
    assert!(
        !store
            .record_submission("b", "someone else", &s, &event)
            .await
            .unwrap(),
        "not under the flush's lease"
    );
    assert!(store.find_batch("msgbatch_1").await.unwrap().is_none());
    assert!(
        store
            .record_submission("b", "flush", &s, &event)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_submission("b", "flush", &s, &event)
            .await
            .unwrap(),
        "no longer submitting"
    );
    let batch = store.find_batch("msgbatch_1").await.unwrap().unwrap();
    assert_eq!(
        (
            batch.id.as_str(),
            batch.status,
            batch.submitted_at,
            batch.provider_created_at
        ),
        ("b", BatchStatus::InProgress, Some(at(11)), Some(at(11)))
    );
    assert_eq!(
        (
            batch.expires_at,
            batch.next_poll_at,
            batch.lease_owner.as_deref(),
            batch.swept_at
        ),
        (Some(at(11 + 24 * 60)), Some(at(12)), None, None)
    );
    // Both jobs were sent (one was cancelled meanwhile): both carry the provider's id, changed
    // when the batch was sent.
    for id in ["j1", "j2"] {
        let j = job(store.as_ref(), id).await;
        assert_eq!(
            (j.batch_id.as_deref(), j.updated_at),
            (Some("msgbatch_1"), at(11)),
            "{id}"
        );
        assert_eq!(
            kinds(&store.job_events(id).await.unwrap()).last(),
            Some(&"submitted")
        );
    }
    assert_eq!(job(store.as_ref(), "j2").await.status, JobStatus::Cancelled);
    // The batch's jobs are listed by its provider id, filtered or searched, and no other.
    let other = user(store.as_ref(), "other", Role::Trader).await;
    created(store.as_ref(), new_job("j3", &other, 12, None)).await;
    let by_batch = [
        app::api::ListQuery {
            batch_id: Some("msgbatch_1".into()),
            limit: 10,
            ..app::api::ListQuery::default()
        },
        app::api::ListQuery {
            search: Some("msgbatch_1".into()),
            limit: 10,
            ..app::api::ListQuery::default()
        },
    ];
    for query in &by_batch {
        let page = store.list_jobs(&Visibility::All, query).await.unwrap();
        let mut listed: Vec<&str> = page.jobs.iter().map(|j| j.id.as_str()).collect();
        listed.sort();
        assert_eq!(listed, ["j1", "j2"], "{query:?}");
    }
    // An answered create samples the clocks; its window closed when it was recorded.
    assert_eq!(
        store
            .clock_samples(app::api::ProviderName::Anthropic, 5)
            .await
            .unwrap(),
        [ClockSample {
            started: at(10),
            ended: at(11),
            provider_created_at: at(11)
        }]
    );
    assert!(
        store
            .clock_samples(app::api::ProviderName::Openai, 5)
            .await
            .unwrap()
            .is_empty(),
        "each provider's clock is its own"
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn a_refused_batch_puts_its_jobs_back(store: Arc<impl Store>) {
    claimed_batch(store.as_ref(), "b", "flush", &["j1", "j2"]).await;
    let event = Happened::Returned {
        reason: "refused".into(),
    };
    assert_eq!(
        store
            .release_batch("b", "not the holder", "400", &event, at(12))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        job(store.as_ref(), "j1").await.status,
        JobStatus::Processing
    );
    assert_eq!(
        store
            .release_batch("b", "flush", "400 invalid", &event, at(12))
            .await
            .unwrap(),
        2
    );
    let j1 = job(store.as_ref(), "j1").await;
    assert_eq!(
        (j1.status, j1.attempts, j1.updated_at),
        (JobStatus::Pending, 0, at(12))
    );
    let events = store.job_events("j1").await.unwrap();
    assert_eq!(kinds(&events).last(), Some(&"returned"));
    assert_eq!(events.last().unwrap().detail.as_deref(), Some("refused"));
    let batch = &store.list_batches(1).await.unwrap()[0];
    assert_eq!(
        (
            batch.status,
            batch.error.as_deref(),
            batch.lease_owner.as_deref(),
            batch.submit_ended_at
        ),
        (BatchStatus::Failed, Some("400 invalid"), None, Some(at(12)))
    );
    assert_eq!(
        store
            .eligible_summary(&FlushFilter::due(at(13)))
            .await
            .unwrap()
            .0,
        2,
        "eligible again"
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn an_uncertain_batch_waits_for_its_lease_before_reconciliation(store: Arc<impl Store>) {
    claimed_batch(store.as_ref(), "b", "flush", &["j1", "j2", "j3"]).await;
    store
        .cancel_job("j3", &Visibility::All, at(10))
        .await
        .unwrap();
    store
        .mark_uncertain("b", "flush", "timed out", at(20), at(12))
        .await
        .unwrap();
    let batch = &store.list_batches(1).await.unwrap()[0];
    assert_eq!(
        (
            batch.status,
            batch.error.as_deref(),
            batch.submit_ended_at,
            batch.lease_expires_at
        ),
        (
            BatchStatus::Submitting,
            Some("timed out"),
            Some(at(12)),
            Some(at(20))
        )
    );
    assert!(
        store.batches_to_reconcile(at(15)).await.unwrap().is_empty(),
        "settling"
    );
    let due = store.batches_to_reconcile(at(21)).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, "b");
    // The rescuer takes it and sends again what is still processing.
    assert!(
        store
            .take_lease("b", &lease("rescuer", 30), at(21))
            .await
            .unwrap()
    );
    assert!(!store.start_submit("b", "flush", at(22)).await.unwrap());
    assert!(store.start_submit("b", "rescuer", at(22)).await.unwrap());
    let batch = &store.list_batches(1).await.unwrap()[0];
    assert_eq!(
        (batch.submit_started_at, batch.submit_ended_at),
        (Some(at(22)), None)
    );
    let queued = store.batch_queued_jobs("b").await.unwrap();
    assert_eq!(
        queued.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["j1", "j2"]
    );
    assert_eq!(queued[0].job_type, JobType::RiskReport);
    assert_eq!(
        store.batch_members("b").await.unwrap(),
        ["j1", "j2", "j3"],
        "members stay"
    );
    store
        .note_batch("b", "waiting for 1 candidate")
        .await
        .unwrap();
    assert_eq!(
        store.list_batches(1).await.unwrap()[0].error.as_deref(),
        Some("waiting for 1 candidate")
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn accepted_batches_are_swept_once_and_duplicates_recorded_once(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", "msgbatch_1", &["j1", "j2"]).await;
    assert!(
        store.batches_to_sweep(at(11)).await.unwrap().is_empty(),
        "not settled yet"
    );
    let due = store.batches_to_sweep(at(12)).await.unwrap();
    assert_eq!(due.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b"]);
    let duplicate = NewDuplicate {
        id: "dup".into(),
        provider_batch_id: "msgbatch_2".into(),
        of: "b".into(),
        job_count: 2,
        created_at: at(11),
        expires_at: at(11 + 24 * 60),
        status: BatchStatus::Canceling,
        note: "a second copy".into(),
    };
    assert!(store.record_duplicate(&duplicate).await.unwrap());
    assert!(!store.record_duplicate(&duplicate).await.unwrap(), "once");
    store.mark_swept("b", at(13)).await.unwrap();
    assert!(store.batches_to_sweep(at(60)).await.unwrap().is_empty());
    let dup = store.find_batch("msgbatch_2").await.unwrap().unwrap();
    assert_eq!(
        (
            dup.duplicate_of.as_deref(),
            dup.status,
            dup.job_count,
            dup.error.as_deref()
        ),
        (Some("b"), BatchStatus::Canceling, 2, Some("a second copy"))
    );
    assert!(dup.swept_at.is_some(), "a duplicate is not swept itself");
    // Both are polled to their end.
    let due: Vec<String> = store
        .due_batches(at(12))
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(due, ["dup", "b"]);
    assert_eq!(
        store
            .find_batch("msgbatch_1")
            .await
            .unwrap()
            .unwrap()
            .swept_at,
        Some(at(13))
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn a_stray_is_recorded_unless_its_batch_is_submitting(store: Arc<impl Store>) {
    claimed_batch(store.as_ref(), "open", "flush", &["j1"]).await;
    submitted_batch(store.as_ref(), "b", "msgbatch_1", &["j2", "j3"]).await;
    let stray = |of: &str, provider_batch_id: &str| NewDuplicate {
        id: format!("stray-{provider_batch_id}"),
        provider_batch_id: provider_batch_id.into(),
        of: of.into(),
        job_count: 1,
        created_at: at(20),
        expires_at: at(20 + 24 * 60),
        status: BatchStatus::Ended,
        note: "a stray".into(),
    };
    assert!(
        !store
            .record_stray(&stray("open", "msgbatch_2"))
            .await
            .unwrap(),
        "a submitting batch is reconciliation's"
    );
    assert!(store.find_batch("msgbatch_2").await.unwrap().is_none());
    assert!(store.record_stray(&stray("b", "msgbatch_3")).await.unwrap());
    assert!(
        !store.record_stray(&stray("b", "msgbatch_3")).await.unwrap(),
        "once"
    );
    let found = store.find_batch("msgbatch_3").await.unwrap().unwrap();
    assert_eq!(found.duplicate_of.as_deref(), Some("b"));
    let holding: Vec<String> = store
        .batches_holding_job("j2")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(holding, ["b"], "a duplicate holds no members");
    assert!(
        store
            .batches_holding_job("nobody")
            .await
            .unwrap()
            .is_empty()
    );

    assert!(!store.is_foreign("msgbatch_x").await.unwrap());
    for _ in 0..2 {
        store
            .mark_foreign(app::api::ProviderName::Anthropic, "msgbatch_x", at(21))
            .await
            .unwrap();
    }
    assert!(store.is_foreign("msgbatch_x").await.unwrap());
    assert!(!store.is_foreign("msgbatch_3").await.unwrap());
    store
        .mark_foreign(app::api::ProviderName::Openai, "batch_y", at(23))
        .await
        .unwrap();
    assert_eq!(
        store.forget_foreign(at(21)).await.unwrap(),
        0,
        "none before"
    );
    assert_eq!(store.forget_foreign(at(22)).await.unwrap(), 1);
    assert!(!store.is_foreign("msgbatch_x").await.unwrap(), "forgotten");
    assert!(
        store.is_foreign("batch_y").await.unwrap(),
        "checked later: kept"
    );
}

pub async fn a_provider_saying_a_batch_ended_makes_it_due_at_once(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", "batch_1", &["j1"]).await;
    // Its first poll is a minute after submission (`submission`: at 12).
    assert!(store.due_batches(at(11)).await.unwrap().is_empty());
    assert!(store.poll_soon("batch_1", at(11)).await.unwrap());
    let due: Vec<String> = store
        .due_batches(at(11))
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(due, ["b"]);
    assert!(
        !store.poll_soon("batch_unknown", at(11)).await.unwrap(),
        "nothing to poll"
    );
}

pub async fn a_batchs_outcomes_count_its_jobs_by_status(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", "batch_1", &["j1", "j2"]).await;
    let outcomes = store
        .batch_outcomes(&["batch_1".into(), "batch_none".into()])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [("batch_1".to_string(), app::api::JobStatus::Processing, 2)]
    );
    assert!(store.batch_outcomes(&[]).await.unwrap().is_empty());
}
