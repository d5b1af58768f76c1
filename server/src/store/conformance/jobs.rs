//! Jobs as their owners see them: insert, idempotency, visibility, lists, cancel, stats.

use super::*;

pub async fn idempotency_keys_are_unique_per_owner(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let b = user(store.as_ref(), "b", Role::Trader).await;
    let first = created(store.as_ref(), new_job("j1", &a, 0, Some("k"))).await;
    assert_eq!(first.status, JobStatus::Pending);
    assert_eq!(first.payload, None, "an insert answers without the payload");
    let read = store
        .get_job("j1", &Visibility::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.payload, Some(json!({"ticker": "AAPL", "n": 0})));
    match store
        .insert_job(new_job("j2", &a, 1, Some("k")))
        .await
        .unwrap()
    {
        InsertOutcome::Existing(existing) => assert_eq!(existing.id, "j1"),
        other => panic!("expected the first job, got {other:?}"),
    }
    created(store.as_ref(), new_job("j3", &b, 2, Some("k"))).await;
    created(store.as_ref(), new_job("j4", &a, 3, None)).await;
    created(store.as_ref(), new_job("j5", &a, 4, None)).await;
    // Found by key: the owner's own, only those keys.
    let found = store
        .jobs_by_keys(&a.id, &["k".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["j1"]
    );
    assert!(store.jobs_by_keys(&a.id, &[]).await.unwrap().is_empty());
    assert_eq!(
        store
            .list_jobs(&Visibility::All, &list(None, 100))
            .await
            .unwrap()
            .total_count,
        4
    );
    let events = store.job_events("j1").await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["created"]
    );
}

pub async fn concurrent_inserts_with_one_key_create_one_job(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            let job = new_job(&format!("race-{i}"), &a, 0, Some("same"));
            tokio::spawn(async move { store.insert_job(job).await.unwrap() })
        })
        .collect();
    let outcomes = futures::future::join_all(tasks).await;
    let ids: std::collections::HashSet<String> = outcomes
        .into_iter()
        .map(|o| match o.unwrap() {
            InsertOutcome::Created(r) | InsertOutcome::Existing(r) => r.id,
        })
        .collect();
    assert_eq!(ids.len(), 1, "every request sees the same job");
    assert_eq!(
        store
            .list_jobs(&Visibility::All, &list(None, 100))
            .await
            .unwrap()
            .total_count,
        1
    );
}

pub async fn jobs_are_visible_to_owner_and_all(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let b = user(store.as_ref(), "b", Role::Trader).await;
    created(store.as_ref(), new_job("ja", &a, 0, None)).await;
    let own = store
        .get_job("ja", &Visibility::Owner(a.id.clone()))
        .await
        .unwrap()
        .expect("owner sees it");
    assert_eq!(own.owner_name, "a");
    assert!(
        store
            .get_job("ja", &Visibility::Owner(b.id.clone()))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_job("ja", &Visibility::All)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_job("missing", &Visibility::All)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .list_jobs(&Visibility::Owner(b.id.clone()), &list(None, 10))
            .await
            .unwrap()
            .total_count,
        0
    );
}

pub async fn lists_are_newest_first_filtered_and_counted(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let b = user(store.as_ref(), "b", Role::Trader).await;
    for i in 0..5 {
        created(store.as_ref(), new_job(&format!("a{i}"), &a, i, None)).await;
    }
    created(store.as_ref(), new_job("b0", &b, 10, None)).await;
    store
        .cancel_job("a0", &Visibility::All, t0())
        .await
        .unwrap();

    let mine = Visibility::Owner(a.id.clone());
    let page = store.list_jobs(&mine, &list(None, 3)).await.unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["a4", "a3", "a2"]
    );
    assert_eq!(
        (page.total_count, page.pending_count, page.processing_count),
        (5, 4, 0)
    );
    assert!(
        page.jobs.iter().all(|j| j.payload.is_none()),
        "lists leave payloads out"
    );

    let cancelled = store
        .list_jobs(&mine, &list(Some(JobStatus::Cancelled), 10))
        .await
        .unwrap();
    assert_eq!(
        cancelled
            .jobs
            .iter()
            .map(|j| j.id.as_str())
            .collect::<Vec<_>>(),
        ["a0"]
    );
    assert_eq!(
        (cancelled.total_count, cancelled.pending_count),
        (1, 4),
        "counts of all visible jobs stay"
    );

    let all = store
        .list_jobs(&Visibility::All, &list(Some(JobStatus::Pending), 100))
        .await
        .unwrap();
    assert_eq!(
        (all.jobs.len(), all.total_count, all.pending_count),
        (5, 5, 5)
    );
    assert_eq!(all.jobs[0].id, "b0");
}

pub async fn cancel_moves_pending_to_cancelled_once(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let b = user(store.as_ref(), "b", Role::Trader).await;
    created(store.as_ref(), new_job("j", &a, 0, None)).await;
    let later = t0() + Duration::hours(1);
    assert_eq!(
        store
            .cancel_job("j", &Visibility::Owner(b.id.clone()), later)
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
    match store
        .cancel_job("j", &Visibility::Owner(a.id.clone()), later)
        .await
        .unwrap()
    {
        CancelOutcome::Cancelled { job, was } => {
            assert_eq!(was, JobStatus::Pending);
            assert_eq!(job.status, JobStatus::Cancelled);
            assert!(!job.cancel_requested, "nothing in flight to discard");
            assert_eq!(job.updated_at, later);
        }
        other => panic!("expected a cancel, got {other:?}"),
    }
    assert_eq!(
        store
            .cancel_job("j", &Visibility::All, later)
            .await
            .unwrap(),
        CancelOutcome::Terminal(JobStatus::Cancelled)
    );
    assert_eq!(
        store
            .cancel_job("nope", &Visibility::All, later)
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
    let kinds: Vec<String> = store
        .job_events("j")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "cancelled"]);
}

pub async fn stats_sum_the_visible_jobs(store: Arc<impl Store>) {
    assert_eq!(
        store.stats(&Visibility::All).await.unwrap(),
        StatsRecord::default()
    );
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let b = user(store.as_ref(), "b", Role::Trader).await;
    created(store.as_ref(), new_job("a1", &a, 0, None)).await;
    created(store.as_ref(), new_job("a2", &a, 1, None)).await;
    created(store.as_ref(), new_job("b1", &b, 2, None)).await;
    store
        .cancel_job("a2", &Visibility::All, t0())
        .await
        .unwrap();
    let mine = store.stats(&Visibility::Owner(a.id.clone())).await.unwrap();
    assert_eq!(
        (
            mine.total,
            mine.pending,
            mine.processing,
            mine.completed,
            mine.failed
        ),
        (2, 1, 0, 0, 0)
    );
    assert_eq!(mine.avg_completion_micros, None);
    let all = store.stats(&Visibility::All).await.unwrap();
    assert_eq!((all.total, all.pending), (3, 2));
}

pub async fn lists_search_filter_by_type_and_page(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    for i in 0..4 {
        let mut job = new_job(&format!("j{i}"), &a, i, Some(&format!("key-{i}")));
        job.payload =
            json!({"ticker": if i % 2 == 0 { "NVDA" } else { "AAPL" }, "note": "100%_sure"})
                .to_string();
        job.job_type = if i < 2 {
            JobType::RiskReport
        } else {
            JobType::SentimentAnalysis
        };
        created(store.as_ref(), job).await;
    }
    let all = Visibility::All;
    let ids = |page: &JobPage| page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
    let search = |text: &str| app::api::ListQuery {
        search: Some(text.into()),
        limit: 10,
        ..app::api::ListQuery::default()
    };
    let nvda = store.list_jobs(&all, &search("NVDA")).await.unwrap();
    assert_eq!(
        (ids(&nvda), nvda.total_count),
        (vec!["j2".to_string(), "j0".to_string()], 2)
    );
    // Each listed job says what it is about, read from its payload when it was inserted.
    let subjects: Vec<Option<String>> = nvda.jobs.iter().map(|j| j.subject.clone()).collect();
    assert_eq!(
        subjects,
        [Some("NVDA".to_string()), Some("NVDA".to_string())]
    );
    assert_eq!(
        ids(&store.list_jobs(&all, &search("key-3")).await.unwrap()),
        ["j3"]
    );
    assert_eq!(
        ids(&store.list_jobs(&all, &search("j1")).await.unwrap()),
        ["j1"]
    );
    let count = |text: &'static str| {
        let store = store.clone();
        async move {
            let page = store.list_jobs(&Visibility::All, &search(text)).await;
            page.unwrap().total_count
        }
    };
    assert_eq!(count("nvd").await, 2, "a word's start, any case");
    assert_eq!(count("vda").await, 0, "not the middle of a word");
    assert_eq!(count("SURE 100").await, 4, "every word, in any order");
    assert_eq!(count("sure nvda").await, 2);
    assert_eq!(count("%").await, 0, "no words: only an id or key matches");
    assert_eq!(count("0%_").await, 0, "punctuation separates words");
    assert_eq!(count("x_y").await, 0);
    // The payload's values are its words, its field names are not (migration 21).
    assert_eq!(count("ticker").await, 0, "a field's name");
    assert_eq!(count("note").await, 0, "a field's name");
    // SQLite's word index holds each job's owner too, never as a word of its payload.
    let owner_words = hex::encode(&a.id);
    for visibility in [Visibility::All, Visibility::Owner(a.id.clone())] {
        for text in [owner_words.as_str(), &owner_words[..6]] {
            let page = store.list_jobs(&visibility, &search(text)).await.unwrap();
            assert_eq!(
                page.total_count, 0,
                "{text}: an owner's id is no word of a job"
            );
        }
    }
    let typed = app::api::ListQuery {
        job_type: Some(JobType::SentimentAnalysis),
        limit: 1,
        offset: 1,
        ..app::api::ListQuery::default()
    };
    let page = store.list_jobs(&all, &typed).await.unwrap();
    assert_eq!((ids(&page), page.total_count), (vec!["j2".to_string()], 2));
}

/// A search with a type filter finds exactly the matches of that type, whose jobs ever it
/// lists, counted and paged by either plan, where both stores narrow the word's matches to the
/// type in their word index (migration 18): a job named by its key is found whatever its
/// words, a job of another type never, and the type held in the index is no word of a job.
pub async fn a_search_with_a_type_finds_only_that_types_matches(store: Arc<impl Store>) {
    let (a, b) = (
        user(store.as_ref(), "a", Role::Trader).await,
        user(store.as_ref(), "b", Role::Trader).await,
    );
    let (risk, back) = (JobType::RiskReport, JobType::StrategyBacktest);
    let jobs = [
        ("a-risk-1", &a, risk, "NVDA", None),
        ("a-back-1", &a, back, "NVDA", None),
        ("a-risk-2", &a, risk, "NVDA", None),
        ("a-risk-3", &a, risk, "AAPL", Some("nvda")),
        ("a-back-2", &a, back, "AAPL", None),
        ("b-risk-1", &b, risk, "NVDA", None),
        ("b-back-1", &b, back, "AAPL", Some("nvda")),
    ];
    for (minutes, (id, owner, job_type, ticker, key)) in jobs.into_iter().enumerate() {
        let mut job = new_job(id, owner, minutes as i64, key);
        job.job_type = job_type;
        job.payload = json!({"ticker": ticker, "kind": "risk report"}).to_string();
        created(store.as_ref(), job).await;
    }
    let listed = |visibility: Visibility, text: String, job_type: JobType, limit: i64| {
        let store = store.clone();
        async move {
            let query = app::api::ListQuery {
                search: Some(text),
                job_type: Some(job_type),
                limit,
                ..app::api::ListQuery::default()
            };
            let page = store.list_jobs(&visibility, &query).await.unwrap();
            let ids: Vec<String> = page.jobs.into_iter().map(|job| job.id).collect();
            (ids, page.total_count, page.total_count_capped)
        }
    };
    let owned = || Visibility::Owner(a.id.clone());
    // A full first page (the newest jobs read) and one the word index fills (every match sorted).
    for limit in [1, 50] {
        let (ids, count, capped) = listed(owned(), "nvda".into(), risk, limit).await;
        let all = ["a-risk-3", "a-risk-2", "a-risk-1"];
        assert_eq!(ids, all[..all.len().min(limit as usize)], "limit {limit}");
        assert_eq!((count, capped), (3, false), "limit {limit}");
        let (ids, count, _) = listed(Visibility::All, "nvda".into(), risk, limit).await;
        let all = ["b-risk-1", "a-risk-3", "a-risk-2", "a-risk-1"];
        assert_eq!(ids, all[..all.len().min(limit as usize)], "limit {limit}");
        assert_eq!(count, 4, "limit {limit}");
        let (ids, count, _) = listed(Visibility::All, "nvda".into(), back, limit).await;
        let all = ["b-back-1", "a-back-1"];
        assert_eq!(ids, all[..all.len().min(limit as usize)], "limit {limit}");
        assert_eq!(count, 2, "limit {limit}");
    }
    let begun = listed(owned(), "nvd".into(), risk, 50).await;
    assert_eq!(begun.1, 2, "a word's start, not the key it does not equal");
    let none = listed(Visibility::All, "nvda".into(), JobType::ModelEvaluation, 50).await;
    assert_eq!(
        none,
        (vec![], 0, false),
        "a type none of the word's jobs have"
    );
    let two_words = listed(owned(), "risk nvda".into(), risk, 50).await;
    assert_eq!(two_words.1, 2, "every word, within the type");
    for text in [
        hex::encode(JobType::RiskReport.as_str()),
        hex::encode(JobType::RiskReport.as_str())[..6].to_string(),
    ] {
        let page = listed(Visibility::All, text.clone(), risk, 50).await;
        assert_eq!(
            page,
            (vec![], 0, false),
            "{text}: a job's type is no word of it"
        );
    }
}

pub async fn a_search_count_stops_at_the_cap(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let many: Vec<NewJob> = (0..=SEARCH_COUNT_CAP)
        .map(|i| {
            let mut job = new_job(&format!("c{i}"), &a, i, None);
            job.payload = json!({"ticker": "NVDA"}).to_string();
            job
        })
        .collect();
    store
        .insert_jobs(many.clone(), KeyConflicts::Answer)
        .await
        .unwrap();
    let query = app::api::ListQuery {
        search: Some("nvda".into()),
        limit: 50,
        ..app::api::ListQuery::default()
    };
    let page = store.list_jobs(&Visibility::All, &query).await.unwrap();
    assert_eq!(
        (page.jobs.len(), page.total_count, page.total_count_capped),
        (50, SEARCH_COUNT_CAP, true)
    );
    assert_eq!(
        page.jobs[0].id,
        format!("c{SEARCH_COUNT_CAP}"),
        "newest first"
    );
    let exact = store
        .list_jobs(
            &Visibility::All,
            &app::api::ListQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (exact.total_count, exact.total_count_capped),
        (SEARCH_COUNT_CAP + 1, false)
    );

    // Another owner's three jobs naming the word: their count is theirs alone, and a filter
    // the word's count cannot answer is counted, each with a full page (the count is then a
    // read of its own, which PostgreSQL may answer from counts kept per word and owner).
    let b = user(store.as_ref(), "b", Role::Trader).await;
    let few: Vec<NewJob> = (0..3)
        .map(|i| {
            let mut job = new_job(&format!("b{i}"), &b, SEARCH_COUNT_CAP + 1 + i, None);
            job.payload = json!({"ticker": "NVDA"}).to_string();
            job.job_type = JobType::StrategyBacktest;
            job
        })
        .collect();
    store.insert_jobs(few, KeyConflicts::Answer).await.unwrap();
    let counted = |visibility: Visibility, job_type: Option<JobType>| {
        let store = store.clone();
        async move {
            let query = app::api::ListQuery {
                search: Some("nvd".into()),
                job_type,
                limit: 2,
                ..app::api::ListQuery::default()
            };
            let page = store.list_jobs(&visibility, &query).await.unwrap();
            assert_eq!(page.jobs.len(), 2);
            (page.total_count, page.total_count_capped)
        }
    };
    assert_eq!(
        counted(Visibility::Owner(a.id.clone()), None).await,
        (SEARCH_COUNT_CAP, true)
    );
    assert_eq!(
        counted(Visibility::Owner(b.id.clone()), None).await,
        (3, false)
    );
    assert_eq!(
        counted(Visibility::All, None).await,
        (SEARCH_COUNT_CAP, true)
    );
    assert_eq!(
        counted(Visibility::All, Some(JobType::StrategyBacktest)).await,
        (3, false)
    );
}

/// Exactly the cap of one owner's jobs carry a word, enqueued by many at once, 25 at a time:
/// the count is exact, not capped. PostgreSQL's counts kept per word and owner (migration 15)
/// must never count a job twice, however the enqueues interleave.
pub async fn a_word_carried_by_exactly_the_cap_of_jobs_is_not_capped(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let (tasks, per_insert) = (8, 25);
    let inserts_per_task = SEARCH_COUNT_CAP / (tasks * per_insert);
    assert_eq!(inserts_per_task * tasks * per_insert, SEARCH_COUNT_CAP);
    let inserts: Vec<_> = (0..tasks)
        .map(|task| {
            let (store, a) = (store.clone(), a.clone());
            tokio::spawn(async move {
                for insert in 0..inserts_per_task {
                    let jobs = (0..per_insert)
                        .map(|i| {
                            let n = (task * inserts_per_task + insert) * per_insert + i;
                            let mut job = new_job(&format!("e{n}"), &a, n, None);
                            job.payload = json!({"note": format!("edge {}", n % 7)}).to_string();
                            job
                        })
                        .collect();
                    store.insert_jobs(jobs, KeyConflicts::Answer).await?;
                }
                StoreResult::Ok(())
            })
        })
        .collect();
    for insert in inserts {
        insert.await.unwrap().expect("every enqueue commits");
    }
    for visibility in [Visibility::Owner(a.id.clone()), Visibility::All] {
        let query = app::api::ListQuery {
            search: Some("edge".into()),
            limit: 50,
            ..app::api::ListQuery::default()
        };
        let page = store.list_jobs(&visibility, &query).await.unwrap();
        assert_eq!(
            (page.jobs.len(), page.total_count, page.total_count_capped),
            (50, SEARCH_COUNT_CAP, false)
        );
    }
}

/// A search reads its page among the newest jobs when a common word fills it there, and
/// sorts every match of a rare one (`store::search`): either way the page is exactly the
/// newest matches, by cursor or offset, for an owner or for all, whatever order the rows were
/// inserted in.
pub async fn a_search_pages_common_and_rare_words_exactly(store: Arc<impl Store>) {
    let (a, b) = (
        user(store.as_ref(), "a", Role::Trader).await,
        user(store.as_ref(), "b", Role::Trader).await,
    );
    let total = SEARCH_WINDOW + 500;
    // Inserted out of time order, so the stores' row order is not the list's order.
    let mut order: Vec<i64> = (0..total).collect();
    order.sort_by_key(|i| (i % 7, -i));
    let jobs: Vec<NewJob> = order
        .iter()
        .map(|&i| {
            let mut job = new_job(
                &format!("s{i:05}"),
                if i % 2 == 0 { &a } else { &b },
                i,
                None,
            );
            job.payload = json!({
                "ticker": if i % 3 == 0 { "NVDA" } else { "AAPL" },
                // Only the oldest hundred, all outside the newest SEARCH_WINDOW.
                "note": if i < 100 { "restatement" } else { "routine" },
            })
            .to_string();
            job
        })
        .collect();
    for chunk in jobs.chunks(1_000) {
        store
            .insert_jobs(chunk.to_vec(), KeyConflicts::Answer)
            .await
            .unwrap();
    }
    let newest_first = |keep: &dyn Fn(i64) -> bool| -> Vec<String> {
        (0..total)
            .rev()
            .filter(|&i| keep(i))
            .map(|i| format!("s{i:05}"))
            .collect()
    };
    let ids = |page: &JobPage| page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
    let a_only = Visibility::Owner(a.id.clone());
    for (visibility, mine) in [
        (&Visibility::All, &(|_: i64| true) as &dyn Fn(i64) -> bool),
        (&a_only, &|i: i64| i % 2 == 0),
    ] {
        for (text, matches) in [
            ("nvd", &(|i: i64| i % 3 == 0) as &dyn Fn(i64) -> bool),
            ("restatement", &|i: i64| i < 100),
            ("NVDA restate", &|i: i64| i < 100 && i % 3 == 0),
            ("zyzzyva", &|_: i64| false),
        ] {
            let expected = newest_first(&|i| mine(i) && matches(i));
            let query = |offset: i64, cursor: Option<app::api::ListCursor>| app::api::ListQuery {
                search: Some(text.into()),
                limit: 50,
                offset,
                cursor,
                ..app::api::ListQuery::default()
            };
            let first = store.list_jobs(visibility, &query(0, None)).await.unwrap();
            let want = |from: usize| {
                expected
                    .iter()
                    .skip(from)
                    .take(50)
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&first), want(0), "{text}, first page");
            assert_eq!(first.total_count, expected.len() as i64, "{text}");
            let by_offset = store
                .list_jobs(visibility, &query(100, None))
                .await
                .unwrap();
            assert_eq!(ids(&by_offset), want(100), "{text}, by offset");
            assert_eq!(
                by_offset.total_count, first.total_count,
                "{text}, by offset"
            );
            if let Some(cursor) = first.next_cursor {
                let next = store
                    .list_jobs(visibility, &query(0, Some(cursor)))
                    .await
                    .unwrap();
                assert_eq!(ids(&next), want(50), "{text}, by cursor");
                assert_eq!(next.total_count, first.total_count, "{text}, by cursor");
            }
        }
    }
}

/// A search word finds every word it begins, however many (PostgreSQL reads a word that
/// begins more than `MOST_WORDS_BEGUN` of its vocabulary as a prefix, fewer as those words).
pub async fn a_search_word_finds_every_word_it_begins(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let words = MOST_WORDS_BEGUN + 36;
    let jobs: Vec<NewJob> = (0..words)
        .map(|i| {
            let mut job = new_job(&format!("w{i}"), &a, i as i64, None);
            job.payload = json!({"note": format!("Tick{i} q{}", i % 2)}).to_string();
            job
        })
        .collect();
    store.insert_jobs(jobs, KeyConflicts::Answer).await.unwrap();
    let count = |text: &'static str| {
        let store = store.clone();
        async move {
            let query = app::api::ListQuery {
                search: Some(text.into()),
                limit: 200,
                ..app::api::ListQuery::default()
            };
            let page = store.list_jobs(&Visibility::All, &query).await.unwrap();
            assert_eq!(page.jobs.len() as i64, page.total_count, "{text}");
            page.total_count
        }
    };
    assert_eq!(count("tick").await, words as i64, "more words than listed");
    assert_eq!(count("TICK5").await, 11, "tick5 and tick50 to tick59");
    assert_eq!(count("tick99").await, 1, "a word and the start of none");
    assert_eq!(count("tick100").await, 0, "the start of no word");
    assert_eq!(count("tick1 q1").await, 6, "tick1, 11, 13, 15, 17, 19");
    assert_eq!(
        count("tick q0").await,
        words as i64 / 2,
        "a prefix and a word"
    );
    assert_eq!(count("ick").await, 0, "not the middle of a word");
    assert_eq!(count("w7").await, 1, "no word, but a job's id");
}

/// Enqueues running at once that carry the same new words all land and are all found: adding
/// words to PostgreSQL's vocabulary never deadlocks. Each task's jobs carry every one of 300
/// new words, three a job, from the task's own place around the ring: taken in the jobs'
/// order, two tasks would each hold words the other waits for.
pub async fn concurrent_inserts_of_the_same_new_words_all_land(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let (tasks, per_task) = (8, 100);
    let ring = per_task * 3;
    let inserts: Vec<_> = (0..tasks)
        .map(|task| {
            let store = store.clone();
            let jobs: Vec<NewJob> = (0..per_task)
                .map(|i| {
                    let words: Vec<String> = (0..3)
                        .map(|k| {
                            format!(
                                "fresh{}",
                                (task * (per_task / tasks) * 3 + i * 3 + k) % ring
                            )
                        })
                        .collect();
                    let mut job = new_job(&format!("f{task}-{i}"), &a, i as i64, None);
                    job.payload = json!({"note": words.join(" ")}).to_string();
                    job
                })
                .collect();
            tokio::spawn(async move { store.insert_jobs(jobs, KeyConflicts::Answer).await })
        })
        .collect();
    for insert in inserts {
        insert.await.unwrap().expect("every enqueue commits");
    }
    for (words, matches) in [
        ("FRESH", tasks * per_task),
        ("fresh299", tasks),
        ("fresh0 fresh1", tasks),
        ("fresh0 fresh3", 0),
    ] {
        let query = app::api::ListQuery {
            search: Some(words.into()),
            limit: 1,
            ..app::api::ListQuery::default()
        };
        let page = store.list_jobs(&Visibility::All, &query).await.unwrap();
        assert_eq!(page.total_count, matches as i64, "{words}");
    }
}

pub async fn events_are_kept_in_order_with_their_details(store: Arc<impl Store>) {
    let ids = ["e1", "e2"];
    submitted_batch(store.as_ref(), "b", "msgbatch_e", &ids).await;
    store
        .cancel_job("e1", &Visibility::All, at(20))
        .await
        .unwrap();
    let events = store.job_events("e1").await.unwrap();
    assert_eq!(kinds(&events), ["created", "submitted", "cancelled"]);
    assert_eq!(events[0].detail, None);
    assert_eq!(events[1].detail.as_deref(), Some("in batch msgbatch_e"));
    assert_eq!(events[1].at, at(11));
    assert_eq!(
        events[2].detail.as_deref(),
        Some("while processing in batch msgbatch_e")
    );
    assert_eq!(events[2].at, at(20));
    assert!(store.job_events("missing").await.unwrap().is_empty());
}

pub async fn a_group_of_jobs_is_inserted_at_once_with_repeated_keys_answered_once(
    store: Arc<impl Store>,
) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let b = user(store.as_ref(), "b", Role::Trader).await;
    let group = [
        new_job("g1", &a, 0, Some("k")),
        new_job("g2", &a, 1, Some("k")),
        new_job("g3", &a, 2, None),
        new_job("g4", &b, 3, Some("k")),
    ];
    let outcomes = store
        .insert_jobs(group.to_vec(), KeyConflicts::Answer)
        .await
        .unwrap();
    let ids: Vec<(&str, bool)> = outcomes
        .iter()
        .map(|o| match o {
            InsertOutcome::Created(r) => (r.id.as_str(), true),
            InsertOutcome::Existing(r) => (r.id.as_str(), false),
        })
        .collect();
    assert_eq!(
        ids,
        [("g1", true), ("g1", false), ("g3", true), ("g4", true)],
        "the second use of a key in one group is the first job"
    );
    // What a group answers is what a read gives back (but the payload, which stays text).
    let InsertOutcome::Created(answered) = &outcomes[0] else {
        panic!()
    };
    let read = store
        .get_job("g1", &Visibility::All)
        .await
        .unwrap()
        .unwrap();
    assert!(read.payload.is_some());
    assert_eq!(
        answered,
        &JobRecord {
            payload: None,
            ..read
        }
    );
    assert_eq!(kinds(&store.job_events("g3").await.unwrap()), ["created"]);
    assert_eq!(store.job_events("g3").await.unwrap()[0].at, at(2));
    assert!(
        store
            .get_job("g2", &Visibility::All)
            .await
            .unwrap()
            .is_none()
    );
    let stats = store.stats(&Visibility::All).await.unwrap();
    assert_eq!((stats.total, stats.pending), (3, 3));
    assert_totals_match_a_recount(store.as_ref()).await;
    assert!(
        store
            .insert_jobs(Vec::new(), KeyConflicts::Answer)
            .await
            .unwrap()
            .is_empty()
    );
    // Refusing: a key reused for a different request fails the group, and inserts nothing.
    let mut different = new_job("g5", &a, 4, Some("k"));
    different.request_hash = "another request".into();
    let refused = store
        .insert_jobs(
            vec![new_job("g6", &a, 5, None), different],
            KeyConflicts::Refuse,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::KeyConflict { index: 1 })),
        "{refused:?}"
    );
    assert!(
        store
            .get_job("g6", &Visibility::All)
            .await
            .unwrap()
            .is_none()
    );
    let same = new_job("g7", &a, 6, Some("k"));
    let same = NewJob {
        request_hash: "hash-g1".into(),
        ..same
    };
    let answered = store
        .insert_jobs(vec![same], KeyConflicts::Refuse)
        .await
        .unwrap();
    assert!(
        matches!(&answered[0], InsertOutcome::Existing(r) if r.id == "g1"),
        "the same request is the job"
    );
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn a_group_with_a_bad_job_inserts_nothing(store: Arc<impl Store>) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let ghost = UserRecord {
        id: "nobody".into(),
        name: "nobody".into(),
        role: Role::Trader,
        created_at: t0(),
    };
    let group = [
        new_job("ok", &a, 0, None),
        new_job("orphan", &ghost, 1, None),
    ];
    assert!(
        store
            .insert_jobs(group.to_vec(), KeyConflicts::Answer)
            .await
            .is_err(),
        "an unknown owner"
    );
    assert!(
        store
            .get_job("ok", &Visibility::All)
            .await
            .unwrap()
            .is_none(),
        "all or none"
    );
    assert_eq!(store.stats(&Visibility::All).await.unwrap().total, 0);
    assert_totals_match_a_recount(store.as_ref()).await;
}

pub async fn a_jobs_subject_is_the_first_naming_field_of_its_payload_cut_short(
    store: Arc<impl Store>,
) {
    let a = user(store.as_ref(), "a", Role::Trader).await;
    let payloads = [
        (
            "s1",
            json!({"headlines": ["x"], "ticker": "TSLA", "account": "ACC-1"}),
        ),
        ("s2", json!({"portfolio_id": "P".repeat(60)})),
        ("s3", json!({"account": 7})),
        ("s4", json!({"note": "nothing that names it"})),
    ];
    for (i, (id, payload)) in payloads.iter().enumerate() {
        let mut job = new_job(id, &a, i as i64, None);
        job.payload = payload.to_string();
        created(store.as_ref(), job).await;
    }
    let mut subjects = vec![];
    for (id, _) in payloads {
        let job = store.get_job(id, &Visibility::All).await.unwrap().unwrap();
        subjects.push(job.subject);
    }
    assert_eq!(
        subjects,
        [
            Some("TSLA".to_string()),
            Some("P".repeat(app::api::SUBJECT_CHARS)),
            Some("7".to_string()),
            None
        ]
    );
}
