//! Flush: eligible jobs → one Message Batch, crash-safely and within memory. Candidates are
//! read a page at a time and rendered straight into the request body, which is the only copy
//! of their payloads; adding stops at Anthropic's 256 MB.

use std::collections::BTreeMap;

use app::api::{AuditAction, Caller, FlushPreview, FlushRequest, FlushResponse, nanos_to_usd};
use chrono::{DateTime, Utc};

use super::lease::{Held, new_lease};
use super::submit::submit;
use crate::access::require_admin;
use crate::context::Ctx;
use crate::error::Result;
use crate::provider::BatchBodyBuilder;
use crate::store::{Claim, FlushCursor, FlushFilter, NewBatch};
use crate::templates;

/// Candidates read per query: enough to be quick, few enough to hold little.
const PAGE: i64 = 500;

/// What a flush with given options would send: the jobs in flush order, rendered, up to the
/// size limit. Flush and its preview share it.
struct Plan {
    body: BatchBodyBuilder,
    /// Each claim with its token estimate.
    claims: Vec<(Claim, i64)>,
    /// Upper bound of the cost at batch prices (every request using its whole `max_tokens`).
    cost_nanos: i64,
    /// Eligible jobs (within `max_jobs`) that did not fit the size limit.
    left_for_size: usize,
    /// Jobs left pending because their owner's budget has no room for them, by owner name.
    over_budget: BTreeMap<String, usize>,
}

impl Plan {
    fn tokens(&self) -> i64 {
        self.claims.iter().map(|(_, t)| t).sum()
    }

    /// " 3 jobs of alice wait: …", or nothing.
    fn over_budget_note(&self) -> String {
        self.over_budget
            .iter()
            .map(|(owner, jobs)| {
                format!(" {jobs} jobs of {owner} stay pending: over their monthly budget.")
            })
            .collect()
    }
}

async fn plan(
    ctx: &Ctx,
    request: &FlushRequest,
    now: DateTime<Utc>,
    body: BatchBodyBuilder,
) -> Result<Plan> {
    let filter = FlushFilter {
        job_types: request.job_types.clone(),
        min_priority: request.min_priority,
        now,
    };
    let mut plan = Plan {
        body,
        claims: Vec::new(),
        cost_nanos: 0,
        left_for_size: 0,
        over_budget: BTreeMap::new(),
    };
    let mut allowances = crate::budgets::flush_allowances(ctx, now).await?;
    let mut cursor: Option<FlushCursor> = None;
    let mut seen = 0i64;
    while seen < request.max_jobs {
        let page = PAGE.min(request.max_jobs - seen);
        let jobs = ctx
            .store()
            .eligible_jobs(&filter, cursor.as_ref(), page)
            .await?;
        for job in &jobs {
            if plan.left_for_size > 0 {
                plan.left_for_size += 1;
                continue;
            }
            let model = ctx.prices.model_for(job.job_type).to_string();
            let rendered = templates::render(job.job_type, &job.payload, &model);
            let bound = ctx.prices.bound_nanos(&model, &rendered);
            if let Some((owner, left)) = allowances.get_mut(&job.owner_id) {
                if bound > *left {
                    *plan.over_budget.entry(owner.clone()).or_default() += 1;
                    continue;
                }
                *left -= bound;
            }
            if !plan.body.fits(BatchBodyBuilder::entry_bytes(
                &job.id,
                rendered.params.len(),
            )) {
                plan.left_for_size = 1;
                continue;
            }
            plan.body.push(&job.id, &rendered.params)?;
            plan.cost_nanos += bound;
            plan.claims.push((
                Claim {
                    job_id: job.id.clone(),
                    model,
                },
                rendered.estimated_tokens,
            ));
        }
        seen += jobs.len() as i64;
        match jobs.last() {
            Some(last) if jobs.len() as i64 == page => cursor = Some(last.cursor()),
            _ => break,
        }
    }
    Ok(plan)
}

/// What `flush` would send now with these options, without sending anything (admins).
pub async fn preview(ctx: &Ctx, caller: &Caller, request: FlushRequest) -> Result<FlushPreview> {
    require_admin(caller)?;
    let now = Utc::now();
    let plan = plan(ctx, &request, now, BatchBodyBuilder::measuring()).await?;
    if plan.claims.is_empty() {
        return Ok(FlushPreview {
            jobs_count: 0,
            estimated_tokens: 0,
            estimated_cost_usd: 0.0,
            message: why_nothing(ctx, now, &plan).await?,
        });
    }
    let jobs = plan.claims.len();
    let mut message = format!("{jobs} jobs would be sent, about {} tokens.", plan.tokens());
    if plan.left_for_size > 0 {
        message.push_str(&format!(
            " {} more would wait: the batch would reach the 256 MB limit.",
            plan.left_for_size
        ));
    }
    message.push_str(&plan.over_budget_note());
    Ok(FlushPreview {
        jobs_count: jobs as i64,
        estimated_tokens: plan.tokens(),
        estimated_cost_usd: nanos_to_usd(plan.cost_nanos),
        message,
    })
}

/// Sends eligible jobs as one batch (admins, and the scheduler as [`crate::access::scheduler`]).
pub async fn flush(ctx: &Ctx, caller: &Caller, request: FlushRequest) -> Result<FlushResponse> {
    require_admin(caller)?;
    tracing::info!(by = %caller.name, ?request, "flush");
    let now = Utc::now();
    let mut plan = plan(ctx, &request, now, BatchBodyBuilder::new()).await?;
    if plan.claims.is_empty() {
        return Ok(nothing_sent(why_nothing(ctx, now, &plan).await?));
    }

    let batch_id = uuid::Uuid::now_v7().to_string();
    let lease = new_lease(ctx, now);
    let new_batch = NewBatch {
        id: batch_id.clone(),
        estimated_tokens: plan.tokens(),
        request_bytes: plan.body.bytes() as i64,
        created_at: now,
        lease: lease.clone(),
        audit: crate::audit::entry_by_person(
            caller,
            AuditAction::Flush,
            Some(batch_id.clone()),
            Some(format!("{} jobs", plan.claims.len())),
        ),
    };
    let claims: Vec<Claim> = plan.claims.iter().map(|(c, _)| c.clone()).collect();
    let claimed = ctx.store().claim_jobs(new_batch, &claims).await?;
    if claimed.is_empty() {
        return Ok(nothing_sent(
            "The eligible jobs were taken by another flush or cancelled meanwhile.".into(),
        ));
    }
    // Jobs taken or cancelled between the read and the claim are not sent.
    let claimed: std::collections::HashSet<String> = claimed.into_iter().collect();
    plan.body.retain(|id| claimed.contains(id));
    plan.claims.retain(|(c, _)| claimed.contains(&c.job_id));
    let estimated_tokens = plan.tokens();
    let jobs_count = plan.claims.len() as i64;
    let held = Held::start(ctx, &batch_id, lease);
    let over_budget = plan.over_budget_note();
    let batch = submit(ctx, &batch_id, plan.body.finish()?, held).await;
    // Claimed jobs are processing now whatever the submission's outcome.
    ctx.changes.batches();
    ctx.changes.jobs();
    let batch = batch?;

    let mut message = format!(
        "Submitted {jobs_count} jobs to Anthropic as batch {}.",
        batch.id
    );
    if plan.left_for_size > 0 {
        message.push_str(&format!(
            " Stopped at Anthropic's 256 MB batch limit: {} more eligible jobs stay pending for the next flush.",
            plan.left_for_size
        ));
    }
    message.push_str(&over_budget);
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

async fn why_nothing(ctx: &Ctx, now: DateTime<Utc>, plan: &Plan) -> Result<String> {
    if !plan.over_budget.is_empty() {
        return Ok(format!("Nothing to flush:{}", plan.over_budget_note()));
    }
    let (eligible, _) = ctx.store().eligible_summary(now).await?;
    let (pending, _) = ctx
        .store()
        .eligible_summary(DateTime::<Utc>::MAX_UTC)
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
