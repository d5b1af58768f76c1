//! Budgets and the audit log.

use super::results::{BATCH, completed, update};
use super::*;

fn filter(limit: i64) -> AuditFilter {
    AuditFilter {
        limit,
        ..AuditFilter::default()
    }
}

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
    let log = store.audit_log(&filter(10)).await.unwrap();
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
    assert_eq!(job(store.as_ref(), "x1").await.cost_nanos, 1_000_000);
    assert_eq!(
        store
            .budget_usage(&trader.id, t0())
            .await
            .unwrap()
            .spent_nanos,
        1_000_000
    );
}

pub async fn a_flush_claim_is_audited_with_it_and_the_log_pages_and_filters(
    store: Arc<impl Store>,
) {
    let ops = user(store.as_ref(), "ops", Role::Admin).await;
    let ann = user(store.as_ref(), "ann", Role::Admin).await;
    let trader = user(store.as_ref(), "trader", Role::Trader).await;
    created(store.as_ref(), new_job("j1", &trader, 0, None)).await;
    let flush = audited(&ops, AuditAction::Flush, "b1", 10);
    let batch = NewBatch {
        audit: Some(flush.clone()),
        ..new_batch("b1", "flush", 10)
    };
    assert_eq!(
        store.claim_jobs(batch, &claims(&["j1"])).await.unwrap(),
        ["j1"]
    );
    // A claim that takes nothing is rolled back, its entry with it.
    let empty = NewBatch {
        audit: Some(audited(&ops, AuditAction::Flush, "b2", 11)),
        ..new_batch("b2", "flush", 11)
    };
    assert!(
        store
            .claim_jobs(empty, &claims(&["j1"]))
            .await
            .unwrap()
            .is_empty()
    );
    let poll = audited(&ann, AuditAction::Poll, BATCH, 12);
    store.record_audit(&poll).await.unwrap();
    for minute in 13..16 {
        store
            .record_audit(&audited(&ann, AuditAction::Poll, "later", minute))
            .await
            .unwrap();
    }
    let all = store.audit_log(&filter(10)).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let by_ops = store
        .audit_log(&AuditFilter {
            actor_name: Some("ops".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_ops.len(), 1);
    assert_eq!(by_ops[0].entry, flush);
    let first_page = store.audit_log(&filter(2)).await.unwrap();
    let second_page = store
        .audit_log(&AuditFilter {
            before_id: Some(first_page[1].id),
            limit: 2,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(second_page.len(), 2);
    assert_eq!(
        second_page[0].id, all[2].id,
        "the next page starts after the last"
    );
    let polls = store
        .audit_log(&AuditFilter {
            action: Some(AuditAction::Poll),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(polls.len(), 4);
    assert_eq!(polls.last().map(|r| &r.entry), Some(&poll));
}
