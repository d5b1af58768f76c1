use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::api::Session;
use crate::server_fns::SignOut;

/// The frame of every signed-in page: who is signed in, navigation, sign-out, and a notice
/// when the built-in emulator stands in for the providers.
#[component]
pub fn Layout(session: Session, children: Children) -> impl IntoView {
    let sign_out = ServerAction::<SignOut>::new();
    let caller = session.caller.clone();
    let path = use_location().pathname;
    // The page you are on is marked, for eyes and for screen readers (`aria-current`).
    let link = move |href: &'static str, label: &'static str| {
        // A job's own page is part of Jobs; New job is its own entry.
        let current = move || {
            path.with(|p| {
                p == href || (href == "/jobs" && p.starts_with("/jobs/") && p != "/jobs/new")
            })
        };
        view! {
            <a
                href=href
                rel=crate::page_rel(href)
                aria-current=move || current().then_some("page")
                class=move || if current() {
                    "rounded bg-emerald-50 px-2 py-1 font-medium text-emerald-900 ring-1 ring-emerald-200"
                } else {
                    "rounded px-2 py-1 text-slate-600 hover:bg-slate-100 hover:text-slate-900"
                }
            >{label}</a>
        }
    };
    view! {
        <a href="#main" class="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-10 focus:rounded focus:bg-white focus:px-3 focus:py-2 focus:text-emerald-900 focus:ring-2 focus:ring-emerald-600">
            "Skip to content"
        </a>
        {session.emulator.then(|| view! {
            <div data-testid="emulator-notice" class="bg-amber-100 px-4 py-1.5 text-center text-sm text-amber-900">
                "Demo mode: the built-in emulator stands in for Anthropic and OpenAI. Results are generated, not real answers."
            </div>
        })}
        <header class="border-b border-slate-200 bg-white">
            <div class="mx-auto flex max-w-6xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3">
                <a href="/jobs" rel=crate::page_rel("/jobs") class="font-semibold tracking-tight text-slate-900">
                    "Bitcain "<span class="text-emerald-700">"AI Batch"</span>
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
                        <span class="ml-1 rounded bg-slate-100 px-1.5 py-0.5 text-xs uppercase text-slate-700">{caller.role.as_str()}</span>
                    </span>
                    <ActionForm action=sign_out>
                        <button type="submit" class="rounded border border-slate-300 px-2 py-1 text-slate-700 hover:bg-slate-100">
                            "Sign out"
                        </button>
                    </ActionForm>
                </div>
            </div>
        </header>
        <main id="main" tabindex="-1" class="mx-auto max-w-6xl px-4 py-6">{children()}</main>
    }
}
