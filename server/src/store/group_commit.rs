//! Group commit of enqueues: one writer per instance takes whatever jobs arrived while it was
//! committing the last group, writes them in one transaction, and answers each request once
//! that transaction is committed (so an answered job survives `kill -9`). A transaction per
//! job cannot go past a few thousand jobs a second; a group shares one commit.
//!
//! If a group fails as a whole, each of its jobs is written again on its own, so one bad row
//! fails only its own request.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{InsertOutcome, NewJob, Store, StoreError, StoreResult};

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
    let (jobs, replies): (Vec<NewJob>, Vec<_>) =
        group.into_iter().map(|p| (p.job, p.reply)).unzip();
    match store.insert_jobs(&jobs).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) if jobs.len() > 1 => {
            tracing::warn!(%error, jobs = jobs.len(), "a group of enqueues failed; writing each on its own");
            for (job, reply) in jobs.into_iter().zip(replies) {
                let outcome = store
                    .insert_jobs(std::slice::from_ref(&job))
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
