//! Flush: eligible jobs → one batch per provider their job types are routed to, crash-safely
//! and within memory. Candidates are read a page at a time and rendered straight into the
//! request body, which is the only copy of their payloads; adding stops at the provider's
//! limits (Anthropic: 100,000 requests, 256 MB; OpenAI: 50,000 requests, 200 MB).

use std::collections::{BTreeMap, HashMap, HashSet};

use app::api::{
    AuditAction, Caller, FlushPreview, FlushRequest, FlushResponse, JobType, Precision,
    PreviewToken, ProviderName, agreeing, count_of, count_of_jobs, nanos_to_usd, thousands,
};
use chrono::{DateTime, Utc};

use super::joined;
use super::lease::{Held, new_lease};
use super::render::Renderer;
use super::submit::submit;
use crate::access::require_admin;
use crate::budgets::{FlushBudgets, month_start};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::provider::{BatchBodyBuilder, BodyLimits, MEGABYTE};
use crate::store::{Claim, FlushCursor, FlushFilter, NewBatch, QueuedJob, StoreResult};

/// Candidates read per query: enough to be quick, few enough to hold little.
const PAGE: i64 = 500;

/// The next page of candidates, read while the plan renders this one: on PostgreSQL each
/// page is a round trip the rendering need not wait for. It is used only while the filter it
/// was read with is still the plan's (an owner found over budget is left out of later pages).
struct NextPage {
    /// Owners the filter left out when the read started.
    excluded: usize,
    read: tokio::task::JoinHandle<StoreResult<Vec<QueuedJob>>>,
}

impl NextPage {
    fn start(ctx: &Ctx, filter: &FlushFilter, after: FlushCursor) -> Self {
        let (store, read_filter) = (ctx.store.clone(), filter.clone());
        NextPage {
            excluded: filter.exclude_owners.len(),
            read: tokio::spawn(async move {
                store.eligible_jobs(&read_filter, Some(&after), PAGE).await
            }),
        }
    }

    /// The page, or `None` when the filter has changed since (the read is left to finish).
    async fn take(self, filter: &FlushFilter) -> Result<Option<Vec<QueuedJob>>> {
        if self.excluded != filter.exclude_owners.len() {
            return Ok(None);
        }
        Ok(Some(joined(self.read.await)??))
    }
}

/// What a flush with given options would send: the jobs in flush order, rendered, up to the
/// size limit. Flush and its preview share it.
struct Plan {
    provider: ProviderName,
    body: BatchBodyBuilder,
    /// Each claim with its token estimate.
    claims: Vec<(Claim, i64)>,
    /// Upper bound of the cost at batch prices (every request using its whole `max_tokens`).
    cost_nanos: i64,
    /// The same requests priced as the preview shows them: with every cache read happening
    /// (each shared prefix written once), and without caching.
    with_cache_nanos: i64,
    without_cache_nanos: i64,
    /// Prefixes some request of the plan writes already.
    prefixes: HashSet<String>,
    /// Eligible jobs (within `max_jobs`) that did not fit the size limit.
    left_for_size: i64,
    /// The most requests a batch holds, when that is the limit they did not fit.
    full_at_count: Option<usize>,
    /// Jobs left pending because their owner's budget has no room for them, by owner name.
    over_budget: BTreeMap<String, i64>,
}

impl Plan {
    fn tokens(&self) -> i64 {
        self.claims.iter().map(|(_, t)| t).sum()
    }

    /// The limit the jobs left for size did not fit, in words.
    fn size_limit(&self) -> String {
        let provider = self.provider.label();
        match (self.full_at_count, self.body.limits().capped_bytes) {
            (Some(most), _) => format!(
                "the limit of {} a batch to {provider}",
                count_of(most as i64, "request", "requests")
            ),
            (None, Some(bytes)) => {
                format!("the limit of {} MB a batch to {provider}", bytes / MEGABYTE)
            }
            (None, None) => format!("{provider}'s batch size limit"),
        }
    }
}

/// How many jobs a plan may take, and how many were asked for: the flush that confirms a
/// preview takes no more than the preview promised, and says what waits as the preview did.
#[derive(Clone, Copy)]
struct Room {
    most: i64,
    asked: i64,
}

impl Room {
    fn less(self, taken: i64) -> Room {
        Room {
            most: self.most - taken,
            asked: self.asked - taken,
        }
    }
}

/// Reads eligible jobs in flush order until `room.most` are planned (and past them, measuring
/// without planning, as a preview of `room.asked` would: see `look`), the batch is full, or
/// none are left. A capped owner's jobs go while their bounds fit
/// ([`crate::store::Allowances`]); once one does not, that owner's jobs are left out of the
/// rest of the reading, so jobs held back by a budget never fill a flush or stand in front of
/// another owner's.
async fn plan(
    ctx: &Ctx,
    request: &FlushRequest,
    route: &Route,
    room: Room,
    now: DateTime<Utc>,
    body: BatchBodyBuilder,
) -> Result<Plan> {
    let max_jobs = room.most;
    let mut filter = FlushFilter {
        job_types: Some(route.job_types.clone()),
        min_priority: request.min_priority,
        ..FlushFilter::due(now)
    };
    let mut plan = Plan {
        provider: route.provider,
        body: body.within(
            BodyLimits::of(route.provider)
                .at_most(ctx.config.batch.max_batch_requests)
                .at_most_megabytes(ctx.config.batch.max_batch_mb),
        ),
        claims: Vec::new(),
        cost_nanos: 0,
        with_cache_nanos: 0,
        without_cache_nanos: 0,
        prefixes: HashSet::new(),
        left_for_size: 0,
        full_at_count: None,
        over_budget: BTreeMap::new(),
    };
    let FlushBudgets {
        mut allowances,
        names,
        ..
    } = crate::budgets::for_flush(ctx, now).await?;
    let mut planned_of: HashMap<String, i64> = HashMap::new();
    let mut renderer = Renderer::default();
    let mut cursor: Option<FlushCursor> = None;
    let mut next: Option<NextPage> = None;
    let mut full = false;
    // A flush confirming a preview plans no more than the preview promised (`room.most`), yet
    // reads on as the preview did, to the jobs asked for, measuring what it does not plan
    // (`look`), so that its answer says what the preview's did: the owners their budgets hold
    // back, and that the batch is full when the next job would not have fitted it. With no
    // budget set, one job past the promise tells all there is to tell.
    let any_capped = allowances.any_capped();
    let mut look: Option<BatchBodyBuilder> = None;
    let mut looked: i64 = 0;
    'reading: while (plan.claims.len() as i64) + looked < room.asked {
        let read_ahead = match next.take() {
            Some(page) => page.take(&filter).await?,
            None => None,
        };
        let jobs = match read_ahead {
            Some(jobs) => jobs,
            None => {
                ctx.store()
                    .eligible_jobs(&filter, cursor.as_ref(), PAGE)
                    .await?
            }
        };
        // A full page that may not fill the plan: the next one is read while this one renders.
        if jobs.len() as i64 == PAGE
            && (plan.claims.len() + jobs.len()) as i64 + looked < room.asked
        {
            next = jobs
                .last()
                .map(|last| NextPage::start(ctx, &filter, last.cursor()));
        }
        renderer.load(ctx, &jobs).await?;
        for job in &jobs {
            let planned = plan.claims.len() as i64;
            if planned + looked >= room.asked {
                break 'reading;
            }
            if allowances.stopped().contains(&job.owner_id) {
                continue;
            }
            let Some((model, rendered)) = renderer.render(ctx, job) else {
                tracing::warn!(job = %job.id, "its context was deleted; it stays pending");
                continue;
            };
            // Prices may have changed since the enqueue: the larger bound holds.
            let bound = ctx
                .prices
                .bound_nanos(&model, &rendered)
                .max(job.cost_bound_nanos);
            if !allowances.admit(&job.owner_id, bound) {
                filter.exclude_owners.push(job.owner_id.clone());
                continue;
            }
            let entry_bytes = BatchBodyBuilder::entry_bytes(&job.id, rendered.params.len());
            if planned >= max_jobs {
                let look = look.get_or_insert_with(|| plan.body.measuring_on());
                if !look.fits(entry_bytes) {
                    // Only the job right after the promise says that the batch sent is full.
                    full = looked == 0;
                    break 'reading;
                }
                look.push_in(&job.id, &rendered.params, None)?;
                looked += 1;
                if !any_capped {
                    break 'reading;
                }
                continue;
            }
            if !plan.body.fits(entry_bytes) {
                full = true;
                break 'reading;
            }
            plan.body
                .push_in(&job.id, &rendered.params, rendered.cache_key.as_deref())?;
            plan.cost_nanos += bound;
            let writes_prefix = rendered
                .cache_key
                .as_ref()
                .is_some_and(|key| plan.prefixes.insert(key.clone()));
            if let Some(cost) = ctx.prices.preview_cost(
                &model,
                &rendered,
                writes_prefix,
                ctx.config.batch.cache_ttl,
            ) {
                plan.with_cache_nanos += cost.paid_nanos;
                plan.without_cache_nanos += cost.uncached_nanos;
            }
            if allowances.is_capped(&job.owner_id) {
                *planned_of.entry(job.owner_id.clone()).or_default() += 1;
            }
            plan.claims.push((
                Claim {
                    job_id: job.id.clone(),
                    provider: route.provider,
                    model,
                    owner_id: job.owner_id.clone(),
                    bound_nanos: bound,
                },
                rendered.estimated_tokens,
            ));
        }
        match jobs.last() {
            Some(last) if jobs.len() as i64 == PAGE => cursor = Some(last.cursor()),
            _ => break,
        }
    }
    // A batch full by count when the room ran out holds back the rest as surely.
    plan.full_at_count = plan.body.full_at_count();
    let planned = plan.claims.len() as i64;
    if (full || plan.full_at_count.is_some()) && room.asked > planned {
        let (eligible, _) = ctx.store().eligible_summary(&filter).await?;
        plan.left_for_size = (eligible - planned).min(room.asked - planned);
    }
    for owner in allowances.stopped() {
        let held = FlushFilter {
            owner: Some(owner.clone()),
            exclude_owners: Vec::new(),
            ..filter.clone()
        };
        let (pending, _) = ctx.store().eligible_summary(&held).await?;
        let waiting = pending - planned_of.get(owner).copied().unwrap_or(0);
        if waiting > 0 {
            let name = names.get(owner).cloned().unwrap_or_else(|| owner.clone());
            plan.over_budget.insert(name, waiting);
        }
    }
    Ok(plan)
}

/// What `flush` would send now with these options, without sending anything (admins). Its
/// `preview_token` lets the flush that confirms it send no more than this.
pub async fn preview(ctx: &Ctx, caller: &Caller, request: FlushRequest) -> Result<FlushPreview> {
    require_admin(caller)?;
    let now = Utc::now();
    let plans = plans(
        ctx,
        &request,
        request.max_jobs,
        now,
        BatchBodyBuilder::measuring,
    )
    .await?;
    let jobs: i64 = plans.iter().map(|p| p.claims.len() as i64).sum();
    let cost_nanos: i64 = plans.iter().map(|p| p.cost_nanos).sum();
    let preview_token = PreviewToken {
        max_jobs: request.max_jobs,
        job_types: request.job_types.clone(),
        min_priority: request.min_priority,
        jobs_count: jobs,
        cost_nanos,
    }
    .encode();
    let over_budget = over_budget_note(&plans);
    if jobs == 0 {
        return Ok(FlushPreview {
            jobs_count: 0,
            estimated_tokens: 0,
            estimated_cost_usd: 0.0,
            estimated_cost_with_cache_usd: 0.0,
            estimated_cost_without_cache_usd: 0.0,
            message: why_nothing(ctx, now, &over_budget).await?,
            preview_token,
        });
    }
    let tokens: i64 = plans.iter().map(Plan::tokens).sum();
    let mut message = format!(
        "{} would be sent, about {} tokens",
        count_of_jobs(jobs),
        thousands(tokens)
    );
    let sending: Vec<&Plan> = plans.iter().filter(|p| !p.claims.is_empty()).collect();
    if sending.len() > 1
        || sending
            .iter()
            .any(|p| p.provider != ProviderName::Anthropic)
    {
        let shares: Vec<String> = sending
            .iter()
            .map(|p| format!("{} to {}", p.claims.len(), p.provider.label()))
            .collect();
        message.push_str(&format!(" ({})", shares.join(", ")));
    }
    message.push('.');
    for plan in &plans {
        if plan.left_for_size > 0 {
            message.push_str(&format!(
                " {} more would wait: the batch would reach {}.",
                thousands(plan.left_for_size),
                plan.size_limit()
            ));
        }
    }
    message.push_str(&over_budget);
    Ok(FlushPreview {
        jobs_count: jobs,
        estimated_tokens: tokens,
        estimated_cost_usd: nanos_to_usd(cost_nanos),
        estimated_cost_with_cache_usd: nanos_to_usd(plans.iter().map(|p| p.with_cache_nanos).sum()),
        estimated_cost_without_cache_usd: nanos_to_usd(
            plans.iter().map(|p| p.without_cache_nanos).sum(),
        ),
        message,
        preview_token,
    })
}

/// One plan per provider route, in order, sharing `max_jobs` (at most the request's) between
/// them: what a preview shows and what the flush confirming it sends are planned alike.
async fn plans(
    ctx: &Ctx,
    request: &FlushRequest,
    max_jobs: i64,
    now: DateTime<Utc>,
    body: fn() -> BatchBodyBuilder,
) -> Result<Vec<Plan>> {
    let mut room = Room {
        most: max_jobs,
        asked: request.max_jobs,
    };
    let mut plans = Vec::new();
    for route in routes(ctx, request) {
        let plan = plan(ctx, request, &route, room, now, body()).await?;
        room = room.less(plan.claims.len() as i64);
        plans.push(plan);
    }
    Ok(plans)
}

/// Jobs held back by budgets in any plan, by owner: " 3 jobs of alice stay pending: …".
fn over_budget_note(plans: &[Plan]) -> String {
    let mut held: BTreeMap<&str, i64> = BTreeMap::new();
    for plan in plans {
        for (owner, jobs) in &plan.over_budget {
            *held.entry(owner).or_default() += jobs;
        }
    }
    held.iter()
        .map(|(owner, &jobs)| {
            format!(
                " {} of {owner} {} pending: over their monthly budget.",
                count_of_jobs(jobs),
                agreeing(jobs, "stays", "stay")
            )
        })
        .collect()
}

/// The scheduler's flush: when enough jobs are eligible, or one has waited the flush
/// interval, as much as one auto-flush may send. Jobs their owner's budget holds back can
/// neither fill a flush nor ask for one. `None` when it is not time.
pub async fn auto_flush(ctx: &Ctx) -> Result<Option<FlushResponse>> {
    let now = Utc::now();
    let held_back = crate::budgets::for_flush(ctx, now).await?.blocked;
    let due = FlushFilter {
        exclude_owners: held_back,
        ..FlushFilter::due(now)
    };
    let (eligible, waiting_since) = ctx.store().eligible_summary(&due).await?;
    let waited_enough = waiting_since.is_some_and(|since| {
        (now - since).to_std().unwrap_or_default() >= ctx.config.flush_interval()
    });
    if eligible == 0 || (eligible < ctx.config.batch.auto_flush_min_jobs && !waited_enough) {
        return Ok(None);
    }
    let request = FlushRequest::options(ctx.config.batch.auto_flush_max_jobs, None, 0);
    flush(ctx, &Caller::scheduler(), request).await.map(Some)
}

/// Sends eligible jobs as one batch per provider (admins, and the scheduler as
/// [`app::api::Caller::scheduler`]). With a `preview_token`, it sends only what that preview
/// promised, or nothing (409).
pub async fn flush(ctx: &Ctx, caller: &Caller, request: FlushRequest) -> Result<FlushResponse> {
    require_admin(caller)?;
    tracing::info!(by = %caller.name, ?request, "flush");
    let promised = confirmed_preview(&request)?;
    let max_jobs = promised
        .as_ref()
        .map_or(request.max_jobs, |p| p.jobs_count.min(request.max_jobs));
    let now = Utc::now();
    let plans = plans(ctx, &request, max_jobs, now, BatchBodyBuilder::new).await?;
    let cost_nanos: i64 = plans.iter().map(|p| p.cost_nanos).sum();
    if let Some(promised) = &promised
        && cost_nanos > promised.cost_nanos
    {
        let jobs: usize = plans.iter().map(|p| p.claims.len()).sum();
        let precision = Precision::telling_apart([cost_nanos, promised.cost_nanos]);
        return Err(Error::Conflict(format!(
            "The jobs to flush changed since the preview: {} may cost up to {}, more than the {} \
             previewed. Nothing was sent; preview again.",
            count_of_jobs(jobs as i64),
            precision.show(cost_nanos),
            precision.show(promised.cost_nanos)
        )));
    }
    let over_budget = over_budget_note(&plans);
    if plans.iter().all(|p| p.claims.is_empty()) {
        return Ok(nothing_sent(why_nothing(ctx, now, &over_budget).await?));
    }
    let mut sent: Vec<Sent> = Vec::new();
    let mut failure = None;
    for plan in plans.into_iter().filter(|p| !p.claims.is_empty()) {
        match send(ctx, caller, plan, now).await {
            Ok(Some(one)) => sent.push(one),
            Ok(None) => {}
            // The next provider's jobs still go; the first failure is reported.
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if sent.is_empty() {
        return match failure {
            Some(e) => Err(e),
            None => Ok(nothing_sent(
                "The eligible jobs were taken by another flush, cancelled, or held back by their owner's budget meanwhile."
                    .into(),
            )),
        };
    }
    let mut message = sent
        .iter()
        .map(|s| s.message.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(e) = failure {
        message.push_str(&format!(" Another provider's batch was not sent: {e}."));
    }
    message.push_str(&over_budget);
    Ok(FlushResponse {
        success: true,
        batch_id: Some(sent[0].batch_id.clone()),
        jobs_count: sent.iter().map(|s| s.jobs_count).sum(),
        estimated_tokens: sent.iter().map(|s| s.estimated_tokens).sum(),
        message,
    })
}

/// What one provider's batch of a flush sent.
struct Sent {
    batch_id: String,
    jobs_count: i64,
    estimated_tokens: i64,
    message: String,
}

/// Claims a plan's jobs into a batch and creates it at its provider; `None` when every job
/// was taken meanwhile.
async fn send(
    ctx: &Ctx,
    caller: &Caller,
    mut plan: Plan,
    now: DateTime<Utc>,
) -> Result<Option<Sent>> {
    let batch_id = uuid::Uuid::now_v7().to_string();
    let lease = new_lease(ctx, now);
    let new_batch = NewBatch {
        id: batch_id.clone(),
        provider: plan.provider,
        estimated_tokens: plan.tokens(),
        request_bytes: plan.body.bytes() as i64,
        created_at: now,
        lease: lease.clone(),
        audit: crate::store::AuditEntry::by_person(
            caller,
            AuditAction::Flush,
            Some(batch_id.clone()),
            Some(format!(
                "{} to {}",
                count_of_jobs(plan.claims.len() as i64),
                plan.provider.label()
            )),
        ),
        month_start: month_start(now),
    };
    let claims: Vec<Claim> = plan.claims.iter().map(|(c, _)| c.clone()).collect();
    let claimed = ctx.store().claim_jobs(new_batch, &claims).await?;
    if claimed.is_empty() {
        return Ok(None);
    }
    // Jobs taken or cancelled between the read and the claim, or that a concurrent flush left
    // no budget for, are not sent.
    let claimed: std::collections::HashSet<String> = claimed.into_iter().collect();
    plan.body.retain(|id| claimed.contains(id));
    plan.claims.retain(|(c, _)| claimed.contains(&c.job_id));
    let estimated_tokens = plan.tokens();
    let jobs_count = plan.claims.len() as i64;
    let owners: Vec<String> = plan
        .claims
        .iter()
        .map(|(c, _)| c.owner_id.clone())
        .collect();
    let (left_for_size, size_limit) = (plan.left_for_size, plan.size_limit());
    let held = Held::start(ctx, &batch_id, lease);
    let batch = submit(ctx, &batch_id, plan.provider, plan.body.finish()?, held).await;
    // Claimed jobs are processing now whatever the submission's outcome.
    ctx.changes.batches();
    ctx.changes.jobs_of_each(owners);
    let batch = batch?;
    let mut message = format!(
        "Submitted {} to {} as batch {}.",
        count_of_jobs(jobs_count),
        plan.provider.label(),
        batch.id
    );
    if left_for_size > 0 {
        message.push_str(&format!(
            " Stopped at {size_limit}: {} {} pending for the next flush.",
            count_of(left_for_size, "more eligible job", "more eligible jobs"),
            agreeing(left_for_size, "stays", "stay")
        ));
    }
    Ok(Some(Sent {
        batch_id: batch.id,
        jobs_count,
        estimated_tokens,
        message,
    }))
}

/// The preview a flush confirms, if it names one; its options must be the request's.
fn confirmed_preview(request: &FlushRequest) -> Result<Option<PreviewToken>> {
    let Some(token) = &request.preview_token else {
        return Ok(None);
    };
    let promised = PreviewToken::decode(token).filter(|p| p.matches(request));
    let Some(promised) = promised else {
        return Err(Error::Conflict(
            "This preview_token is not from a preview of these options (max_jobs, job_types, min_priority). \
             Nothing was sent; preview again with these options."
                .into(),
        ));
    };
    Ok(Some(promised))
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

async fn why_nothing(ctx: &Ctx, now: DateTime<Utc>, over_budget: &str) -> Result<String> {
    if !over_budget.is_empty() {
        return Ok(format!("Nothing to flush:{over_budget}"));
    }
    let (eligible, _) = ctx.store().eligible_summary(&FlushFilter::due(now)).await?;
    let (pending, _) = ctx
        .store()
        .eligible_summary(&FlushFilter::due(DateTime::<Utc>::MAX_UTC))
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

/// One provider's share of a flush: the job types routed to it that the request asks for.
struct Route {
    provider: ProviderName,
    job_types: Vec<JobType>,
}

/// The providers a flush sends to, in a fixed order (a preview and the flush confirming it
/// plan the same way), each with the requested job types routed to it.
fn routes(ctx: &Ctx, request: &FlushRequest) -> Vec<Route> {
    ProviderName::ALL
        .iter()
        .map(|&provider| Route {
            provider,
            job_types: ctx
                .prices
                .job_types_on(provider)
                .into_iter()
                .filter(|t| {
                    request
                        .job_types
                        .as_ref()
                        .is_none_or(|asked| asked.contains(t))
                })
                .collect(),
        })
        .filter(|route| !route.job_types.is_empty())
        .collect()
}
