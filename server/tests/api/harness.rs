//! Test harness: the real server on a random port with a temporary SQLite file, and clients
//! for an admin and two traders.

#![allow(dead_code)]

use ai_batch::config::Config;

use crate::database::TestDatabase;
use ai_batch::{access, serve};
use app::api::Role;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub struct TestApp {
    pub url: String,
    pub admin: Client,
    pub alice: Client,
    pub bob: Client,
    pub anonymous: Client,
    pub ctx: ai_batch::context::Ctx,
    _scheduler: Option<ai_batch::scheduler::Scheduler>,
    _db: TestDatabase,
}

impl Drop for TestApp {
    /// Ends what the server started besides its requests (live streams, the relay between
    /// instances) before the database goes.
    fn drop(&mut self) {
        self.ctx.changes.close();
    }
}

#[derive(Clone)]
pub struct Client {
    url: String,
    token: Option<String>,
    http: reqwest::Client,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The problem's `detail` of an answer that must have `expected` as its status.
    pub fn detail(&self, expected: StatusCode) -> &str {
        assert_eq!(self.status, expected, "{}", self.body);
        self.body["detail"].as_str().expect("a problem's detail")
    }
}

/// An amount the API writes in US dollars, in billionths (nanodollars, as the books keep it).
pub fn usd_nanos(usd: &Value) -> i64 {
    (usd.as_f64().expect("an amount in dollars") * 1e9).round() as i64
}

/// The service's configuration for a test: its own database, the in-process emulator with a
/// 1 s processing delay, no scheduler; `overrides` replace or add flags (`--name`, `value`).
pub fn test_config(db: &TestDatabase, overrides: &[(&str, &str)]) -> Config {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        config: Config,
    }
    let prices = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/prices.toml");
    let mut flags: Vec<(String, String)> = [
        ("--addr", "127.0.0.1:0"),
        ("--database-url", db.url.as_str()),
        ("--flush-interval-secs", "300"),
        ("--provider", "emulator"),
        ("--emulator-delay-secs", "1"),
        ("--prices", prices),
        ("--scheduler", "false"),
        ("--poll-interval-secs", "1"),
        // Tests drive the API far past a person's pace; `hardening.rs` turns the limits on.
        ("--enqueue-per-sec", "0"),
        ("--reads-per-sec", "0"),
        ("--auth-failures-per-sec", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (name, value) in overrides {
        flags.retain(|(k, _)| k != name);
        flags.push((name.to_string(), value.to_string()));
    }
    let args =
        std::iter::once("test".to_string()).chain(flags.into_iter().flat_map(|(k, v)| [k, v]));
    <Flags as clap::Parser>::parse_from(args).config
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with configuration overrides; with `--scheduler true`, the scheduler runs too.
    pub async fn start_with(overrides: &[(&str, &str)]) -> Self {
        Self::start_with_routes(overrides, axum::Router::new()).await
    }

    /// Starts with `extra` routes served beside the application's own, built the same way.
    pub async fn start_with_routes(overrides: &[(&str, &str)], extra: axum::Router) -> Self {
        Self::start_full(overrides, extra, None).await
    }

    /// Starts with webhook deliveries resolving names through `lookup` (a stand-in for DNS).
    pub async fn start_with_lookup(
        overrides: &[(&str, &str)],
        lookup: std::sync::Arc<dyn ai_batch::webhooks::Lookup>,
    ) -> Self {
        Self::start_full(overrides, axum::Router::new(), Some(lookup)).await
    }

    async fn start_full(
        overrides: &[(&str, &str)],
        extra: axum::Router,
        lookup: Option<std::sync::Arc<dyn ai_batch::webhooks::Lookup>>,
    ) -> Self {
        let db = TestDatabase::new().await;
        let config = test_config(&db, overrides);
        let mut ctx = serve::connect(&config).await.expect("database");
        if let Some(lookup) = lookup {
            ctx.webhooks = std::sync::Arc::new(ai_batch::webhooks::Deliveries::new(
                config.webhooks.destinations(),
                lookup,
            ));
        }
        let token = |name: &'static str, role| {
            let ctx = ctx.clone();
            async move {
                access::issue_token(ctx.store(), name, role)
                    .await
                    .expect("token")
                    .plain
            }
        };
        let (admin, alice, bob) = (
            token("root", Role::Admin).await,
            token("alice", Role::Trader).await,
            token("bob", Role::Trader).await,
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let scheduler = ai_batch::scheduler::Scheduler::start(&ctx);
        let app = serve::app_with(ctx.clone(), serve::leptos_options(&config), extra)
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("server") });

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let client = |token: Option<String>| Client {
            url: url.clone(),
            token,
            http: http.clone(),
        };
        TestApp {
            admin: client(Some(admin)),
            alice: client(Some(alice)),
            bob: client(Some(bob)),
            anonymous: client(None),
            url,
            ctx,
            _scheduler: scheduler,
            _db: db,
        }
    }

    /// The admin flushes every eligible job, then polls until the batch has ended and its
    /// results are in; returns the batch id.
    pub async fn flush_and_collect(&self) -> String {
        let flush = self
            .admin
            .post("/api/v1/batch/internal/flush", serde_json::json!({}))
            .await;
        assert_eq!(flush.status, StatusCode::OK, "{}", flush.body);
        let batch = flush.body["batch_id"]
            .as_str()
            .expect("a batch")
            .to_string();
        for _ in 0..80 {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let poll = self
                .admin
                .post(
                    "/api/v1/batch/internal/poll",
                    serde_json::json!({"batch_id": batch}),
                )
                .await;
            if poll.body["status"] == "ended" {
                return batch;
            }
        }
        panic!("batch {batch} did not end");
    }

    /// A dashboard session for `client`'s token, as the sign-in page opens one: the `cookie`
    /// header's value.
    pub async fn session_cookie(&self, client: &Client) -> String {
        let hour = chrono::Duration::hours(1);
        let cookie = ai_batch::access::open_session(&self.ctx, client.token(), hour)
            .await
            .unwrap();
        format!("aib_session={cookie}")
    }

    /// A dashboard call: the session in `cookie`, a server function by its name, its
    /// arguments as the browser's form sends them.
    pub async fn server_fn(
        &self,
        cookie: &str,
        name: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let answer = reqwest::Client::new()
            .post(format!("{}/api/{name}", self.url))
            .header("cookie", cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        (answer.status(), answer.text().await.unwrap())
    }

    /// A dashboard page's HTML as the browser holding `cookie` gets it; the page must answer 200.
    pub async fn page(&self, path: &str, cookie: &str) -> String {
        let answer = self
            .anonymous
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        answer.text().await.unwrap()
    }

    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.into()),
            ..self.anonymous.clone()
        }
    }
}

impl Client {
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("an authenticated client")
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.url)).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.put(format!("{}{path}", self.url)).json(&body))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.send(
            self.http
                .post(format!("{}{path}", self.url))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    pub async fn request(&self, method: reqwest::Method, path: &str) -> Answer {
        self.send(self.http.request(method, format!("{}{path}", self.url)))
            .await
    }

    /// Enqueues a job and returns its id, asserting success.
    pub async fn enqueue(&self, body: Value) -> String {
        let answer = self.post("/api/v1/batch/enqueue", body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["job"]["id"]
            .as_str()
            .expect("job id")
            .to_string()
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }
}
