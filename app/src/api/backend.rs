//! The server-side handle that server functions call.
//!
//! Server functions live here but their bodies need the backend, which lives in `server`;
//! this trait breaks the cycle. `server` implements it and provides it as context.

use std::sync::Arc;

use super::{Caller, JobList, ListQuery};

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The signed-in user of a dashboard request, from its session cookie.
    async fn session_caller(&self, headers: &http::HeaderMap) -> Option<Caller>;
    /// Checks a bearer token and opens a session; returns the `Set-Cookie` value.
    async fn sign_in(&self, token: &str) -> Result<String, String>;
    /// Ends the request's session; returns the `Set-Cookie` value that clears it.
    async fn sign_out(&self, headers: &http::HeaderMap) -> String;
    async fn list_jobs(&self, caller: &Caller, query: ListQuery) -> Result<JobList, String>;
}

pub type BackendHandle = Arc<dyn Backend>;
