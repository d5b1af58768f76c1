//! The poll's side of the `Store`: results applied to jobs in the state they were decided
//! on, charges recorded once, and what a poll learns of a batch.

use app::api::{JobStatus, JobType};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{BatchStatus, StoreResult};
use crate::events::Happened;

/// What the batch loop needs to decide a job's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct JobState {
    pub id: String,
    pub job_type: JobType,
    pub status: JobStatus,
    pub attempts: i64,
    pub cancel_requested: bool,
    /// A charge is already recorded for this job and provider batch.
    pub charged: bool,
    pub model: Option<String>,
}

/// What one result was billed: what it adds to its job's bill, the part of its cache writes
/// that was written for an hour (kept on the charge), and the prices it was billed at.
#[derive(Clone, Debug, PartialEq)]
pub struct Spend {
    pub bill: super::Bill,
    pub cache_write_1h_tokens: i64,
    pub price_version: String,
}

/// A decided change to one job of a batch. The store applies it only if the job is still
/// `processing` in this batch (or cancelled in flight, for `RecordSpend`) with the attempts
/// it was decided on, so a late or stale result changes nothing. A spend becomes a charge,
/// recorded at most once per job and provider batch; a job cancelled in flight after its
/// result was decided still gets the spend, its result discarded (the provider billed it).
#[derive(Clone, Debug)]
pub enum Transition {
    Complete {
        /// The answer, as JSON text (written on the deciding stage; the writer only binds it).
        result: Box<RawValue>,
        spend: Spend,
    },
    /// Failed for good; `spend` when Anthropic billed the attempt (an unreadable success).
    Fail {
        error: String,
        attempts: i64,
        spend: Option<Spend>,
    },
    /// Back to pending, out of the batch.
    Requeue { reason: String, attempts: i64 },
    /// A job cancelled in flight: its result is discarded, its tokens still count.
    RecordSpend { spend: Spend },
}

impl Transition {
    /// What the provider billed for the result this transition came from.
    pub fn spend(&self) -> Option<&Spend> {
        match self {
            Transition::Complete { spend, .. } | Transition::RecordSpend { spend } => Some(spend),
            Transition::Fail { spend, .. } => spend.as_ref(),
            Transition::Requeue { .. } => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct JobUpdate {
    pub job_id: String,
    pub expected_attempts: i64,
    pub transition: Transition,
    /// What the job's timeline says of it, written with it.
    pub event: Happened,
}

/// What `apply_updates` changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Updated {
    /// Jobs changed as decided.
    pub changed: Vec<String>,
    /// Jobs cancelled in flight between the decision and the update: the spend their update
    /// carried is recorded, the result discarded.
    pub discarded: Vec<String>,
}

/// A result of a duplicate batch: billed, so counted, whatever became of the job.
#[derive(Clone, Debug, PartialEq)]
pub struct DuplicateCharge {
    pub job_id: String,
    pub spend: Spend,
}

#[async_trait]
pub trait ResultStore: Send + Sync + 'static {
    /// How many chunks of one batch's results may be applied at once.
    fn result_writers(&self) -> usize;
    async fn job_states(
        &self,
        provider_batch_id: &str,
        job_ids: &[String],
    ) -> StoreResult<Vec<JobState>>;
    /// Applies updates in one transaction; returns the jobs that changed.
    async fn apply_updates(
        &self,
        provider_batch_id: &str,
        updates: &[JobUpdate],
        now: DateTime<Utc>,
    ) -> StoreResult<Updated>;
    /// Records what a duplicate batch was billed, once per job; returns the jobs charged.
    async fn record_duplicate_charges(
        &self,
        provider_batch_id: &str,
        charges: &[DuplicateCharge],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>>;
    /// A results file ended short of its batch: counts it and plans the next read. How many
    /// short reads so far; `None` (nothing written) once the batch is collected.
    async fn record_short_read(
        &self,
        batch_id: &str,
        next_poll_at: DateTime<Utc>,
        note: &str,
    ) -> StoreResult<Option<i64>>;
    /// The results are collected (`ended`, or `lost` when the file could not be had): the
    /// settled counts, the succeeded results billed that could not be read, and a note. An
    /// ended batch's copy at the provider is then due for release (`pending_releases`). A
    /// batch already collected is left as it was (a writer whose lease lapsed comes late):
    /// `false`, nothing written.
    async fn finish_batch(
        &self,
        batch_id: &str,
        status: BatchStatus,
        request_counts: &Value,
        ended_at: DateTime<Utc>,
        unaccounted_results: i64,
        note: Option<&str>,
    ) -> StoreResult<bool>;
    /// The provider no longer knows the batch: its unfinished jobs go back to pending. A
    /// collected batch is not lost (its copy was let go of): nothing changes, 0 returned.
    async fn lose_batch(
        &self,
        batch_id: &str,
        note: &str,
        event: &Happened,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// Jobs of a batch still `processing`.
    async fn batch_remaining(&self, provider_batch_id: &str) -> StoreResult<i64>;
    /// Succeeded results recorded as charges of a provider batch (read ones, kept or not).
    async fn charged_results(&self, provider_batch_id: &str) -> StoreResult<i64>;
}
