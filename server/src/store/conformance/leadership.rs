//! One leader for the background work among instances sharing the database.

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
