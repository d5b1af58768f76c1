//! The dashboard and the types it shares with the REST API.

pub mod api;
mod components;
mod pages;
pub mod server_fns;

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::{
    ParamSegment, SsrMode, StaticSegment,
    components::{Redirect, Route, Router, Routes},
};

pub use pages::{SIGN_IN_PATH, SignInRefusal};

/// Pages that work as plain HTML: they load no WASM, so they are usable at first paint on any
/// link (the sign-in page is a form; the WASM comes with the first page that needs it).
#[cfg(feature = "ssr")]
const PLAIN_PAGES: &[&str] = &[SIGN_IN_PATH];

/// Pages that hydrate by islands, each with the bundle it loads: a fraction of the whole-page
/// bundle, which makes only the page's `#[island]`s interactive; the rest stays the server's
/// HTML. A bundle carries its page's islands (the `app` feature `<bundle>-islands`) and no
/// other page's. Their routes' views are [`island_page`]s, and links to them carry [`page_rel`].
const ISLAND_PAGES: &[(&str, &str)] = &[
    ("/jobs", "jobs"),
    ("/admin/batches", "batches"),
    ("/admin/access", "access"),
];

/// How a page comes alive in the browser.
#[derive(Clone, Copy, PartialEq)]
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
enum Hydration {
    /// Not at all: plain HTML ([`PLAIN_PAGES`]).
    None,
    /// Its islands only, from the named bundle ([`ISLAND_PAGES`]).
    Islands(&'static str),
    /// Whole, with the client-side router (every other page).
    Whole,
}

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    send_content_security_policy();
    let hydration = page_hydration();
    let plain = hydration == Hydration::None;
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HashedStylesheet options=options.clone() id="leptos" />
                {match hydration {
                    Hydration::None => None,
                    Hydration::Islands(bundle) => Some(view! { <HydrationScripts options=islands_bundle(options, bundle) islands=true /> }.into_any()),
                    Hydration::Whole => Some(view! { <HydrationScripts options /> }.into_any()),
                }}
                <MetaTags />
            </head>
            // A plain page is as interactive now as it will be: tests wait for this marker.
            <body
                class="min-h-screen bg-slate-50 text-slate-900 antialiased"
                data-hydrated=plain.then_some("true")
            >
                <App />
            </body>
        </html>
    }
}

/// How the page being rendered hydrates (the shell renders only on the server).
fn page_hydration() -> Hydration {
    #[cfg(feature = "ssr")]
    if let Some(request) = use_context::<http::request::Parts>() {
        let path = request.uri.path();
        if PLAIN_PAGES.contains(&path) {
            return Hydration::None;
        }
        if let Some((_, bundle)) = ISLAND_PAGES.iter().find(|(page, _)| *page == path) {
            return Hydration::Islands(bundle);
        }
    }
    Hydration::Whole
}

/// An islands bundle's names: `<bundle>.<hash>.js` and `.wasm`, their hashes in
/// `<bundle>-hash.txt` beside the server (written by `islands_build` in scripts/setup.sh).
fn islands_bundle(mut options: LeptosOptions, bundle: &str) -> LeptosOptions {
    options.output_name = bundle.into();
    options.hash_file = format!("{bundle}-hash.txt").into();
    options
}

/// Tells tests (and anyone watching) that the page's controls work now: a click before
/// hydration would be lost.
fn mark_hydrated() {
    if let Some(body) = document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}

/// The islands bundles' entry: sets up for the loader, which then hydrates each island, and
/// marks the page hydrated once it has (its calls run in promise callbacks, all before a
/// timer's), also where the page rendered no island (an admin page refused to a trader).
#[cfg(feature = "hydrate")]
pub fn hydrate_islands() {
    leptos::mount::hydrate_islands();
    set_timeout(mark_hydrated, std::time::Duration::ZERO);
}

/// `rel` for a link to `href`: an [`ISLAND_PAGES`] page is loaded from the server, so the
/// whole-page bundle's router must not render it (`external` tells it so).
pub fn page_rel(href: &str) -> Option<&'static str> {
    let path = href.split(['?', '#']).next().unwrap_or(href);
    ISLAND_PAGES
        .iter()
        .any(|(page, _)| *page == path)
        .then_some("external")
}

/// An [`ISLAND_PAGES`] page reached by the whole-page bundle's router anyway (a link without
/// [`page_rel`]): it cannot render it (its islands need the islands bundle), so the page is
/// loaded from the server, once the router has put its address in the history.
#[component]
fn LoadedFromServer() -> impl IntoView {
    Effect::new(|_| {
        set_timeout(
            || {
                let _ = window().location().reload();
            },
            std::time::Duration::ZERO,
        );
    });
    view! { <p class="p-6 text-slate-600">"Loading…"</p> }
}

/// The view of an [`ISLAND_PAGES`] route: the page on the server, [`LoadedFromServer`] in the
/// whole-page bundle, which then carries none of the page's code: `page` is its own zero-sized
/// function type, where a function pointer, kept in the closure, would keep the code too.
fn island_page<V, F>(page: F) -> impl Fn() -> AnyView + Clone
where
    V: IntoView + 'static,
    F: Fn() -> V + Copy + 'static,
{
    move || {
        if cfg!(feature = "ssr") {
            page().into_any()
        } else {
            LoadedFromServer().into_any()
        }
    }
}

/// Only our own scripts run: the hydration script carries this render's nonce (leptos_axum
/// makes one per page), the module and the WASM come from our origin. Inline `style`
/// attributes stay allowed (progress bars set their width).
#[cfg(feature = "ssr")]
fn send_content_security_policy() {
    use http::{HeaderValue, header::CONTENT_SECURITY_POLICY};
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.insert_header(CONTENT_SECURITY_POLICY, value);
    }
}

/// The main navigation, beside the routes it links to: path, label, and whether only admins
/// see it (their pages refuse traders as well).
pub const NAVIGATION: &[(&str, &str, bool)] = &[
    ("/jobs", "Jobs", false),
    ("/jobs/new", "New job", false),
    ("/contexts", "Contexts", false),
    ("/savings", "Savings", false),
    ("/admin/batches", "Batches", true),
    ("/admin/access", "Access", true),
];

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    Effect::new(|_| mark_hydrated());

    view! {
        <Title text="Bitcain AI Batch" />
        <Router>
            <Routes fallback=|| view! { <pages::NotFound /> }>
                <Route path=StaticSegment("") view=|| view! { <Redirect path="/jobs" /> } />
                <Route path=StaticSegment("sign-in") view=pages::SignIn />
                // Async rendering: pages arrive complete, readable with JavaScript off.
                <Route path=StaticSegment("jobs") view=island_page(pages::Jobs) ssr=SsrMode::Async />
                <Route path=(StaticSegment("jobs"), StaticSegment("new")) view=pages::NewJob ssr=SsrMode::Async />
                <Route path=(StaticSegment("jobs"), ParamSegment("id")) view=pages::JobPage ssr=SsrMode::Async />
                <Route path=StaticSegment("contexts") view=pages::Contexts ssr=SsrMode::Async />
                <Route path=StaticSegment("savings") view=pages::Savings ssr=SsrMode::Async />
                <Route path=(StaticSegment("admin"), StaticSegment("batches")) view=island_page(pages::Batches) ssr=SsrMode::Async />
                <Route path=(StaticSegment("admin"), StaticSegment("access")) view=island_page(pages::Access) ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}
