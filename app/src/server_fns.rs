//! Server functions of the dashboard: thin, each calls one backend use case. Each has a
//! stable address, `/api/<name>`, which logs, limits and tests can name.

use leptos::prelude::*;
use serde_json::Value;

use crate::api::validation::FieldError;
use crate::api::*;

#[cfg(feature = "ssr")]
mod ssr {
    use leptos::prelude::*;

    use crate::api::backend::{BackendHandle, Reply};
    use crate::api::{Caller, Visitor};

    pub fn backend() -> Result<BackendHandle, ServerFnError> {
        use_context::<BackendHandle>()
            .ok_or_else(|| ServerFnError::new("backend missing from context"))
    }

    pub async fn visitor() -> Result<Visitor, ServerFnError> {
        let parts: http::request::Parts = leptos_axum::extract().await?;
        Ok(backend()?.visitor(&parts.headers).await)
    }

    /// The signed-in user, with this call counted against their limit.
    pub async fn caller() -> Result<Caller, ServerFnError> {
        admitted(false).await
    }

    /// The same, for an enqueue (which has a limit of its own).
    pub async fn enqueuer() -> Result<Caller, ServerFnError> {
        admitted(true).await
    }

    async fn admitted(enqueue: bool) -> Result<Caller, ServerFnError> {
        let Visitor::SignedIn(session) = visitor().await? else {
            return Err(ServerFnError::new("Your session has ended: sign in again."));
        };
        let caller = session.caller;
        answer(backend()?.admit(&caller, enqueue))?;
        Ok(caller)
    }

    /// [`caller`], the backend, and the caller's live version, read before what the call
    /// shows ([`super::Versioned`]).
    pub async fn versioned_caller() -> Result<(Caller, BackendHandle, String), ServerFnError> {
        let caller = caller().await?;
        let backend = backend()?;
        let version = backend.live_version(&caller);
        Ok((caller, backend, version))
    }

    pub fn set_cookie(value: &str) {
        let response = expect_context::<leptos_axum::ResponseOptions>();
        if let Ok(value) = http::HeaderValue::from_str(value) {
            response.append_header(http::header::SET_COOKIE, value);
        }
    }

    pub fn answer<T>(reply: Reply<T>) -> Result<T, ServerFnError> {
        reply.map_err(ServerFnError::new)
    }
}

#[server(endpoint = "current_session")]
pub async fn current_session() -> Result<Visitor, ServerFnError> {
    ssr::visitor().await
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    let parts: http::request::Parts = leptos_axum::extract().await?;
    let cookie = ssr::backend()?.sign_out(&parts.headers).await;
    ssr::set_cookie(&cookie);
    leptos_axum::redirect(crate::SIGN_IN_PATH);
    Ok(())
}

/// What a page shows, with the version of what the caller's pages are told (`/live?since=`)
/// read before it in the same call: a page opens its stream from it, so a change while the
/// read runs makes the page read again, and a render costs one call against the read limit.
pub type Versioned<T> = (String, T);

#[server(endpoint = "list_jobs")]
pub async fn list_jobs(query: ListQuery) -> Result<Versioned<JobList>, ServerFnError> {
    let (caller, backend, version) = ssr::versioned_caller().await?;
    Ok((
        version,
        ssr::answer(backend.list_jobs(&caller, query).await)?,
    ))
}

/// One job, or why the caller cannot see it (no such job, or not theirs) as an answer, not a
/// failed call ([`Versioned`]: the job page reads it again only when a job changed since).
#[server(endpoint = "load_job")]
pub async fn load_job(
    job_id: String,
) -> Result<Versioned<Result<JobDetail, String>>, ServerFnError> {
    let (caller, backend, version) = ssr::versioned_caller().await?;
    Ok((version, backend.job_detail(&caller, &job_id).await))
}

/// The enqueue form: fields as typed; the body is checked by the same rules as the REST API.
#[server(endpoint = "enqueue_job")]
pub async fn enqueue_job(
    job_type: String,
    payload: String,
    priority: String,
    run_after: String,
    idempotency_key: String,
    // Absent from forms of older pages still open in a browser.
    context_id: Option<String>,
    // The browser's UTC offset at `run_after`, in minutes (JavaScript's `getTimezoneOffset`);
    // absent without JavaScript, when `run_after` is read as UTC.
    run_after_offset: Option<String>,
) -> Result<Result<EnqueueResponse, Vec<FieldError>>, ServerFnError> {
    let caller = ssr::enqueuer().await?;
    let run_after = with_zone(&run_after, run_after_offset.as_deref());
    let form = EnqueueForm {
        job_type: &job_type,
        payload: &payload,
        priority: &priority,
        run_after: &run_after,
        idempotency_key: &idempotency_key,
        context_id: context_id.as_deref().unwrap_or_default(),
    };
    let body = match form.body() {
        Ok(body) => body,
        Err(errors) => return Ok(Err(errors)),
    };
    ssr::answer(ssr::backend()?.enqueue(&caller, body).await)
}

/// A `datetime-local` value (`2026-12-10T09:08`, no zone) with the zone of a browser whose
/// `getTimezoneOffset()` there was `offset` minutes (300 in New York in winter: `-05:00`).
/// Anything else (a zone already given, no offset, an offset that is not minutes) is left as
/// it is, for the API's rules to read.
pub fn with_zone(local: &str, offset: Option<&str>) -> String {
    let local = local.trim();
    let offset = offset.and_then(|o| o.trim().parse::<i32>().ok());
    let Some((date, time)) = local.split_once('T') else {
        return local.to_string();
    };
    let zoned = time.contains(['Z', 'z', '+', '-']);
    match offset.filter(|o| !zoned && o.abs() < 24 * 60 && !date.is_empty()) {
        Some(offset) => {
            let seconds = if time.matches(':').count() == 1 {
                ":00"
            } else {
                ""
            };
            let sign = if offset > 0 { '-' } else { '+' };
            let (hours, minutes) = (offset.abs() / 60, offset.abs() % 60);
            format!("{date}T{time}{seconds}{sign}{hours:02}:{minutes:02}")
        }
        None => local.to_string(),
    }
}

/// The enqueue form's fields as sent; empty optional fields are left out of its body.
pub struct EnqueueForm<'a> {
    pub job_type: &'a str,
    pub payload: &'a str,
    pub priority: &'a str,
    pub run_after: &'a str,
    pub idempotency_key: &'a str,
    pub context_id: &'a str,
}

impl EnqueueForm<'_> {
    /// The JSON body the form stands for, checked afterwards as the REST API checks it.
    pub fn body(&self) -> Result<Value, Vec<FieldError>> {
        let payload: Value = serde_json::from_str(self.payload).map_err(|e| {
            vec![FieldError::new(
                "json_invalid",
                vec!["body".into(), "payload".into()],
                format!("Payload is not valid JSON: {e}"),
                Value::String(self.payload.into()),
            )]
        })?;
        let mut body = serde_json::json!({ "job_type": self.job_type, "payload": payload });
        let fields = body.as_object_mut().expect("an object");
        let optional = [
            ("priority", self.priority.trim()),
            ("run_after", self.run_after.trim()),
            ("idempotency_key", self.idempotency_key),
            ("context_id", self.context_id.trim()),
        ];
        for (name, value) in optional {
            if !value.is_empty() {
                fields.insert(name.into(), Value::String(value.into()));
            }
        }
        Ok(body)
    }
}

#[server(endpoint = "cancel_jobs")]
pub async fn cancel_jobs(job_ids: Vec<String>) -> Result<BulkCancelResponse, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.cancel_jobs(&caller, job_ids).await)
}

#[server(endpoint = "savings")]
pub async fn savings(days: i64) -> Result<(Stats, Vec<DailyCost>), ServerFnError> {
    let caller = ssr::caller().await?;
    let backend = ssr::backend()?;
    Ok((
        ssr::answer(backend.stats(&caller).await)?,
        ssr::answer(backend.daily_costs(&caller, days).await)?,
    ))
}

#[server(endpoint = "preview_flush")]
pub async fn preview_flush(request: FlushRequest) -> Result<FlushPreview, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.flush_preview(&caller, request).await)
}

#[server(endpoint = "flush_now")]
pub async fn flush_now(request: FlushRequest) -> Result<FlushResponse, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.flush(&caller, request).await)
}

#[server(endpoint = "list_batches")]
pub async fn list_batches() -> Result<Versioned<BatchList>, ServerFnError> {
    let (caller, backend, version) = ssr::versioned_caller().await?;
    Ok((version, ssr::answer(backend.batches(&caller).await)?))
}

/// Where each job type's jobs go (admins): the flush form's provider choice.
#[server(endpoint = "routes")]
pub async fn routes() -> Result<Vec<RouteView>, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.prices(&caller).await).map(|prices| prices.routes)
}

#[server(endpoint = "poll_batch")]
pub async fn poll_batch(batch_id: String) -> Result<PollResponse, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.poll(&caller, &batch_id).await)
}

#[server(endpoint = "access_overview")]
pub async fn access_overview() -> Result<(Vec<UserView>, PriceView), ServerFnError> {
    let caller = ssr::caller().await?;
    let backend = ssr::backend()?;
    Ok((
        ssr::answer(backend.users(&caller).await)?,
        ssr::answer(backend.prices(&caller).await)?,
    ))
}

/// The users and their tokens alone: what the Access page reads again after a change.
#[server(endpoint = "users")]
pub async fn users() -> Result<Vec<UserView>, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.users(&caller).await)
}

#[server(endpoint = "create_token")]
pub async fn create_token(user: String, role: Role) -> Result<IssuedToken, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(
        ssr::backend()?
            .create_token(&caller, CreateTokenRequest { user, role })
            .await,
    )
}

#[server(endpoint = "retry_jobs")]
pub async fn retry_jobs(
    job_ids: Vec<String>,
    confirm_rebill: bool,
) -> Result<RetryReply, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(
        ssr::backend()?
            .retry_jobs(&caller, job_ids, confirm_rebill)
            .await,
    )
}

#[server(endpoint = "budget")]
pub async fn budget() -> Result<BudgetView, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.budget(&caller).await)
}

#[server(endpoint = "budgets")]
pub async fn budgets() -> Result<Vec<BudgetView>, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.budgets(&caller).await)
}

#[server(endpoint = "set_budget")]
pub async fn set_budget(
    user: String,
    monthly_cap_usd: Option<f64>,
) -> Result<BudgetView, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(
        ssr::backend()?
            .set_budget(&caller, &user, monthly_cap_usd)
            .await,
    )
}

#[server(endpoint = "audit_log")]
pub async fn audit_log(query: AuditQuery) -> Result<AuditPage, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.audit_log(&caller, query).await)
}

#[server(endpoint = "new_webhook_secret")]
pub async fn new_webhook_secret(user_id: String) -> Result<WebhookSecret, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.new_webhook_secret(&caller, &user_id).await)
}

#[server(endpoint = "revoke_token")]
pub async fn revoke_token(token_id: String) -> Result<(), ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.revoke_token(&caller, &token_id).await)
}

#[server(endpoint = "list_contexts")]
pub async fn list_contexts() -> Result<ContextList, ServerFnError> {
    let caller = ssr::caller().await?;
    ssr::answer(ssr::backend()?.contexts(&caller).await)
}

// The context actions answer a refusal (too large, in use, not yours) as a value: it is
// the user's to read, not a failure of the call.

#[server(endpoint = "create_context")]
pub async fn create_context(
    name: String,
    text: String,
) -> Result<Result<ContextCreated, String>, ServerFnError> {
    let caller = ssr::caller().await?;
    Ok(ssr::backend()?.create_context(&caller, name, text).await)
}

#[server(endpoint = "delete_context")]
pub async fn delete_context(
    context_id: String,
) -> Result<Result<ContextDeleted, String>, ServerFnError> {
    let caller = ssr::caller().await?;
    Ok(ssr::backend()?.delete_context(&caller, &context_id).await)
}

#[server(endpoint = "share_context")]
pub async fn share_context(
    context_id: String,
    shared: bool,
) -> Result<Result<ContextView, String>, ServerFnError> {
    let caller = ssr::caller().await?;
    Ok(ssr::backend()?
        .share_context(&caller, &context_id, shared)
        .await)
}

#[cfg(test)]
mod tests {
    use super::with_zone;

    #[test]
    fn a_local_time_gets_the_browsers_zone() {
        // New York in winter (UTC−5), Tokyo (UTC+9), Kathmandu (UTC+5:45), UTC itself.
        assert_eq!(
            with_zone("2026-12-10T09:08", Some("300")),
            "2026-12-10T09:08:00-05:00"
        );
        assert_eq!(
            with_zone("2026-12-10T09:08:30", Some("-540")),
            "2026-12-10T09:08:30+09:00"
        );
        assert_eq!(
            with_zone("2026-12-10T09:08", Some("-345")),
            "2026-12-10T09:08:00+05:45"
        );
        assert_eq!(
            with_zone("2026-12-10T09:08", Some("0")),
            "2026-12-10T09:08:00+00:00"
        );
    }

    #[test]
    fn anything_else_is_left_for_the_api_rules() {
        assert_eq!(with_zone("2026-12-10T09:08", None), "2026-12-10T09:08");
        assert_eq!(
            with_zone("2026-12-10T09:08Z", Some("300")),
            "2026-12-10T09:08Z"
        );
        assert_eq!(
            with_zone("2026-12-10T09:08-02:00", Some("300")),
            "2026-12-10T09:08-02:00"
        );
        assert_eq!(with_zone("tomorrow", Some("300")), "tomorrow");
        assert_eq!(
            with_zone("2026-12-10T09:08", Some("abc")),
            "2026-12-10T09:08"
        );
        assert_eq!(
            with_zone("2026-12-10T09:08", Some("99999")),
            "2026-12-10T09:08"
        );
        assert_eq!(with_zone("", Some("300")), "");
    }
}
