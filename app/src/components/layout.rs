use leptos::prelude::*;

use crate::api::Session;
use crate::server_fns::SignOut;

/// The frame of every signed-in page: who is signed in, navigation, sign-out, and a notice
/// when the built-in emulator stands in for the providers.
#[component]
pub fn Layout(session: Session, children: Children) -> impl IntoView {
    let sign_out = ServerAction::<SignOut>::new();
    let caller = session.caller.clone();
    let link = |href: &'static str, label: &'static str| {
        view! { <a href=href class="rounded px-2 py-1 text-slate-600 hover:bg-slate-100 hover:text-slate-900">{label}</a> }
    };
    view! {
        {session.emulator.then(|| view! {
            <div data-testid="emulator-notice" class="bg-amber-100 px-4 py-1.5 text-center text-sm text-amber-900">
                "Demo mode: the built-in emulator stands in for Anthropic and OpenAI. Results are generated, not real answers."
            </div>
        })}
        <header class="border-b border-slate-200 bg-white">
            <div class="mx-auto flex max-w-6xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3">
                <a href="/jobs" class="font-semibold tracking-tight text-slate-900">
                    "Bitcain "<span class="text-emerald-600">"AI Batch"</span>
                </a>
                <nav class="flex flex-wrap gap-1 text-sm" aria-label="Main">
                    {crate::NAVIGATION
                        .iter()
                        .filter(|(_, _, admin_only)| !admin_only || caller.is_admin())
                        .map(|(href, label, _)| link(href, label))
                        .collect_view()}
                </nav>
                <div class="ml-auto flex items-center gap-3 text-sm">
                    <span data-testid="signed-in-as" class="text-slate-600">
                        {caller.name.clone()}
                        <span class="ml-1 rounded bg-slate-100 px-1.5 py-0.5 text-xs uppercase text-slate-500">{caller.role.as_str()}</span>
                    </span>
                    <ActionForm action=sign_out>
                        <button type="submit" class="rounded border border-slate-300 px-2 py-1 text-slate-700 hover:bg-slate-100">
                            "Sign out"
                        </button>
                    </ActionForm>
                </div>
            </div>
        </header>
        <main class="mx-auto max-w-6xl px-4 py-6">{children()}</main>
    }
}
