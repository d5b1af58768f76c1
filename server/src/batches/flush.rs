//! Flush: eligible jobs → one Message Batch, crash-safely.

use app::api::{FlushPreview, FlushRequest, FlushResponse, nanos_to_usd};
use chrono::Utc;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::pricing::Usage;
use crate::provider::{BatchRequest, MAX_BATCH_BYTES, MessageBatch, ProviderError};
use crate::store::{Claim, FlushFilter, NewBatch, Submission};
use crate::templates;

/// `{"requests":[` … `]}` around the requests, and a comma between each.
const ENVELOPE_BYTES: usize = 16;

/// What a flush with given options would send: the jobs in flush order, rendered, up to the
/// size limit. Flush and its preview share it.
struct Plan {
    requests: Vec<(BatchRequest, i64)>,
    claims: Vec<Claim>,
    tokens: i64,
    bytes: usize,
    /// Upper bound of the cost at batch prices (every request using its whole `max_tokens`).
    cost_nanos: i64,
    left_for_size: usize,
}

async fn plan(
    ctx: &Ctx,
    request: &FlushRequest,
    now: chrono::DateTime<Utc>,
) -> Result<Option<Plan>> {
    let filter = FlushFilter {
        job_types: request.job_types.clone(),
        min_priority: request.min_priority,
        limit: request.max_jobs,
        now,
    };
    let candidates = ctx.store().eligible_jobs(&filter).await?;
    if candidates.is_empty() {
        return Ok(None);
    }
    // Render in flush order and stop at the size limit: the rest stays pending.
    let mut plan = Plan {
        requests: Vec::new(),
        claims: Vec::new(),
        tokens: 0,
        bytes: ENVELOPE_BYTES,
        cost_nanos: 0,
        left_for_size: 0,
    };
    for job in &candidates {
        let model = ctx.prices.model_for(job.job_type).to_string();
        let rendered = templates::render(&job.id, job.job_type, &job.payload, &model)?;
        if plan.bytes + rendered.bytes + 1 > MAX_BATCH_BYTES {
            plan.left_for_size = candidates.len() - plan.requests.len();
            break;
        }
        plan.bytes += rendered.bytes + 1;
        plan.tokens += rendered.estimated_tokens;
        let usage = Usage {
            input_tokens: rendered.prompt_tokens,
            output_tokens: rendered.max_tokens,
            ..Usage::default()
        };
        plan.cost_nanos += ctx.prices.cost(&model, &usage).map_or(0, |c| c.paid_nanos);
        plan.claims.push(Claim {
            job_id: job.id.clone(),
            model,
        });
        plan.requests
            .push((rendered.request, rendered.estimated_tokens));
    }
    Ok(Some(plan))
}

/// What `flush` would send now with these options, without sending anything.
pub async fn preview(ctx: &Ctx, request: FlushRequest) -> Result<FlushPreview> {
    let now = Utc::now();
    let Some(plan) = plan(ctx, &request, now).await? else {
        return Ok(FlushPreview {
            jobs_count: 0,
            estimated_tokens: 0,
            estimated_cost_usd: 0.0,
            message: why_nothing(ctx, now).await?,
        });
    };
    let jobs = plan.requests.len();
    let mut message = format!("{jobs} jobs would be sent, about {} tokens.", plan.tokens);
    if plan.left_for_size > 0 {
        message.push_str(&format!(
            " {} more would wait: the batch would reach the 256 MB limit.",
            plan.left_for_size
        ));
    }
    Ok(FlushPreview {
        jobs_count: jobs as i64,
        estimated_tokens: plan.tokens,
        estimated_cost_usd: nanos_to_usd(plan.cost_nanos),
        message,
    })
}

pub async fn flush(ctx: &Ctx, request: FlushRequest) -> Result<FlushResponse> {
    let now = Utc::now();
    let Some(Plan {
        requests,
        claims,
        tokens,
        bytes,
        left_for_size,
        ..
    }) = plan(ctx, &request, now).await?
    else {
        return Ok(nothing_sent(why_nothing(ctx, now).await?));
    };

    let batch_id = uuid::Uuid::now_v7().to_string();
    let new_batch = NewBatch {
        id: batch_id.clone(),
        estimated_tokens: tokens,
        request_bytes: bytes as i64,
        created_at: now,
    };
    let claimed = ctx.store().claim_jobs(new_batch, &claims).await?;
    if claimed.is_empty() {
        return Ok(nothing_sent(
            "The eligible jobs were taken by another flush or cancelled meanwhile.".into(),
        ));
    }
    // Jobs cancelled between the read and the claim are not sent.
    let claimed: std::collections::HashSet<String> = claimed.into_iter().collect();
    let (requests, estimates): (Vec<BatchRequest>, Vec<i64>) = requests
        .into_iter()
        .filter(|(r, _)| claimed.contains(&r.custom_id))
        .unzip();
    let estimated_tokens = estimates.iter().sum();
    let jobs_count = requests.len() as i64;

    let batch = submit(ctx, &batch_id, requests).await?;
    let mut message = format!(
        "Submitted {jobs_count} jobs to Anthropic as batch {}.",
        batch.id
    );
    if left_for_size > 0 {
        message.push_str(&format!(
            " Stopped at Anthropic's 256 MB batch limit: {left_for_size} more eligible jobs stay pending for the next flush."
        ));
    }
    Ok(FlushResponse {
        success: true,
        batch_id: Some(batch.id),
        jobs_count,
        estimated_tokens,
        message,
    })
}

fn nothing_sent(message: String) -> FlushResponse {
    FlushResponse {
        success: true,
        batch_id: None,
        jobs_count: 0,
        estimated_tokens: 0,
        message,
    }
}

async fn why_nothing(ctx: &Ctx, now: chrono::DateTime<Utc>) -> Result<String> {
    let (eligible, _) = ctx.store().eligible_summary(now).await?;
    let (pending, _) = ctx
        .store()
        .eligible_summary(now + chrono::Duration::days(365 * 1000))
        .await?;
    Ok(if pending == 0 {
        "Nothing to flush: no jobs are pending.".to_string()
    } else if eligible == 0 {
        format!(
            "Nothing to flush: the {pending} pending jobs are all waiting for their run_after time."
        )
    } else {
        format!(
            "Nothing to flush: none of the {eligible} eligible jobs match the filters (job_types, min_priority)."
        )
    })
}

/// Sends a local batch's requests and records the provider's id. A refusal puts the jobs back;
/// an unknown outcome leaves the batch `submitting` for the rescuer to reconcile.
pub(super) async fn submit(
    ctx: &Ctx,
    batch_id: &str,
    requests: Vec<BatchRequest>,
) -> Result<MessageBatch> {
    let job_count = requests.len() as i64;
    crash_here_if(ctx, "before-submit");
    match ctx.provider.create_batch(requests).await {
        Ok(batch) => {
            crash_here_if(ctx, "after-submit");
            let now = Utc::now();
            let submission = Submission {
                provider_batch_id: batch.id.clone(),
                job_count,
                submitted_at: now,
                expires_at: batch.expires_at,
                next_poll_at: now + super::poll::first_poll_delay(ctx),
            };
            ctx.store().record_submission(batch_id, submission).await?;
            tracing::info!(batch = %batch.id, jobs = job_count, "batch submitted");
            Ok(batch)
        }
        Err(e) if surely_not_created(&e) => {
            let released = ctx
                .store()
                .release_batch(batch_id, &e.to_string(), Utc::now())
                .await?;
            tracing::warn!(error = %e, released, "Anthropic did not accept the batch; its jobs are pending again");
            Err(Error::Provider(e))
        }
        Err(e) => {
            tracing::error!(error = %e, batch = batch_id, "the batch may or may not have reached Anthropic; it will be reconciled");
            Err(Error::SubmissionUncertain(e.to_string()))
        }
    }
}

/// An error answer, or a connection never made, means no batch was created.
fn surely_not_created(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Api { .. } | ProviderError::InvalidRequest(_) | ProviderError::Connect(_)
    )
}

/// Test failpoint: `AI_BATCH_FAILPOINT=<name>` ends the process here, as a crash would.
fn crash_here_if(ctx: &Ctx, name: &str) {
    if ctx.config.failpoint.as_deref() == Some(name) {
        eprintln!("failpoint {name}: exiting");
        std::process::exit(86);
    }
}
