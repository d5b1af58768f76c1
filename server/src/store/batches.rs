//! What the store keeps of batches, and the flush's side of the `Store` (the poll's side is
//! `results`).
//!
//! Three records carry the money rules. A batch's *members* are the jobs it was ever asked to
//! run, written with its claim, so a provider batch can be proved ours by its `custom_id`s. A
//! *lease* (owner, expiry) on the batch row says who is submitting, reconciling or polling it;
//! nobody else touches it until the lease lapses. *Charges* hold every result Anthropic billed,
//! once per job and provider batch, duplicates included: the service's books.

use app::api::{JobType, ProviderName};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreResult;
use crate::events::Happened;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Claimed jobs are recorded; the provider has not (knowingly) accepted the batch yet.
    Submitting,
    InProgress,
    Canceling,
    Ended,
    /// The provider refused the batch; its jobs went back to pending.
    Failed,
    /// The provider no longer knows the batch, or no longer has its results.
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
    /// Who runs it: its create, polls and results go there.
    pub provider: ProviderName,
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
    /// The last error or note (a refusal, a failed poll, a reconciliation in wait).
    pub error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The last create call's window; `submit_ended_at` stays empty if it never returned.
    pub submit_started_at: Option<DateTime<Utc>>,
    pub submit_ended_at: Option<DateTime<Utc>>,
    /// The provider's `created_at` for this batch (the provider's clock).
    pub provider_created_at: Option<DateTime<Utc>>,
    /// For a duplicate: the local batch whose jobs it ran again.
    pub duplicate_of: Option<String>,
    /// When the create window was searched for other provider batches holding these jobs.
    pub swept_at: Option<DateTime<Utc>>,
    /// Results files read that ended short of the batch.
    pub short_reads: i64,
    /// Succeeded requests Anthropic billed whose results could not be read.
    pub unaccounted_results: i64,
    /// What the charges recorded for this provider batch add up to.
    pub billed_tokens: i64,
    pub billed_cost_nanos: i64,
}

/// Who holds a batch (their own token per operation), and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// Which pending jobs a flush may take: the one definition of eligibility, which each store
/// writes as one SQL condition (`push_eligible`) for its candidates and its counts.
#[derive(Clone, Debug, Default)]
pub struct FlushFilter {
    pub job_types: Option<Vec<JobType>>,
    pub min_priority: i64,
    /// Jobs whose `run_after` is later than this are not eligible.
    pub now: DateTime<Utc>,
    /// Owners whose jobs are left out (their budget has no room for them).
    pub exclude_owners: Vec<String>,
    /// Only this owner's jobs (to count what a budget holds back).
    pub owner: Option<String>,
}

impl FlushFilter {
    /// Every pending job whose time has come, whoever and whatever it is.
    pub fn due(now: DateTime<Utc>) -> Self {
        Self {
            now,
            ..Self::default()
        }
    }
}

/// Where a page of eligible jobs continues: after this job, in flush order.
#[derive(Clone, Debug, PartialEq)]
pub struct FlushCursor {
    pub priority: i64,
    pub created_at: DateTime<Utc>,
    pub id: String,
}

/// A job as a batch needs it: enough to render its request.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedJob {
    pub id: String,
    /// Whose budget the job spends.
    pub owner_id: String,
    pub job_type: JobType,
    pub priority: i64,
    /// The payload as stored: compact JSON text.
    pub payload: String,
    /// The most it may cost, as fixed at enqueue.
    pub cost_bound_nanos: i64,
    /// The shared context its request carries, if any.
    pub context_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl QueuedJob {
    pub fn cursor(&self) -> FlushCursor {
        FlushCursor {
            priority: self.priority,
            created_at: self.created_at,
            id: self.id.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewBatch {
    pub id: String,
    pub provider: ProviderName,
    pub estimated_tokens: i64,
    pub request_bytes: i64,
    pub created_at: DateTime<Utc>,
    /// Held by the flush from the claim until the create call's outcome is written.
    pub lease: Lease,
    /// The admin who asked for the flush, written to the audit log with the claim.
    pub audit: Option<super::AuditEntry>,
    /// The start of the budget month: capped owners' jobs are admitted against what was
    /// charged since.
    pub month_start: DateTime<Utc>,
}

/// A job to claim into a batch, with the model its request names and the most it may cost
/// (what its owner's budget counts until it is billed).
#[derive(Clone, Debug)]
pub struct Claim {
    pub job_id: String,
    pub model: String,
    pub provider: ProviderName,
    pub owner_id: String,
    pub bound_nanos: i64,
}

#[derive(Clone, Debug)]
pub struct Submission {
    pub provider_batch_id: String,
    /// The provider's `created_at` for it.
    pub provider_created_at: DateTime<Utc>,
    /// The create was answered, so its window and `provider_created_at` sample the offset
    /// between our clock and the provider's (an adoption's window does not).
    pub clock_sample: bool,
    pub submitted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub next_poll_at: DateTime<Utc>,
    /// The create window has already been searched (an adoption by reconciliation).
    pub swept: bool,
}

/// An answered create: our clock around the call, and the provider's clock inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub provider_created_at: DateTime<Utc>,
}

/// Another provider batch, proved to hold jobs of a local batch.
#[derive(Clone, Debug)]
pub struct NewDuplicate {
    pub id: String,
    pub provider_batch_id: String,
    pub of: String,
    pub job_count: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: BatchStatus,
    pub note: String,
}

#[async_trait]
pub trait BatchStore: Send + Sync + 'static {
    /// Up to `page` pending jobs a flush may take, in flush order (highest priority, then
    /// oldest), after `after` when continuing.
    async fn eligible_jobs(
        &self,
        filter: &FlushFilter,
        after: Option<&FlushCursor>,
        page: i64,
    ) -> StoreResult<Vec<QueuedJob>>;
    /// How many pending jobs the filter admits, and since when the longest-waiting one has been.
    async fn eligible_summary(
        &self,
        filter: &FlushFilter,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)>;
    /// For each capped owner with eligible jobs at `now`: the cost bound of their first one in
    /// flush order (what their budget must fit for a flush to take anything of theirs).
    async fn first_capped_bounds(&self, now: DateTime<Utc>) -> StoreResult<Vec<(String, i64)>>;
    /// In one transaction: the batch as `submitting` under the flush's lease, those of the
    /// jobs still pending and admitted by their owner's budget ([`super::Allowances`], read
    /// inside the transaction so that concurrent claims cannot pass a cap together) moved to
    /// `processing` in it with their bounds, and its members. Returns the ids claimed (none:
    /// nothing is written).
    async fn claim_jobs(&self, batch: NewBatch, claims: &[Claim]) -> StoreResult<Vec<String>>;

    /// Extends a lease its owner holds; `false` if it is no longer theirs.
    async fn renew_lease(&self, batch_id: &str, lease: &Lease) -> StoreResult<bool>;
    /// Takes a batch whose lease has lapsed (or that has none); `false` if someone holds it.
    async fn take_lease(
        &self,
        batch_id: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn release_lease(&self, batch_id: &str, owner: &str) -> StoreResult<()>;

    /// A new create call of a `submitting` batch starts (a resubmission): its window opens.
    async fn start_submit(
        &self,
        batch_id: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The provider accepted the batch: its id on the batch and its jobs, if the batch is
    /// still `submitting` under `owner`'s lease. `false` when it is not: the provider batch
    /// is then a duplicate.
    async fn record_submission(
        &self,
        batch_id: &str,
        owner: &str,
        submission: &Submission,
        event: &Happened,
    ) -> StoreResult<bool>;
    /// The provider refused the batch: its jobs go back to pending, the batch is `failed`.
    async fn release_batch(
        &self,
        batch_id: &str,
        owner: &str,
        error: &str,
        event: &Happened,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// The create's outcome is unknown: the batch stays `submitting`, its window closes, and
    /// the lease is kept until `settle_until` so reconciliation waits for the provider.
    async fn mark_uncertain(
        &self,
        batch_id: &str,
        owner: &str,
        error: &str,
        settle_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Every job the batch was ever asked to run.
    async fn batch_members(&self, batch_id: &str) -> StoreResult<Vec<String>>;
    /// The owners of those jobs, each once.
    async fn batch_owners(&self, batch_id: &str) -> StoreResult<Vec<String>>;
    /// Jobs still `processing` in a local batch, to submit it again.
    async fn batch_queued_jobs(&self, batch_id: &str) -> StoreResult<Vec<QueuedJob>>;
    /// `submitting` batches nobody holds: for reconciliation.
    async fn batches_to_reconcile(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>>;
    /// Accepted batches whose create window, closed before `ended_before`, was not searched yet.
    async fn batches_to_sweep(&self, ended_before: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>>;
    async fn mark_swept(&self, batch_id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// The latest answered creates at `provider` as clock samples: (call started, call ended,
    /// the provider's `created_at`), newest first. Each provider has its own clock.
    async fn clock_samples(
        &self,
        provider: app::api::ProviderName,
        limit: i64,
    ) -> StoreResult<Vec<ClockSample>>;
    /// Records a duplicate provider batch; `false` if that provider batch is already known.
    async fn record_duplicate(&self, duplicate: &NewDuplicate) -> StoreResult<bool>;
    /// Records a provider batch the stray search proved ours as a duplicate of `of`, unless
    /// `of` is `submitting` (its reconciliation may adopt that very batch); `false` when not
    /// recorded, or already known.
    async fn record_stray(&self, duplicate: &NewDuplicate) -> StoreResult<bool>;
    /// The local batches ever asked to run this job, newest first.
    async fn batches_holding_job(&self, job_id: &str) -> StoreResult<Vec<BatchRecord>>;
    /// Whether the stray search proved this provider batch someone else's.
    async fn is_foreign(&self, provider_batch_id: &str) -> StoreResult<bool>;
    async fn mark_foreign(
        &self,
        provider: app::api::ProviderName,
        provider_batch_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Forgets the batches proved someone else's before `before` (the search no longer lists
    /// them); how many.
    async fn forget_foreign(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Ended batches whose copy at the provider is not released yet, longest ended first.
    async fn pending_releases(&self, limit: i64) -> StoreResult<Vec<BatchRecord>>;
    /// The provider let go of this batch's copy, or refused to for good: then `note` says so on
    /// the batch, for admins to delete it by hand.
    async fn mark_released(&self, provider_batch_id: &str, note: Option<&str>) -> StoreResult<()>;
    /// Whether local batch `batch_id` exists and it and every copy of it have settled (their
    /// results collected, or refused, or lost): none may read its input again.
    async fn batch_settled(&self, batch_id: &str) -> StoreResult<bool>;
    /// A note on the batch for admins (why it waits, its last error).
    async fn note_batch(&self, batch_id: &str, note: &str) -> StoreResult<()>;

    async fn find_batch(&self, provider_batch_id: &str) -> StoreResult<Option<BatchRecord>>;
    /// The local batch with this id (ours), not the provider's.
    async fn local_batch(&self, batch_id: &str) -> StoreResult<Option<BatchRecord>>;
    /// Batches whose results are still to collect and whose next poll is due.
    async fn due_batches(&self, now: DateTime<Utc>) -> StoreResult<Vec<BatchRecord>>;
    /// Makes an uncollected batch due for a poll at `at` (the provider said it ended); false
    /// when no such batch is waiting.
    async fn poll_soon(&self, provider_batch_id: &str, at: DateTime<Utc>) -> StoreResult<bool>;
    /// How many batches have results still to collect, due or not.
    async fn count_open_batches(&self) -> StoreResult<i64>;
    async fn list_batches(&self, limit: i64) -> StoreResult<Vec<BatchRecord>>;
    /// The jobs now recorded under each of these provider batches, by status (unordered).
    async fn batch_outcomes(
        &self,
        provider_batch_ids: &[String],
    ) -> StoreResult<Vec<(String, app::api::JobStatus, i64)>>;
    /// False, writing nothing, when the batch's results were already collected (by another
    /// poll, after this writer's lease lapsed).
    async fn update_batch_progress(
        &self,
        batch_id: &str,
        status: BatchStatus,
        next_poll_at: Option<DateTime<Utc>>,
        poll_failures: i64,
        error: Option<&str>,
    ) -> StoreResult<bool>;
    /// How long recent batches took from submission to end, in seconds, newest first.
    async fn recent_batch_durations(&self, limit: i64) -> StoreResult<Vec<f64>>;
}
