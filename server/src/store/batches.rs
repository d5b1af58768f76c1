//! What the store keeps of batches, and the batch loop's side of the `Store`.

use app::api::{JobStatus, JobType};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Claimed jobs are recorded; the provider has not (knowingly) accepted the batch yet.
    Submitting,
    InProgress,
    Canceling,
    Ended,
    /// The provider refused the batch; its jobs went back to pending.
    Failed,
    /// The provider no longer knows the batch; its unfinished jobs went back to pending.
    Lost,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitting => "submitting",
            Self::InProgress => "in_progress",
            Self::Canceling => "canceling",
            Self::Ended => "ended",
            Self::Failed => "failed",
            Self::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Submitting,
            Self::InProgress,
            Self::Canceling,
            Self::Ended,
            Self::Failed,
            Self::Lost,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BatchRecord {
    pub id: String,
    pub provider_batch_id: Option<String>,
    pub status: BatchStatus,
    pub job_count: i64,
    pub estimated_tokens: i64,
    pub request_bytes: i64,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub next_poll_at: Option<DateTime<Utc>>,
    pub poll_failures: i64,
    pub request_counts: Option<Value>,
    pub results_collected: bool,
    pub error: Option<String>,
}

/// Which pending jobs a flush may take.
#[derive(Clone, Debug)]
pub struct FlushFilter {
    pub job_types: Option<Vec<JobType>>,
    pub min_priority: i64,
    pub limit: i64,
    /// Jobs whose `run_after` is later than this are not eligible.
    pub now: DateTime<Utc>,
}

/// A job as a batch needs it: enough to render its request.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedJob {
    pub id: String,
    pub job_type: JobType,
    pub priority: i64,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewBatch {
    pub id: String,
    pub estimated_tokens: i64,
    pub request_bytes: i64,
    pub created_at: DateTime<Utc>,
}

/// A job to claim into a batch, with the model its request names.
#[derive(Clone, Debug)]
pub struct Claim {
    pub job_id: String,
    pub model: String,
}

#[derive(Clone, Debug)]
pub struct Submission {
    pub provider_batch_id: String,
    pub job_count: i64,
    pub submitted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub next_poll_at: DateTime<Utc>,
}

/// What the batch loop needs to decide a job's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct JobState {
    pub id: String,
    pub job_type: JobType,
    pub status: JobStatus,
    pub attempts: i64,
    pub cancel_requested: bool,
    pub usage_recorded: bool,
    pub model: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Spend {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanos: i64,
    pub standard_cost_nanos: i64,
    pub price_version: String,
}

/// A decided change to one job of a batch. The store applies it only if the job is still
/// `processing` in this batch (or cancelled in flight, for `RecordSpend`) with the attempts
/// it was decided on, so a late or stale result changes nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    Complete {
        result: Value,
        spend: Spend,
    },
    Fail {
        error: String,
        attempts: i64,
    },
    /// Back to pending, out of the batch.
    Requeue {
        reason: String,
        attempts: i64,
    },
    /// A job cancelled in flight: its result is discarded, its tokens still count.
    RecordSpend {
        spend: Spend,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobUpdate {
    pub job_id: String,
    pub expected_attempts: i64,
    pub transition: Transition,
}

#[async_trait]
pub trait BatchStore: Send + Sync + 'static {
    /// Pending jobs a flush may take, highest priority first, then oldest.
    async fn eligible_jobs(&self, filter: &FlushFilter) -> StoreResult<Vec<QueuedJob>>;
    /// How many pending jobs are eligible now, and since when the longest-waiting one has been.
    async fn eligible_summary(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)>;
    /// In one transaction: the batch as `submitting`, and those of the jobs that are still
    /// pending moved to `processing` in it. Returns the ids actually claimed.
    async fn claim_jobs(&self, batch: NewBatch, claims: &[Claim]) -> StoreResult<Vec<String>>;
    /// The provider accepted the batch: record its id on the batch and its jobs.
    async fn record_submission(&self, batch_id: &str, submission: Submission) -> StoreResult<()>;
    /// The provider refused the batch: its jobs go back to pending.
    async fn release_batch(
        &self,
        batch_id: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// Jobs still `processing` in a local batch, to submit it again.
    async fn batch_queued_jobs(&self, batch_id: &str) -> StoreResult<Vec<QueuedJob>>;
    async fn submitting_batches(
        &self,
        created_before: DateTime<Utc>,
    ) -> StoreResult<Vec<BatchRecord>>;
    async fn find_batch(&self, provider_batch_id: &str) -> StoreResult<Option<BatchRecord>>;
    /// Batches whose results are still to collect and whose next poll is due.
    async fn due_batches(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>>;
    async fn list_batches(&self, limit: i64) -> StoreResult<Vec<BatchRecord>>;
    async fn update_batch_progress(
        &self,
        batch_id: &str,
        status: BatchStatus,
        next_poll_at: Option<DateTime<Utc>>,
        poll_failures: i64,
    ) -> StoreResult<()>;
    async fn job_states(
        &self,
        provider_batch_id: &str,
        job_ids: &[String],
    ) -> StoreResult<Vec<JobState>>;
    /// Applies updates in one transaction; returns the ids of the jobs that changed.
    async fn apply_updates(
        &self,
        provider_batch_id: &str,
        updates: &[JobUpdate],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>>;
    /// All results are in: the batch has ended; jobs left `processing` in it go back to pending.
    async fn finish_batch(
        &self,
        batch_id: &str,
        request_counts: Value,
        ended_at: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// The provider no longer knows the batch: its unfinished jobs go back to pending.
    async fn lose_batch(&self, batch_id: &str, now: DateTime<Utc>) -> StoreResult<i64>;
    /// Jobs of a batch not yet terminal.
    async fn batch_remaining(&self, provider_batch_id: &str) -> StoreResult<i64>;
    /// How long recent batches took from submission to end, in seconds, newest first.
    async fn recent_batch_durations(&self, limit: i64) -> StoreResult<Vec<f64>>;
}
