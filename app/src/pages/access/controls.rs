//! The Access page's island: new tokens, budgets, users and their tokens, the audit log (its
//! own bundle, `access`).
// `#[island]` leaks each island's view state on purpose: it lives as long as the page.
#![allow(clippy::mem_forget)]

use leptos::prelude::*;

use super::audit::AuditLog;
use super::budgets::Budgets;
use crate::api::{AuditPage, BudgetView, Role, UserView};
use crate::components::{explain, kept_fresh, when};
use crate::server_fns::{self, create_token, new_webhook_secret, revoke_token};

/// `users`, `budgets` and `audit` as the server read them for the page, each read again after
/// an action here changes it; `children` (the prices and the routing) stay the server's HTML.
#[cfg_attr(any(feature = "ssr", feature = "access-islands"), island)]
#[cfg_attr(not(any(feature = "ssr", feature = "access-islands")), component)]
pub fn AccessControls(
    users: Vec<UserView>,
    budgets: Vec<BudgetView>,
    audit: AuditPage,
    children: Children,
) -> impl IntoView {
    let create = Action::new(|(user, role): &(String, Role)| create_token(user.clone(), *role));
    let revoke = Action::new(|id: &String| revoke_token(id.clone()));
    let set_budget = Action::new(|(user, cap): &(String, Option<f64>)| {
        server_fns::set_budget(user.clone(), *cap)
    });
    let users = kept_fresh(
        users,
        move || (create.version().get(), revoke.version().get()),
        |_| server_fns::users(),
    );
    let budgets = kept_fresh(
        budgets,
        move || set_budget.version().get(),
        |_| server_fns::budgets(),
    );
    let changed = Signal::derive(move || {
        create.version().get() + revoke.version().get() + set_budget.version().get()
    });
    let names = Signal::derive(move || {
        users
            .value
            .with(|u| u.iter().map(|u| u.name.clone()).collect())
    });
    let user = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Trader);
    // "Copied" once the clipboard took it; the browser may refuse (no permission, no HTTPS).
    let copied = RwSignal::new(None::<bool>);
    let copy = move |token: String| {
        let promise = window().navigator().clipboard().write_text(&token);
        leptos::task::spawn_local(async move {
            let done = wasm_bindgen_futures::JsFuture::from(promise).await.is_ok();
            copied.set(Some(done));
        });
    };
    view! {
        <section class="mt-4 rounded-lg border border-slate-200 bg-white p-4">
            <h2 class="font-semibold">"New token"</h2>
            <form class="mt-3 flex flex-wrap items-end gap-3 text-sm" on:submit=move |ev| {
                ev.prevent_default();
                create.dispatch((user.get_untracked(), role.get_untracked()));
            }>
                <label class="flex flex-col gap-1">
                    <span class="text-xs text-slate-600">"User (created if new)"</span>
                    <input required maxlength="64" class="rounded border border-slate-300 px-2 py-1" prop:value=move || user.get() on:input=move |ev| user.set(event_target_value(&ev)) />
                </label>
                <label class="flex flex-col gap-1">
                    <span class="text-xs text-slate-600">"Role"</span>
                    <select class="rounded border border-slate-300 px-2 py-1" on:change=move |ev| role.set(Role::parse(&event_target_value(&ev)).unwrap_or(Role::Trader))>
                        <option value="trader">"trader"</option>
                        <option value="admin">"admin"</option>
                    </select>
                </label>
                <button type="submit" class="rounded bg-emerald-700 px-3 py-1.5 font-medium text-white">"Create token"</button>
            </form>
            {move || create.value().get().map(|r| match r {
                Ok(issued) => {
                    let token = issued.token.clone();
                    view! {
                        <div class="mt-3 rounded bg-emerald-50 p-3 text-sm" data-testid="new-token">
                            <p>{format!("Token for {} ({}). It is shown only now:", issued.user, issued.role)}</p>
                            <div class="mt-2 flex items-center gap-2">
                                <code class="break-all rounded bg-white px-2 py-1">{issued.token.clone()}</code>
                                <button type="button" class="rounded border border-slate-300 px-2 py-1" on:click=move |_| copy(token.clone())>"Copy"</button>
                                <span role="status" data-testid="copied" class="text-emerald-800">
                                    {move || copied.get().map(|done| if done { "Copied" } else { "The browser refused: select the token and copy it by hand." })}
                                </span>
                            </div>
                        </div>
                    }.into_any()
                }
                Err(e) => view! { <p role="alert" class="mt-3 text-sm text-rose-700">{explain(&e)}</p> }.into_any(),
            })}
        </section>
        <Budgets set=set_budget list=budgets users=names />
        <section class="mt-6 rounded-lg border border-slate-200 bg-white p-4">
            <h2 class="font-semibold">"Users and tokens"</h2>
            {users.failure_notice()}
            <ul class="mt-2 divide-y divide-slate-100">
                {move || users.value.get().into_iter().map(|u| view! { <UserRow user=u revoke /> }).collect_view()}
            </ul>
        </section>
        {children()}
        <AuditLog first=audit changed />
    }
}

#[component]
fn UserRow(user: UserView, revoke: Action<String, Result<(), ServerFnError>>) -> impl IntoView {
    let secret = Action::new(|user_id: &String| new_webhook_secret(user_id.clone()));
    let user_id = user.id.clone();
    view! {
        <li class="py-2 text-sm" data-testid="user-row">
            <div class="flex flex-wrap items-center gap-2">
                <strong>{user.name.clone()}</strong><span class="text-xs uppercase text-slate-600">{user.role.as_str()}</span>
                <button type="button" class="ml-auto text-xs text-emerald-700 underline" on:click=move |_| {
                    if window().confirm_with_message("Make a new webhook signing secret for this user? Webhooks from now on are signed with it; the old one stops matching.").unwrap_or(false) {
                        secret.dispatch(user_id.clone());
                    }
                }>"New webhook secret"</button>
            </div>
            {move || secret.value().get().map(|r| match r {
                Ok(s) => view! {
                    <p class="mt-1 rounded bg-emerald-50 px-2 py-1 text-xs" data-testid="webhook-secret">
                        "Webhook secret, shown only now: "<code class="break-all">{s.secret}</code>
                    </p>
                }.into_any(),
                Err(e) => view! { <p role="alert" class="mt-1 text-xs text-rose-700">{explain(&e)}</p> }.into_any(),
            })}
            <ul class="mt-1 space-y-1">
                {user.tokens.into_iter().map(|t| {
                    let id = t.id.clone();
                    let live = t.revoked_at.is_none();
                    view! {
                        <li class="flex flex-wrap items-center gap-2 text-xs text-slate-600">
                            <code>{format!("aib_{}_…", t.id)}</code>
                            <span>{format!("created {}", when(t.created_at))}</span>
                            {t.revoked_at.map(|at| view! { <span class="text-rose-700">{format!("revoked {}", when(at))}</span> })}
                            {live.then(|| view! {
                                <button type="button" class="text-rose-700 underline" on:click=move |_| {
                                    if window().confirm_with_message("Revoke this token? Programs using it will be refused.").unwrap_or(false) {
                                        revoke.dispatch(id.clone());
                                    }
                                }>"Revoke"</button>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </li>
    }
}
