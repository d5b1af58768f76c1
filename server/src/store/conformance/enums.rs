//! Every value of the enums the store keeps as text goes in and comes back out the same, on
//! every database: a new job type, status or audit action that one schema refuses fails here.

use super::results::{BATCH, completed, update};
use super::*;
use crate::events::Happened;

pub async fn every_job_type_status_role_and_audit_action_round_trips(store: Arc<impl Store>) {
    let s = store.as_ref();
    let trader = user(s, "trader", Role::Trader).await;
    let admin = user(s, "admin", Role::Admin).await;
    let roles: Vec<Role> = s
        .list_users()
        .await
        .unwrap()
        .iter()
        .map(|u| u.role)
        .collect();
    assert_eq!(roles, [Role::Admin, Role::Trader], "by name: admin, trader");

    for (i, job_type) in JobType::ALL.iter().enumerate() {
        let id = format!("type-{i}");
        let mut new = new_job(&id, &trader, i as i64, None);
        new.job_type = *job_type;
        created(s, new).await;
        assert_eq!(job(s, &id).await.job_type, *job_type);
    }

    // One job in each status: sent, then completed, failed or cancelled in flight; one left.
    submitted_batch(
        s,
        "b",
        BATCH,
        &["completed", "failed", "cancelled", "processing"],
    )
    .await;
    let (complete, done) = completed(100);
    let failed = Transition::Fail {
        error: "refused".into(),
        attempts: 1,
        spend: None,
    };
    let updates = [
        update("completed", 0, complete, done),
        update(
            "failed",
            0,
            failed,
            Happened::Failed {
                reason: "refused".into(),
            },
        ),
    ];
    store.apply_updates(BATCH, &updates, at(30)).await.unwrap();
    let cancel = store
        .cancel_job("cancelled", &Visibility::All, at(31))
        .await
        .unwrap();
    assert!(
        matches!(cancel, CancelOutcome::Cancelled { .. }),
        "{cancel:?}"
    );
    created(s, new_job("pending", &trader, 40, None)).await;
    for status in JobStatus::ALL {
        let id = status.as_str();
        assert_eq!(job(s, id).await.status, *status);
        let listed = s
            .list_jobs(&Visibility::All, &list(Some(*status), 100))
            .await
            .unwrap();
        assert!(
            listed
                .jobs
                .iter()
                .any(|j| j.id == id && j.status == *status),
            "a list filtered by {status} holds {id}"
        );
    }
    assert_totals_match_a_recount(s).await;

    for (i, action) in app::api::AuditAction::ALL.iter().enumerate() {
        s.record_audit(&audited(&admin, *action, "target", i as i64))
            .await
            .unwrap();
        let filter = AuditFilter {
            action: Some(*action),
            limit: 10,
            ..AuditFilter::default()
        };
        let found = s.audit_log(&filter).await.unwrap();
        assert_eq!(
            found.iter().map(|r| r.entry.action).collect::<Vec<_>>(),
            [*action]
        );
    }
}
