//! Budgets: caps set with their audit entry, what counts against them, and admission.

use super::results::{BATCH, completed, update};
use super::*;
use crate::events::Happened;

pub async fn budgets_are_set_replaced_and_removed_with_their_audit_entry(store: Arc<impl Store>) {
    let ops = user(store.as_ref(), "ops", Role::Admin).await;
    let bob = user(store.as_ref(), "bob", Role::Trader).await;
    assert_eq!(store.monthly_cap(&bob.id).await.unwrap(), None);
    let set = audited(&ops, AuditAction::BudgetChange, "bob", 1);
    assert_eq!(
        store.set_budget("bob", Some(5_000), &set).await.unwrap(),
        Some(bob.clone())
    );
    let raised = audited(&ops, AuditAction::BudgetChange, "bob", 2);
    store.set_budget("bob", Some(9_000), &raised).await.unwrap();
    assert_eq!(store.monthly_cap(&bob.id).await.unwrap(), Some(9_000));
    let capped = store.capped_usages(t0()).await.unwrap();
    assert_eq!(
        capped
            .iter()
            .map(|u| (u.user_name.as_str(), u.cap_nanos))
            .collect::<Vec<_>>(),
        [("bob", Some(9_000))],
        "one row per capped user, the latest cap"
    );
    let nobody = audited(&ops, AuditAction::BudgetChange, "nobody", 3);
    assert_eq!(
        store.set_budget("nobody", Some(1), &nobody).await.unwrap(),
        None
    );
    let removed = audited(&ops, AuditAction::BudgetChange, "bob", 4);
    store.set_budget("bob", None, &removed).await.unwrap();
    assert_eq!(store.monthly_cap(&bob.id).await.unwrap(), None);
    assert!(store.capped_usages(t0()).await.unwrap().is_empty());
    let usage = store.budget_usage(&bob.id, t0()).await.unwrap();
    assert_eq!((usage.cap_nanos, usage.remaining()), (None, None));
    let log = store.audit_log(&audit_filter(10)).await.unwrap();
    let entries: Vec<&AuditEntry> = log.iter().map(|r| &r.entry).collect();
    assert_eq!(
        entries,
        [&removed, &raised, &set],
        "every change and nothing for an unknown user"
    );
}

pub async fn budget_usage_counts_the_month_s_charges_and_unbilled_bounds(store: Arc<impl Store>) {
    // x1 and x2 are sent; x1 is billed on day 1; p1 stays pending.
    submitted_batch(store.as_ref(), "b", BATCH, &["x1", "x2"]).await;
    let trader = user(store.as_ref(), "trader", Role::Trader).await;
    created(store.as_ref(), new_job("p1", &trader, 5, None)).await;
    let day = Duration::days(1);
    let (complete, done) = completed(1000);
    store
        .apply_updates(BATCH, &[update("x1", 0, complete, done)], t0() + day)
        .await
        .unwrap();
    let ops = user(store.as_ref(), "ops", Role::Admin).await;
    store
        .set_budget(
            "trader",
            Some(2_000_000),
            &audited(&ops, AuditAction::BudgetChange, "trader", 1),
        )
        .await
        .unwrap();
    let usage = store.budget_usage(&trader.id, t0()).await.unwrap();
    assert_eq!(
        usage,
        BudgetUsage {
            user_id: trader.id.clone(),
            user_name: "trader".into(),
            cap_nanos: Some(2_000_000),
            spent_nanos: 1_000_000,
            in_flight_bound_nanos: JOB_BOUND,
            pending_bound_nanos: JOB_BOUND,
        }
    );
    assert_eq!(
        usage.unsent_allowance(),
        Some(2_000_000 - 1_000_000 - JOB_BOUND)
    );
    assert_eq!(
        usage.remaining(),
        Some(2_000_000 - 1_000_000 - 2 * JOB_BOUND)
    );
    let next_month = store
        .budget_usage(&trader.id, t0() + day * 2)
        .await
        .unwrap();
    assert_eq!(
        next_month.spent_nanos, 0,
        "a charge counts in its own month"
    );
    assert_eq!(
        store.capped_usages(t0()).await.unwrap(),
        std::slice::from_ref(&usage)
    );
    let other = user(store.as_ref(), "other", Role::Trader).await;
    let theirs = store.budget_usage(&other.id, t0()).await.unwrap();
    assert_eq!(
        (
            theirs.spent_nanos,
            theirs.pending_bound_nanos,
            theirs.cap_nanos
        ),
        (0, 0, None)
    );
    // A cap changes nothing already recorded.
    store
        .set_budget(
            "trader",
            Some(0),
            &audited(&ops, AuditAction::BudgetChange, "trader", 2),
        )
        .await
        .unwrap();
    assert_eq!(job(store.as_ref(), "x1").await.bill.cost_nanos, 1_000_000);
    assert_eq!(
        store
            .budget_usage(&trader.id, t0())
            .await
            .unwrap()
            .spent_nanos,
        1_000_000
    );
}

/// A job cancelled while its batch runs may still be billed: its bound stays in flight until
/// its charge is recorded or its batch has ended without one.
pub async fn a_job_cancelled_in_flight_counts_until_its_batch_settles(store: Arc<impl Store>) {
    submitted_batch(store.as_ref(), "b", BATCH, &["c1", "c2", "c3"]).await;
    let trader = user(store.as_ref(), "trader", Role::Trader).await;
    let in_flight = |store: Arc<dyn Store>| {
        let id = trader.id.clone();
        async move {
            store
                .budget_usage(&id, t0())
                .await
                .unwrap()
                .in_flight_bound_nanos
        }
    };
    let dyn_store: Arc<dyn Store> = store.clone();
    assert_eq!(in_flight(dyn_store.clone()).await, 3 * JOB_BOUND);
    for id in ["c1", "c2"] {
        store
            .cancel_job(id, &Visibility::All, at(20))
            .await
            .unwrap();
    }
    assert_eq!(
        in_flight(dyn_store.clone()).await,
        3 * JOB_BOUND,
        "cancelled in flight: still owed until the batch tells"
    );
    // c1's result is billed: its charge counts as spent, its bound no more.
    let discard = update(
        "c1",
        0,
        Transition::RecordSpend { spend: spend(800) },
        Happened::ResultDiscarded {
            batch: BATCH.into(),
        },
    );
    store
        .apply_updates(BATCH, &[discard], at(21))
        .await
        .unwrap();
    let usage = store.budget_usage(&trader.id, t0()).await.unwrap();
    assert_eq!(
        (usage.spent_nanos, usage.in_flight_bound_nanos),
        (800_000, 2 * JOB_BOUND)
    );
    // The batch ends: c2 was not billed, so it no longer counts.
    store
        .finish_batch("b", BatchStatus::Ended, &json!({}), at(22), 0, None)
        .await
        .unwrap();
    assert_eq!(in_flight(dyn_store).await, JOB_BOUND, "c3 still processing");
}

/// A claim admits a capped owner's jobs against what is left of their cap, read inside the
/// claim: concurrent claims cannot pass it together, and uncapped owners are not held back.
pub async fn claims_admit_capped_owners_jobs_within_their_cap_even_when_concurrent(
    store: Arc<impl Store>,
) {
    let ops = user(store.as_ref(), "ops", Role::Admin).await;
    let capped = user(store.as_ref(), "capped", Role::Trader).await;
    let free = user(store.as_ref(), "free", Role::Trader).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = format!("k{i}");
        created(store.as_ref(), new_job(&id, &capped, i, None)).await;
        ids.push(id);
    }
    created(store.as_ref(), new_job("f0", &free, 0, None)).await;
    // Room for three and a half jobs.
    let cap = 3 * JOB_BOUND + JOB_BOUND / 2;
    store
        .set_budget(
            "capped",
            Some(cap),
            &audited(&ops, AuditAction::BudgetChange, "capped", 1),
        )
        .await
        .unwrap();
    assert_eq!(
        store.first_capped_bounds(at(60)).await.unwrap(),
        [(capped.id.clone(), JOB_BOUND)]
    );
    // Four claims at once, three of the capped owner's jobs each.
    let claims: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            let mine: Vec<&str> = ids[n * 3..n * 3 + 3].iter().map(String::as_str).collect();
            let claims = claims_of(&capped.id, &mine, JOB_BOUND);
            tokio::spawn(async move {
                store
                    .claim_jobs(
                        new_batch(&format!("cb{n}"), "flush", 30 + n as i64),
                        &claims,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = 0;
    for claim in claims {
        claimed += claim.await.unwrap().len();
    }
    assert_eq!(
        claimed, 3,
        "three fit in the cap, whatever the interleaving"
    );
    let usage = store.budget_usage(&capped.id, t0()).await.unwrap();
    assert_eq!(usage.in_flight_bound_nanos, 3 * JOB_BOUND);
    assert!(usage.unsent_allowance().unwrap() >= 0);
    // A capped owner past their cap is held back; an uncapped owner's job still goes.
    let mut mixed = claims_of(&capped.id, &["k11"], JOB_BOUND);
    mixed.extend(claims_of(&free.id, &["f0"], JOB_BOUND));
    assert_eq!(
        store
            .claim_jobs(new_batch("mix", "flush", 40), &mixed)
            .await
            .unwrap(),
        ["f0"]
    );
    // The bound a claim carries is what counts from then on.
    created(store.as_ref(), new_job("f1", &free, 1, None)).await;
    store
        .claim_jobs(
            new_batch("big", "flush", 41),
            &claims_of(&free.id, &["f1"], 5 * JOB_BOUND),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .budget_usage(&free.id, t0())
            .await
            .unwrap()
            .in_flight_bound_nanos,
        6 * JOB_BOUND
    );
}
