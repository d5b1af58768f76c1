use leptos::prelude::*;
use leptos_router::components::Redirect;

use super::{Layout, explain};
use crate::SIGN_IN_PATH;
use crate::api::{Session, Visitor};
use crate::server_fns::current_session;

/// A page for signed-in users (admins only, if `admin`): sends others to sign in, or refuses.
#[component]
pub fn SignedIn<F>(#[prop(optional)] admin: bool, page: F) -> impl IntoView
where
    F: Fn(Session) -> AnyView + Clone + Send + Sync + 'static,
{
    let session = Resource::new(|| (), |_| current_session());
    view! {
        <Suspense fallback=|| view! { <p class="p-6 text-slate-600">"Loading…"</p> }>
            {move || {
                let page = page.clone();
                Suspend::new(async move {
                    match session.await {
                        Ok(Visitor::SignedIn(s)) if admin && !s.caller.is_admin() => {
                            #[cfg(feature = "ssr")]
                            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                                response.set_status(http::StatusCode::FORBIDDEN);
                            }
                            view! {
                                <Layout session=s>
                                    <h1 class="text-xl font-semibold">"Admins only"</h1>
                                    <p class="mt-2 text-slate-600" role="alert">"This page is for admins. Your jobs are on the Jobs page."</p>
                                </Layout>
                            }
                                .into_any()
                        }
                        Ok(Visitor::SignedIn(s)) => view! { <Layout session=s.clone()>{page(s)}</Layout> }.into_any(),
                        // The sign-in page says why you are there.
                        Ok(Visitor::Ended) => view! { <Redirect path=format!("{SIGN_IN_PATH}?ended=1") /> }.into_any(),
                        Ok(Visitor::Anonymous) => view! { <Redirect path=SIGN_IN_PATH /> }.into_any(),
                        Err(e) => view! { <p role="alert" class="p-6 text-rose-700">{explain(&e)}</p> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}
