//! What changed, told to open dashboards as it happens (server-sent events), so a page reads
//! again only when there is something new and an idle page costs the server nothing.
//! Instances sharing a PostgreSQL database relay their changes to each other (`relay`).

pub mod relay;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use app::api::Caller;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Changes coming in a burst (a bulk enqueue, an ingest) are told as one event.
const COALESCE: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Jobs,
    Batches,
}

#[derive(Clone, Debug)]
struct Change {
    topic: Topic,
    /// The one owner whose jobs changed; `None`: nobody's in particular (batches), which
    /// only admins see.
    owner: Option<String>,
}

impl Change {
    /// A page is told only what its user may see: a trader, their own jobs; an admin, all.
    fn concerns(&self, caller: &Caller) -> bool {
        caller.is_admin() || self.owner.as_deref() == Some(caller.user_id.as_str())
    }
}

#[derive(Clone)]
pub struct Changes {
    sender: broadcast::Sender<Change>,
    /// Cancelled when the server stops, so open streams end and shutdown does not wait.
    closing: CancellationToken,
    /// Where changes go to be told to the other instances, once `relay::start` set it up.
    relay: Arc<OnceLock<mpsc::Sender<Change>>>,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
            closing: CancellationToken::new(),
            relay: Arc::default(),
        }
    }
}

/// What one event tells a page: the topics that changed since the last one.
#[derive(Debug, PartialEq, Serialize)]
pub struct Told {
    pub topics: BTreeSet<Topic>,
}

impl Changes {
    /// Jobs of this owner changed.
    pub fn jobs_of(&self, owner_id: &str) {
        self.send(Topic::Jobs, Some(owner_id.to_string()));
    }

    /// Jobs of each of these owners changed.
    pub fn jobs_of_each(&self, owners: impl IntoIterator<Item = String>) {
        let owners: BTreeSet<String> = owners.into_iter().collect();
        for owner in owners {
            self.send(Topic::Jobs, Some(owner));
        }
    }

    /// Batches changed (their status or progress): admins' pages.
    pub fn batches(&self) {
        self.send(Topic::Batches, None);
    }

    fn send(&self, topic: Topic, owner: Option<String>) {
        if let Some(relay) = self.relay.get() {
            // Full: the relay is behind and gathers what it has; pages catch up on the next.
            let _ = relay.try_send(Change {
                topic,
                owner: owner.clone(),
            });
        }
        self.tell_here(topic, owner);
    }

    /// Tells this instance's pages only (a change another instance announced).
    fn tell_here(&self, topic: Topic, owner: Option<String>) {
        // Nobody listening is fine.
        let _ = self.sender.send(Change { topic, owner });
    }

    pub fn close(&self) {
        self.closing.cancel();
    }

    /// What concerns `caller`, one coalesced event at a time, until the server stops.
    pub fn watch(&self, caller: Caller) -> Watcher {
        Watcher {
            receiver: self.sender.subscribe(),
            closing: self.closing.clone(),
            caller,
        }
    }
}

pub struct Watcher {
    receiver: broadcast::Receiver<Change>,
    closing: CancellationToken,
    caller: Caller,
}

impl Watcher {
    /// Waits for a change that concerns the caller, gathers the burst it came in, and tells
    /// it; `None` once the server stops.
    pub async fn next(&mut self) -> Option<Told> {
        let mut topics = BTreeSet::new();
        while topics.is_empty() {
            tokio::select! {
                _ = self.closing.cancelled() => return None,
                received = self.receiver.recv() => self.take(received, &mut topics)?,
            }
        }
        let until = tokio::time::Instant::now() + COALESCE;
        while let Ok(received) = tokio::time::timeout_at(until, self.receiver.recv()).await {
            self.take(received, &mut topics)?;
        }
        Some(Told { topics })
    }

    fn take(
        &self,
        received: Result<Change, RecvError>,
        topics: &mut BTreeSet<Topic>,
    ) -> Option<()> {
        match received {
            Ok(change) if change.concerns(&self.caller) => {
                topics.insert(change.topic);
            }
            Ok(_) => {}
            // Missed some: say everything the caller sees may have changed.
            Err(RecvError::Lagged(_)) => {
                topics.insert(Topic::Jobs);
                if self.caller.is_admin() {
                    topics.insert(Topic::Batches);
                }
            }
            Err(RecvError::Closed) => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::Role;

    fn caller(id: &str, role: Role) -> Caller {
        Caller {
            user_id: id.into(),
            name: id.into(),
            role,
        }
    }

    #[tokio::test]
    async fn a_trader_hears_only_their_own_changes_in_one_event_per_burst() {
        let changes = Changes::default();
        let mut alice = changes.watch(caller("alice", Role::Trader));
        let mut admin = changes.watch(caller("root", Role::Admin));
        changes.jobs_of("bob");
        changes.jobs_of("alice");
        changes.jobs_of("alice");
        let told = alice.next().await.unwrap();
        assert_eq!(told.topics, BTreeSet::from([Topic::Jobs]));
        assert_eq!(
            admin.next().await.unwrap().topics,
            BTreeSet::from([Topic::Jobs])
        );
        changes.jobs_of("bob");
        changes.batches();
        assert_eq!(
            admin.next().await.unwrap().topics,
            BTreeSet::from([Topic::Jobs, Topic::Batches])
        );
        let quiet = tokio::time::timeout(Duration::from_millis(500), alice.next()).await;
        assert!(
            quiet.is_err(),
            "bob's jobs and the batches are not alice's to hear of: {quiet:?}"
        );
        changes.jobs_of_each(["bob".to_string(), "alice".to_string()]);
        assert_eq!(
            alice.next().await.unwrap().topics,
            BTreeSet::from([Topic::Jobs]),
            "a change naming her among others is"
        );
        changes.close();
        assert_eq!(
            alice.next().await,
            None,
            "streams end when the server stops"
        );
    }
}
