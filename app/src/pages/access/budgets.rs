//! Admins set each user's monthly spend cap and see where every capped user stands.

use leptos::prelude::*;

use crate::api::BudgetView;
use crate::components::{BudgetBar, Fresh, explain};

pub type SetBudget = Action<(String, Option<f64>), Result<BudgetView, ServerFnError>>;

/// `list`: every capped user's budget, read again after each change; `users`: whom a cap can
/// be set for.
#[component]
pub fn Budgets(
    set: SetBudget,
    list: Fresh<Vec<BudgetView>>,
    users: Signal<Vec<String>>,
) -> impl IntoView {
    let user = RwSignal::new(String::new());
    let cap = RwSignal::new(String::new());
    let input = "rounded border border-slate-300 px-2 py-1";
    view! {
        <section class="mt-6 rounded-lg border border-slate-200 bg-white p-4" data-testid="budgets">
            <h2 class="font-semibold">"Monthly budgets"</h2>
            <p class="text-sm text-slate-600">"A cap per user, in USD per UTC month. Enqueues that could pass it are refused; flushes leave the user's jobs pending once it is reached. Costs already recorded never change."</p>
            <form class="mt-3 flex flex-wrap items-end gap-3 text-sm" on:submit=move |ev| {
                ev.prevent_default();
                let usd = cap.get_untracked().trim().parse::<f64>().ok();
                set.dispatch((user.get_untracked(), usd));
            }>
                <label class="flex flex-col gap-1">
                    <span class="text-xs text-slate-600">"User"</span>
                    <select required name="budget-user" class=input on:change=move |ev| user.set(event_target_value(&ev))>
                        <option value="">"Choose…"</option>
                        {move || users.get().into_iter().map(|name| view! { <option value=name.clone() selected=user.get_untracked() == name>{name.clone()}</option> }).collect_view()}
                    </select>
                </label>
                <label class="flex flex-col gap-1">
                    <span class="text-xs text-slate-600">"Cap, USD per month (empty: no cap)"</span>
                    <input name="budget-cap" type="number" min="0" step="0.01" class=input prop:value=move || cap.get() on:input=move |ev| cap.set(event_target_value(&ev)) />
                </label>
                <button type="submit" class="rounded bg-emerald-700 px-3 py-1.5 font-medium text-white">"Set budget"</button>
            </form>
            {move || set.value().get().map(|r| match r {
                Ok(b) => view! { <p class="mt-2 text-sm text-emerald-700" role="status">{format!("Budget of {} saved.", b.user)}</p> }.into_any(),
                Err(e) => view! { <p role="alert" class="mt-2 text-sm text-rose-700">{explain(&e)}</p> }.into_any(),
            })}
            {list.failure_notice()}
            {move || match list.value.get() {
                list if list.is_empty() => view! { <p class="mt-3 text-sm text-slate-600">"No user has a cap."</p> }.into_any(),
                list => view! {
                    <ul class="mt-3 space-y-3">
                        {list.into_iter().map(|b| {
                            let name = b.user.clone();
                            view! {
                                <li data-testid="budget-row">
                                    <div class="flex items-center gap-2 text-sm">
                                        <strong>{b.user.clone()}</strong>
                                        <button type="button" class="ml-auto text-xs text-rose-700 underline" on:click=move |_| {
                                            set.dispatch((name.clone(), None));
                                        }>"Remove cap"</button>
                                    </div>
                                    <BudgetBar budget=b />
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            }}
        </section>
    }
}
