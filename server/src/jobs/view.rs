use app::api::{Job, JobEventView, nanos_to_usd};

use crate::store::{JobEvent, JobRecord};

/// The REST and dashboard shape of a stored job.
pub fn to_api_job(r: JobRecord, with_payload: bool) -> Job {
    Job {
        custom_id: r.id.clone(),
        id: r.id,
        job_type: r.job_type,
        status: r.status,
        priority: r.priority,
        batch_id: r.batch_id,
        created_at: r.created_at,
        updated_at: r.updated_at,
        run_after: r.run_after,
        completed_at: r.completed_at,
        tokens_used: r.bill.tokens(),
        error_message: r.error_message,
        owner: r.owner_name,
        attempts: r.attempts,
        model: r.model,
        provider: r.provider,
        input_tokens: r.bill.input_tokens,
        output_tokens: r.bill.output_tokens,
        cost_usd: nanos_to_usd(r.bill.cost_nanos),
        standard_cost_usd: nanos_to_usd(r.bill.standard_cost_nanos),
        savings_usd: nanos_to_usd(r.bill.savings_nanos()),
        saved_by_batching_usd: nanos_to_usd(r.bill.saved_by_batching_nanos()),
        saved_by_caching_usd: nanos_to_usd(r.bill.saved_by_caching_nanos()),
        cache_read_tokens: r.bill.cache_read_tokens,
        cache_write_tokens: r.bill.cache_write_tokens,
        context_id: r.context_id,
        duplicate_tokens: r.duplicate_tokens,
        duplicate_cost_usd: nanos_to_usd(r.duplicate_cost_nanos),
        price_version: r.price_version,
        idempotency_key: r.idempotency_key,
        cancel_requested: r.cancel_requested,
        payload: if with_payload { r.payload } else { None },
        subject: r.subject,
    }
}

pub fn to_event_view(e: JobEvent) -> JobEventView {
    JobEventView {
        kind: e.kind,
        detail: e.detail,
        at: e.at,
    }
}
