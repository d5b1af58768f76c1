use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::api::examples::example_json;
use crate::api::validation::{DEFAULT_PRIORITY, FieldError};
use crate::api::{ContextList, JobType};
use crate::components::{
    BudgetResource, BudgetSummary, PayloadFields, SignedIn, budget_of, explain, thousands, when,
};
use crate::server_fns::{EnqueueJob, list_contexts};

/// The enqueue form: the same checks as the API, with each field's error beside it.
#[component]
pub fn NewJob() -> impl IntoView {
    // Resources belong to the route, not to the session check's render.
    let enqueue = ServerAction::<EnqueueJob>::new();
    let budget = budget_of(Signal::derive(move || enqueue.version().get()));
    let contexts = Resource::new(|| (), |_| list_contexts());
    view! { <SignedIn page=move |_| view! { <EnqueueForm enqueue budget contexts /> }.into_any() /> }
}

fn pretty_example(job_type: JobType) -> String {
    example_json(job_type).to_string()
}

#[component]
fn EnqueueForm(
    enqueue: ServerAction<EnqueueJob>,
    budget: BudgetResource,
    contexts: Resource<Result<ContextList, ServerFnError>>,
) -> impl IntoView {
    let payload = RwSignal::new(pretty_example(JobType::ALL[0]));
    let (job_type, set_job_type) = signal(JobType::ALL[0]);
    let run_after = RwSignal::new(String::new());
    let errors = move || match enqueue.value().get() {
        Some(Ok(Err(errors))) => errors,
        _ => Vec::new(),
    };
    let error_for = move |field: &'static str| {
        move || {
            errors()
                .into_iter()
                .filter(|e: &FieldError| e.field() == Some(field))
                .map(|e| e.msg)
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    // Failures, and refusals of the whole request (no field to put them beside).
    let failure = move || match enqueue.value().get() {
        Some(Err(e)) => Some(explain(&e)),
        Some(Ok(Err(errors))) => {
            let whole: Vec<String> = errors
                .into_iter()
                .filter(|e| e.field().is_none())
                .map(|e| e.msg)
                .collect();
            (!whole.is_empty()).then(|| whole.join("; "))
        }
        _ => None,
    };
    // After a successful enqueue, show the new job.
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(Ok(answer))) = enqueue.value().get() {
            navigate(&format!("/jobs/{}", answer.job.id), Default::default());
        }
    });
    let input = "block w-full rounded border border-slate-300 px-3 py-2 focus:border-emerald-500 focus:outline-none focus:ring-2 focus:ring-emerald-200";
    let error_text = "mt-1 text-sm text-rose-700";
    view! {
        <h1 class="text-xl font-semibold">"New job"</h1>
        <p class="mt-1 max-w-3xl text-sm text-slate-600">
            "The job waits for the next batch and costs half the standard price; results come back within 24 hours, usually much sooner."
        </p>
        <div class="max-w-3xl"><BudgetSummary budget /></div>
        <ActionForm action=enqueue attr:class="mt-4 grid max-w-3xl gap-4 rounded-lg border border-slate-200 bg-white p-5">
            <label class="block">
                <span class="text-sm font-medium">"Job type"</span>
                <select
                    name="job_type"
                    class=input
                    on:change=move |ev| {
                        if let Some(chosen) = JobType::parse(&event_target_value(&ev)) {
                            set_job_type.set(chosen);
                            payload.set(pretty_example(chosen));
                        }
                    }
                >
                    {JobType::ALL.iter().map(|t| view! { <option value=t.as_str()>{t.label()}</option> }).collect_view()}
                </select>
                <p class="mt-1 text-sm text-slate-600" data-testid="job-type-description">{move || job_type.get().describe()}</p>
                <p class=error_text data-error="job_type">{error_for("job_type")}</p>
            </label>
            <label class="block">
                <span class="text-sm font-medium">"Shared context (optional)"</span>
                <select name="context_id" class=input data-testid="context-picker">
                    <option value="">"None"</option>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            contexts.await.map(|list| list.contexts).unwrap_or_default().into_iter().map(|c| view! {
                                <option value=c.context_id.clone()>{format!("{} (about {} tokens)", c.name, thousands(c.tokens_estimate))}</option>
                            }).collect_view()
                        })}
                    </Transition>
                </select>
                <p class="mt-1 text-sm text-slate-600">"Sent before the payload and read from the provider's cache by the jobs that share it. "<a class="text-emerald-700 underline" href="/contexts">"Manage contexts"</a></p>
                <p class=error_text data-error="context_id">{error_for("context_id")}</p>
            </label>
            <PayloadFields job_type payload />
            <label class="block">
                <span class="text-sm font-medium">"Payload (JSON object)"</span>
                <span class="ml-2 text-xs text-slate-600">"the advanced view: what is sent, kept in step with the fields above"</span>
                <textarea name="payload" rows="14" class=format!("{input} font-mono text-sm") prop:value=move || payload.get() on:input=move |ev| payload.set(event_target_value(&ev))>
                    {payload.get_untracked()}
                </textarea>
                <p class=error_text data-error="payload">{error_for("payload")}</p>
            </label>
            <div class="grid gap-4 sm:grid-cols-3">
                <label class="block">
                    <span class="text-sm font-medium">"Priority (0–100)"</span>
                    <input name="priority" type="number" value=DEFAULT_PRIORITY.to_string() class=input />
                    <p class=error_text data-error="priority">{error_for("priority")}</p>
                </label>
                <label class="block">
                    <span class="text-sm font-medium">"Run after (your local time, optional)"</span>
                    <input name="run_after" type="datetime-local" class=input on:input=move |ev| run_after.set(event_target_value(&ev)) />
                    <input type="hidden" name="run_after_offset" prop:value=move || local_instant(&run_after.get()).map(|(_, offset)| offset.to_string()).unwrap_or_default() />
                    <p class="mt-1 text-xs text-slate-600" data-testid="run-after-utc">
                        {move || match local_instant(&run_after.get()) {
                            Some((at, _)) => format!("= {}; the job waits for the first flush after it.", when(at)),
                            None => "Empty: it goes in the next flush. (Without JavaScript the time is read as UTC.)".to_string(),
                        }}
                    </p>
                    <p class=error_text data-error="run_after">{error_for("run_after")}</p>
                </label>
                <label class="block">
                    <span class="text-sm font-medium">"Idempotency key (optional)"</span>
                    <input name="idempotency_key" type="text" maxlength="255" class=input />
                    <p class=error_text data-error="idempotency_key">{error_for("idempotency_key")}</p>
                </label>
            </div>
            <Show when=move || failure().is_some()>
                <p role="alert" class="rounded bg-rose-50 px-3 py-2 text-sm text-rose-700">{failure}</p>
            </Show>
            <div>
                <button type="submit" class="rounded bg-emerald-700 px-4 py-2 font-medium text-white hover:bg-emerald-800 disabled:opacity-60" disabled=move || enqueue.pending().get()>
                    {move || if enqueue.pending().get() { "Queueing…" } else { "Queue job" }}
                </button>
            </div>
        </ActionForm>
    }
}

/// A `datetime-local` value as the browser reads it, in its own time zone: the instant, and
/// the zone's offset there in minutes (`getTimezoneOffset`, positive west of UTC). `None` when
/// empty or not a time, and always on the server, which does not know the reader's zone.
fn local_instant(value: &str) -> Option<(chrono::DateTime<chrono::Utc>, i32)> {
    #[cfg(feature = "hydrate")]
    {
        if value.trim().is_empty() {
            return None;
        }
        let date = js_sys::Date::new(&js_sys::JsString::from(value.trim()).into());
        let millis = date.get_time();
        if !millis.is_finite() {
            return None;
        }
        let at = chrono::DateTime::from_timestamp_millis(millis as i64)?;
        Some((at, date.get_timezone_offset() as i32))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = value;
        None
    }
}
