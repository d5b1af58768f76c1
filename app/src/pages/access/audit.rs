//! The audit log of admin actions, filtered by action and admin.

use leptos::prelude::*;

use crate::api::{AuditAction, AuditPage, AuditQuery};
use crate::components::{kept_fresh, when};
use crate::server_fns::audit_log;

/// The first page of the log is `first`, as the server read it for the page; the log is read
/// again as the filters change and when `changed` moves (an action on the page may have added
/// an entry).
#[component]
pub fn AuditLog(first: AuditPage, changed: Signal<usize>) -> impl IntoView {
    let action = RwSignal::new(None::<AuditAction>);
    let actor = RwSignal::new(String::new());
    let before = RwSignal::new(None::<i64>);
    let data = kept_fresh(
        first,
        move || (action.get(), actor.get(), before.get(), changed.get()),
        |(action, actor, before, _)| audit_log(AuditQuery::page(action, &actor, before)),
    );
    let input = "rounded border border-slate-300 px-2 py-1";
    view! {
        <section class="mt-6 rounded-lg border border-slate-200 bg-white p-4" data-testid="audit-log">
            <h2 class="font-semibold">"Audit log"</h2>
            <div class="mt-2 flex flex-wrap items-end gap-3 text-sm">
                <label class="flex flex-col gap-1">
                    <span class="text-xs text-slate-600">"Action"</span>
                    <select name="audit-action" class=input on:change=move |ev| {
                        before.set(None);
                        action.set(AuditAction::parse(&event_target_value(&ev)));
                    }>
                        <option value="">"All"</option>
                        {AuditAction::ALL.iter().map(|a| view! { <option value=a.as_str()>{a.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                <label class="flex flex-col gap-1">
                    <span class="text-xs text-slate-600">"Admin"</span>
                    <input name="audit-actor" class=input placeholder="user name" on:change=move |ev| {
                        before.set(None);
                        actor.set(event_target_value(&ev));
                    } />
                </label>
            </div>
            {data.failure_notice()}
            {move || match data.value.get() {
                page if page.entries.is_empty() => view! { <p class="mt-3 text-sm text-slate-600">"No entries."</p> }.into_any(),
                page => view! {
                    // Scrolls sideways on a phone; focusable, so a keyboard can scroll it.
                    <div class="relative mt-3 overflow-x-auto" tabindex="0" role="region" aria-label="Audit log entries">
                    <table class="w-full text-left text-sm">
                        <thead class="text-xs uppercase text-slate-600"><tr><th>"When"</th><th>"Admin"</th><th>"Action"</th><th>"On"</th><th>"Detail"</th></tr></thead>
                        <tbody class="divide-y divide-slate-100">
                            {page.entries.into_iter().map(|e| view! {
                                <tr data-testid="audit-row">
                                    <td class="whitespace-nowrap pr-3">{when(e.at)}</td>
                                    <td class="pr-3">{e.actor}</td>
                                    <td class="pr-3"><code>{e.action.as_str()}</code></td>
                                    <td class="break-all pr-3">{e.target.unwrap_or_default()}</td>
                                    <td class="text-slate-600">{e.detail.unwrap_or_default()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                    {page.next_before.map(|id| view! {
                        <button type="button" class="mt-2 text-sm text-emerald-700 underline" on:click=move |_| before.set(Some(id))>"Older entries"</button>
                    })}
                }.into_any(),
            }}
        </section>
    }
}
