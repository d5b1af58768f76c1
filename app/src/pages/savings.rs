use std::collections::BTreeMap;

use leptos::prelude::*;

use crate::api::{DailyCost, ProviderSpend, Stats};
use crate::components::{
    BudgetResource, BudgetSummary, Ledger, Precision, SignedIn, budget_of, count_of_jobs, explain,
    hours, money, nanos, thousands,
};
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
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-600">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((stats, daily)) => {
                        let providers = stats.by_provider.clone();
                        view! { <Cards stats /> <Providers providers /> <Chart daily=daily.clone() /> <Breakdown daily per_user /> }.into_any()
                    }
                    Err(e) => view! { <p role="alert" class="mt-4 text-rose-700">{explain(&e)}</p> }.into_any(),
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
                <div class="text-xs text-slate-600">{label}</div>
                <div class="mt-1 text-2xl font-semibold tabular-nums">{value}</div>
            </div>
        }
    };
    // The cards and the bars below show one ledger: paid + saved, batching + caching = saved.
    let ledger = Ledger::from_savings(
        nanos(stats.total_cost_usd),
        nanos(stats.total_saved_by_batching_usd),
        nanos(stats.total_saved_by_caching_usd),
    );
    let precision = Precision::fitting(ledger.amounts());
    let shown = ledger.rounded(precision);
    view! {
        <div class="mt-4 grid grid-cols-2 gap-3 md:grid-cols-4" data-testid="savings-cards">
            {card("Jobs queued", thousands(stats.total_jobs_queued))}
            {card("Completed", thousands(stats.completed_jobs))}
            {card("Pending / processing", format!("{} / {}", thousands(stats.pending_jobs), thousands(stats.processing_jobs)))}
            {card("Failed", thousands(stats.failed_jobs))}
            {card("Tokens used", thousands(stats.total_tokens_used))}
            {card("Cost paid", precision.show(shown.paid))}
            {card("Saved in all", precision.show(shown.saved()))}
            {card("Average time to result", hours(stats.avg_processing_time_hours))}
        </div>
        <Sources shown precision read=stats.cache_read_tokens written=stats.cache_write_tokens />
    }
}

/// The two sources of savings side by side: the batch discount, and the cache on top of it.
#[component]
fn Sources(shown: Ledger, precision: Precision, read: i64, written: i64) -> impl IntoView {
    let (batching, caching) = (shown.by_batching(), shown.by_caching());
    let top = batching.abs().max(caching.abs()).max(1);
    let bar = |label: &'static str, amount: i64, colour: &'static str, testid: &'static str| {
        let width = format!("width: {:.1}%", 100.0 * amount.max(0) as f64 / top as f64);
        view! {
            <div class="flex items-center gap-3" data-testid=testid>
                <div class="w-28 shrink-0 text-sm text-slate-600 sm:w-36">{label}</div>
                <div class="h-5 min-w-0 flex-1 rounded bg-slate-100">
                    <div class=format!("h-5 rounded {colour}") style=width></div>
                </div>
                <div class="w-24 shrink-0 text-right text-sm font-semibold tabular-nums sm:w-28">{precision.show(amount)}</div>
            </div>
        }
    };
    view! {
        <section class="mt-4 rounded-lg border border-slate-200 bg-white p-4" data-testid="savings-sources">
            <h2 class="font-semibold">"Where the savings came from"</h2>
            <div class="mt-3 space-y-2">
                {bar("Batch discount", batching, "bg-emerald-600", "saved-by-batching")}
                {bar("Prompt cache", caching, "bg-sky-600", "saved-by-caching")}
            </div>
            <p class="mt-2 text-xs text-slate-600">
                {format!(
                    "{} prompt tokens read from the cache, {} written to it ({}).",
                    thousands(read),
                    thousands(written),
                    hit_percent(read, written).map_or("no cached prefixes yet".into(), |p| format!("hit rate {p}"))
                )}
            </p>
        </section>
    }
}

/// What each provider billed and saved, side by side (every charge, duplicates' included).
#[component]
fn Providers(providers: Vec<ProviderSpend>) -> impl IntoView {
    (!providers.is_empty()).then(|| {
        let top = providers
            .iter()
            .map(|p| p.standard_cost_usd)
            .fold(1e-9, f64::max);
        let precision = Precision::fitting(
            providers
                .iter()
                .flat_map(|p| [nanos(p.cost_usd), nanos(p.standard_cost_usd)]),
        );
        view! {
            <section class="mt-4 rounded-lg border border-slate-200 bg-white p-4" data-testid="savings-providers">
                <h2 class="font-semibold">"By provider"</h2>
                <p class="text-xs text-slate-600">"Paid (dark) within what the standard API would have cost (the whole bar)."</p>
                <div class="mt-3 space-y-3">
                    {providers.into_iter().map(|p| {
                        let (paid, standard) = (precision.round(nanos(p.cost_usd)), precision.round(nanos(p.standard_cost_usd)));
                        let whole = format!("width: {:.1}%", 100.0 * p.standard_cost_usd / top);
                        let paid_width = format!("width: {:.1}%", 100.0 * p.cost_usd / p.standard_cost_usd.max(1e-9));
                        view! {
                            <div data-testid=format!("provider-{}", p.provider.as_str())>
                                <div class="flex flex-wrap justify-between gap-2 text-sm">
                                    <span class="font-medium">{p.provider.label()}</span>
                                    <span class="tabular-nums text-slate-700">
                                        {format!("{} · {} tokens · paid {} · saved {}", count_of_jobs(p.jobs), thousands(p.tokens_used), precision.show(paid), precision.show(standard - paid))}
                                    </span>
                                </div>
                                <div class="mt-1 h-4 rounded bg-slate-100">
                                    <div class="h-4 rounded bg-emerald-200" style=whole>
                                        <div class="h-4 rounded bg-emerald-700" style=paid_width></div>
                                    </div>
                                </div>
                            </div>
                        }
                    }).collect_view()}
                </div>
            </section>
        }
    })
}

/// The share of cacheable prompt tokens read rather than written, where any were cacheable.
fn hit_percent(read: i64, written: i64) -> Option<String> {
    (read + written > 0).then(|| format!("{:.0}%", 100.0 * read as f64 / (read + written) as f64))
}

/// Each day's hover text, every amount to one precision so that the days compare at a
/// glance: "2026-12-05: paid $0.006000, standard $0.012000".
fn day_titles(by_day: &BTreeMap<String, (i64, i64)>) -> Vec<String> {
    let precision = Precision::fitting(
        by_day
            .values()
            .flat_map(|&(paid, standard)| [paid, standard]),
    );
    by_day
        .iter()
        .map(|(day, &(paid, standard))| {
            format!(
                "{day}: paid {}, standard {}",
                precision.show(paid),
                precision.show(standard)
            )
        })
        .collect()
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
        return view! {
            <p class="mt-6 text-slate-600" data-testid="savings-empty">
                "No costs yet: they appear when batches return results, each beside what the standard API would have charged. "
                <a href="/jobs/new" class="text-emerald-800 underline">"Queue a job"</a>
            </p>
        }
        .into_any();
    }
    let (width, height, pad) = (720.0, 220.0, 30.0);
    let top = by_day.values().map(|(_, s)| *s).max().unwrap_or(0).max(1);
    let slot = (width - 2.0 * pad) / by_day.len() as f64;
    let titles = day_titles(&by_day);
    let bar = (slot * 0.35).min(24.0);
    // Geometry only: amounts stay integers, bars need floats.
    let scale = |v: i64| (height - 2.0 * pad) * v as f64 / top as f64;
    view! {
        <section class="mt-6 rounded-lg border border-slate-200 bg-white p-4">
            <h2 class="font-semibold">{format!("Daily cost, last {DAYS} days")}</h2>
            <p class="text-sm text-slate-600">
                <span class="mr-1 inline-block h-3 w-3 rounded-sm bg-slate-300 align-middle"></span>"standard API "
                <span class="ml-3 mr-1 inline-block h-3 w-3 rounded-sm bg-emerald-600 align-middle"></span>"paid with batches"
            </p>
            <svg viewBox=format!("0 0 {width} {height}") class="mt-2 w-full" role="img" aria-label="Daily cost paid against the standard API price" data-testid="savings-chart">
                <line x1=pad y1=height - pad x2=width - pad y2=height - pad stroke="#cbd5e1" />
                <text x=pad y=pad - 10.0 font-size="11" fill="#64748b">{money(top)}</text>
                {by_day.iter().zip(titles).enumerate().map(|(i, ((day, (paid, standard)), title))| {
                    let x = pad + slot * i as f64 + slot / 2.0;
                    view! {
                        <g>
                            <title>{title}</title>
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

/// What one row of the breakdown adds up.
#[derive(Clone, Copy, Default)]
struct Totals {
    jobs: i64,
    paid: i64,
    uncached: i64,
    standard: i64,
    read: i64,
    written: i64,
}

/// Totals by job type, and by user for admins.
#[component]
fn Breakdown(daily: Vec<DailyCost>, per_user: bool) -> impl IntoView {
    let sum = |key: &dyn Fn(&DailyCost) -> String| {
        let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
        for d in &daily {
            let t = totals.entry(key(d)).or_default();
            t.jobs += d.jobs;
            t.paid += d.cost_nanos;
            t.uncached += d.uncached_cost_nanos;
            t.standard += d.standard_cost_nanos;
            t.read += d.cache_read_tokens;
            t.written += d.cache_write_tokens;
        }
        totals
    };
    let table = |title: &'static str, testid: &'static str, rows: BTreeMap<String, Totals>| {
        let ledger = |t: &Totals| Ledger {
            standard: t.standard,
            uncached: t.uncached,
            paid: t.paid,
        };
        let precision = Precision::fitting(rows.values().flat_map(|t| ledger(t).amounts()));
        view! {
            // Focusable: on a phone the table scrolls sideways, and a keyboard must reach it too.
            <section class="relative overflow-x-auto rounded-lg border border-slate-200 bg-white p-4" data-testid=testid tabindex="0" aria-label=title>
                <h2 class="font-semibold">{title}</h2>
                <table class="mt-2 w-full text-left text-sm">
                    <thead class="text-xs uppercase text-slate-600">
                        <tr>
                            <th class="py-1"><span class="sr-only">"Name"</span></th><th class="py-1 pl-3 text-right">"Jobs"</th><th class="py-1 pl-3 text-right">"Paid"</th>
                            <th class="py-1 pl-3 text-right">"Standard"</th><th class="py-1 pl-3 text-right">"By batching"</th>
                            <th class="py-1 pl-3 text-right">"By caching"</th><th class="py-1 pl-3 text-right">"Cache hits"</th>
                        </tr>
                    </thead>
                    <tbody class="divide-y divide-slate-100">
                        {rows.into_iter().map(|(name, t)| {
                            let shown = ledger(&t).rounded(precision);
                            view! {
                                <tr>
                                    <td class="py-1 pr-2">{name}</td>
                                    <td class="py-1 pl-3 text-right tabular-nums">{thousands(t.jobs)}</td>
                                    <td class="py-1 pl-3 text-right tabular-nums">{precision.show(shown.paid)}</td>
                                    <td class="py-1 pl-3 text-right tabular-nums">{precision.show(shown.standard)}</td>
                                    <td class="py-1 pl-3 text-right tabular-nums">{precision.show(shown.by_batching())}</td>
                                    <td class="py-1 pl-3 text-right tabular-nums">{precision.show(shown.by_caching())}</td>
                                    <td class="py-1 pl-3 text-right tabular-nums">{hit_percent(t.read, t.written).unwrap_or_else(|| "–".into())}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        }
    };
    let by_type = sum(&|d| d.job_type.label().to_string());
    let by_user = per_user.then(|| sum(&|d| d.owner.clone()));
    view! {
        <div class="mt-6 grid gap-4 xl:grid-cols-2">
            {table("By job type", "by-type", by_type)}
            {by_user.map(|rows| table("By user", "by-user", rows))}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::day_titles;

    #[test]
    fn every_day_is_written_to_the_precision_the_smallest_figure_needs() {
        let days = BTreeMap::from([
            ("2026-12-04".to_string(), (6_000_000, 12_000_000)),
            ("2026-12-05".to_string(), (350_000_000, 700_000_000)),
        ]);
        assert_eq!(
            day_titles(&days),
            [
                "2026-12-04: paid $0.006000, standard $0.012000",
                "2026-12-05: paid $0.350000, standard $0.700000",
            ]
        );
        let cents = BTreeMap::from([("2026-12-05".to_string(), (350_000_000, 700_000_000))]);
        assert_eq!(
            day_titles(&cents),
            ["2026-12-05: paid $0.35, standard $0.70"]
        );
    }
}
