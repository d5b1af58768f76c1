use leptos::prelude::*;

use crate::api::validation::MAX_CONTEXT_BYTES;
use crate::api::{ContextDeleted, ContextList, ContextView};
use crate::components::{SignedIn, explain, short_id, thousands, when};
use crate::server_fns::{CreateContext, delete_context, list_contexts, share_context};

/// Shared contexts: large texts many jobs carry, read from the provider's cache.
#[component]
pub fn Contexts() -> impl IntoView {
    let create = ServerAction::<CreateContext>::new();
    let delete = Action::new(|id: &String| {
        let id = id.clone();
        async move { delete_context(id).await }
    });
    let share = Action::new(|(id, shared): &(String, bool)| {
        let (id, shared) = (id.clone(), *shared);
        async move { share_context(id, shared).await }
    });
    let list = Resource::new(
        move || {
            (
                create.version().get(),
                delete.version().get(),
                share.version().get(),
            )
        },
        |_| list_contexts(),
    );
    view! {
        <SignedIn page=move |session| {
            let admin = session.caller.is_admin();
            view! {
                <h1 class="text-xl font-semibold">"Contexts"</h1>
                <p class="mt-1 max-w-3xl text-sm text-slate-600">
                    "A context is a large text many jobs share (the day's market brief, a research report, the risk methodology). "
                    "Jobs that carry one read it from their provider's prompt cache: on Anthropic a cache read costs a tenth of the input price, on OpenAI its cached-input price (a quarter on GPT-4.1), and the batch discount applies on top."
                </p>
                <Upload create />
                <ContextTable list delete share admin />
            }
            .into_any()
        } />
    }
}

#[component]
fn Upload(create: ServerAction<CreateContext>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let file_error = RwSignal::new(None::<String>);
    // A chosen file fills the text (and the name, when empty); the upload is the same form.
    let on_file = move |ev: leptos::ev::Event| {
        use leptos::wasm_bindgen::JsCast;
        let Some(file) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .and_then(|input| input.files())
            .and_then(|files| files.get(0))
        else {
            return;
        };
        if file.size() > MAX_CONTEXT_BYTES as f64 {
            file_error.set(Some(format!(
                "{} is {:.1} MiB; a context holds at most 1 MiB of text.",
                file.name(),
                file.size() / 1_048_576.0
            )));
            return;
        }
        file_error.set(None);
        if name.get_untracked().trim().is_empty() {
            name.set(file.name());
        }
        leptos::task::spawn_local(async move {
            match wasm_bindgen_futures::JsFuture::from(file.text()).await {
                Ok(read) => text.set(read.as_string().unwrap_or_default()),
                Err(_) => file_error.set(Some("The file could not be read as text.".into())),
            }
        });
    };
    let failure = move || refusal(create.value().get());
    let created = move || match create.value().get() {
        Some(Ok(Ok(answer))) => Some(answer.message),
        _ => None,
    };
    let input = "block w-full rounded border border-slate-300 px-3 py-2 focus:border-emerald-500 focus:outline-none focus:ring-2 focus:ring-emerald-200";
    view! {
        <ActionForm action=create attr:class="mt-4 grid max-w-3xl gap-3 rounded-lg border border-slate-200 bg-white p-5" attr:data-testid="context-upload">
            <label class="block">
                <span class="text-sm font-medium">"Name"</span>
                <input name="name" type="text" maxlength="200" required class=input prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
            </label>
            <label class="block">
                <span class="text-sm font-medium">"Text (at most 1 MiB), or a file below"</span>
                <textarea name="text" rows="8" required class=format!("{input} font-mono text-sm") prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
            </label>
            <label class="block text-sm">
                <span class="font-medium">"Load a text file"</span>
                <input type="file" accept=".txt,.md,.csv,.json,text/*" class="mt-1 block text-sm" data-testid="context-file" on:change=on_file />
            </label>
            <p class="text-sm text-slate-600">{move || format!("{} bytes, about {} tokens", thousands(text.read().len() as i64), thousands(estimate(&text.read()) as i64))}</p>
            {move || file_error.get().or_else(failure).map(|e| view! { <p role="alert" class="rounded bg-rose-50 px-3 py-2 text-sm text-rose-700">{e}</p> })}
            {move || created().map(|m| view! { <p role="status" class="rounded bg-emerald-50 px-3 py-2 text-sm text-emerald-800">{m}</p> })}
            <div>
                <button type="submit" class="rounded bg-emerald-700 px-4 py-2 font-medium text-white hover:bg-emerald-800 disabled:opacity-60" disabled=move || create.pending().get()>
                    {move || if create.pending().get() { "Uploading…" } else { "Upload context" }}
                </button>
            </div>
        </ActionForm>
    }
}

/// The server's estimate, for the form's hint: four ASCII characters a token, others one.
fn estimate(text: &str) -> usize {
    let ascii = text.bytes().filter(u8::is_ascii).count();
    ascii.div_ceil(4) + (text.len() - ascii)
}

type DeleteAction = Action<String, Result<Result<ContextDeleted, String>, ServerFnError>>;
type ShareAction = Action<(String, bool), Result<Result<ContextView, String>, ServerFnError>>;

/// Why the last action was refused or failed, if it was.
fn refusal<T>(answer: Option<Result<Result<T, String>, ServerFnError>>) -> Option<String> {
    match answer? {
        Ok(Ok(_)) => None,
        Ok(Err(refused)) => Some(refused),
        Err(e) => Some(explain(&e)),
    }
}

#[component]
fn ContextTable(
    list: Resource<Result<ContextList, ServerFnError>>,
    delete: DeleteAction,
    share: ShareAction,
    admin: bool,
) -> impl IntoView {
    let refused = move || refusal(delete.value().get()).or_else(|| refusal(share.value().get()));
    view! {
        {move || refused().map(|e| view! { <p role="alert" data-testid="context-refused" class="mt-4 rounded bg-amber-50 px-3 py-2 text-amber-900">{e}</p> })}
        <Transition fallback=|| view! { <p class="mt-4 text-slate-600">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(list) if list.contexts.is_empty() => view! {
                        <p class="mt-6 text-slate-600">"No contexts yet. A context is a large input many jobs share (a research note, a universe of tickers): upload it once above, pick it on the New job form, and the provider's cache serves it to every job after the first at a fraction of the input price."</p>
                    }.into_any(),
                    Ok(list) => view! { <Rows contexts=list.contexts delete share admin /> }.into_any(),
                    Err(e) => view! { <p role="alert" class="mt-4 text-rose-700">{explain(&e)}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Rows(
    contexts: Vec<ContextView>,
    delete: DeleteAction,
    share: ShareAction,
    admin: bool,
) -> impl IntoView {
    view! {
        <div class="relative mt-6 overflow-x-auto rounded-lg border border-slate-200 bg-white">
            <table class="w-full text-left text-sm" data-testid="contexts-table">
                <thead class="bg-slate-50 text-xs uppercase text-slate-600">
                    <tr>
                        <th class="px-3 py-2">"Name"</th><th class="px-3 py-2">"Id"</th><th class="px-3 py-2">"Owner"</th>
                        <th class="px-3 py-2 text-right">"Size"</th><th class="px-3 py-2 text-right">"Tokens"</th>
                        <th class="px-3 py-2 text-right">"Jobs waiting / all"</th><th class="px-3 py-2">"Shared"</th>
                        <th class="px-3 py-2">"Created"</th><th class="px-3 py-2"></th>
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100">
                    {contexts.into_iter().map(|c| {
                        let (delete_id, share_id) = (c.context_id.clone(), c.context_id.clone());
                        let shared = c.shared;
                        let on_delete = move |_| {
                            if window().confirm_with_message("Delete this context? Jobs waiting for it keep it; finished jobs keep naming it.").unwrap_or(false) {
                                delete.dispatch(delete_id.clone());
                            }
                        };
                        view! {
                            <tr data-testid="context-row">
                                <td class="px-3 py-2 font-medium">{c.name}</td>
                                <td class="px-3 py-2"><code class="text-xs" title=c.context_id.clone()>{short_id(&c.context_id)}</code></td>
                                <td class="px-3 py-2">{c.owner}</td>
                                <td class="px-3 py-2 text-right tabular-nums">{size(c.bytes)}</td>
                                <td class="px-3 py-2 text-right tabular-nums">{thousands(c.tokens_estimate)}</td>
                                <td class="px-3 py-2 text-right tabular-nums">{format!("{} / {}", c.jobs_waiting, c.jobs_total)}</td>
                                <td class="px-3 py-2">
                                    {if admin {
                                        view! {
                                            <button type="button" class="rounded border border-slate-300 px-2 py-0.5 text-xs hover:bg-slate-50" on:click=move |_| { share.dispatch((share_id.clone(), !shared)); }>
                                                {if shared { "Shared: stop" } else { "Private: share" }}
                                            </button>
                                        }.into_any()
                                    } else {
                                        view! { <span>{if shared { "with everyone" } else { "private" }}</span> }.into_any()
                                    }}
                                </td>
                                <td class="px-3 py-2 text-xs text-slate-600">{when(c.created_at)}</td>
                                <td class="px-3 py-2 text-right">
                                    <button type="button" class="rounded border border-rose-300 px-2 py-0.5 text-xs text-rose-700 hover:bg-rose-50" on:click=on_delete>"Delete"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

fn size(bytes: i64) -> String {
    match bytes {
        b if b >= 1_048_576 => format!("{:.1} MiB", b as f64 / 1_048_576.0),
        b if b >= 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
