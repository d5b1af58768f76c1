use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::{BulkCancelResponse, JobDetail, JobStatus, RetryReply, money};
use crate::components::{ResultView, SignedIn, StatusBadge, live_changes, money_usd, when};
use crate::server_fns::{cancel_jobs, load_job, retry_jobs};

/// One job: figures, timeline, and its result rendered for its type.
#[component]
pub fn JobPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let tick = live_changes("jobs");
    let cancel = Action::new(|id: &String| {
        let id = id.clone();
        async move { cancel_jobs(vec![id]).await }
    });
    let retry = Action::new(|(id, confirm_rebill): &(String, bool)| {
        let (id, confirm_rebill) = (id.clone(), *confirm_rebill);
        async move { retry_jobs(vec![id], confirm_rebill).await }
    });
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
    view! {
        <SignedIn page=move |session| {
            let admin = session.caller.is_admin();
            view! { <JobView detail cancel retry admin /> }.into_any()
        } />
    }
}

type CancelAction = Action<String, Result<BulkCancelResponse, ServerFnError>>;
type RetryAction = Action<(String, bool), Result<RetryReply, ServerFnError>>;

#[component]
fn JobView(
    detail: Resource<Result<JobDetail, ServerFnError>>,
    cancel: CancelAction,
    retry: RetryAction,
    admin: bool,
) -> impl IntoView {
    view! {
        <p class="text-sm"><a href="/jobs" class="text-emerald-700 underline">"← All jobs"</a></p>
        <Transition fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <Detail detail cancel retry admin /> }.into_any(),
                    Err(e) => view! { <p role="alert" class="mt-4 text-rose-700">{e.to_string()}</p> }.into_any(),
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
    admin: bool,
) -> impl IntoView {
    let job = detail.job;
    let cancellable = job.status.can_cancel();
    let retriable = admin && job.status == JobStatus::Failed;
    let id = job.id.clone();
    let retry_id = job.id.clone();
    // A job that was billed is billed again if it runs again: the dialog says so, and only
    // then is the new charge confirmed.
    let billed_nanos = (job.cost_usd * 1e9).round() as i64;
    let on_retry = move |_| {
        let question = if billed_nanos > 0 {
            format!(
                "This job was billed {} already. Sent again, it is billed again. Retry it and pay again?",
                money(billed_nanos)
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
                <div class="text-xs text-slate-500">{label}</div>
                <div class="text-lg font-semibold tabular-nums">{value}</div>
            </div>
        }
    };
    let raw = detail
        .result
        .as_ref()
        .map(|r| serde_json::to_string_pretty(r).unwrap_or_default());
    view! {
        <div class="mt-3 flex flex-wrap items-center gap-3">
            <h1 class="text-xl font-semibold">{job.job_type.as_str()}</h1>
            <span data-testid="job-status"><StatusBadge status=job.status /></span>
            <code class="text-xs text-slate-500">{job.id.clone()}</code>
            {cancellable.then(|| view! {
                <button type="button" class="ml-auto rounded border border-rose-300 px-2 py-1 text-sm text-rose-700 hover:bg-rose-50" on:click=on_cancel>"Cancel job"</button>
            })}
            {retriable.then(|| view! {
                <button type="button" class="ml-auto rounded border border-emerald-300 px-2 py-1 text-sm text-emerald-700 hover:bg-emerald-50" on:click=on_retry>"Retry job"</button>
            })}
        </div>
        {move || retry.value().get().and_then(|r| match r {
            Ok(RetryReply::NeedsConfirmation(why)) => Some(why),
            Ok(RetryReply::Retried(_)) => None,
            Err(e) => Some(e.to_string()),
        }).map(|why| view! { <p role="alert" data-testid="retry-refused" class="mt-3 rounded bg-amber-50 px-3 py-2 text-amber-900">{why}</p> })}
        {job.error_message.clone().filter(|_| job.status == crate::api::JobStatus::Failed).map(|e| view! {
            <p role="alert" data-testid="job-error" class="mt-3 rounded bg-rose-50 px-3 py-2 text-rose-800">{e}</p>
        })}
        {(job.duplicate_tokens > 0).then(|| view! {
            <p role="note" data-testid="job-duplicate" class="mt-3 rounded bg-amber-50 px-3 py-2 text-amber-900">
                {format!(
                    "A duplicate batch at {} ran this job again: {} tokens, {} of the cost below. It was billed, so it is counted.",
                    job.provider.map_or("the provider", |p| p.label()),
                    job.duplicate_tokens,
                    money_usd(job.duplicate_cost_usd)
                )}
            </p>
        })}
        <div class="mt-4 grid grid-cols-2 gap-3 sm:grid-cols-4 lg:grid-cols-7">
            {figure("Priority", job.priority.to_string())}
            {figure("Attempts", job.tries().to_string())}
            {figure("Tokens in", job.input_tokens.to_string())}
            {figure("Tokens out", job.output_tokens.to_string())}
            {figure("Cost paid", money_usd(job.cost_usd))}
            {figure("Standard cost", money_usd(job.standard_cost_usd))}
            {figure("Saved", money_usd(job.savings_usd))}
        </div>
        <div class="mt-3 grid grid-cols-2 gap-3 sm:grid-cols-4" data-testid="job-cache">
            {figure("Saved by batching", money_usd(job.saved_by_batching_usd))}
            {figure("Saved by caching", money_usd(job.saved_by_caching_usd))}
            {figure("Tokens read from cache", job.cache_read_tokens.to_string())}
            {figure("Tokens written to cache", job.cache_write_tokens.to_string())}
        </div>
        {job.run_after.map(|at| view! {
            <p class="mt-2 text-sm text-slate-600" data-testid="job-run-after">
                {format!("Scheduled: not sent before {}.", when(at))}
            </p>
        })}
        <p class="mt-2 text-sm text-slate-600" data-testid="job-route">
            {match (job.provider, job.model.clone()) {
                (Some(provider), Some(model)) => format!("Ran on {} ({model}).", provider.label()),
                _ => "Its provider and model are chosen when a flush sends it (the Access page shows the routing).".to_string(),
            }}
        </p>
        {job.context_id.clone().map(|context| view! {
            <p class="mt-2 text-sm text-slate-600">
                "Shared context: " <a class="text-emerald-700 underline" href="/contexts"><code>{context}</code></a>
            </p>
        })}
        <div class="mt-6 grid gap-6 lg:grid-cols-3">
            <section class="lg:col-span-2">
                <h2 class="font-semibold">"Result"</h2>
                <div class="mt-2 rounded-lg border border-slate-200 bg-white p-4">
                    {match detail.result {
                        Some(result) => view! { <ResultView result /> }.into_any(),
                        None => view! { <p class="text-slate-500">"No result yet: it appears here when the batch ends."</p> }.into_any(),
                    }}
                    {raw.map(|raw| view! {
                        <details class="mt-4">
                            <summary class="cursor-pointer text-sm text-slate-600">"Raw JSON"</summary>
                            <pre class="mt-2 overflow-x-auto rounded bg-slate-900 p-3 text-xs text-slate-100">{raw}</pre>
                        </details>
                    })}
                </div>
            </section>
            <section>
                <h2 class="font-semibold">"Timeline"</h2>
                <ol class="mt-2 space-y-3 border-l-2 border-slate-200 pl-4" data-testid="timeline">
                    {detail.events.into_iter().map(|e| view! {
                        <li>
                            <div class="text-sm font-medium">{e.kind.replace('_', " ")}</div>
                            <div class="text-xs text-slate-500">{when(e.at)}</div>
                            {e.detail.map(|d| view! { <div class="text-xs text-slate-600">{d}</div> })}
                        </li>
                    }).collect_view()}
                </ol>
                <h2 class="mt-6 font-semibold">"Payload"</h2>
                <pre class="mt-2 overflow-x-auto rounded bg-slate-100 p-3 text-xs">{job.payload.map(|p| serde_json::to_string_pretty(&p).unwrap_or_default())}</pre>
            </section>
        </div>
    }
}
