//! Start-up of the service: database, first admin, routers, listener.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use leptos::prelude::LeptosOptions;
use leptos_config::Env;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::context::Ctx;
use crate::store::SqliteStore;
use crate::{access, http, web};

/// The whole application: REST API and dashboard over one context.
pub fn app(ctx: Ctx, options: LeptosOptions) -> Router {
    http::router(ctx.clone()).merge(web::router(ctx, options))
}

pub async fn connect(config: &Config) -> anyhow::Result<Ctx> {
    let store = SqliteStore::connect(&sqlite_url(&config.database_url)?).await?;
    Ok(Ctx {
        config: Arc::new(config.clone()),
        store: Arc::new(store),
    })
}

pub fn leptos_options(config: &Config) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("ai-batch")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .env(Env::PROD)
        .build()
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
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
    println!("Bitcain AI Batch is running: open http://{addr}/ and sign in with an access token.");
    axum::serve(listener, app(ctx, leptos_options(&config)))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Checks the database URL and makes sure a SQLite file's folder exists.
pub fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        bail!(
            "DATABASE_URL must be a sqlite: URL for now (PostgreSQL support is not built yet): {}",
            redact(url)
        );
    };
    let path = rest
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if let Some(dir) = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(url.to_string())
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
