//! Start-up of the service: database, prices, provider, first admin, routers, listener.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::http::{HeaderValue, header};
use leptos::prelude::LeptosOptions;
use leptos_config::Env;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::{Config, EmulatorConfig, ProviderKind};
use crate::context::Ctx;
use crate::pricing::PriceTable;
use crate::provider::{AnthropicClient, OpenAiClient, Provider, Providers};
use crate::scheduler::Scheduler;
use crate::store::{Store, StoreError};
use crate::{access, emulator, http, web};

/// The whole application: REST API and dashboard over one context.
pub fn app(ctx: Ctx, options: LeptosOptions) -> Router {
    app_with(ctx, options, Router::new())
}

/// The application with `extra` routes beside its own, built and hardened the same way
/// (tests add routes that misbehave to check what every route gets).
pub fn app_with(ctx: Ctx, options: LeptosOptions, extra: Router) -> Router {
    let routes = extra
        .merge(http::router(ctx.clone()))
        .merge(web::router(ctx, options));
    // A panic in any handler answers 500 JSON, and the server goes on serving.
    let routes = routes.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        http::panicked,
    ));
    let routes = traced(routes);
    // Pages set their own Content-Security-Policy (with the render's nonce, in `app::shell`).
    let headers = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    headers.into_iter().fold(routes, |routes, (name, value)| {
        routes.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

/// An answer this slow is logged as a warning: a stall someone should look into.
const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(5);

/// A span per request (method, route, request id; status and latency once answered) around
/// everything logged while it runs, and its id in `x-request-id` both ways: the client's, or
/// a new one. An answer slower than [`SLOW_ANSWER`] is a warning, with that span.
fn traced(routes: Router) -> Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::TraceLayer;
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &axum::http::Request<_>| {
            let route = request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or("unmatched", |p| p.as_str());
            let id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // At the warning's level, so a log filtered to warnings still names the route.
            tracing::warn_span!(
                "request",
                method = %request.method(),
                route,
                request_id = id,
                status = tracing::field::Empty,
                latency_us = tracing::field::Empty,
            )
        })
        .on_request(())
        .on_response(
            |response: &axum::http::Response<_>,
             latency: std::time::Duration,
             span: &tracing::Span| {
                span.record("status", response.status().as_u16());
                span.record("latency_us", latency.as_micros() as u64);
                if latency > SLOW_ANSWER {
                    tracing::warn!("slow answer");
                } else {
                    tracing::debug!("answered");
                }
            },
        )
        .on_failure(());
    // Layers run outside in: the id is set first, then the span reads it.
    routes
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Everything the service needs before it listens. With the emulator as provider, this starts
/// it on a loopback port and points the real client at it; it lives as long as the runtime.
pub async fn connect(config: &Config) -> anyhow::Result<Ctx> {
    let store = open_store(
        &config.database_url,
        config.db_max_connections,
        std::time::Duration::from_secs(config.db_startup_wait_secs),
    )
    .await?;
    let prices = Arc::new(PriceTable::load(&config.prices)?.with_routes(&config.routes)?);
    let kind = config.provider_kind();
    let providers = match kind {
        ProviderKind::Anthropic => {
            let key = config.anthropic.api_key.as_deref().unwrap_or_default();
            if key.is_empty() {
                tracing::warn!(
                    "AI_BATCH_PROVIDER=anthropic but ANTHROPIC_API_KEY is empty: Anthropic will refuse the calls"
                );
            }
            let anthropic: Arc<dyn Provider> = Arc::new(AnthropicClient::new(
                config
                    .anthropic
                    .client_config(&config.anthropic.base_url, key),
            )?);
            let openai = match config.openai.api_key.as_deref().filter(|k| !k.is_empty()) {
                Some(key) => Some(openai_client(config, &config.openai.base_url, key)?),
                None => None,
            };
            Providers { anthropic, openai }
        }
        ProviderKind::Emulator => {
            // One emulator speaks both providers' APIs on one loopback port.
            let loopback: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
            let (addr, _, _) =
                emulator::start(loopback, emulator_settings(&config.emulator, &prices)).await?;
            let base_url = format!("http://{addr}");
            Providers {
                anthropic: Arc::new(AnthropicClient::new(
                    config.anthropic.client_config(&base_url, "emulator"),
                )?),
                openai: Some(openai_client(config, &base_url, "emulator")?),
            }
        }
    };
    for route in prices.view().routes {
        if !providers.has(route.provider) {
            anyhow::bail!(
                "{} is routed to {} ({}), which is not configured: set OPENAI_API_KEY, or route it elsewhere (AI_BATCH_ROUTES)",
                route.job_type,
                route.model,
                route.provider.label()
            );
        }
    }
    tracing::info!(provider = ?kind, prices = %prices.version, "provider chosen");
    if kind == ProviderKind::Emulator && !config.database_url.starts_with("sqlite:") {
        tracing::warn!(
            "the built-in emulator lives in this process: instances sharing this database must share one provider \
             (Anthropic, or one standalone `ai-batch emulator` with AI_BATCH_PROVIDER=anthropic and ANTHROPIC_BASE_URL)"
        );
    }
    let ctx = Ctx {
        config: Arc::new(config.clone()),
        enqueuer: crate::store::GroupCommit::start(store.clone()),
        store,
        providers,
        provider_kind: kind,
        prices,
        instance: instance_name().into(),
        leading: Arc::default(),
        caches: Default::default(),
        changes: Default::default(),
        webhooks: Arc::new(crate::webhooks::Deliveries::new(
            config.webhooks.destinations(),
            Arc::new(crate::webhooks::SystemLookup),
        )),
        limits: Arc::new(crate::limits::Limits::new(&config.limits)),
        bulk_parsing: Arc::new(tokio::sync::Semaphore::new(
            crate::context::BULK_BODIES_AT_ONCE,
        )),
    };
    crate::changes::relay::start(&ctx.changes, ctx.store.clone(), ctx.instance.clone()).await;
    Ok(ctx)
}

/// A random id, unique per process: what leases and `/healthz` show. It says nothing of the
/// machine (anyone may read `/healthz`); the log line at start ties it to the host and pid.
fn instance_name() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let id = format!("i-{}", &random[..12]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    tracing::info!(instance = %id, %host, pid = std::process::id(), "this process's instance id");
    id
}

/// OpenAI's client at `base_url` (given with or without the SDKs' `/v1`).
fn openai_client(config: &Config, base_url: &str, key: &str) -> anyhow::Result<Arc<dyn Provider>> {
    let base_url = base_url.trim_end_matches('/').trim_end_matches("/v1");
    Ok(Arc::new(OpenAiClient::new(
        config.anthropic.client_config(base_url, key),
    )?))
}

pub fn emulator_settings(config: &EmulatorConfig, prices: &PriceTable) -> emulator::Settings {
    emulator::Settings {
        processing_delay: std::time::Duration::from_secs(config.delay_secs),
        known_models: prices.models.keys().cloned().collect(),
        faults: config.faults.clone().unwrap_or_default(),
        caching: emulator::CacheModel::new(config.cache_hit_rate, prices.cache_minimums()),
    }
}

pub fn leptos_options(config: &Config) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("ai-batch")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .env(Env::PROD)
        .hash_files(assets_are_hashed())
        .build()
}

/// cargo-leptos names the WASM, its script and the stylesheet by their contents
/// (`hash-files`) and leaves the names in `hash.txt` beside the binary it built; pages link
/// those names when it is there (a binary built by `cargo build` alone has none).
fn assets_are_hashed() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("hash.txt")))
        .is_some_and(|file| file.is_file())
}

pub fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        // Colours for a person at a terminal; a file or a journal gets plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let ctx = connect(&config).await?;
    if let Some(admin) = access::bootstrap_admin(ctx.store()).await? {
        println!(
            "First start: created the admin user '{}'. Its token, shown only this once:",
            admin.user.name
        );
        println!("{}", admin.plain);
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(database = %redact(&config.database_url), "listening on http://{addr}");
    if ctx.provider_kind == ProviderKind::Emulator {
        println!(
            "Provider: the built-in Anthropic emulator (set ANTHROPIC_API_KEY to use Anthropic)."
        );
    }
    println!("Bitcain AI Batch is running: open http://{addr}/ and sign in with an access token.");
    if let Some(metrics_addr) = config.limits.metrics_addr {
        let listener = TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr} for metrics"))?;
        let router = http::metrics_router(ctx.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        println!("Metrics for Prometheus: http://{metrics_addr}/metrics (no token needed there).");
    }
    let scheduler = Scheduler::start(&ctx);
    let changes = ctx.changes.clone();
    let app = app(ctx, leptos_options(&config)).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Open live streams end, so the shutdown does not wait for their pages.
            changes.close();
        })
        .await?;
    if let Some(scheduler) = scheduler {
        scheduler.stop().await;
    }
    Ok(())
}

/// Opens the store `DATABASE_URL` names (`sqlite:` or `postgres:`), creating a SQLite file's
/// folder, and keeps trying for up to `wait` while the database does not answer (an instance
/// may start before its PostgreSQL). Migrations run on the way.
pub async fn open_store(
    url: &str,
    max_connections: u32,
    wait: std::time::Duration,
) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or_default();
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    } else if !url.starts_with("postgres:") && !url.starts_with("postgresql:") {
        bail!(
            "DATABASE_URL must be sqlite://… or postgres://…, not {}",
            redact(url)
        );
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        match crate::store::connect(url, max_connections).await {
            Ok(store) => return Ok(store),
            Err(StoreError::Unavailable(e)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(database = %redact(url), error = %e, "the database does not answer yet; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot open the database {}", redact(url)));
            }
        }
    }
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
