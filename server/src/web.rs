//! The dashboard: Leptos pages and server functions, backed by the same use cases as REST.

use std::sync::Arc;

use app::api::backend::{Backend, BackendHandle, Reply};
use app::api::validation::{
    FieldError, parse_audit_query, parse_budget_request, parse_bulk_cancel, parse_context_request,
    parse_create_token, parse_days, parse_enqueue, parse_flush, parse_list_query, parse_poll,
    parse_retry, parse_share_context,
};
use app::api::*;
use app::{App, SignInRefusal, shell};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use serde_json::Value;

use crate::config::ProviderKind;
use crate::context::Ctx;
use crate::error::Error;
use crate::limits::{Asker, Use};
use crate::{access, audit, batches, budgets, contexts, jobs};

const SESSION_COOKIE: &str = "aib_session";

pub fn router(ctx: Ctx, options: LeptosOptions) -> Router {
    let routes = generate_route_list(App);
    let timeout = crate::http::request_timeout(&ctx);
    let exports = Router::new()
        .route("/exports/jobs.csv", axum::routing::get(export_jobs))
        .route("/exports/daily.csv", axum::routing::get(export_daily_costs))
        .route("/live", axum::routing::get(live_changes))
        .with_state(ctx.clone());
    let backend: BackendHandle = Arc::new(WebBackend { ctx });
    let sign_in = Router::new()
        .route(app::SIGN_IN_PATH, axum::routing::post(sign_in_form))
        .with_state(SignInPage {
            backend: backend.clone(),
            options: options.clone(),
        });
    Router::new()
        .leptos_routes_with_context(
            &options,
            routes,
            move || provide_context(backend.clone()),
            {
                let options = options.clone();
                move || shell(options.clone())
            },
        )
        // The site's files (the WASM, its script and stylesheet, `public/`), each as its `.br`
        // or `.gz` twin where the release build made one and the browser takes it, with
        // `Last-Modified` for revalidation; any other path is the "not found" page.
        .fallback_service(
            tower_http::services::ServeDir::new(&*options.site_root)
                .precompressed_br()
                .precompressed_gzip()
                .call_fallback_on_method_not_allowed(true)
                .fallback(axum::handler::Handler::with_state(
                    leptos_axum::file_and_error_handler(shell),
                    options.clone(),
                )),
        )
        .with_state(options)
        .merge(exports)
        .merge(sign_in)
        // Pages and server function answers gzipped for browsers that take it (what is
        // compressed already, the precompressed site files, and live event streams pass as
        // they are).
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn(cache_policy))
        .layer(axum::middleware::from_fn(bounded_body))
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            crate::http::limits::timeout,
        ))
        .layer(axum::middleware::from_fn(readable_refusals))
        .layer(axum::middleware::from_fn(reject_cross_site))
}

/// A server function's client reads a refusal only in its own encoding (`ServerError|…`): the
/// layers in front of the functions (the body limit, the timeout) refuse as REST does, with
/// `{"detail": "…"}`, which the page could only call unreadable. Their words, re-encoded here,
/// are what the page shows.
async fn readable_refusals(request: Request, next: Next) -> Response {
    use leptos::server_fn::error::{FromServerFnError, SERVER_FN_ERROR_HEADER};
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if !path.starts_with("/api/")
        || !(response.status().is_client_error() || response.status().is_server_error())
        || response.headers().contains_key(SERVER_FN_ERROR_HEADER)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let detail = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|answer| answer["detail"].as_str().map(str::to_owned));
    let Some(detail) = detail else {
        return Response::from_parts(parts, bytes.into());
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(value) = header::HeaderValue::from_str(&path) {
        parts.headers.insert(SERVER_FN_ERROR_HEADER, value);
    }
    let refusal: ServerFnError = ServerFnError::ServerError(detail);
    let encoded = refusal.ser();
    Response::from_parts(parts, encoded.into())
}

/// How long a browser may keep what it was sent: a file whose name carries its content's hash
/// never changes under that name, so it is kept a year without asking again; anything else
/// (pages, server function answers, unhashed files) is asked for again each time, and
/// unchanged files answer 304.
async fn cache_policy(request: Request, next: Next) -> Response {
    let immutable = is_content_hashed(request.uri().path());
    let mut response = next.run(request).await;
    let value = if immutable && response.status() == StatusCode::OK {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(header::HeaderValue::from_static(value));
    response
}

/// A site file named as cargo-leptos's `hash-files` names them: `name.<22 characters of
/// base64url MD5>.ext` under `/pkg/`.
fn is_content_hashed(path: &str) -> bool {
    let Some(file) = path.strip_prefix("/pkg/") else {
        return false;
    };
    let parts: Vec<&str> = file.split('.').collect();
    parts.len() >= 3
        && !file.contains('/')
        && parts[1].len() == 22
        && parts[1]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Dashboard calls carry a few fields; a body past the REST limit is a 413 before any of it
/// reaches a server function (which would fail on it with a 500). A context upload carries
/// up to a MiB of text, form-encoded: it has the contexts endpoint's limit.
async fn bounded_body(request: Request, next: Next) -> Response {
    use app::api::validation::{MAX_BODY_BYTES, MAX_CONTEXT_BODY_BYTES};
    use leptos::server_fn::ServerFn;
    let (parts, body) = request.into_parts();
    let limit = if parts.uri.path() == app::server_fns::CreateContext::PATH {
        MAX_CONTEXT_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Error::BodyTooLarge.into_response();
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => next.run(Request::from_parts(parts, bytes.into())).await,
        Err(e) => crate::http::unread_body(e).into_response(),
    }
}

/// What the sign-in form's answer needs: the use cases, and the site to render the page again.
#[derive(Clone)]
struct SignInPage {
    backend: BackendHandle,
    options: LeptosOptions,
}

#[derive(serde::Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: String,
}

/// The sign-in page's form, posted by the browser itself (the page loads no WASM): a session
/// cookie and on to the jobs page, or the same page again saying why not. Failed attempts count
/// against the client's address as on every other way in.
async fn sign_in_form(
    axum::extract::State(page): axum::extract::State<SignInPage>,
    request: Request,
) -> Response {
    use axum::extract::FromRequest;
    let (parts, body) = request.into_parts();
    let address = crate::http::client_address(&parts);
    let token =
        axum::Form::<SignInForm>::from_request(Request::from_parts(parts.clone(), body), &())
            .await
            .map(|axum::Form(form)| form.token)
            .unwrap_or_default();
    let refusal = match page.backend.sign_in(token.trim(), address).await {
        Ok(cookie) => {
            return (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/jobs".to_string()),
                    (header::SET_COOKIE, cookie),
                ],
            )
                .into_response();
        }
        Err(refusal) => SignInRefusal(refusal),
    };
    let SignInPage { backend, options } = page;
    let render = leptos_axum::render_app_to_stream_with_context(
        move || {
            provide_context(backend.clone());
            provide_context(refusal.clone());
        },
        move || shell(options.clone()),
    );
    render(Request::from_parts(parts, axum::body::Body::empty())).await
}

struct WebBackend {
    ctx: Ctx,
}

/// Use-case errors as people read them; the dashboard shows the message (never a database's).
fn say<T>(result: crate::error::Result<T>) -> Reply<T> {
    result.map_err(|e| e.public_message())
}

/// Server functions are endpoints anyone can call with any arguments: they go through the
/// same readers as the REST API's requests.
fn checked<T>(parsed: Result<T, Vec<FieldError>>) -> Reply<T> {
    say(parsed.map_err(Error::Validation))
}

#[async_trait::async_trait]
impl Backend for WebBackend {
    async fn visitor(&self, headers: &HeaderMap) -> Visitor {
        let Some(cookie) = session_cookie(headers) else {
            return Visitor::Anonymous;
        };
        match access::session_caller(&self.ctx, &cookie).await {
            Ok(Some(caller)) => Visitor::SignedIn(Session {
                caller,
                emulator: self.ctx.provider_kind == ProviderKind::Emulator,
            }),
            Ok(None) => Visitor::Ended,
            Err(e) => {
                tracing::warn!(error = %e, "session lookup failed");
                Visitor::Anonymous
            }
        }
    }

    async fn sign_in(&self, token: &str, address: Option<std::net::IpAddr>) -> Reply<String> {
        let lifetime = self.ctx.config.session_lifetime();
        let cookie = match access::open_session(&self.ctx, token, lifetime).await {
            Ok(cookie) => cookie,
            Err(Error::Unauthenticated) => {
                say(self.ctx.limits.failed_auth(address))?;
                return Err("That token is not valid. Check it and try again.".to_string());
            }
            Err(other) => return Err(other.public_message()),
        };
        Ok(self.cookie(&cookie, lifetime.num_seconds()))
    }

    fn admit(&self, caller: &Caller, enqueue: bool) -> Reply<()> {
        let what = if enqueue { Use::Enqueue } else { Use::Other };
        say(self
            .ctx
            .limits
            .check(&Asker::User(caller.user_id.clone()), what))
    }

    async fn sign_out(&self, headers: &HeaderMap) -> String {
        if let Some(cookie) = session_cookie(headers)
            && let Err(e) = access::close_session(&self.ctx, &cookie).await
        {
            tracing::warn!(error = %e, "closing a session failed");
        }
        self.cookie("", 0)
    }

    fn live_version(&self, caller: &Caller) -> String {
        self.ctx.changes.version(caller)
    }

    async fn list_jobs(&self, caller: &Caller, query: ListQuery) -> Reply<JobList> {
        let pairs = query.to_pairs();
        let query = checked(parse_list_query(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))?;
        say(jobs::list(&self.ctx, caller, query).await)
    }

    async fn job_detail(&self, caller: &Caller, job_id: &str) -> Reply<JobDetail> {
        say(jobs::detail(&self.ctx, caller, job_id).await)
    }

    async fn enqueue(
        &self,
        caller: &Caller,
        body: Value,
    ) -> Reply<Result<EnqueueResponse, Vec<FieldError>>> {
        let request = match parse_enqueue(&body) {
            Ok(request) => request,
            Err(errors) => return Ok(Err(errors)),
        };
        let key = request.idempotency_key.clone();
        match jobs::enqueue(&self.ctx, caller, request).await {
            // Refusals the form shows in place, not failures of the request: REST answers
            // them 402 and 409.
            Err(Error::OverBudget(why)) => Ok(Err(vec![FieldError::new(
                "over_budget",
                vec![Value::from("body")],
                why,
                Value::Null,
            )])),
            Err(Error::Conflict(why)) => Ok(Err(vec![FieldError::new(
                "conflict",
                vec![Value::from("body"), Value::from("idempotency_key")],
                why,
                key.map_or(Value::Null, Value::from),
            )])),
            Err(Error::Validation(errors)) => Ok(Err(errors)),
            other => say(other).map(Ok),
        }
    }

    async fn cancel_jobs(
        &self,
        caller: &Caller,
        job_ids: Vec<String>,
    ) -> Reply<BulkCancelResponse> {
        let request = checked(parse_bulk_cancel(
            &serde_json::json!({ "job_ids": job_ids }),
        ))?;
        say(jobs::cancel_many(&self.ctx, caller, &request.job_ids).await)
    }

    async fn retry_jobs(
        &self,
        caller: &Caller,
        job_ids: Vec<String>,
        confirm_rebill: bool,
    ) -> Reply<RetryReply> {
        let request = checked(parse_retry(
            &serde_json::json!({ "job_ids": job_ids, "confirm_rebill": confirm_rebill }),
        ))?;
        match jobs::retry(&self.ctx, caller, &request).await {
            Err(Error::RebillNotConfirmed(why)) => Ok(RetryReply::NeedsConfirmation(why)),
            other => say(other).map(RetryReply::Retried),
        }
    }

    async fn stats(&self, caller: &Caller) -> Reply<Stats> {
        say(jobs::stats(&self.ctx, caller).await)
    }

    async fn daily_costs(&self, caller: &Caller, days: i64) -> Reply<Vec<DailyCost>> {
        let days = checked(parse_days([("days", days.to_string().as_str())]))?;
        say(jobs::daily_costs(&self.ctx, caller, days).await)
    }

    async fn flush_preview(&self, caller: &Caller, request: FlushRequest) -> Reply<FlushPreview> {
        let request = checked(parse_flush(
            &serde_json::to_value(request).unwrap_or_default(),
        ))?;
        say(batches::preview(&self.ctx, caller, request).await)
    }

    async fn flush(&self, caller: &Caller, request: FlushRequest) -> Reply<FlushResponse> {
        let request = checked(parse_flush(
            &serde_json::to_value(request).unwrap_or_default(),
        ))?;
        say(batches::flush(&self.ctx, caller, request).await)
    }

    async fn batches(&self, caller: &Caller) -> Reply<BatchList> {
        say(batches::list(&self.ctx, caller, 100).await)
    }

    async fn poll(&self, caller: &Caller, batch_id: &str) -> Reply<PollResponse> {
        let request = checked(parse_poll(&serde_json::json!({ "batch_id": batch_id })))?;
        say(batches::poll(&self.ctx, caller, &request.batch_id).await)
    }

    async fn users(&self, caller: &Caller) -> Reply<Vec<UserView>> {
        say(access::list_users(&self.ctx, caller).await)
    }

    async fn create_token(
        &self,
        caller: &Caller,
        request: CreateTokenRequest,
    ) -> Reply<IssuedToken> {
        let request = checked(parse_create_token(
            &serde_json::to_value(request).unwrap_or_default(),
        ))?;
        say(access::create_token(&self.ctx, caller, &request.user, request.role).await)
    }

    async fn revoke_token(&self, caller: &Caller, token_id: &str) -> Reply<()> {
        say(access::revoke_token(&self.ctx, caller, token_id).await)
    }

    async fn new_webhook_secret(&self, caller: &Caller, user_id: &str) -> Reply<WebhookSecret> {
        let secret = say(crate::webhooks::rotate_secret(&self.ctx, caller, user_id).await)?;
        Ok(WebhookSecret { secret })
    }

    async fn prices(&self, caller: &Caller) -> Reply<PriceView> {
        say(access::price_table(&self.ctx, caller))
    }

    async fn budget(&self, caller: &Caller) -> Reply<BudgetView> {
        say(budgets::own(&self.ctx, caller).await)
    }

    async fn budgets(&self, caller: &Caller) -> Reply<Vec<BudgetView>> {
        say(budgets::all(&self.ctx, caller).await)
    }

    async fn set_budget(
        &self,
        caller: &Caller,
        user: &str,
        monthly_cap_usd: Option<f64>,
    ) -> Reply<BudgetView> {
        let request = checked(parse_budget_request(
            &serde_json::json!({ "monthly_cap_usd": monthly_cap_usd }),
        ))?;
        say(budgets::set(&self.ctx, caller, user, &request).await)
    }

    async fn audit_log(&self, caller: &Caller, query: AuditQuery) -> Reply<AuditPage> {
        let action = query.action.map(|a| a.as_str().to_string());
        let numbers = [
            ("before", query.before.map(|b| b.to_string())),
            ("limit", query.limit.map(|l| l.to_string())),
        ];
        let pairs = numbers
            .iter()
            .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
            .chain(action.as_deref().map(|a| ("action", a)))
            .chain(query.actor.as_deref().map(|a| ("actor", a)));
        let query = checked(parse_audit_query(pairs))?;
        say(audit::log(&self.ctx, caller, &query).await)
    }

    async fn contexts(&self, caller: &Caller) -> Reply<ContextList> {
        say(contexts::list(&self.ctx, caller).await)
    }

    async fn create_context(
        &self,
        caller: &Caller,
        name: String,
        text: String,
    ) -> Reply<ContextCreated> {
        let request = checked(parse_context_request(
            &serde_json::json!({ "name": name, "text": text }),
        ))?;
        say(contexts::create(&self.ctx, caller, request).await)
    }

    async fn delete_context(&self, caller: &Caller, context_id: &str) -> Reply<ContextDeleted> {
        say(contexts::delete(&self.ctx, caller, context_id).await)
    }

    async fn share_context(
        &self,
        caller: &Caller,
        context_id: &str,
        shared: bool,
    ) -> Reply<ContextView> {
        let request = checked(parse_share_context(
            &serde_json::json!({ "shared": shared }),
        ))?;
        say(contexts::share(&self.ctx, caller, context_id, request.shared).await)
    }
}

impl WebBackend {
    fn cookie(&self, value: &str, max_age_secs: i64) -> String {
        let secure = if self.ctx.config.cookie_secure {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
        )
    }
}

/// The signed-in dashboard user, from the session cookie.
async fn cookie_caller(ctx: &Ctx, headers: &HeaderMap) -> crate::error::Result<Caller> {
    let cookie = session_cookie(headers).ok_or(Error::Unauthenticated)?;
    access::session_caller(ctx, &cookie)
        .await?
        .ok_or(Error::Unauthenticated)
}

/// Server-sent events telling the signed-in user's open pages what changed (`change` events
/// whose data is `{"topics": ["jobs", "batches"]}`); pages read again only then. `since` is
/// the version the page was rendered from: without it, or when it is not the version now,
/// the first event says everything may have changed.
async fn live_changes(
    axum::extract::State(ctx): axum::extract::State<Ctx>,
    headers: HeaderMap,
    query: crate::http::QueryPairs,
) -> crate::error::Result<Response> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let caller = cookie_caller(&ctx, &headers).await?;
    let since = query.iter().find(|(k, _)| *k == "since").map(|(_, v)| v);
    let watcher = ctx.changes.watch(caller, since);
    let events = futures::stream::unfold(watcher, |mut watcher| async move {
        let told = watcher.next().await?;
        let event = Event::default().event("change").json_data(&told);
        Some((event, watcher))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The jobs page's download: the same export as REST, for the signed-in user.
async fn export_jobs(
    axum::extract::State(ctx): axum::extract::State<Ctx>,
    headers: HeaderMap,
    query: crate::http::QueryPairs,
) -> crate::error::Result<Response> {
    let caller = cookie_caller(&ctx, &headers).await?;
    let query = parse_list_query(query.iter())?;
    let csv = jobs::jobs_csv(ctx, caller, query).await?;
    Ok(crate::http::csv_download(
        "jobs.csv",
        axum::body::Body::from_stream(csv),
    ))
}

/// The Savings page's download.
async fn export_daily_costs(
    axum::extract::State(ctx): axum::extract::State<Ctx>,
    headers: HeaderMap,
    query: crate::http::QueryPairs,
) -> crate::error::Result<Response> {
    let caller = cookie_caller(&ctx, &headers).await?;
    let days = parse_days(query.iter())?;
    let csv = jobs::daily_costs_csv(&ctx, &caller, days).await?;
    Ok(crate::http::csv_download(
        "daily-costs.csv",
        axum::body::Body::from(csv),
    ))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// CSRF defence for cookie-authenticated writes: besides the SameSite=Strict cookie, refuse
/// state-changing requests that the browser marks as cross-site (Fetch Metadata), or whose
/// Origin is not this host.
async fn reject_cross_site(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && is_cross_site(request.headers()) {
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    next.run(request).await
}

fn is_cross_site(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value(header::HeaderName::from_static("sec-fetch-site")) {
        return !matches!(site, "same-origin" | "none");
    }
    match (value(header::ORIGIN), value(header::HOST)) {
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, h)| h) != Some(host),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn cross_site_detection() {
        assert!(!is_cross_site(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!is_cross_site(&headers(&[
            ("origin", "http://a:3000"),
            ("host", "a:3000")
        ])));
        assert!(is_cross_site(&headers(&[
            ("origin", "http://evil"),
            ("host", "a:3000")
        ])));
        assert!(!is_cross_site(&headers(&[])));
    }

    #[test]
    fn only_hashed_site_files_are_kept_for_good() {
        assert!(is_content_hashed(
            "/pkg/ai-batch.SsLBLd1h5QAr_6a2ehOd8A.wasm"
        ));
        assert!(is_content_hashed(
            "/pkg/ai-batch.SsLBLd1h5QAr_6a2ehOd8A.wasm.br"
        ));
        assert!(!is_content_hashed("/pkg/ai-batch.wasm"));
        assert!(!is_content_hashed("/pkg/ai-batch.short.wasm"));
        assert!(!is_content_hashed("/favicon.SsLBLd1h5QAr_6a2ehOd8A.svg"));
        assert!(!is_content_hashed(
            "/pkg/x/ai-batch.SsLBLd1h5QAr_6a2ehOd8A.wasm"
        ));
        assert!(!is_content_hashed(
            "/pkg/ai-batch.SsLBLd1h5QAr+6a2ehOd8A.wasm"
        ));
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let h = headers(&[("cookie", "a=1; aib_session=aib_x_y; b=2")]);
        assert_eq!(session_cookie(&h).as_deref(), Some("aib_x_y"));
        assert_eq!(session_cookie(&headers(&[("cookie", "a=1")])), None);
    }
}
