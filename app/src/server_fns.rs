//! Server functions of the dashboard: thin, each calls one backend use case.

use leptos::prelude::*;

use crate::api::{Caller, JobList, JobStatus};

#[cfg(feature = "ssr")]
mod ssr {
    use leptos::prelude::*;

    use crate::api::Caller;
    use crate::api::backend::BackendHandle;

    pub fn backend() -> Result<BackendHandle, ServerFnError> {
        use_context::<BackendHandle>()
            .ok_or_else(|| ServerFnError::new("backend missing from context"))
    }

    pub async fn caller() -> Result<Option<Caller>, ServerFnError> {
        let parts: http::request::Parts = leptos_axum::extract().await?;
        Ok(backend()?.session_caller(&parts.headers).await)
    }

    pub async fn require_caller() -> Result<Caller, ServerFnError> {
        caller()
            .await?
            .ok_or_else(|| ServerFnError::new("Sign in to see this page."))
    }

    pub fn set_cookie(value: &str) {
        let response = expect_context::<leptos_axum::ResponseOptions>();
        if let Ok(value) = http::HeaderValue::from_str(value) {
            response.append_header(http::header::SET_COOKIE, value);
        }
    }
}

#[server]
pub async fn current_user() -> Result<Option<Caller>, ServerFnError> {
    ssr::caller().await
}

/// Signs in and goes to the jobs page, or answers why not (a refusal is an answer, not a failure).
#[server]
pub async fn sign_in(token: String) -> Result<Option<String>, ServerFnError> {
    match ssr::backend()?.sign_in(token.trim()).await {
        Ok(cookie) => {
            ssr::set_cookie(&cookie);
            leptos_axum::redirect("/jobs");
            Ok(None)
        }
        Err(refusal) => Ok(Some(refusal)),
    }
}

#[server]
pub async fn sign_out() -> Result<(), ServerFnError> {
    let parts: http::request::Parts = leptos_axum::extract().await?;
    let cookie = ssr::backend()?.sign_out(&parts.headers).await;
    ssr::set_cookie(&cookie);
    leptos_axum::redirect("/sign-in");
    Ok(())
}

#[server]
pub async fn list_jobs(
    status_filter: Option<JobStatus>,
    limit: i64,
) -> Result<JobList, ServerFnError> {
    let caller = ssr::require_caller().await?;
    ssr::backend()?
        .list_jobs(
            &caller,
            crate::api::ListQuery {
                status_filter,
                limit,
            },
        )
        .await
        .map_err(ServerFnError::new)
}
