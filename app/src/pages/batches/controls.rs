//! The batches page's island: the flush form and the batch list, kept fresh (its own
//! bundle, `batches`).
// `#[island]` leaks each island's view state on purpose: it lives as long as the page.
#![allow(clippy::mem_forget)]

use leptos::prelude::*;

use crate::api::validation::{DEFAULT_FLUSH_MAX_JOBS, MAX_FLUSH_JOBS};
use crate::api::{
    BatchList, BatchView, FlushPreview, FlushRequest, JobType, ProviderName, RouteView, count_of,
};
use crate::components::{
    Precision, count_of_jobs, explain, kept_fresh, live_changes, money, money_usd, nanos, short_id,
    thousands, when,
};
use crate::server_fns::{flush_now, list_batches, poll_batch, preview_flush};

/// What a preview says the flush may cost, every amount to one precision: the bound, and
/// where the prompt cache can lower it, the bounds without it and with every read.
fn estimated_cost(p: &FlushPreview) -> String {
    let [most, without_cache, with_cache] = [
        p.estimated_cost_usd,
        p.estimated_cost_without_cache_usd,
        p.estimated_cost_with_cache_usd,
    ]
    .map(nanos);
    if with_cache >= without_cache {
        return format!("Estimated cost at batch prices: at most {}.", money(most));
    }
    // The sentence is about how far the cache lowers the bound: the three must read apart.
    let precision = Precision::telling_apart([most, without_cache, with_cache]);
    format!(
        "Estimated cost at batch prices: at most {} (every shared prefix written at the 1-hour price); at most {} without the prompt cache; at most {} if every cache read happens.",
        precision.show(most),
        precision.show(without_cache),
        precision.show(with_cache),
    )
}

/// The job types a flush asks for: those ticked (none: all), and of those only the ones
/// routed to `provider` when one is chosen. `None` when the choice leaves no type at all.
fn flush_types(
    ticked: Vec<JobType>,
    provider: Option<ProviderName>,
    routes: &[RouteView],
) -> Option<Option<Vec<JobType>>> {
    let Some(provider) = provider else {
        return Some(Some(ticked).filter(|t| !t.is_empty()));
    };
    let asked = if ticked.is_empty() {
        JobType::ALL.to_vec()
    } else {
        ticked
    };
    let routed: Vec<JobType> = asked
        .into_iter()
        .filter(|t| {
            routes
                .iter()
                .any(|r| r.job_type == *t && r.provider == provider)
        })
        .collect();
    (!routed.is_empty()).then_some(Some(routed))
}

/// `batches` and `routes` as the server read them for the page (the batches at live
/// `version`); the list is read again when a flush or a poll from here is done and when the
/// server says batches changed.
#[cfg_attr(any(feature = "ssr", feature = "batches-islands"), island)]
#[cfg_attr(not(any(feature = "ssr", feature = "batches-islands")), component)]
pub fn BatchesControls(
    batches: BatchList,
    routes: Vec<RouteView>,
    version: String,
) -> impl IntoView {
    let flush = Action::new(|r: &FlushRequest| flush_now(r.clone()));
    let poll = Action::new(|id: &String| poll_batch(id.clone()));
    let tick = live_changes("batches", Some(version));
    let batches = kept_fresh(
        batches,
        move || (tick.get(), flush.version().get(), poll.version().get()),
        // The stream is open: the version read with the list is not needed again.
        |_| async { list_batches().await.map(|(_, list)| list) },
    );
    let routes = StoredValue::new(routes);
    let max_jobs = RwSignal::new(DEFAULT_FLUSH_MAX_JOBS.to_string());
    let min_priority = RwSignal::new("0".to_string());
    let types = RwSignal::new(Vec::<JobType>::new());
    let provider = RwSignal::new(None::<ProviderName>);
    // `None` when the chosen provider has none of the chosen types.
    let request = move || {
        let job_types = flush_types(
            types.get_untracked(),
            provider.get_untracked(),
            &routes.read_value(),
        )?;
        Some(FlushRequest::options(
            max_jobs
                .get_untracked()
                .trim()
                .parse()
                .unwrap_or(DEFAULT_FLUSH_MAX_JOBS)
                .clamp(1, MAX_FLUSH_JOBS),
            job_types,
            min_priority
                .get_untracked()
                .trim()
                .parse()
                .unwrap_or(0)
                .clamp(0, 100),
        ))
    };
    let no_types = RwSignal::new(false);
    let preview = Action::new(|r: &FlushRequest| preview_flush(r.clone()));
    // A confirmation binds: the flush sent is the one previewed (its token goes with it, and
    // the server refuses a flush that would send more), and editing a field voids the preview.
    let previewed = RwSignal::new(None::<FlushRequest>);
    let void = move || {
        preview.value().set(None);
        previewed.set(None);
    };

    let on_flush = move |_| {
        let (Some(Ok(p)), Some(asked)) =
            (preview.value().get_untracked(), previewed.get_untracked())
        else {
            return;
        };
        let message = format!(
            "Send {} (about {} tokens, at most {}) now?\n\n{}",
            count_of_jobs(p.jobs_count),
            thousands(p.estimated_tokens),
            money_usd(p.estimated_cost_usd),
            p.message
        );
        if window().confirm_with_message(&message).unwrap_or(false) {
            flush.dispatch(FlushRequest {
                preview_token: Some(p.preview_token),
                ..asked
            });
            void();
        }
    };
    let field = "rounded border border-slate-300 px-2 py-1";
    view! {
        <section class="mt-4 rounded-lg border border-slate-200 bg-white p-4">
            <h2 class="font-semibold">"Flush queued jobs"</h2>
            <div class="mt-3 flex flex-wrap items-end gap-4 text-sm">
                <label class="flex flex-col gap-1">
                    <span class="text-xs text-slate-600">"Max jobs (1–10000)"</span>
                    <input type="number" min="1" max="10000" class=field prop:value=move || max_jobs.get() on:input=move |ev| { void(); max_jobs.set(event_target_value(&ev)); } />
                </label>
                <label class="flex flex-col gap-1">
                    <span class="text-xs text-slate-600">"Min priority (0–100)"</span>
                    <input type="number" min="0" max="100" class=field prop:value=move || min_priority.get() on:input=move |ev| { void(); min_priority.set(event_target_value(&ev)); } />
                </label>
                <label class="flex flex-col gap-1">
                    <span class="text-xs text-slate-600">"Provider"</span>
                    <select class=field data-testid="flush-provider" on:change=move |ev| {
                        void();
                        provider.set(ProviderName::parse(&event_target_value(&ev)));
                    }>
                        <option value="" selected=true>"Every provider (one batch each)"</option>
                        {ProviderName::ALL.iter().map(|p| {
                            let routed = routes.with_value(|routes| routes.iter().filter(|r| r.provider == *p).count());
                            view! { <option value=p.as_str()>{format!("{} only ({})", p.label(), count_of(routed as i64, "job type", "job types"))}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <fieldset class="flex flex-wrap gap-2">
                    <legend class="text-xs text-slate-600">"Only these types (none: all)"</legend>
                    {JobType::ALL.iter().map(|t| {
                        let t = *t;
                        view! {
                            <label class="flex items-center gap-1">
                                <input type="checkbox" on:change=move |_| { void(); types.update(|v| if let Some(i) = v.iter().position(|x| *x == t) { v.remove(i); } else { v.push(t); }); } />
                                <span title=t.as_str()>{t.label()}</span>
                            </label>
                        }
                    }).collect_view()}
                </fieldset>
            </div>
            <div class="mt-3 flex flex-wrap items-center gap-3">
                <button type="button" class="rounded border border-slate-300 px-3 py-1.5 text-sm hover:bg-slate-100" on:click=move |_| {
                    let Some(asked) = request() else {
                        no_types.set(true);
                        return;
                    };
                    no_types.set(false);
                    previewed.set(Some(asked.clone()));
                    preview.dispatch(asked);
                }>
                    "Preview"
                </button>
                <button
                    type="button"
                    class="rounded bg-emerald-700 px-3 py-1.5 text-sm font-medium text-white hover:bg-emerald-800 disabled:opacity-40"
                    disabled=move || previewed.get().is_none() || !matches!(preview.value().get(), Some(Ok(p)) if p.jobs_count > 0)
                    on:click=on_flush
                >
                    "Send batch…"
                </button>
            </div>
            <p role="status" data-testid="flush-preview" class="mt-3 text-sm text-slate-700">
                {move || no_types.get().then(|| {
                    let name = provider.get().map_or("that provider", ProviderName::label);
                    format!("No job type you chose is routed to {name}: nothing to preview. The Access page shows where each job type goes.")
                })}
                {move || preview.value().get().map(|r| match r {
                    Ok(p) => format!("{} {}", p.message, estimated_cost(&p)),
                    Err(e) => explain(&e),
                })}
            </p>
            <p role="status" data-testid="flush-result" class="mt-1 text-sm font-medium text-emerald-800">
                {move || flush.value().get().map(|r| match r { Ok(f) => f.message, Err(e) => explain(&e) })}
            </p>
            <p role="status" data-testid="poll-result" class="mt-1 text-sm text-slate-700">
                {move || poll.value().get().map(|r| match r { Ok(p) => p.message, Err(e) => explain(&e) })}
            </p>
        </section>
        {batches.failure_notice()}
        {move || match batches.value.get() {
            list if list.batches.is_empty() => view! {
                <p class="mt-4 text-slate-600" data-testid="batches-empty">
                    "No batches yet. A flush gathers queued jobs into one batch per provider; the scheduler flushes on its own, or preview and flush above. Each batch appears here until its results are in."
                </p>
            }.into_any(),
            list => {
                // One precision for the list's bills, as for the jobs' costs: cents, or
                // millionths when a batch cost under a cent.
                let precision = Precision::fitting(list.batches.iter().map(|b| nanos(b.billed_cost_usd)));
                view! {
                    <ul class="mt-4 space-y-3" data-testid="batches">
                        {list.batches.into_iter().map(|b| view! { <BatchRow batch=b poll precision /> }).collect_view()}
                    </ul>
                }.into_any()
            }
        }}
    }
}

#[component]
fn BatchRow(
    batch: BatchView,
    poll: Action<String, Result<crate::api::PollResponse, ServerFnError>>,
    precision: Precision,
) -> impl IntoView {
    // Both providers expire a batch after 24 h: the bar shows how much of that has gone.
    let elapsed = (batch.age_seconds as f64 / 86_400.0).clamp(0.0, 1.0);
    // What the provider says of its requests; ours (below) is what became of the jobs.
    let counts = batch.request_counts.as_ref().map(|c| {
        format!(
            "The provider's counts: {} succeeded · {} errored · {} expired · {} canceled",
            c["succeeded"], c["errored"], c["expired"], c["canceled"]
        )
    });
    let outcomes = (!batch.job_outcomes.is_empty()).then(|| {
        batch
            .job_outcomes
            .iter()
            .map(|o| format!("{} {}", thousands(o.jobs), o.status))
            .collect::<Vec<_>>()
            .join(" · ")
    });
    let open = !batch.results_collected && batch.batch_id.is_some() && batch.status != "lost";
    let id = batch.batch_id.clone().unwrap_or_default();
    view! {
        <li class="rounded-lg border border-slate-200 bg-white p-4" data-batch-status=batch.status.clone()>
            <div class="flex flex-wrap items-center gap-3 text-sm">
                {match batch.batch_id.clone() {
                    Some(id) => view! {
                        <a class="min-w-0 break-all text-xs text-emerald-800 underline" href=format!("/jobs?batch_id={id}") rel=crate::page_rel("/jobs") title="Its jobs"><code>{id.clone()}</code></a>
                    }.into_any(),
                    None => view! { <code class="text-xs">{format!("(local {})", batch.local_id)}</code> }.into_any(),
                }}
                {batch.provider.map(|p| view! {
                    <span class="rounded-full bg-indigo-50 px-2 py-0.5 text-xs font-medium text-indigo-900" data-testid="batch-provider">{p.label()}</span>
                })}
                <span class="rounded-full bg-slate-100 px-2 py-0.5 text-xs font-medium">{batch.status.clone()}</span>
                <span>{count_of_jobs(batch.jobs_count)}</span>
                <span class="text-slate-600">{format!("{} tokens estimated", thousands(batch.estimated_tokens))}</span>
                <span class="text-slate-600">{format!("created {}", when(batch.created_at))}</span>
                {batch.stuck.then(|| view! {
                    <span class="rounded-full bg-rose-100 px-2 py-0.5 text-xs font-medium text-rose-800" data-testid="batch-stuck">
                        {format!("stuck: {} failed polls", batch.poll_failures)}
                    </span>
                })}
                {batch.duplicate_of.clone().map(|of| view! {
                    <span class="rounded-full bg-amber-100 px-2 py-0.5 text-xs font-medium text-amber-900" data-testid="batch-duplicate" title=of.clone()>
                        {format!("duplicate of {}", short_id(&of))}
                    </span>
                })}
                {(batch.billed_tokens > 0).then(|| view! {
                    <span class="text-slate-700">{format!("billed {} ({} tokens)", precision.show(nanos(batch.billed_cost_usd)), thousands(batch.billed_tokens))}</span>
                })}
                {(batch.unaccounted_results > 0).then(|| view! {
                    <span class="rounded-full bg-rose-100 px-2 py-0.5 text-xs font-medium text-rose-800">
                        {format!("{} unreadable", count_of(batch.unaccounted_results, "billed result", "billed results"))}
                    </span>
                })}
                {open.then(|| {
                    let id = id.clone();
                    view! { <button type="button" class="ml-auto rounded border border-slate-300 px-2 py-1 hover:bg-slate-100" on:click=move |_| { poll.dispatch(id.clone()); }>"Poll now"</button> }
                })}
            </div>
            <div class="mt-2 h-2 rounded bg-slate-100" role="meter" aria-label="Time used of the 24 h window" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{:.0}", elapsed * 100.0)>
                <div class="h-2 rounded bg-sky-500" style=format!("width: {:.1}%", elapsed * 100.0)></div>
            </div>
            <div class="mt-1 text-xs text-slate-600">
                {format!("{} min of 24 h", batch.age_seconds / 60)}
                {outcomes.map(|o| view! { <span class="ml-3 font-medium text-slate-800" data-testid="batch-outcomes">{format!("Jobs: {o}")}</span> })}
                {counts.map(|c| view! { <span class="ml-3 text-slate-700">{c}</span> })}
                {batch.error.clone().map(|e| view! { <span class="ml-3 text-rose-700" data-testid="batch-error">{format!("Last note: {e}")}</span> })}
            </div>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::estimated_cost;
    use crate::api::FlushPreview;

    fn preview(most: f64, without_cache: f64, with_cache: f64) -> FlushPreview {
        FlushPreview {
            jobs_count: 3,
            estimated_tokens: 30_000,
            estimated_cost_usd: most,
            estimated_cost_without_cache_usd: without_cache,
            estimated_cost_with_cache_usd: with_cache,
            message: String::new(),
            preview_token: String::new(),
        }
    }

    #[test]
    fn a_preview_writes_its_estimates_to_one_precision() {
        assert_eq!(
            estimated_cost(&preview(0.0125, 0.015, 0.004)),
            "Estimated cost at batch prices: at most $0.012500 (every shared prefix written at the 1-hour price); at most $0.015000 without the prompt cache; at most $0.004000 if every cache read happens."
        );
        assert_eq!(
            estimated_cost(&preview(0.25, 0.3, 0.1)),
            "Estimated cost at batch prices: at most $0.25 (every shared prefix written at the 1-hour price); at most $0.30 without the prompt cache; at most $0.10 if every cache read happens."
        );
        // Nothing to cache: the bound alone.
        assert_eq!(
            estimated_cost(&preview(0.0125, 0.0125, 0.0125)),
            "Estimated cost at batch prices: at most $0.01."
        );
    }
}
