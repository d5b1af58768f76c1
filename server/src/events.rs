//! What can happen to a job, as its timeline shows it: one enum, built by the use cases and
//! stored as a kind and a detail. The stores never spell an event themselves.

use app::api::JobStatus;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Happened {
    Created,
    Submitted {
        batch: String,
    },
    Completed {
        batch: String,
    },
    /// An attempt ended without a result worth keeping; the job is pending again.
    Retried {
        reason: String,
    },
    Failed {
        reason: String,
    },
    Cancelled {
        was: JobStatus,
        batch: Option<String>,
    },
    /// Back to pending without counting an attempt (a refused create, a lost batch).
    Returned {
        reason: String,
    },
    /// Cancelled in flight: the result was thrown away, its tokens still count.
    ResultDiscarded {
        batch: String,
    },
    /// A duplicate batch ran the job again; what it was billed is counted.
    BilledAgain {
        batch: String,
    },
    /// An admin sent a failed job back for one more attempt.
    Requeued {
        by: String,
    },
    /// The job's webhook was answered with a 2xx.
    WebhookDelivered {
        status: u16,
        attempt: i64,
    },
    /// An attempt at the webhook failed; `retry_in_secs` is `None` when it was the last.
    WebhookFailed {
        error: String,
        attempt: i64,
        retry_in_secs: Option<i64>,
    },
}

impl Happened {
    pub fn kind(&self) -> &'static str {
        match self {
            Happened::Created => "created",
            Happened::Submitted { .. } => "submitted",
            Happened::Completed { .. } => "completed",
            Happened::Retried { .. } => "retried",
            Happened::Failed { .. } => "failed",
            Happened::Cancelled { .. } => "cancelled",
            Happened::Returned { .. } => "returned",
            Happened::ResultDiscarded { .. } => "result_discarded",
            Happened::BilledAgain { .. } => "billed_again",
            Happened::Requeued { .. } => "requeued",
            Happened::WebhookDelivered { .. } => "webhook_delivered",
            Happened::WebhookFailed { .. } => "webhook_failed",
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Happened::Created => None,
            Happened::Submitted { batch } => Some(format!("in batch {batch}")),
            Happened::Completed { batch } => Some(format!("result received from batch {batch}")),
            Happened::Retried { reason }
            | Happened::Failed { reason }
            | Happened::Returned { reason } => Some(reason.clone()),
            Happened::Cancelled {
                was: JobStatus::Processing,
                batch: Some(batch),
            } => Some(format!("while processing in batch {batch}")),
            Happened::Cancelled { was, .. } => Some(format!("while {was}")),
            Happened::ResultDiscarded { batch } => Some(format!(
                "cancelled in flight: the result from batch {batch} was discarded, its tokens counted"
            )),
            Happened::BilledAgain { batch } => Some(format!(
                "duplicate batch {batch} ran this job again; what it was billed is counted"
            )),
            Happened::Requeued { by } => Some(format!(
                "retried by {by}: pending again for one more attempt"
            )),
            Happened::WebhookDelivered { status, attempt } => {
                Some(format!("webhook answered {status} (attempt {attempt})"))
            }
            Happened::WebhookFailed {
                error,
                attempt,
                retry_in_secs: Some(secs),
            } => Some(format!(
                "webhook attempt {attempt} failed: {error}; next try in {secs} s"
            )),
            Happened::WebhookFailed { error, attempt, .. } => Some(format!(
                "webhook attempt {attempt} failed: {error}; no more tries"
            )),
        }
    }
}
