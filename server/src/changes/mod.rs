//! What changed, told to open dashboards as it happens (server-sent events), so a page reads
//! again only when there is something new and an idle page costs the server nothing.
//! Instances sharing a PostgreSQL database relay their changes to each other (`relay`).
//!
//! A page carries the version of what it was rendered from (`Changes::version`); its stream
//! opened with that version (`since`) says first whether anything changed in between, so an
//! idle page is not read twice on every visit.

pub mod relay;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
    versions: Arc<Versions>,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
            closing: CancellationToken::new(),
            relay: Arc::default(),
            versions: Arc::new(Versions {
                instance: rand::random(),
                all: AtomicU64::new(0),
                owners: Mutex::default(),
            }),
        }
    }
}

/// How many changes this instance has told, counted per owner and in all. A trader's version
/// counts only their own jobs' changes: one count for everybody would let a trader watch
/// others' activity. The instance's random id makes versions from another instance, or from
/// before a restart, never match.
struct Versions {
    instance: u64,
    all: AtomicU64,
    owners: Mutex<HashMap<String, u64>>,
}

impl Versions {
    fn count(&self, change: &Change) {
        self.all.fetch_add(1, Ordering::SeqCst);
        if let Some(owner) = &change.owner {
            let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            match owners.get_mut(owner) {
                Some(n) => *n += 1,
                None => {
                    owners.insert(owner.clone(), 1);
                }
            }
        }
    }

    fn of(&self, caller: &Caller) -> String {
        let told = if caller.is_admin() {
            self.all.load(Ordering::SeqCst)
        } else {
            let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            owners.get(&caller.user_id).copied().unwrap_or(0)
        };
        format!("{:016x}.{told}", self.instance)
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

    /// Tells this instance's pages only (a change another instance announced). Counted
    /// before it is sent: a stream that subscribed after the count hears the change itself.
    fn tell_here(&self, topic: Topic, owner: Option<String>) {
        let change = Change { topic, owner };
        self.versions.count(&change);
        // Nobody listening is fine.
        let _ = self.sender.send(change);
    }

    /// What `caller`'s pages have been told so far on this instance. Read it before reading
    /// what a page shows: a change in between then makes the page read again, never lost.
    pub fn version(&self, caller: &Caller) -> String {
        self.versions.of(caller)
    }

    pub fn close(&self) {
        self.closing.cancel();
    }

    /// What concerns `caller`, one coalesced event at a time, until the server stops. The
    /// first tells everything the caller sees unless `since` is their version now: a page
    /// rendered from that version has missed nothing (nor has one reconnecting).
    pub fn watch(&self, caller: Caller, since: Option<&str>) -> Watcher {
        let receiver = self.sender.subscribe();
        let missed = (since != Some(self.version(&caller).as_str())).then(|| Told {
            topics: everything_seen_by(&caller),
        });
        Watcher {
            receiver,
            closing: self.closing.clone(),
            caller,
            missed,
        }
    }
}

/// The topics a caller hears of: jobs (their own, or everyone's for an admin), and batches
/// for an admin.
fn everything_seen_by(caller: &Caller) -> BTreeSet<Topic> {
    if caller.is_admin() {
        BTreeSet::from([Topic::Jobs, Topic::Batches])
    } else {
        BTreeSet::from([Topic::Jobs])
    }
}

pub struct Watcher {
    receiver: broadcast::Receiver<Change>,
    closing: CancellationToken,
    caller: Caller,
    /// Told first: what may have changed before the stream opened.
    missed: Option<Told>,
}

impl Watcher {
    /// Waits for a change that concerns the caller, gathers the burst it came in, and tells
    /// it; `None` once the server stops.
    pub async fn next(&mut self) -> Option<Told> {
        if let Some(missed) = self.missed.take() {
            return Some(missed);
        }
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
            Err(RecvError::Lagged(_)) => topics.extend(everything_seen_by(&self.caller)),
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
        let watch_from_now = |who: Caller| {
            let now = changes.version(&who);
            changes.watch(who, Some(&now))
        };
        let mut alice = watch_from_now(caller("alice", Role::Trader));
        let mut admin = watch_from_now(caller("root", Role::Admin));
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

    #[tokio::test]
    async fn a_stream_opened_from_a_pages_version_tells_first_only_what_it_missed() {
        let changes = Changes::default();
        let (alice, root) = (caller("alice", Role::Trader), caller("root", Role::Admin));
        let (hers, admins) = (changes.version(&alice), changes.version(&root));
        changes.jobs_of("bob");
        changes.batches();
        assert_eq!(
            changes.version(&alice),
            hers,
            "others' changes do not move a trader's version: it would tell her of their activity"
        );
        assert_ne!(changes.version(&root), admins);

        let mut current = changes.watch(alice.clone(), Some(&hers));
        let quiet = tokio::time::timeout(Duration::from_millis(500), current.next()).await;
        assert!(quiet.is_err(), "her page missed nothing: {quiet:?}");
        let mut behind = changes.watch(root.clone(), Some(&admins));
        assert_eq!(
            behind.next().await.unwrap().topics,
            BTreeSet::from([Topic::Jobs, Topic::Batches]),
            "the admin's page was rendered before the changes"
        );
        let mut unversioned = changes.watch(alice.clone(), None);
        assert_eq!(
            unversioned.next().await.unwrap().topics,
            BTreeSet::from([Topic::Jobs])
        );
        let other_instance = Changes::default();
        assert_ne!(
            other_instance.version(&alice),
            hers,
            "a version from another instance or before a restart never matches"
        );
        let mut elsewhere = other_instance.watch(alice.clone(), Some(&hers));
        assert_eq!(
            elsewhere.next().await.unwrap().topics,
            BTreeSet::from([Topic::Jobs])
        );

        changes.jobs_of("alice");
        assert_ne!(changes.version(&alice), hers);
        assert_eq!(
            current.next().await.unwrap().topics,
            BTreeSet::from([Topic::Jobs]),
            "after the first, changes are told as they come"
        );
    }
}
