//! The rows the store reads, once for both databases, and what each becomes.

use sqlx::FromRow;

use super::super::engine::{JsonText, Query, Time};
use super::super::*;

/// A bill's columns (`Bill::COLUMNS`) of the table `alias` names, or unqualified.
pub(super) fn bill_columns(alias: &str) -> String {
    Bill::COLUMNS
        .iter()
        .map(|c| {
            if alias.is_empty() {
                c.to_string()
            } else {
                format!("{alias}.{c}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sum of each of a bill's columns over a group, named as the column. Charges keep their
/// cache writes by time to live: `CHARGE_CACHE_WRITES` adds them up.
pub(super) fn bill_sums(alias: &str) -> String {
    Bill::COLUMNS
        .iter()
        .map(|c| {
            let column = if alias == "c" && *c == "cache_write_tokens" {
                CHARGE_CACHE_WRITES.to_string()
            } else {
                format!("{alias}.{c}")
            };
            format!("CAST(SUM({column}) AS BIGINT) AS {c}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A charge's cache writes, for 5 minutes and for an hour together (alias `c`).
pub(super) const CHARGE_CACHE_WRITES: &str = "c.cache_write_5m_tokens + c.cache_write_1h_tokens";

/// A bill as read from its columns.
#[derive(FromRow)]
pub(super) struct BillRow {
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    cost_nanos: i64,
    uncached_cost_nanos: i64,
    standard_cost_nanos: i64,
}

impl From<BillRow> for Bill {
    fn from(r: BillRow) -> Self {
        Bill {
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_read_tokens: r.cache_read_tokens,
            cache_write_tokens: r.cache_write_tokens,
            cost_nanos: r.cost_nanos,
            uncached_cost_nanos: r.uncached_cost_nanos,
            standard_cost_nanos: r.standard_cost_nanos,
        }
    }
}

impl From<&BillRow> for Bill {
    fn from(r: &BillRow) -> Self {
        Bill {
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_read_tokens: r.cache_read_tokens,
            cache_write_tokens: r.cache_write_tokens,
            cost_nanos: r.cost_nanos,
            uncached_cost_nanos: r.uncached_cost_nanos,
            standard_cost_nanos: r.standard_cost_nanos,
        }
    }
}

/// A job as the totals see it, read back from a write with `RETURNING`.
pub(super) const COUNTED: &str = "id, owner_id, job_type, input_tokens, output_tokens, \
    cache_read_tokens, cache_write_tokens, cost_nanos, uncached_cost_nanos, standard_cost_nanos, \
    created_at, completed_at";

/// `COUNTED` as columns of `jobs`, for a `RETURNING` after a join.
pub(super) fn counted_of_jobs() -> String {
    COUNTED
        .split(", ")
        .map(|c| format!("jobs.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(FromRow)]
pub(super) struct CountedRow {
    pub id: String,
    owner_id: String,
    job_type: String,
    #[sqlx(flatten)]
    bill: BillRow,
    created_at: Time,
    completed_at: Option<Time>,
}

impl CountedRow {
    pub fn counted(&self) -> StoreResult<Counted> {
        Ok(Counted {
            owner_id: self.owner_id.clone(),
            job_type: parse_job_type(&self.job_type)?,
            bill: (&self.bill).into(),
            created_at: self.created_at.0,
            completed_at: self.completed_at.map(|t| t.0),
        })
    }
}

/// A job after a duplicate's charge was added: where it counts now.
#[derive(FromRow)]
pub(super) struct DuplicatedRow {
    pub status: String,
    #[sqlx(flatten)]
    pub job: CountedRow,
}

#[derive(FromRow)]
pub(super) struct TotalsDbRow {
    owner_id: String,
    status: String,
    job_type: String,
    jobs: i64,
    #[sqlx(flatten)]
    bill: BillRow,
    completion_micros: i64,
}

impl TryFrom<TotalsDbRow> for TotalsRow {
    type Error = StoreError;
    fn try_from(r: TotalsDbRow) -> StoreResult<Self> {
        Ok(TotalsRow {
            status: parse_status(&r.status)?,
            job_type: parse_job_type(&r.job_type)?,
            owner_id: r.owner_id,
            jobs: r.jobs,
            bill: r.bill.into(),
            completion_micros: r.completion_micros,
        })
    }
}

/// A column of the batch that holds a job (`$job` is the jobs' alias), as a scalar subquery: a
/// job's provider batch id and the time it was sent are its batch's, written once a batch, so a
/// flush writes each job once.
macro_rules! batch_column_of {
    ($column:literal, $job:literal) => {
        concat!(
            "(SELECT lb.",
            $column,
            " FROM batches lb WHERE lb.id = ",
            $job,
            ".local_batch_id)"
        )
    };
}

/// A job's (`j`) provider batch id.
pub(super) const JOB_PROVIDER_BATCH: &str = batch_column_of!("provider_batch_id", "j");

/// The local batch of a provider's batch id, as a subquery: jobs are found by it.
pub(in crate::store) fn local_batch_named(provider_batch_id: &str) -> Query<'_> {
    let mut query = Query::new(
        "(SELECT lb.id FROM batches lb WHERE lb.provider_batch_id = ",
        [],
    );
    query.bind(provider_batch_id).push(")");
    query
}

/// Columns of a job for single-job reads.
pub(super) const JOB_COLUMNS: &str = concat!(
    "j.id, j.owner_id, u.name AS owner_name, j.job_type, j.status, \
    j.priority, j.payload, j.run_after, j.idempotency_key, j.request_hash, ",
    batch_column_of!("provider_batch_id", "j"),
    " AS batch_id, j.attempts, \
    j.model, j.provider, j.context_id, j.input_tokens, j.output_tokens, j.cache_read_tokens, \
    j.cache_write_tokens, j.cost_nanos, j.uncached_cost_nanos, j.standard_cost_nanos, j.duplicate_tokens, \
    j.duplicate_cost_nanos, j.price_version, j.result, j.error_message, j.cancel_requested, \
    j.created_at, j.updated_at, ",
    batch_column_of!("submitted_at", "j"),
    " AS batch_submitted_at, j.completed_at, j.subject"
);
/// The same without the large payload and result, for lists.
pub(super) const JOB_SUMMARY_COLUMNS: &str = concat!(
    "j.id, j.owner_id, u.name AS owner_name, j.job_type, \
    j.status, j.priority, NULL AS payload, j.run_after, j.idempotency_key, j.request_hash, ",
    batch_column_of!("provider_batch_id", "j"),
    " AS batch_id, \
    j.attempts, j.model, j.provider, j.context_id, j.input_tokens, j.output_tokens, j.cache_read_tokens, \
    j.cache_write_tokens, j.cost_nanos, j.uncached_cost_nanos, j.standard_cost_nanos, \
    j.duplicate_tokens, j.duplicate_cost_nanos, j.price_version, NULL AS result, j.error_message, \
    j.cancel_requested, j.created_at, j.updated_at, ",
    batch_column_of!("submitted_at", "j"),
    " AS batch_submitted_at, j.completed_at, j.subject"
);
pub(super) const JOB_FROM: &str = " FROM jobs j JOIN users u ON u.id = j.owner_id";

#[derive(FromRow)]
pub(super) struct JobRow {
    id: String,
    owner_id: String,
    owner_name: String,
    job_type: String,
    status: String,
    priority: i64,
    payload: Option<JsonText>,
    run_after: Option<Time>,
    idempotency_key: Option<String>,
    request_hash: String,
    batch_id: Option<String>,
    attempts: i64,
    model: Option<String>,
    provider: Option<String>,
    context_id: Option<String>,
    #[sqlx(flatten)]
    bill: BillRow,
    duplicate_tokens: i64,
    duplicate_cost_nanos: i64,
    price_version: Option<String>,
    result: Option<JsonText>,
    error_message: Option<String>,
    cancel_requested: bool,
    created_at: Time,
    updated_at: Time,
    batch_submitted_at: Option<Time>,
    completed_at: Option<Time>,
    subject: Option<String>,
}

/// A job of a list's page, and how many jobs match the search in all when the statement
/// counted them on the way (`Plan::Sorted` in `sql::jobs`).
#[derive(FromRow)]
pub(super) struct PageRow {
    #[sqlx(flatten)]
    pub job: JobRow,
    #[sqlx(default)]
    pub matched: Option<i64>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;
    fn try_from(row: JobRow) -> StoreResult<Self> {
        Ok(JobRecord {
            job_type: parse_job_type(&row.job_type)?,
            status: parse_status(&row.status)?,
            payload: row.payload.map(|p| p.parse("payload")).transpose()?,
            result: row.result.map(|r| r.parse("result")).transpose()?,
            run_after: row.run_after.map(|t| t.0),
            created_at: row.created_at.0,
            // The batch's submission gave the job its provider batch id: a change of the job.
            updated_at: row
                .batch_submitted_at
                .map_or(row.updated_at.0, |sent| sent.0.max(row.updated_at.0)),
            completed_at: row.completed_at.map(|t| t.0),
            id: row.id,
            owner_id: row.owner_id,
            owner_name: row.owner_name,
            priority: row.priority,
            idempotency_key: row.idempotency_key,
            request_hash: row.request_hash,
            batch_id: row.batch_id,
            attempts: row.attempts,
            model: row.model,
            provider: row.provider.as_deref().map(parse_provider).transpose()?,
            context_id: row.context_id,
            bill: row.bill.into(),
            duplicate_tokens: row.duplicate_tokens,
            duplicate_cost_nanos: row.duplicate_cost_nanos,
            price_version: row.price_version,
            error_message: row.error_message,
            cancel_requested: row.cancel_requested,
            subject: row.subject,
        })
    }
}

#[derive(FromRow)]
pub(super) struct UserRow {
    id: String,
    name: String,
    role: String,
    created_at: Time,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;
    fn try_from(row: UserRow) -> StoreResult<Self> {
        Ok(UserRecord {
            id: row.id,
            name: row.name,
            role: parse_role(&row.role)?,
            created_at: row.created_at.0,
        })
    }
}

#[derive(FromRow)]
pub(super) struct CredentialRow {
    secret_hash: String,
    expires_at: Option<Time>,
    revoked_at: Option<Time>,
    #[sqlx(flatten)]
    user: UserRow,
}

impl TryFrom<CredentialRow> for CredentialRecord {
    type Error = StoreError;
    fn try_from(row: CredentialRow) -> StoreResult<Self> {
        Ok(CredentialRecord {
            secret_hash: row.secret_hash,
            expires_at: row.expires_at.map(|t| t.0),
            revoked_at: row.revoked_at.map(|t| t.0),
            user: row.user.try_into()?,
        })
    }
}

#[derive(FromRow)]
pub(super) struct TokenRow {
    id: String,
    user_id: String,
    created_at: Time,
    revoked_at: Option<Time>,
}

impl From<TokenRow> for TokenRecord {
    fn from(row: TokenRow) -> Self {
        TokenRecord {
            id: row.id,
            user_id: row.user_id,
            created_at: row.created_at.0,
            revoked_at: row.revoked_at.map(|t| t.0),
        }
    }
}

#[derive(FromRow)]
pub(super) struct EventRow {
    kind: String,
    detail: Option<String>,
    at: Time,
}

impl From<EventRow> for JobEvent {
    fn from(row: EventRow) -> Self {
        JobEvent {
            kind: row.kind,
            detail: row.detail,
            at: row.at.0,
        }
    }
}

#[derive(FromRow)]
pub(super) struct DailyCostRow {
    day: i64,
    job_type: String,
    owner_name: String,
    jobs: i64,
    #[sqlx(flatten)]
    bill: BillRow,
}

impl TryFrom<DailyCostRow> for DailyCostRecord {
    type Error = StoreError;
    fn try_from(row: DailyCostRow) -> StoreResult<Self> {
        Ok(DailyCostRecord {
            day: row.day,
            job_type: parse_job_type(&row.job_type)?,
            owner_name: row.owner_name,
            jobs: row.jobs,
            bill: row.bill.into(),
        })
    }
}

#[derive(FromRow)]
pub(super) struct ProviderCostRow {
    provider: String,
    jobs: i64,
    #[sqlx(flatten)]
    bill: BillRow,
}

impl TryFrom<ProviderCostRow> for ProviderCostRecord {
    type Error = StoreError;
    fn try_from(row: ProviderCostRow) -> StoreResult<Self> {
        Ok(ProviderCostRecord {
            provider: parse_provider(&row.provider)?,
            jobs: row.jobs,
            bill: row.bill.into(),
        })
    }
}

/// A job as a flush renders it.
pub(super) const QUEUED_COLUMNS: &str =
    "id, owner_id, job_type, priority, payload, cost_bound_nanos, context_id, created_at";

#[derive(FromRow)]
pub(super) struct QueuedRow {
    id: String,
    owner_id: String,
    job_type: String,
    priority: i64,
    payload: JsonText,
    cost_bound_nanos: i64,
    context_id: Option<String>,
    created_at: Time,
}

impl TryFrom<QueuedRow> for QueuedJob {
    type Error = StoreError;
    fn try_from(row: QueuedRow) -> StoreResult<Self> {
        Ok(QueuedJob {
            job_type: parse_job_type(&row.job_type)?,
            created_at: row.created_at.0,
            // The compact text both databases give back, so a job renders the same on both.
            payload: row.payload.0,
            id: row.id,
            owner_id: row.owner_id,
            priority: row.priority,
            cost_bound_nanos: row.cost_bound_nanos,
            context_id: row.context_id,
        })
    }
}

/// A batch's columns, with what its charges add up to.
pub(super) const BATCH_COLUMNS: &str = "b.id, b.provider, b.provider_batch_id, b.status, b.job_count, \
    b.estimated_tokens, b.request_bytes, b.created_at, b.submitted_at, b.ended_at, b.expires_at, \
    b.next_poll_at, b.poll_failures, b.request_counts, b.results_collected, b.error, b.lease_owner, \
    b.lease_expires_at, b.submit_started_at, b.submit_ended_at, b.provider_created_at, \
    b.duplicate_of, b.swept_at, b.short_reads, b.unaccounted_results, \
    CAST(COALESCE((SELECT SUM(c.input_tokens + c.output_tokens) FROM charges c \
      WHERE c.provider_batch_id = b.provider_batch_id), 0) AS BIGINT) AS billed_tokens, \
    CAST(COALESCE((SELECT SUM(c.cost_nanos) FROM charges c \
      WHERE c.provider_batch_id = b.provider_batch_id), 0) AS BIGINT) AS billed_cost_nanos";

#[derive(FromRow)]
pub(super) struct BatchRow {
    id: String,
    provider: String,
    provider_batch_id: Option<String>,
    status: String,
    job_count: i64,
    estimated_tokens: i64,
    request_bytes: i64,
    created_at: Time,
    submitted_at: Option<Time>,
    ended_at: Option<Time>,
    expires_at: Option<Time>,
    next_poll_at: Option<Time>,
    poll_failures: i64,
    request_counts: Option<JsonText>,
    results_collected: bool,
    error: Option<String>,
    lease_owner: Option<String>,
    lease_expires_at: Option<Time>,
    submit_started_at: Option<Time>,
    submit_ended_at: Option<Time>,
    provider_created_at: Option<Time>,
    duplicate_of: Option<String>,
    swept_at: Option<Time>,
    short_reads: i64,
    unaccounted_results: i64,
    billed_tokens: i64,
    billed_cost_nanos: i64,
}

impl TryFrom<BatchRow> for BatchRecord {
    type Error = StoreError;
    fn try_from(row: BatchRow) -> StoreResult<Self> {
        let at = |t: Option<Time>| t.map(|t| t.0);
        Ok(BatchRecord {
            provider: parse_provider(&row.provider)?,
            status: parse_batch_status(&row.status)?,
            request_counts: row
                .request_counts
                .map(|c| c.parse("request_counts"))
                .transpose()?,
            created_at: row.created_at.0,
            submitted_at: at(row.submitted_at),
            ended_at: at(row.ended_at),
            expires_at: at(row.expires_at),
            next_poll_at: at(row.next_poll_at),
            lease_expires_at: at(row.lease_expires_at),
            submit_started_at: at(row.submit_started_at),
            submit_ended_at: at(row.submit_ended_at),
            provider_created_at: at(row.provider_created_at),
            swept_at: at(row.swept_at),
            id: row.id,
            provider_batch_id: row.provider_batch_id,
            job_count: row.job_count,
            estimated_tokens: row.estimated_tokens,
            request_bytes: row.request_bytes,
            poll_failures: row.poll_failures,
            results_collected: row.results_collected,
            error: row.error,
            lease_owner: row.lease_owner,
            duplicate_of: row.duplicate_of,
            short_reads: row.short_reads,
            unaccounted_results: row.unaccounted_results,
            billed_tokens: row.billed_tokens,
            billed_cost_nanos: row.billed_cost_nanos,
        })
    }
}

#[derive(FromRow)]
pub(super) struct ClockRow {
    submit_started_at: Time,
    submit_ended_at: Time,
    provider_created_at: Time,
}

impl From<ClockRow> for ClockSample {
    fn from(row: ClockRow) -> Self {
        ClockSample {
            started: row.submit_started_at.0,
            ended: row.submit_ended_at.0,
            provider_created_at: row.provider_created_at.0,
        }
    }
}

#[derive(FromRow)]
pub(super) struct AuditRow {
    id: i64,
    at: Time,
    actor_id: String,
    actor_name: String,
    action: String,
    target: Option<String>,
    detail: Option<String>,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> StoreResult<Self> {
        Ok(AuditRecord {
            id: row.id,
            entry: AuditEntry {
                at: row.at.0,
                actor_id: row.actor_id,
                actor_name: row.actor_name,
                action: parse_audit_action(&row.action)?,
                target: row.target,
                detail: row.detail,
            },
        })
    }
}

/// The first value of a one-column result (a count, an id), if any.
pub(super) fn first<T>(rows: Vec<(T,)>) -> Option<T> {
    rows.into_iter().next().map(|(value,)| value)
}

/// Every value of a one-column result.
pub(super) fn column<T>(rows: Vec<(T,)>) -> Vec<T> {
    rows.into_iter().map(|(value,)| value).collect()
}

/// What the batch loop needs to decide a job's outcome, as read.
#[derive(FromRow)]
pub(super) struct JobStateRow {
    id: String,
    job_type: String,
    status: String,
    attempts: i64,
    cancel_requested: bool,
    charged: bool,
    model: Option<String>,
}

impl TryFrom<JobStateRow> for JobState {
    type Error = StoreError;
    fn try_from(row: JobStateRow) -> StoreResult<Self> {
        Ok(JobState {
            job_type: parse_job_type(&row.job_type)?,
            status: parse_status(&row.status)?,
            id: row.id,
            attempts: row.attempts,
            cancel_requested: row.cancel_requested,
            charged: row.charged,
            model: row.model,
        })
    }
}

/// A budget's row: the cap and the three amounts that count against it.
#[derive(FromRow)]
pub(super) struct UsageRow {
    id: String,
    name: String,
    monthly_cap_nanos: Option<i64>,
    spent: i64,
    in_flight: i64,
    pending: i64,
}

impl From<UsageRow> for BudgetUsage {
    fn from(row: UsageRow) -> Self {
        BudgetUsage {
            user_id: row.id,
            user_name: row.name,
            cap_nanos: row.monthly_cap_nanos,
            spent_nanos: row.spent,
            in_flight_bound_nanos: row.in_flight,
            pending_bound_nanos: row.pending,
        }
    }
}

/// A webhook that is due.
#[derive(FromRow)]
pub(super) struct DueWebhookRow {
    job_id: String,
    owner_id: String,
    url: String,
    attempts: i64,
}

impl From<DueWebhookRow> for DueWebhook {
    fn from(row: DueWebhookRow) -> Self {
        DueWebhook {
            job_id: row.job_id,
            owner_id: row.owner_id,
            url: row.url,
            attempts: row.attempts,
        }
    }
}

#[derive(FromRow)]
pub(super) struct ContextRow {
    id: String,
    owner_id: String,
    owner_name: String,
    name: String,
    sha256: String,
    bytes: i64,
    tokens_estimate: i64,
    shared: bool,
    created_at: Time,
    text: Option<String>,
    jobs_waiting: i64,
    jobs_total: i64,
}

impl TryFrom<ContextRow> for ContextRecord {
    type Error = StoreError;
    fn try_from(row: ContextRow) -> StoreResult<Self> {
        Ok(ContextRecord {
            id: row.id,
            owner_id: row.owner_id,
            owner_name: row.owner_name,
            name: row.name,
            sha256: row.sha256,
            bytes: row.bytes,
            tokens_estimate: row.tokens_estimate,
            shared: row.shared,
            created_at: row.created_at.0,
            jobs_waiting: row.jobs_waiting,
            jobs_total: row.jobs_total,
            text: row.text,
        })
    }
}
