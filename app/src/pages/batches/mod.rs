//! Admins: flush with a preview before confirming, and watch batches move.

mod controls;

use leptos::prelude::*;

use crate::components::{SignedIn, explain};
use crate::server_fns::{list_batches, routes};
use controls::BatchesControls;

/// Rendered on the server; only [`BatchesControls`] hydrates (the page is in `ISLAND_PAGES`),
/// from the batches and routes read here.
#[component]
pub fn Batches() -> impl IntoView {
    let batches = Resource::new(|| (), |_| list_batches());
    let routes = Resource::new(|| (), |_| routes());
    let page = move || {
        Suspend::new(async move {
            match (batches.await, routes.await) {
                (Ok((version, batches)), Ok(routes)) => {
                    view! { <BatchesControls batches routes version /> }.into_any()
                }
                (Err(e), _) | (_, Err(e)) => {
                    view! { <p role="alert" class="mt-4 text-rose-700">{explain(&e)}</p> }
                        .into_any()
                }
            }
        })
    };
    view! {
        <SignedIn admin=true page=move |_| view! {
            <h1 class="text-xl font-semibold">"Batches"</h1>
            <Suspense fallback=|| view! { <p class="mt-4 text-slate-600">"Loading batches…"</p> }>{page}</Suspense>
        }.into_any() />
    }
}
