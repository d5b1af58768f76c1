use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::validation::FieldError;
use crate::api::{BulkCancelResponse, EnqueueResponse, Job, JobDetail, JobStatus, RetryReply};
use crate::components::{
    Ledger, Precision, ResultView, SignedIn, StatusBadge, explain, live_changes_once_known, nanos,
    thousands, when,
};
use crate::server_fns::{Versioned, cancel_jobs, enqueue_job, load_job, retry_jobs};

/// One job: figures, timeline, and its result rendered for its type.
#[component]
pub fn JobPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let tick = RwSignal::new(0u64);
    let cancel = Action::new(|id: &String| {
        let id = id.clone();
        async move { cancel_jobs(vec![id]).await }
    });
    let retry = Action::new(|(id, confirm_rebill): &(String, bool)| {
        let (id, confirm_rebill) = (id.clone(), *confirm_rebill);
        async move { retry_jobs(vec![id], confirm_rebill).await }
    });
    let again = Action::new(|job: &Job| queue_copy(job.clone()));
    let detail = Resource::new(
        move || {
            (
                id(),
                tick.get(),
                cancel.version().get(),
                retry.version().get(),
            )
        },
        |(id, _, _, _)| load_job(id),
    );
    // The stream opens with the version the job was rendered at (its first answer): the job is
    // read again only if a job changed since.
    live_changes_once_known("jobs", tick, move || {
        detail.with(|d| d.as_ref().map(|d| d.as_ref().ok().map(|(v, _)| v.clone())))
    });
    view! {
        <SignedIn page=move |session| {
            let admin = session.caller.is_admin();
            view! { <JobView detail cancel retry again admin /> }.into_any()
        } />
    }
}

type CancelAction = Action<String, Result<BulkCancelResponse, ServerFnError>>;
type RetryAction = Action<(String, bool), Result<RetryReply, ServerFnError>>;
type QueueCopy = Action<Job, Result<Result<EnqueueResponse, Vec<FieldError>>, ServerFnError>>;

/// A new job with a failed one's type, input, priority and context (a trader's next step).
async fn queue_copy(job: Job) -> Result<Result<EnqueueResponse, Vec<FieldError>>, ServerFnError> {
    let payload = job.payload.map(|p| p.to_string()).unwrap_or_default();
    enqueue_job(
        job.job_type.as_str().to_string(),
        payload,
        job.priority.to_string(),
        String::new(),
        String::new(),
        job.context_id,
        None,
    )
    .await
}

#[component]
fn JobView(
    detail: Resource<Result<Versioned<Result<JobDetail, String>>, ServerFnError>>,
    cancel: CancelAction,
    retry: RetryAction,
    again: QueueCopy,
    admin: bool,
) -> impl IntoView {
    view! {
        <p class="text-sm"><a href="/jobs" rel=crate::page_rel("/jobs") class="text-emerald-700 underline">"← All jobs"</a></p>
        <Transition fallback=|| view! { <p class="mt-4 text-slate-600">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok((_, Ok(detail))) => view! { <Detail detail cancel retry again admin /> }.into_any(),
                    Ok((_, Err(refused))) => view! { <p role="alert" class="mt-4 text-rose-700">{refused}</p> }.into_any(),
                    Err(e) => view! { <p role="alert" class="mt-4 text-rose-700">{explain(&e)}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Detail(
    detail: JobDetail,
    cancel: CancelAction,
    retry: RetryAction,
    again: QueueCopy,
    admin: bool,
) -> impl IntoView {
    let job = detail.job;
    let cancellable = job.status.can_cancel();
    let retriable = admin && job.status == JobStatus::Failed;
    let id = job.id.clone();
    let retry_id = job.id.clone();
    // One precision for every amount on the page; savings are differences of the shown prices.
    let ledger = Ledger::from_savings(
        nanos(job.cost_usd),
        nanos(job.saved_by_batching_usd),
        nanos(job.saved_by_caching_usd),
    );
    let bound = detail.cost_bound_nanos;
    let precision = Precision::fitting(
        ledger
            .amounts()
            .into_iter()
            .chain(bound)
            .chain([nanos(job.duplicate_cost_usd)]),
    );
    let shown = ledger.rounded(precision);
    let usd = move |nanos: i64| precision.show(nanos);
    // A job that was billed is billed again if it runs again: the dialog says so, and only
    // then is the new charge confirmed.
    let billed_nanos = ledger.paid;
    let on_retry = move |_| {
        let question = if billed_nanos > 0 {
            format!(
                "This job was billed {} already. Sent again, it is billed again. Retry it and pay again?",
                usd(billed_nanos)
            )
        } else {
            "Send this failed job back for one more attempt?".to_string()
        };
        if window().confirm_with_message(&question).unwrap_or(false) {
            retry.dispatch((retry_id.clone(), billed_nanos > 0));
        }
    };
    let on_cancel = move |_| {
        if window()
            .confirm_with_message("Cancel this job? This cannot be undone.")
            .unwrap_or(false)
        {
            cancel.dispatch(id.clone());
        }
    };
    let figure = |label: &'static str, value: String| {
        view! {
            <div class="rounded-lg border border-slate-200 bg-white p-3">
                <div class="text-xs text-slate-600">{label}</div>
                <div class="text-lg font-semibold tabular-nums">{value}</div>
            </div>
        }
    };
    let raw = detail
        .result
        .as_ref()
        .map(|r| serde_json::to_string_pretty(r).unwrap_or_default());
    let no_result = match job.status {
        JobStatus::Pending | JobStatus::Processing => {
            "No result yet: it appears here when the batch ends."
        }
        JobStatus::Failed => "No result: the job failed (the reason is above).",
        JobStatus::Cancelled => "No result: the job was cancelled.",
        JobStatus::Completed => "The provider answered without a result.",
    };
    let payload = job
        .payload
        .clone()
        .map(|p| serde_json::to_string_pretty(&p).unwrap_or_default());
    view! {
        <div class="mt-3 flex flex-wrap items-center gap-3">
            <h1 class="text-xl font-semibold">{job.job_type.label()}</h1>
            <span data-testid="job-status"><StatusBadge status=job.status /></span>
            <code class="min-w-0 break-all text-xs text-slate-600">{job.id.clone()}</code>
            {cancellable.then(|| view! {
                <button type="button" class="ml-auto rounded border border-rose-300 px-2 py-1 text-sm text-rose-700 hover:bg-rose-50" on:click=on_cancel>"Cancel job"</button>
            })}
            {retriable.then(|| view! {
                <button type="button" class="ml-auto rounded border border-emerald-300 px-2 py-1 text-sm text-emerald-800 hover:bg-emerald-50" on:click=on_retry>"Retry job"</button>
            })}
        </div>
        <p class="mt-1 text-sm text-slate-600">{job.job_type.describe()}</p>
        {move || retry.value().get().and_then(|r| match r {
            Ok(RetryReply::NeedsConfirmation(why)) => Some(why),
            Ok(RetryReply::Retried(_)) => None,
            Err(e) => Some(explain(&e)),
        }).map(|why| view! { <p role="alert" data-testid="retry-refused" class="mt-3 rounded bg-amber-50 px-3 py-2 text-amber-900">{why}</p> })}
        {job.error_message.clone().filter(|_| job.status == JobStatus::Failed).map(|e| view! {
            <p role="alert" data-testid="job-error" class="mt-3 rounded bg-rose-50 px-3 py-2 text-rose-800">{e}</p>
        })}
        <NextStep job=job.clone() estimated=detail.estimated_completion bound=bound.map(usd) paid=shown.paid admin again usd />
        {(job.duplicate_tokens > 0).then(|| view! {
            <p role="note" data-testid="job-duplicate" class="mt-3 rounded bg-amber-50 px-3 py-2 text-amber-900">
                {format!(
                    "A duplicate batch at {} ran this job again: {} tokens, {} of the cost below. It was billed, so it is counted.",
                    job.provider.map_or("the provider", |p| p.label()),
                    thousands(job.duplicate_tokens),
                    usd(nanos(job.duplicate_cost_usd))
                )}
            </p>
        })}
        <div class="mt-4 grid grid-cols-2 gap-3 sm:grid-cols-4 lg:grid-cols-7" data-testid="job-figures">
            {figure("Priority", job.priority.to_string())}
            {figure("Attempts", job.tries().to_string())}
            {figure("Tokens in", thousands(job.input_tokens))}
            {figure("Tokens out", thousands(job.output_tokens))}
            {figure("Cost paid", usd(shown.paid))}
            {figure("Standard cost", usd(shown.standard))}
            {figure("Saved", usd(shown.saved()))}
        </div>
        <div class="mt-3 grid grid-cols-2 gap-3 sm:grid-cols-4" data-testid="job-cache">
            {figure("Saved by batching", usd(shown.by_batching()))}
            {figure("Saved by caching", usd(shown.by_caching()))}
            {figure("Tokens read from cache", thousands(job.cache_read_tokens))}
            {figure("Tokens written to cache", thousands(job.cache_write_tokens))}
        </div>
        <p class="mt-2 text-sm text-slate-600" data-testid="job-route">
            {match (job.provider, job.model.clone()) {
                (Some(provider), Some(model)) => format!("Ran on {} ({model}).", provider.label()),
                _ => "Its provider and model are chosen when a flush sends it (the Access page shows the routing).".to_string(),
            }}
        </p>
        {job.context_id.clone().map(|context| view! {
            <p class="mt-2 text-sm text-slate-600">
                "Shared context: " <a class="text-emerald-800 underline" href="/contexts"><code class="break-all">{context}</code></a>
            </p>
        })}
        <div class="mt-6 grid gap-6 lg:grid-cols-3">
            <section class="min-w-0 lg:col-span-2">
                <h2 class="font-semibold">"Result"</h2>
                <div class="mt-2 rounded-lg border border-slate-200 bg-white p-4">
                    {match detail.result {
                        Some(result) => view! { <ResultView result /> }.into_any(),
                        None => view! { <p class="text-slate-600" data-testid="no-result">{no_result}</p> }.into_any(),
                    }}
                    {raw.map(|raw| view! {
                        <details class="mt-4">
                            <summary class="cursor-pointer text-sm text-slate-600">"Raw JSON"</summary>
                            <pre tabindex="0" aria-label="Raw JSON result" class="mt-2 overflow-x-auto rounded bg-slate-900 p-3 text-xs text-slate-100">{raw}</pre>
                        </details>
                    })}
                </div>
            </section>
            <section class="min-w-0">
                <h2 class="font-semibold">"Timeline"</h2>
                <ol class="mt-2 space-y-3 border-l-2 border-slate-200 pl-4" data-testid="timeline">
                    {detail.events.into_iter().map(|e| view! {
                        <li>
                            <div class="text-sm font-medium">{e.kind.replace('_', " ")}</div>
                            <div class="text-xs text-slate-600">{when(e.at)}</div>
                            {e.detail.map(|d| view! { <div class="break-words text-xs text-slate-600">{d}</div> })}
                        </li>
                    }).collect_view()}
                </ol>
                <h2 class="mt-6 font-semibold">"Payload"</h2>
                // Focusable, so a keyboard can scroll what is cut off.
                <pre tabindex="0" aria-label="Payload" data-testid="job-payload" class="mt-2 max-h-96 overflow-auto rounded bg-slate-100 p-3 text-xs">{payload}</pre>
            </section>
        </div>
    }
}

/// What happens next, in the trader's words: when a waiting job is sent and expected back
/// and the most it may cost; what a failed job's owner (or an admin) can do about it.
#[component]
fn NextStep<F>(
    job: Job,
    estimated: Option<chrono::DateTime<chrono::Utc>>,
    bound: Option<String>,
    paid: i64,
    admin: bool,
    again: QueueCopy,
    usd: F,
) -> impl IntoView
where
    F: Fn(i64) -> String + Copy + Send + Sync + 'static,
{
    let box_class =
        "mt-3 rounded-lg border border-sky-200 bg-sky-50 px-4 py-3 text-sm text-sky-950";
    let bound = bound.map(|b| format!(" It will cost at most {b} (batch price, half the standard); your budget counts that until the bill comes."));
    match job.status {
        JobStatus::Pending => {
            let when_sent = match job.run_after {
                Some(at) => view! {
                    <span data-testid="job-run-after">{format!("Scheduled: not sent before {}, then in the first flush after it.", when(at))}</span>
                }
                .into_any(),
                None => "Waiting for the next flush, which gathers queued jobs into one batch.".into_any(),
            };
            let back = estimated.map(|at| format!(" Expected back around {} (a batch may take up to 24 hours).", when(at)));
            view! {
                <p class=box_class data-testid="job-next">
                    {when_sent}{back}{bound}
                </p>
            }
            .into_any()
        }
        JobStatus::Processing => view! {
            <p class=box_class data-testid="job-next">
                {format!("Sent to {} in a batch; batches end within 24 hours, usually much sooner.", job.provider.map_or("the provider", |p| p.label()))}
                {bound}
            </p>
        }
        .into_any(),
        JobStatus::Failed => {
            let billed = (paid > 0).then(|| format!(" It was billed {}; a new attempt is billed again.", usd(paid)));
            let queued = move || again.value().get().map(|answer| match answer {
                Ok(Ok(made)) => view! { <span>"Queued as "<a class="text-emerald-800 underline" href=format!("/jobs/{}", made.job.id)>"a new job"</a>"."</span> }.into_any(),
                Ok(Err(refused)) => view! { <span role="alert" class="text-rose-800">{refused.into_iter().map(|e| e.msg).collect::<Vec<_>>().join("; ")}</span> }.into_any(),
                Err(e) => view! { <span role="alert" class="text-rose-800">{explain(&e)}</span> }.into_any(),
            });
            let copy = job.clone();
            view! {
                <div class=box_class data-testid="job-next">
                    <p>
                        {if admin {
                            "What now: Retry job sends it back for one more attempt; or queue a new job with the same input."
                        } else {
                            "What now: queue a new job with the same input. If it fails again, an admin can look at why."
                        }}
                        {billed}
                    </p>
                    <div class="mt-2 flex flex-wrap items-center gap-3">
                        <button type="button" class="rounded bg-emerald-700 px-3 py-1.5 font-medium text-white hover:bg-emerald-800 disabled:opacity-60"
                            disabled=move || again.pending().get()
                            on:click=move |_| { again.dispatch(copy.clone()); }>
                            "Queue it again"
                        </button>
                        <span role="status">{queued}</span>
                    </div>
                </div>
            }
            .into_any()
        }
        JobStatus::Cancelled | JobStatus::Completed => ().into_any(),
    }
}
