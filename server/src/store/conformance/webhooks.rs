//! Conformance: webhooks become due when their job ends, are claimed once, and keep count.

use super::*;
use crate::events::Happened;

pub async fn webhooks_become_due_when_their_job_ends_and_are_claimed_once(store: Arc<impl Store>) {
    let alice = user(store.as_ref(), "alice", Role::Trader).await;
    let with_hook = NewJob {
        callback_url: Some("https://hooks.example.com/a".into()),
        ..new_job("w1", &alice, 0, None)
    };
    store
        .insert_jobs(
            vec![with_hook, new_job("w2", &alice, 0, None)],
            KeyConflicts::Refuse,
        )
        .await
        .unwrap();
    let claim = |now: DateTime<Utc>| {
        let store = store.clone();
        async move {
            let due = store.due_webhooks(now, 10, 10, &[]).await.unwrap();
            let ids: Vec<String> = due.iter().map(|w| w.job_id.clone()).collect();
            let claimed = store
                .claim_webhooks(&ids, now, now + Duration::minutes(1))
                .await
                .unwrap();
            assert_eq!(claimed, due, "what was due is claimed");
            claimed
        }
    };
    assert!(
        claim(at(1)).await.is_empty(),
        "a pending job's webhook is not due"
    );

    store
        .cancel_job("w1", &Visibility::All, at(2))
        .await
        .unwrap();
    store
        .cancel_job("w2", &Visibility::All, at(2))
        .await
        .unwrap();
    assert!(
        claim(at(1)).await.is_empty(),
        "due from the moment the job ended"
    );
    let due = claim(at(3)).await;
    assert_eq!(
        due,
        [DueWebhook {
            job_id: "w1".into(),
            owner_id: alice.id.clone(),
            url: "https://hooks.example.com/a".into(),
            attempts: 0,
        }],
        "only the job that asked for one"
    );
    assert!(claim(at(3)).await.is_empty(), "a claim holds it");

    let failed = Happened::WebhookFailed {
        error: "answered 500".into(),
        attempt: 1,
        retry_in_secs: Some(60),
    };
    let retry = WebhookOutcome::Failed {
        error: "answered 500".into(),
        retry_at: Some(at(10)),
    };
    store
        .finish_webhook("w1", &retry, &failed, at(3))
        .await
        .unwrap();
    assert!(claim(at(9)).await.is_empty());
    assert_eq!(
        claim(at(10)).await[0].attempts,
        1,
        "the attempt was counted"
    );

    let delivered = Happened::WebhookDelivered {
        status: 204,
        attempt: 2,
    };
    store
        .finish_webhook("w1", &WebhookOutcome::Delivered, &delivered, at(11))
        .await
        .unwrap();
    assert!(claim(at(1000)).await.is_empty(), "delivered is done");
    let kinds: Vec<String> = store
        .job_events("w1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["webhook_failed", "webhook_delivered"]
    );

    // The last failure gives up: never claimed again.
    let bob = user(store.as_ref(), "bob", Role::Trader).await;
    let hook = NewJob {
        callback_url: Some("https://hooks.example.com/b".into()),
        ..new_job("w3", &bob, 0, None)
    };
    store
        .insert_jobs(vec![hook], KeyConflicts::Refuse)
        .await
        .unwrap();
    store
        .cancel_job("w3", &Visibility::All, at(20))
        .await
        .unwrap();
    assert_eq!(claim(at(21)).await.len(), 1);
    let last = WebhookOutcome::Failed {
        error: "could not connect".into(),
        retry_at: None,
    };
    store
        .finish_webhook("w3", &last, &failed, at(21))
        .await
        .unwrap();
    assert!(claim(at(10_000)).await.is_empty());
}

pub async fn webhook_secrets_are_kept_per_user(store: Arc<impl Store>) {
    let alice = user(store.as_ref(), "alice", Role::Trader).await;
    assert_eq!(store.webhook_secret(&alice.id).await.unwrap(), None);
    store
        .set_webhook_secret(&alice.id, "whsec_1")
        .await
        .unwrap();
    store
        .set_webhook_secret(&alice.id, "whsec_2")
        .await
        .unwrap();
    assert_eq!(
        store.webhook_secret(&alice.id).await.unwrap().as_deref(),
        Some("whsec_2")
    );
    assert_eq!(store.webhook_secret("nobody").await.unwrap(), None);
}

/// A busy owner's webhooks wait; the others' go, at most `per_owner` of each; a claim taken
/// once is not taken again.
pub async fn due_webhooks_are_fair_to_every_owner(store: Arc<impl Store>) {
    let (slow, fast) = (
        user(store.as_ref(), "slow", Role::Trader).await,
        user(store.as_ref(), "fast", Role::Trader).await,
    );
    let hooked = |id: &str, owner: &UserRecord, minutes: i64| NewJob {
        callback_url: Some("https://hooks.example.com/h".into()),
        ..new_job(id, owner, minutes, None)
    };
    let mut jobs: Vec<NewJob> = (0..6).map(|i| hooked(&format!("s{i}"), &slow, i)).collect();
    jobs.push(hooked("f0", &fast, 10));
    store
        .insert_jobs(jobs.clone(), KeyConflicts::Refuse)
        .await
        .unwrap();
    for job in &jobs {
        store
            .cancel_job(&job.id, &Visibility::All, at(20))
            .await
            .unwrap();
    }
    let ids = |due: &[DueWebhook]| due.iter().map(|w| w.job_id.clone()).collect::<Vec<_>>();
    let due = store.due_webhooks(at(21), 100, 2, &[]).await.unwrap();
    assert_eq!(
        ids(&due),
        ["f0", "s0", "s1"],
        "two of the slow owner's, oldest first"
    );
    let due = store
        .due_webhooks(at(21), 100, 2, std::slice::from_ref(&slow.id))
        .await
        .unwrap();
    assert_eq!(ids(&due), ["f0"], "a busy owner's wait");
    let claimed = store
        .claim_webhooks(&["s0".into(), "f0".into()], at(21), at(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let again = store
        .claim_webhooks(&["s0".into(), "s1".into()], at(21), at(30))
        .await
        .unwrap();
    assert_eq!(ids(&again), ["s1"], "a claimed webhook is held");
}
