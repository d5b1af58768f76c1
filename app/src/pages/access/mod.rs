//! Admins: users and tokens, budgets, the audit log and the prices in force.

mod audit;
mod budgets;
mod controls;

use leptos::prelude::*;

use crate::api::{AuditQuery, PriceView, RouteView};
use crate::components::{SignedIn, explain};
use crate::server_fns::{access_overview, audit_log, budgets};
use controls::AccessControls;

/// Rendered on the server; only [`AccessControls`] hydrates (the page is in `ISLAND_PAGES`),
/// from what is read here. The prices and the routing change only with a restart: they stay
/// the server's HTML.
#[component]
pub fn Access() -> impl IntoView {
    let overview = Resource::new(|| (), |_| access_overview());
    let budgets = Resource::new(|| (), |_| budgets());
    let audit = Resource::new(|| (), |_| audit_log(AuditQuery::page(None, "", None)));
    let page = move || {
        Suspend::new(async move {
            let read =
                async { Ok::<_, ServerFnError>((overview.await?, budgets.await?, audit.await?)) };
            match read.await {
                Ok(((users, prices), budgets, audit)) => view! {
                    <AccessControls users budgets audit>
                        <Prices prices=prices.clone() />
                        <Routing routes=prices.routes />
                    </AccessControls>
                }
                .into_any(),
                Err(e) => view! { <p role="alert" class="mt-4 text-rose-700">{explain(&e)}</p> }
                    .into_any(),
            }
        })
    };
    view! {
        <SignedIn admin=true page=move |_| view! {
            <h1 class="text-xl font-semibold">"Access"</h1>
            <Suspense fallback=|| view! { <p class="mt-4 text-slate-600">"Loading…"</p> }>{page}</Suspense>
        }.into_any() />
    }
}

/// The price table in force.
#[component]
fn Prices(prices: PriceView) -> impl IntoView {
    view! {
        <section class="mt-6 rounded-lg border border-slate-200 bg-white p-4" data-testid="prices">
            <h2 class="font-semibold">{format!("Prices in force (version {})", prices.version)}</h2>
            <p class="text-sm text-slate-600">{format!("Batch discount {}%. Default model {}. USD per million tokens:", prices.batch_discount_percent, prices.default_model)}</p>
            <div class="relative mt-2 overflow-x-auto" tabindex="0" role="region" aria-label="Prices"><table class="w-full text-left text-sm">
                <thead class="text-xs uppercase text-slate-600"><tr><th>"Model"</th><th>"Provider"</th><th class="text-right">"Input"</th><th class="text-right">"Output"</th><th class="text-right">"Cache write"</th><th class="text-right">"Cache read"</th></tr></thead>
                <tbody>
                    {prices.models.into_iter().map(|(model, p)| {
                        let provider = prices.caching.iter().find(|c| c.model == model).and_then(|c| c.provider).map_or("", |p| p.label());
                        view! {
                            <tr><td>{model}</td><td>{provider}</td>{p.iter().map(|v| view! { <td class="text-right tabular-nums">{format!("{v:.2}")}</td> }).collect_view()}</tr>
                        }
                    }).collect_view()}
                </tbody>
            </table></div>
        </section>
    }
}

/// Where each job type's jobs go: set in the price table ([job_models], each model's
/// provider) or AI_BATCH_ROUTES, read at start.
#[component]
fn Routing(routes: Vec<RouteView>) -> impl IntoView {
    view! {
        <section class="mt-6 rounded-lg border border-slate-200 bg-white p-4" data-testid="routing">
            <h2 class="font-semibold">"Routing"</h2>
            <p class="text-sm text-slate-600">
                "Each job type is sent to one provider and model; a flush sends one batch per provider. "
                "Change it in config/prices.toml ([job_models]) or with AI_BATCH_ROUTES, then restart."
            </p>
            <div class="relative mt-2 overflow-x-auto" tabindex="0" role="region" aria-label="Routing"><table class="w-full text-left text-sm">
                <thead class="text-xs uppercase text-slate-600"><tr><th>"Job type"</th><th>"Provider"</th><th>"Model"</th></tr></thead>
                <tbody>
                    {routes.into_iter().map(|r| view! {
                        <tr data-testid=format!("route-{}", r.job_type.as_str())>
                            <td title=r.job_type.as_str()>{r.job_type.label()}</td>
                            <td>{r.provider.label()}</td>
                            <td><code class="text-xs">{r.model}</code></td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table></div>
        </section>
    }
}
