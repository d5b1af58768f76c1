//! Changes shared between instances on one database: each instance sends what changed on it,
//! gathered per 300 ms, and tells its own pages what the others send.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{COALESCE, Change, Changes, Topic};
use crate::store::Store;

/// Owners named one by one up to this many; past it, a change concerns everyone.
const MAX_OWNERS: usize = 100;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Announcement {
    /// The instance that sends it, which ignores its own.
    from: String,
    /// Each change as (topic, the one owner, or `None`: anyone's).
    changes: Vec<(Topic, Option<String>)>,
}

impl Announcement {
    fn gather(from: &str, changes: impl IntoIterator<Item = Change>) -> Self {
        let mut set: BTreeSet<(Topic, Option<String>)> =
            changes.into_iter().map(|c| (c.topic, c.owner)).collect();
        if set.len() > MAX_OWNERS {
            set = set.into_iter().map(|(topic, _)| (topic, None)).collect();
        }
        Announcement {
            from: from.to_string(),
            changes: set.into_iter().collect(),
        }
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
            let message =
                serde_json::to_string(&Announcement::gather(&from, burst)).unwrap_or_default();
            if let Err(error) = store.announce(&message).await {
                tracing::debug!(%error, "announcing changes failed; other instances' pages miss them");
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
    fn a_burst_is_one_announcement_and_many_owners_become_everyone() {
        let change = |owner: &str| Change {
            topic: Topic::Jobs,
            owner: Some(owner.into()),
        };
        let few = Announcement::gather("a", [change("x"), change("x"), change("y")]);
        assert_eq!(
            few.changes,
            [
                (Topic::Jobs, Some("x".to_string())),
                (Topic::Jobs, Some("y".to_string()))
            ]
        );
        let text = serde_json::to_string(&few).unwrap();
        assert_eq!(serde_json::from_str::<Announcement>(&text).unwrap(), few);
        let many = Announcement::gather("a", (0..=MAX_OWNERS).map(|i| change(&i.to_string())));
        assert_eq!(many.changes, [(Topic::Jobs, None)]);
    }
}
