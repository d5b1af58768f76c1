use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// Where the sign-in form posts (the page's own path): the server answers with an HttpOnly
/// session cookie and the jobs page, or this page again with [`SignInRefusal`].
pub const SIGN_IN_PATH: &str = "/sign-in";

/// Why a posted sign-in was refused, for the page the server renders in answer.
#[derive(Clone, Debug)]
pub struct SignInRefusal(pub String);

/// Sign in with a bearer token. A form and a notice are all the page has, so it is plain HTML
/// and loads no WASM (`app::shell`): it works the moment it is shown, script or not.
#[component]
pub fn SignIn() -> impl IntoView {
    let ended = use_query_map().with_untracked(|q| q.get("ended").is_some());
    let refusal = use_context::<SignInRefusal>().map(|SignInRefusal(why)| why);
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
            <form method="post" action=SIGN_IN_PATH class="mt-8 space-y-4 rounded-lg border border-slate-200 bg-white p-6 shadow-sm">
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
                {refusal.map(|why| view! {
                    <p role="alert" class="rounded bg-rose-50 px-3 py-2 text-sm text-rose-700">{why}</p>
                })}
                <button
                    type="submit"
                    class="w-full rounded bg-emerald-700 px-3 py-2 font-medium text-white hover:bg-emerald-800"
                >
                    "Sign in"
                </button>
            </form>
        </main>
    }
}
