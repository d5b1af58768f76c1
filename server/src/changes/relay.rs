//! Changes shared between instances on one database: each instance sends what changed on it,
//! gathered per 300 ms, and tells its own pages what the others send.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{COALESCE, Change, Changes, Topic};
use crate::store::Store;

/// Changes per announcement: owner ids are 36 characters, and a NOTIFY payload must stay
/// under 8,000 bytes. More changes go as several announcements, never as "everyone's".
const MAX_CHANGES: usize = 100;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Announcement {
    /// The instance that sends it, which ignores its own.
    from: String,
    /// Each change as (topic, the one owner, or `None`: anyone's).
    changes: Vec<(Topic, Option<String>)>,
}

impl Announcement {
    fn gather(from: &str, changes: impl IntoIterator<Item = Change>) -> Vec<Self> {
        let set: BTreeSet<(Topic, Option<String>)> =
            changes.into_iter().map(|c| (c.topic, c.owner)).collect();
        let set: Vec<_> = set.into_iter().collect();
        set.chunks(MAX_CHANGES)
            .map(|chunk| Announcement {
                from: from.to_string(),
                changes: chunk.to_vec(),
            })
            .collect()
    }
}

/// Starts sending this instance's changes and hearing the others', until the server stops.
/// Where the store has no other instances (SQLite), it does nothing.
pub async fn start(changes: &Changes, store: Arc<dyn Store>, instance: Arc<str>) {
    let heard = match store.announcements().await {
        Ok(Some(heard)) => heard,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot hear other instances: their changes reach open pages only on reload");
            return;
        }
    };
    let (sender, mut outbound) = mpsc::channel::<Change>(4096);
    if changes.relay.set(sender).is_err() {
        return;
    }
    let closing = changes.closing.clone();
    let from = instance.clone();
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                _ = closing.cancelled() => return,
                first = outbound.recv() => match first { Some(c) => c, None => return },
            };
            tokio::time::sleep(COALESCE).await;
            let mut burst = vec![first];
            while let Ok(more) = outbound.try_recv() {
                burst.push(more);
            }
            for announcement in Announcement::gather(&from, burst) {
                let message = serde_json::to_string(&announcement).unwrap_or_default();
                if let Err(error) = store.announce(&message).await {
                    tracing::debug!(%error, "announcing changes failed; other instances' pages miss them");
                }
            }
        }
    });
    let local = changes.clone();
    tokio::spawn(async move {
        let mut heard = heard;
        loop {
            let message = tokio::select! {
                _ = local.closing.cancelled() => return,
                message = heard.next() => match message { Some(m) => m, None => return },
            };
            match serde_json::from_str::<Announcement>(&message) {
                Ok(a) if *a.from != *instance => {
                    for (topic, owner) in a.changes {
                        local.tell_here(topic, owner);
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "an announcement could not be read"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_one_announcement_and_many_owners_stay_named() {
        let change = |owner: &str| Change {
            topic: Topic::Jobs,
            owner: Some(owner.into()),
        };
        let few = Announcement::gather("a", [change("x"), change("x"), change("y")]);
        assert_eq!(few.len(), 1);
        assert_eq!(
            few[0].changes,
            [
                (Topic::Jobs, Some("x".to_string())),
                (Topic::Jobs, Some("y".to_string()))
            ]
        );
        let text = serde_json::to_string(&few[0]).unwrap();
        assert_eq!(serde_json::from_str::<Announcement>(&text).unwrap(), few[0]);
        let many =
            Announcement::gather("a", (0..=MAX_CHANGES).map(|i| change(&format!("{i:036}"))));
        assert_eq!(many.len(), 2, "split, never widened to everyone");
        assert!(
            many.iter()
                .flat_map(|a| &a.changes)
                .all(|(_, o)| o.is_some())
        );
        let longest = many
            .iter()
            .map(|a| serde_json::to_string(a).unwrap().len())
            .max();
        assert!(
            longest.unwrap() < 8000,
            "{longest:?} bytes: too long for NOTIFY"
        );
    }
}
