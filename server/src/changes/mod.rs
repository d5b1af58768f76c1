//! What changed, told to open dashboards as it happens (server-sent events), so a page reads
//! again only when there is something new and an idle page costs the server nothing.
//! Instances sharing a PostgreSQL database relay their changes to each other (`relay`).
//!
//! A page carries the version of what it was rendered from (`Changes::version`); its stream
//! opened with that version (`since`) says first which of its topics changed in between, so an
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
            versions: Arc::new(Versions::new()),
        }
    }
}

/// How many changes this instance has told, per topic and, for jobs, per owner. A version
/// holds one count for each topic its caller hears of, so a stream tells first only the topics
/// that moved (an admin's Batches page does not read again because a job changed). A trader's
/// jobs count is of their own jobs only: one count for everybody would let a trader watch
/// others' activity. The instance's random id makes versions from another instance, or from
/// before a restart, never match.
struct Versions {
    instance: u64,
    jobs: AtomicU64,
    batches: AtomicU64,
    owners: Mutex<HashMap<String, u64>>,
}

impl Versions {
    fn new() -> Self {
        Self {
            instance: rand::random(),
            jobs: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            owners: Mutex::default(),
        }
    }

    fn count(&self, change: &Change) {
        let all = match change.topic {
            Topic::Jobs => &self.jobs,
            Topic::Batches => &self.batches,
        };
        all.fetch_add(1, Ordering::SeqCst);
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

    /// Each topic `caller` hears of, with how many of its changes they have been told.
    fn told(&self, caller: &Caller) -> Vec<(Topic, u64)> {
        everything_seen_by(caller)
            .into_iter()
            .map(|topic| {
                let told = match topic {
                    Topic::Jobs if !caller.is_admin() => {
                        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
                        owners.get(&caller.user_id).copied().unwrap_or(0)
                    }
                    Topic::Jobs => self.jobs.load(Ordering::SeqCst),
                    Topic::Batches => self.batches.load(Ordering::SeqCst),
                };
                (topic, told)
            })
            .collect()
    }

    /// `<instance>.<count>[.<count>]`, one count per topic in `everything_seen_by`'s order.
    fn of(&self, caller: &Caller) -> String {
        let counts: Vec<String> = self
            .told(caller)
            .iter()
            .map(|(_, n)| n.to_string())
            .collect();
        format!("{:016x}.{}", self.instance, counts.join("."))
    }

    /// The topics that moved for `caller` since `since`: all they hear of when it is missing,
    /// another instance's, or not the shape of theirs (forged, or from before a role change).
    fn moved_since(&self, caller: &Caller, since: Option<&str>) -> BTreeSet<Topic> {
        let now = self.told(caller);
        let then: Option<Vec<u64>> = since
            .and_then(|v| v.strip_prefix(&format!("{:016x}.", self.instance)))
            .and_then(|counts| counts.split('.').map(|c| c.parse().ok()).collect());
        match then {
            Some(then) if then.len() == now.len() => now
                .into_iter()
                .zip(then)
                .filter(|((_, now), then)| now != then)
                .map(|((topic, _), _)| topic)
                .collect(),
            _ => now.into_iter().map(|(topic, _)| topic).collect(),
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
    /// first tells the topics that moved since `since`, the version a page was rendered from,
    /// and nothing when none did: a page current as it opens reads nothing again.
    pub fn watch(&self, caller: Caller, since: Option<&str>) -> Watcher {
        let receiver = self.sender.subscribe();
        let moved = self.versions.moved_since(&caller, since);
        Watcher {
            receiver,
            closing: self.closing.clone(),
            caller,
            missed: (!moved.is_empty()).then_some(Told { topics: moved }),
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

    #[tokio::test]
    async fn an_admins_stream_tells_first_only_the_topics_that_moved() {
        let changes = Changes::default();
        let root = caller("root", Role::Admin);
        let first_told = |since: String| {
            let mut watcher = changes.watch(root.clone(), Some(&since));
            async move { watcher.next().await.unwrap().topics }
        };
        let before_a_job = changes.version(&root);
        changes.jobs_of("bob");
        let before_a_batch = changes.version(&root);
        changes.batches();
        assert_eq!(
            first_told(before_a_batch).await,
            BTreeSet::from([Topic::Batches]),
            "a jobs page rendered after the job has no jobs to read again"
        );
        assert_eq!(
            first_told(before_a_job).await,
            BTreeSet::from([Topic::Jobs, Topic::Batches])
        );
        let after_both = changes.version(&root);
        changes.jobs_of_each(["bob".to_string(), "alice".to_string()]);
        assert_eq!(
            first_told(after_both).await,
            BTreeSet::from([Topic::Jobs]),
            "a Batches page rendered after the last batch changed has no batches to read again"
        );
        let a_traders = changes.version(&caller("alice", Role::Trader));
        assert_eq!(
            first_told(a_traders).await,
            BTreeSet::from([Topic::Jobs, Topic::Batches]),
            "a version not of an admin's shape (a role changed since the render) is a stale one"
        );
        let current = changes.version(&root);
        let mut quiet = changes.watch(root.clone(), Some(&current));
        let heard = tokio::time::timeout(Duration::from_millis(500), quiet.next()).await;
        assert!(heard.is_err(), "nothing moved: {heard:?}");
    }
}
