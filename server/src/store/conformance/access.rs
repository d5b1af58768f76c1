//! Users and their credentials.

use super::*;

pub async fn users_are_created_once(store: Arc<impl Store>) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let first = store
        .ensure_user("u1", "alice", Role::Trader, t0())
        .await
        .unwrap();
    let again = store
        .ensure_user("u2", "alice", Role::Admin, t0())
        .await
        .unwrap();
    assert_eq!(first, again, "an existing user is returned unchanged");
    assert_eq!(first.id, "u1");
    assert_eq!(first.role, Role::Trader);
    assert_eq!(store.count_users().await.unwrap(), 1);
}

pub async fn credentials_are_found_by_kind_and_id(store: Arc<impl Store>) {
    let alice = user(store.as_ref(), "alice", Role::Admin).await;
    let credential = NewCredential {
        id: "tok1".into(),
        kind: CredentialKind::Token,
        user_id: alice.id.clone(),
        secret_hash: "h".into(),
        created_at: t0(),
        expires_at: Some(t0() + Duration::hours(1)),
        opened_with: None,
        audit: None,
    };
    store.insert_credential(credential).await.unwrap();
    let found = store
        .find_credential(CredentialKind::Token, "tok1")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.user, alice);
    assert_eq!(found.secret_hash, "h");
    assert_eq!(found.expires_at, Some(t0() + Duration::hours(1)));
    assert!(
        store
            .find_credential(CredentialKind::Session, "tok1")
            .await
            .unwrap()
            .is_none(),
        "kinds are separate"
    );
    store
        .delete_credential(CredentialKind::Token, "tok1")
        .await
        .unwrap();
    assert!(
        store
            .find_credential(CredentialKind::Token, "tok1")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn tokens_are_listed_and_revoked_once(store: Arc<impl Store>) {
    let bob = user(store.as_ref(), "bob", Role::Trader).await;
    let ann = user(store.as_ref(), "ann", Role::Admin).await;
    for (id, owner, kind, minutes) in [
        ("t1", &bob, CredentialKind::Token, 1),
        ("t2", &ann, CredentialKind::Token, 2),
        ("s1", &bob, CredentialKind::Session, 3),
    ] {
        store
            .insert_credential(NewCredential {
                id: id.into(),
                kind,
                user_id: owner.id.clone(),
                secret_hash: "h".into(),
                created_at: at(minutes),
                expires_at: None,
                opened_with: (kind == CredentialKind::Session).then(|| "t1".to_string()),
                audit: (kind == CredentialKind::Token)
                    .then(|| audited(&ann, AuditAction::TokenCreate, id, minutes)),
            })
            .await
            .unwrap();
    }
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["ann", "bob"], "by name");
    let tokens = store.list_tokens().await.unwrap();
    assert_eq!(
        tokens.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t1", "t2"],
        "tokens only, oldest first"
    );
    assert_eq!(tokens[0].user_id, bob.id);
    assert_eq!(tokens[0].created_at, at(1));
    assert!(
        store
            .revoke_credential(
                CredentialKind::Token,
                "t1",
                at(5),
                Some(&audited(&ann, AuditAction::TokenRevoke, "t1", 5))
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_credential(
                CredentialKind::Token,
                "t1",
                at(6),
                Some(&audited(&ann, AuditAction::TokenRevoke, "t1", 6))
            )
            .await
            .unwrap(),
        "once"
    );
    assert!(
        !store
            .revoke_credential(CredentialKind::Token, "s1", at(6), None)
            .await
            .unwrap(),
        "a session is not a token"
    );
    let revoked = store
        .find_credential(CredentialKind::Token, "t1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(5)));
    assert_eq!(
        store.list_tokens().await.unwrap()[0].revoked_at,
        Some(at(5))
    );
    let session = store
        .find_credential(CredentialKind::Session, "s1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        session.revoked_at,
        Some(at(5)),
        "the session opened with t1 ends with it"
    );
    let other = store
        .find_credential(CredentialKind::Token, "t2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.revoked_at, None, "other credentials live on");
    let log = store
        .audit_log(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<(AuditAction, Option<&str>)> = log
        .iter()
        .map(|r| (r.entry.action, r.entry.target.as_deref()))
        .collect();
    assert_eq!(
        actions,
        [
            (AuditAction::TokenRevoke, Some("t1")),
            (AuditAction::TokenCreate, Some("t2")),
            (AuditAction::TokenCreate, Some("t1")),
        ],
        "newest first; a revoke that changed nothing is not recorded"
    );
    assert_eq!(
        log[0].entry,
        audited(&ann, AuditAction::TokenRevoke, "t1", 5)
    );
}
