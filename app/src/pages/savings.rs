use std::collections::BTreeMap;

use leptos::prelude::*;

use crate::api::{DailyCost, Stats};
use crate::components::{BudgetResource, BudgetSummary, SignedIn, budget_of, money, money_usd};
use crate::server_fns::savings;

const DAYS: i64 = 30;

/// What the batches cost, and what the standard API would have cost.
#[component]
pub fn Savings() -> impl IntoView {
    let data = Resource::new(|| (), |_| savings(DAYS));
    let budget = budget_of(Signal::stored(0));
    view! { <SignedIn page=move |session| view! { <SavingsPage per_user=session.caller.is_admin() data budget /> }.into_any() /> }
}

#[component]
fn SavingsPage(
    per_user: bool,
    data: Resource<Result<(Stats, Vec<DailyCost>), ServerFnError>>,
    budget: BudgetResource,
) -> impl IntoView {
    view! {
        <div class="flex flex-wrap items-end justify-between gap-4">
            <h1 class="text-xl font-semibold">"Savings"</h1>
            <a href=format!("/exports/daily.csv?days={DAYS}") download="daily-costs.csv" data-testid="export-daily-csv" class="text-sm text-emerald-700 underline hover:text-emerald-900">"Download daily costs (CSV)"</a>
        </div>
        <BudgetSummary budget />
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((stats, daily)) => view! { <Cards stats /> <Chart daily=daily.clone() /> <Breakdown daily per_user /> }.into_any(),
                    Err(e) => view! { <p role="alert" class="mt-4 text-rose-700">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Cards(stats: Stats) -> impl IntoView {
    let card = |label: &'static str, value: String| {
        view! {
            <div class="rounded-lg border border-slate-200 bg-white p-4">
                <div class="text-xs text-slate-500">{label}</div>
                <div class="mt-1 text-2xl font-semibold tabular-nums">{value}</div>
            </div>
        }
    };
    view! {
        <div class="mt-4 grid grid-cols-2 gap-3 md:grid-cols-4" data-testid="savings-cards">
            {card("Jobs queued", stats.total_jobs_queued.to_string())}
            {card("Completed", stats.completed_jobs.to_string())}
            {card("Pending / processing", format!("{} / {}", stats.pending_jobs, stats.processing_jobs))}
            {card("Failed", stats.failed_jobs.to_string())}
            {card("Tokens used", stats.total_tokens_used.to_string())}
            {card("Cost paid", money_usd(stats.total_cost_usd))}
            {card("Saved by batching", money_usd(stats.total_savings_usd))}
            {card("Avg. hours to result", format!("{:.2}", stats.avg_processing_time_hours))}
        </div>
    }
}

/// Daily cost paid against the standard API's price, as an SVG bar chart drawn here.
#[component]
fn Chart(daily: Vec<DailyCost>) -> impl IntoView {
    let mut by_day: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for d in &daily {
        let entry = by_day.entry(d.day.clone()).or_default();
        entry.0 += d.cost_nanos;
        entry.1 += d.standard_cost_nanos;
    }
    if by_day.is_empty() {
        return view! { <p class="mt-6 text-slate-500">"No costs yet: they appear when batches return results."</p> }.into_any();
    }
    let (width, height, pad) = (720.0, 220.0, 30.0);
    let top = by_day.values().map(|(_, s)| *s).max().unwrap_or(0).max(1);
    let slot = (width - 2.0 * pad) / by_day.len() as f64;
    let bar = (slot * 0.35).min(24.0);
    // Geometry only: amounts stay integers, bars need floats.
    let scale = |v: i64| (height - 2.0 * pad) * v as f64 / top as f64;
    view! {
        <section class="mt-6 rounded-lg border border-slate-200 bg-white p-4">
            <h2 class="font-semibold">{format!("Daily cost, last {DAYS} days")}</h2>
            <p class="text-sm text-slate-500">
                <span class="mr-1 inline-block h-3 w-3 rounded-sm bg-slate-300 align-middle"></span>"standard API "
                <span class="ml-3 mr-1 inline-block h-3 w-3 rounded-sm bg-emerald-600 align-middle"></span>"paid with batches"
            </p>
            <svg viewBox=format!("0 0 {width} {height}") class="mt-2 w-full" role="img" aria-label="Daily cost paid against the standard API price" data-testid="savings-chart">
                <line x1=pad y1=height - pad x2=width - pad y2=height - pad stroke="#cbd5e1" />
                <text x=pad y=pad - 10.0 font-size="11" fill="#64748b">{money(top)}</text>
                {by_day.iter().enumerate().map(|(i, (day, (paid, standard)))| {
                    let x = pad + slot * i as f64 + slot / 2.0;
                    view! {
                        <g>
                            <title>{format!("{day}: paid {}, standard {}", money(*paid), money(*standard))}</title>
                            <rect x=x - bar y=height - pad - scale(*standard) width=bar height=scale(*standard) fill="#cbd5e1" />
                            <rect x=x y=height - pad - scale(*paid) width=bar height=scale(*paid) fill="#059669" />
                            <text x=x y=height - pad + 14.0 font-size="10" text-anchor="middle" fill="#64748b">{day[5..].to_string()}</text>
                        </g>
                    }
                }).collect_view()}
            </svg>
        </section>
    }
    .into_any()
}

/// Totals by job type, and by user for admins.
#[component]
fn Breakdown(daily: Vec<DailyCost>, per_user: bool) -> impl IntoView {
    let sum = |key: &dyn Fn(&DailyCost) -> String| {
        let mut totals: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
        for d in &daily {
            let t = totals.entry(key(d)).or_default();
            t.0 += d.jobs;
            t.1 += d.cost_nanos;
            t.2 += d.standard_cost_nanos;
        }
        totals
    };
    let table = |title: &'static str, rows: BTreeMap<String, (i64, i64, i64)>| {
        view! {
            <section class="rounded-lg border border-slate-200 bg-white p-4">
                <h2 class="font-semibold">{title}</h2>
                <table class="mt-2 w-full text-left text-sm">
                    <thead class="text-xs uppercase text-slate-500">
                        <tr><th class="py-1"></th><th class="py-1 text-right">"Jobs"</th><th class="py-1 text-right">"Paid"</th><th class="py-1 text-right">"Standard"</th><th class="py-1 text-right">"Saved"</th></tr>
                    </thead>
                    <tbody class="divide-y divide-slate-100">
                        {rows.into_iter().map(|(name, (jobs, paid, standard))| view! {
                            <tr>
                                <td class="py-1">{name}</td>
                                <td class="py-1 text-right tabular-nums">{jobs}</td>
                                <td class="py-1 text-right tabular-nums">{money(paid)}</td>
                                <td class="py-1 text-right tabular-nums">{money(standard)}</td>
                                <td class="py-1 text-right tabular-nums">{money(standard - paid)}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        }
    };
    let by_type = sum(&|d| d.job_type.as_str().to_string());
    let by_user = per_user.then(|| sum(&|d| d.owner.clone()));
    view! {
        <div class="mt-6 grid gap-4 md:grid-cols-2">
            {table("By job type", by_type)}
            {by_user.map(|rows| table("By user", rows))}
        </div>
    }
}
