use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::components::explain;
use crate::server_fns::SignIn as SignInAction;

/// Sign in with a bearer token; the server answers with an HttpOnly session cookie.
#[component]
pub fn SignIn() -> impl IntoView {
    let sign_in = ServerAction::<SignInAction>::new();
    let ended = use_query_map().with_untracked(|q| q.get("ended").is_some());
    let error = move || match sign_in.value().get()? {
        Ok(refusal) => refusal,
        Err(e) => Some(explain(&e)),
    };
    view! {
        <main class="mx-auto flex min-h-screen max-w-md flex-col justify-center px-4">
            <h1 class="text-2xl font-semibold tracking-tight">
                "Bitcain "<span class="text-emerald-700">"AI Batch"</span>
            </h1>
            <p class="mt-1 text-sm text-slate-600">
                "AI jobs that can wait, sent through Anthropic's and OpenAI's batch APIs at half the price."
            </p>
            {ended.then(|| view! {
                <p role="status" data-testid="session-ended" class="mt-6 rounded bg-amber-50 px-3 py-2 text-sm text-amber-900">
                    "Your session has ended: it expired, or its access token was revoked. Sign in again with a valid token."
                </p>
            })}
            <ActionForm action=sign_in attr:class="mt-8 space-y-4 rounded-lg border border-slate-200 bg-white p-6 shadow-sm">
                <label class="block text-sm font-medium text-slate-700" for="token">"Access token"</label>
                <input
                    id="token"
                    name="token"
                    type="password"
                    required
                    autocomplete="off"
                    placeholder="aib_…"
                    class="block w-full rounded border border-slate-300 px-3 py-2 font-mono text-sm focus:border-emerald-500 focus:outline-none focus:ring-2 focus:ring-emerald-200"
                />
                <p class="text-xs text-slate-600">
                    "Ask an admin for a token: they make them on the Access page. Programs use the same token with the REST API."
                </p>
                <Show when=move || error().is_some()>
                    <p role="alert" class="rounded bg-rose-50 px-3 py-2 text-sm text-rose-700">{error}</p>
                </Show>
                <button
                    type="submit"
                    class="w-full rounded bg-emerald-700 px-3 py-2 font-medium text-white hover:bg-emerald-800 disabled:opacity-60"
                    disabled=move || sign_in.pending().get()
                >
                    {move || if sign_in.pending().get() { "Signing in…" } else { "Sign in" }}
                </button>
            </ActionForm>
        </main>
    }
}
