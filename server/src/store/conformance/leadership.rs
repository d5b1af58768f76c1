//! What instances sharing the database coordinate through: one leader for the background
//! work, and announcements of what changed.

use futures::StreamExt;

use super::*;

pub async fn leadership_is_held_by_one_owner_until_it_lapses(store: Arc<impl Store>) {
    store.ping().await.unwrap();
    let duty = "background";
    assert!(store.lead(duty, "a", at(1), at(0)).await.unwrap(), "free");
    assert!(
        !store.lead(duty, "b", at(2), at(0)).await.unwrap(),
        "held by a"
    );
    assert!(
        store.lead(duty, "a", at(3), at(0)).await.unwrap(),
        "a renews"
    );
    assert!(
        !store.lead(duty, "b", at(4), at(2)).await.unwrap(),
        "a's renewal runs to 3"
    );
    assert!(
        store.lead(duty, "b", at(5), at(4)).await.unwrap(),
        "lapsed: b takes over"
    );
    assert!(!store.lead(duty, "a", at(6), at(4)).await.unwrap());
    assert!(
        store.lead("other duty", "a", at(6), at(4)).await.unwrap(),
        "duties are separate"
    );
    store.resign(duty, "a").await.unwrap();
    assert!(
        !store.lead(duty, "c", at(6), at(4)).await.unwrap(),
        "only the holder resigns"
    );
    store.resign(duty, "b").await.unwrap();
    assert!(store.lead(duty, "c", at(6), at(4)).await.unwrap());
}

pub async fn announcements_reach_every_listener(store: Arc<impl Store>) {
    let Some(mut heard) = store.announcements().await.unwrap() else {
        // One process owns this database: there is nobody to tell.
        store.announce("nobody hears this").await.unwrap();
        return;
    };
    let mut also = store
        .announcements()
        .await
        .unwrap()
        .expect("a second listener");
    store.announce("jobs changed").await.unwrap();
    for listener in [&mut heard, &mut also] {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), listener.next())
            .await
            .expect("heard in time");
        assert_eq!(message.as_deref(), Some("jobs changed"));
    }
}
