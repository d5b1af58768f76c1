//! The server-side handle that server functions call.
//!
//! Server functions live here but their bodies need the backend, which lives in `server`;
//! this trait breaks the cycle. `server` implements it with the same use cases as the REST
//! API and provides it as context. Errors are messages for people.

use std::sync::Arc;

use serde_json::Value;

use super::validation::FieldError;
use super::*;

pub type Reply<T> = Result<T, String>;

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Who sent a dashboard request, from its session cookie.
    async fn visitor(&self, headers: &http::HeaderMap) -> Visitor;
    /// Checks a bearer token and opens a session; returns the `Set-Cookie` value. Failures
    /// count against `address`, which is refused for a while past its limit.
    async fn sign_in(&self, token: &str, address: Option<std::net::IpAddr>) -> Reply<String>;
    /// Counts a dashboard call of the signed-in user against their limits (enqueues apart).
    fn admit(&self, caller: &Caller, enqueue: bool) -> Reply<()>;
    /// Ends the request's session; returns the `Set-Cookie` value that clears it.
    async fn sign_out(&self, headers: &http::HeaderMap) -> String;
    /// What the caller's pages have been told of changes so far (`/live?since=`).
    fn live_version(&self, caller: &Caller) -> String;

    async fn list_jobs(&self, caller: &Caller, query: ListQuery) -> Reply<JobList>;
    async fn job_detail(&self, caller: &Caller, job_id: &str) -> Reply<JobDetail>;
    /// Enqueues from an enqueue body; invalid fields come back as the REST API words them.
    async fn enqueue(
        &self,
        caller: &Caller,
        body: Value,
    ) -> Reply<Result<EnqueueResponse, Vec<FieldError>>>;
    async fn cancel_jobs(&self, caller: &Caller, job_ids: Vec<String>)
    -> Reply<BulkCancelResponse>;
    /// Failed jobs back for one more attempt (admins); jobs billed already only with
    /// `confirm_rebill`, else the answer says what confirming would cost.
    async fn retry_jobs(
        &self,
        caller: &Caller,
        job_ids: Vec<String>,
        confirm_rebill: bool,
    ) -> Reply<RetryReply>;
    async fn stats(&self, caller: &Caller) -> Reply<Stats>;
    async fn daily_costs(&self, caller: &Caller, days: i64) -> Reply<Vec<DailyCost>>;

    async fn flush_preview(&self, caller: &Caller, request: FlushRequest) -> Reply<FlushPreview>;
    async fn flush(&self, caller: &Caller, request: FlushRequest) -> Reply<FlushResponse>;
    async fn batches(&self, caller: &Caller) -> Reply<BatchList>;
    async fn poll(&self, caller: &Caller, batch_id: &str) -> Reply<PollResponse>;

    async fn users(&self, caller: &Caller) -> Reply<Vec<UserView>>;
    async fn create_token(
        &self,
        caller: &Caller,
        request: CreateTokenRequest,
    ) -> Reply<IssuedToken>;
    async fn revoke_token(&self, caller: &Caller, token_id: &str) -> Reply<()>;
    /// A new webhook signing secret for the user (an admin's action), shown once.
    async fn new_webhook_secret(&self, caller: &Caller, user_id: &str) -> Reply<WebhookSecret>;
    async fn prices(&self, caller: &Caller) -> Reply<PriceView>;

    /// The caller's own budget this month.
    async fn budget(&self, caller: &Caller) -> Reply<BudgetView>;
    /// Every capped user's budget (admins).
    async fn budgets(&self, caller: &Caller) -> Reply<Vec<BudgetView>>;
    /// Sets (`Some` USD) or removes a user's monthly cap (admins).
    async fn set_budget(
        &self,
        caller: &Caller,
        user: &str,
        monthly_cap_usd: Option<f64>,
    ) -> Reply<BudgetView>;
    async fn audit_log(&self, caller: &Caller, query: AuditQuery) -> Reply<AuditPage>;

    /// The contexts the caller may use, newest first.
    async fn contexts(&self, caller: &Caller) -> Reply<ContextList>;
    /// Stores a context from its name and text (the same checks as the REST API).
    async fn create_context(
        &self,
        caller: &Caller,
        name: String,
        text: String,
    ) -> Reply<ContextCreated>;
    async fn delete_context(&self, caller: &Caller, context_id: &str) -> Reply<ContextDeleted>;
    /// Shares a context with every user, or stops sharing it (admins).
    async fn share_context(
        &self,
        caller: &Caller,
        context_id: &str,
        shared: bool,
    ) -> Reply<ContextView>;
}

pub type BackendHandle = Arc<dyn Backend>;
