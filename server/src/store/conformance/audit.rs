//! The audit log: entries written with their action, read newest first, paged and filtered.

use super::*;

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
    let all = store.audit_log(&audit_filter(10)).await.unwrap();
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
    let first_page = store.audit_log(&audit_filter(2)).await.unwrap();
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
