use leptos::prelude::*;

use super::Precision;
use crate::api::BudgetView;
use crate::server_fns::budget;

pub type BudgetResource = Resource<Result<BudgetView, ServerFnError>>;

/// The signed-in user's budget, read again whenever `refresh` moves (after an enqueue, say).
/// Made by the route, like every resource.
pub fn budget_of(refresh: Signal<usize>) -> BudgetResource {
    Resource::new(move || refresh.get(), |_| budget())
}

/// The signed-in user's budget this month: spent, what unbilled jobs may cost, the cap.
#[component]
pub fn BudgetSummary(budget: BudgetResource) -> impl IntoView {
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                budget.await.ok().map(|b| view! { <BudgetBar budget=b /> })
            })}
        </Transition>
    }
}

/// One budget as a bar: billed (solid), may still be billed (light), against the cap.
#[component]
pub fn BudgetBar(budget: BudgetView) -> impl IntoView {
    let owed = budget.pending_bound_nanos;
    // One precision for the line; what is left is the difference of the amounts as shown.
    let precision = Precision::fitting(
        [budget.spent_nanos, owed]
            .into_iter()
            .chain(budget.monthly_cap_nanos),
    );
    let money = move |nanos: i64| precision.show(nanos);
    let Some(cap) = budget.monthly_cap_nanos else {
        return view! {
            <p class="mt-3 text-sm text-slate-600" data-testid="budget">
                {format!(
                    "No monthly cap. Spent {} in {}; pending jobs may cost up to {}.",
                    money(budget.spent_nanos), budget.month, money(owed),
                )}
            </p>
        }
        .into_any();
    };
    let share = |part: i64| {
        if cap <= 0 {
            100.0
        } else {
            (part as f64 * 100.0 / cap as f64).clamp(0.0, 100.0)
        }
    };
    let spent_pct = share(budget.spent_nanos);
    let owed_pct = share(owed).min(100.0 - spent_pct);
    let remaining =
        precision.round(cap) - precision.round(budget.spent_nanos) - precision.round(owed);
    let over = budget.remaining_nanos.unwrap_or_default() < 0 || budget.spent_nanos >= cap;
    view! {
        <section class="mt-3 rounded-lg border border-slate-200 bg-white p-3 text-sm" data-testid="budget">
            <div class="flex flex-wrap justify-between gap-2">
                <span class="font-medium">{format!("Budget for {}", budget.month)}</span>
                <span class="tabular-nums">
                    {format!("{} spent of {} cap · pending jobs may cost up to {} · ", money(budget.spent_nanos), money(cap), money(owed))}
                    <strong class=if over { "text-rose-700" } else { "text-emerald-700" }>
                        {if remaining < 0 { format!("{} over", money(-remaining)) } else { format!("{} left", money(remaining)) }}
                    </strong>
                </span>
            </div>
            <div class="mt-2 flex h-2 overflow-hidden rounded bg-slate-100" role="img"
                aria-label=format!("{spent_pct:.0}% of the cap spent, {owed_pct:.0}% more owed by pending jobs")>
                <div class=if over { "bg-rose-500" } else { "bg-emerald-600" } style=format!("width:{spent_pct:.2}%")></div>
                <div class="bg-amber-300" style=format!("width:{owed_pct:.2}%")></div>
            </div>
            {over.then(|| view! {
                <p class="mt-2 text-rose-700">"Over budget: new jobs that could cost more are refused, and flushes leave your pending jobs waiting until an admin raises the cap or the month ends."</p>
            })}
        </section>
    }
    .into_any()
}
