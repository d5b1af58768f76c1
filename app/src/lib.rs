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

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    send_content_security_policy();
    let plain = is_plain_page();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HashedStylesheet options=options.clone() id="leptos" />
                {(!plain).then(|| view! { <HydrationScripts options /> })}
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

/// Whether the page being rendered is one of [`PLAIN_PAGES`] (the shell renders only on the
/// server).
fn is_plain_page() -> bool {
    #[cfg(feature = "ssr")]
    return use_context::<http::request::Parts>()
        .is_some_and(|request| PLAIN_PAGES.contains(&request.uri.path()));
    #[cfg(not(feature = "ssr"))]
    false
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
    // Tests wait for this marker: a click before hydration would be lost.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Title text="Bitcain AI Batch" />
        <Router>
            <Routes fallback=|| view! { <pages::NotFound /> }>
                <Route path=StaticSegment("") view=|| view! { <Redirect path="/jobs" /> } />
                <Route path=StaticSegment("sign-in") view=pages::SignIn />
                // Async rendering: pages arrive complete, readable with JavaScript off.
                <Route path=StaticSegment("jobs") view=pages::Jobs ssr=SsrMode::Async />
                <Route path=(StaticSegment("jobs"), StaticSegment("new")) view=pages::NewJob ssr=SsrMode::Async />
                <Route path=(StaticSegment("jobs"), ParamSegment("id")) view=pages::JobPage ssr=SsrMode::Async />
                <Route path=StaticSegment("contexts") view=pages::Contexts ssr=SsrMode::Async />
                <Route path=StaticSegment("savings") view=pages::Savings ssr=SsrMode::Async />
                <Route path=(StaticSegment("admin"), StaticSegment("batches")) view=pages::Batches ssr=SsrMode::Async />
                <Route path=(StaticSegment("admin"), StaticSegment("access")) view=pages::Access ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}
