//! Group commit of enqueues: one writer per instance takes whatever jobs arrived while it was
//! committing the last group, writes them in one transaction, and answers each request once
//! that transaction is committed (so an answered job survives `kill -9`). A transaction per
//! job cannot go past a few thousand jobs a second; a group shares one commit.
//!
//! If a group fails as a whole, each of its jobs is written again on its own, so one bad row
//! fails only its own request.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{InsertOutcome, KeyConflicts, NewJob, Store, StoreError, StoreResult};

/// Most jobs written in one transaction.
pub const MAX_GROUP: usize = 512;

struct Pending {
    job: NewJob,
    reply: oneshot::Sender<StoreResult<InsertOutcome>>,
}

/// The handle requests enqueue through.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts the writer for `store`; it stops when the last handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> GroupCommit {
        let (queue, incoming) = mpsc::channel(MAX_GROUP * 8);
        tokio::spawn(write(store, incoming));
        GroupCommit { queue }
    }

    /// Inserts a job with the next group and waits for that group's commit.
    pub async fn insert(&self, job: NewJob) -> StoreResult<InsertOutcome> {
        let stopped = || StoreError::Unavailable("the enqueue writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { job, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write(store: Arc<dyn Store>, mut incoming: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while incoming.recv_many(&mut group, MAX_GROUP).await > 0 {
        commit(store.as_ref(), std::mem::take(&mut group)).await;
    }
}

async fn commit(store: &dyn Store, group: Vec<Pending>) {
    let (mut jobs, replies): (Vec<NewJob>, Vec<_>) =
        group.into_iter().map(|p| (p.job, p.reply)).unzip();
    // A group that fails is written again job by job: it keeps a copy until it is committed.
    let grouped = jobs.len() > 1;
    let attempt = if grouped {
        jobs.clone()
    } else {
        std::mem::take(&mut jobs)
    };
    match store.insert_jobs(attempt, KeyConflicts::Answer).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) if grouped => {
            tracing::warn!(%error, jobs = jobs.len(), "a group of enqueues failed; writing each on its own");
            for (job, reply) in jobs.into_iter().zip(replies) {
                let outcome = store
                    .insert_jobs(vec![job], KeyConflicts::Answer)
                    .await
                    .and_then(|mut outcomes| {
                        outcomes
                            .pop()
                            .ok_or_else(|| StoreError::Corrupt("an insert answered nothing".into()))
                    });
                let _ = reply.send(outcome);
            }
        }
        Err(error) => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreError, Visibility};
    use app::api::{JobType, Role};

    async fn group_commit_answers_each_request_with_its_own_outcome(store: Arc<dyn Store>) {
        let now = chrono::Utc::now();
        let alice = store
            .ensure_user("u-alice", "alice", Role::Trader, now)
            .await
            .unwrap();
        let writer = GroupCommit::start(store.clone());
        let job = |i: usize, owner: &str, key: Option<String>| NewJob {
            id: format!("job-{i}"),
            owner_id: owner.to_string(),
            owner_name: "alice".into(),
            job_type: JobType::RiskReport,
            priority: 50,
            payload: serde_json::json!({ "i": i }).to_string(),
            run_after: None,
            idempotency_key: key,
            request_hash: format!("hash-{i}"),
            callback_url: None,
            cost_bound_nanos: 0,
            context_id: None,
            created_at: now,
        };
        // Sixty requests at once, so they share groups: one names an owner that does not
        // exist (its row cannot be written), two reuse one key.
        let requests: Vec<_> = (0..60)
            .map(|i| {
                let owner = if i == 17 { "nobody" } else { alice.id.as_str() };
                let key = (i == 30 || i == 31).then(|| "shared".to_string());
                let (writer, job) = (writer.clone(), job(i, owner, key));
                tokio::spawn(async move { writer.insert(job).await })
            })
            .collect();
        let mut created = 0;
        for (i, request) in requests.into_iter().enumerate() {
            match (i, request.await.unwrap()) {
                (17, Err(StoreError::Database(_))) => {}
                (17, other) => panic!("the bad row: {other:?}"),
                (_, Ok(InsertOutcome::Created(job))) => {
                    assert_eq!(job.id, format!("job-{i}"), "each answer is its own job");
                    created += 1;
                }
                (31 | 30, Ok(InsertOutcome::Existing(job))) => {
                    assert!(job.id == "job-30" || job.id == "job-31");
                }
                (i, other) => panic!("request {i}: {other:?}"),
            }
        }
        assert_eq!(created, 58, "every good job, one of the two sharing a key");
        let stats = store.stats(&Visibility::All).await.unwrap();
        assert_eq!(stats.total, 58);
        assert_eq!(
            store.totals(&Visibility::All).await.unwrap(),
            store.recount_totals().await.unwrap()
        );
    }

    #[tokio::test]
    async fn on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = crate::store::SqliteStore::connect(&url).await.unwrap();
        group_commit_answers_each_request_with_its_own_outcome(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        let db = crate::testing::TempPostgres::create().await;
        let store = crate::store::PostgresStore::connect(&db.url, 8)
            .await
            .unwrap();
        group_commit_answers_each_request_with_its_own_outcome(Arc::new(store)).await;
    }
}
