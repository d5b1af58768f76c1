//! The real `ai-batch` binary as a process, talking to an emulator in the test process over
//! HTTP exactly as it would to Anthropic; and the provider's books, to hold the service's
//! figures against.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ai_batch::emulator::{self, BilledBatch, Emulator, Faults, Settings};
use ai_batch::pricing::{PriceTable, Usage};
use serde_json::{Value, json};

use crate::database::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_ai-batch");
const PRICES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/prices.toml");

pub struct Provider {
    pub url: String,
    pub emulator: Arc<Emulator>,
    _task: tokio::task::JoinHandle<()>,
}

impl Provider {
    /// The batch ids on one side only: the providers' batches (both sides') missing from
    /// `batches` (ours, as the API lists them) and ours the provider never made. Empty when the books list
    /// exactly the batches the provider billed.
    pub fn batches_on_one_side(&self, batches: &[Value]) -> BTreeSet<String> {
        let ours: BTreeSet<String> = batches
            .iter()
            .filter_map(|b| b["batch_id"].as_str().map(String::from))
            .collect();
        let mut billed = self.emulator.billing();
        billed.extend(self.emulator.openai().billing());
        let theirs: BTreeSet<String> = billed.into_iter().map(|b| b.id).collect();
        ours.symmetric_difference(&theirs).cloned().collect()
    }

    /// Fails unless every provider batch is on our books and every one of ours at the
    /// provider; the message says what each one-sided batch is, on both sides.
    pub fn assert_no_batch_on_one_side(&self, batches: &[Value]) {
        let mut found = String::new();
        for id in self.batches_on_one_side(batches) {
            let openai = self.emulator.openai().get(&id).map(|b| {
                format!(
                    "OpenAI, created {} {:?} {:?}",
                    b.created_at, b.status, b.request_counts
                )
            });
            let theirs = self.emulator.get(&id).map(|b| {
                let jobs: Vec<_> = self
                    .emulator
                    .requests_of(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.custom_id)
                    .collect();
                format!(
                    "created {} {:?} {:?} jobs {jobs:?}",
                    b.created_at, b.processing_status, b.request_counts
                )
            });
            let ours = batches.iter().find(|b| b["batch_id"] == id.as_str());
            let theirs = theirs.or(openai);
            found.push_str(&format!("\n{id}: provider {theirs:?}; ours {ours:?}"));
        }
        assert!(
            found.is_empty(),
            "batches on only one side of the books:{found}"
        );
    }

    /// An emulator whose batches end `delay` after their creation.
    pub async fn start(delay: Duration) -> Provider {
        Self::start_caching(delay, 0.64).await
    }

    /// The same, its cache read at `hit_rate` (each model caching from its priced minimum).
    pub async fn start_caching(delay: Duration, hit_rate: f64) -> Provider {
        let prices = PriceTable::load(std::path::Path::new(PRICES)).unwrap();
        let settings = Settings {
            processing_delay: delay,
            known_models: prices.models.keys().cloned().collect(),
            faults: Faults::default(),
            caching: emulator::CacheModel::new(hit_rate, prices.cache_minimums()),
        };
        let (addr, emulator, task) = emulator::start("127.0.0.1:0".parse().unwrap(), settings)
            .await
            .unwrap();
        Provider {
            url: format!("http://{addr}"),
            emulator,
            _task: task,
        }
    }

    /// What the provider billed (both sides: Anthropic's and OpenAI's), and for which jobs
    /// more than once.
    pub fn books(&self) -> Books {
        let mut billed = self.emulator.billing();
        billed.extend(self.emulator.openai().billing());
        Books::of(&billed)
    }

    /// Waits up to `limit` for every file of ours at OpenAI to be deleted (each released with
    /// its batch, or found left over by the stray search), and asserts none is left.
    pub async fn assert_no_openai_files_left(&self, limit: Duration) {
        let openai = self.emulator.openai();
        let deadline = std::time::Instant::now() + limit;
        while !openai.files().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(openai.files(), vec![], "files left at OpenAI");
    }

    /// What OpenAI's side alone billed.
    pub fn openai_books(&self) -> Books {
        Books::of(&self.emulator.openai().billing())
    }

    /// What Anthropic's side alone billed.
    pub fn anthropic_books(&self) -> Books {
        Books::of(&self.emulator.billing())
    }
}

/// A research note of about `tokens` tokens (four characters a token): a context's text.
pub fn note(tokens: usize) -> String {
    let sentence = "Rates held steady while energy rallied; semis beat on margins. ";
    sentence.repeat(tokens * 4 / sentence.len() + 1)
}

/// A billed usage in Anthropic's names. OpenAI bills `prompt_tokens` (cached ones among them,
/// at the cached-input price) and `completion_tokens`; it charges nothing extra to write.
fn anthropic_usage(usage: &Value) -> Usage {
    match usage.get("prompt_tokens").and_then(Value::as_i64) {
        Some(prompt) => {
            let cached = usage["prompt_tokens_details"]["cached_tokens"]
                .as_i64()
                .unwrap_or(0);
            Usage {
                input_tokens: prompt - cached,
                output_tokens: usage["completion_tokens"].as_i64().unwrap(),
                cache_read_input_tokens: cached,
                ..Usage::default()
            }
        }
        None => serde_json::from_value(usage.clone()).unwrap(),
    }
}

/// One side of the books: tokens and nano-dollars billed, results billed per job.
#[derive(Debug, Default, PartialEq)]
pub struct Books {
    pub tokens: i64,
    pub cost_nanos: i64,
    /// The same requests in a batch without caching, and on the standard API without it.
    pub uncached_nanos: i64,
    pub standard_nanos: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub billed_per_job: HashMap<String, usize>,
    pub tokens_per_job: HashMap<String, i64>,
    pub cost_nanos_per_job: HashMap<String, i64>,
    pub batches: usize,
}

impl Books {
    pub fn of(batches: &[BilledBatch]) -> Books {
        let prices = PriceTable::load(std::path::Path::new(PRICES)).unwrap();
        let mut books = Books {
            batches: batches.len(),
            ..Books::default()
        };
        for billed in batches.iter().flat_map(|b| &b.billed) {
            let usage = anthropic_usage(&billed.usage);
            let tokens = usage.input_tokens
                + usage.cache_creation_input_tokens
                + usage.cache_read_input_tokens
                + usage.output_tokens;
            let priced = prices.cost(&billed.model, &usage).unwrap();
            let cost = priced.paid_nanos;
            books.tokens += tokens;
            books.cost_nanos += cost;
            books.uncached_nanos += priced.uncached_nanos;
            books.standard_nanos += priced.standard_nanos;
            books.cache_read_tokens += usage.cache_read_input_tokens;
            books.cache_write_tokens += usage.cache_creation_input_tokens;
            let id = billed.custom_id.clone();
            *books.billed_per_job.entry(id.clone()).or_default() += 1;
            *books.tokens_per_job.entry(id.clone()).or_default() += tokens;
            *books.cost_nanos_per_job.entry(id).or_default() += cost;
        }
        books
    }

    /// Jobs the provider billed more than once.
    pub fn billed_twice(&self) -> Vec<&String> {
        let mut twice: Vec<_> = self
            .billed_per_job
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| id)
            .collect();
        twice.sort();
        twice
    }

    /// Asserts each job's recorded tokens (`jobs`, as an admin lists them) equal what the
    /// provider billed for it, naming the jobs that differ.
    pub fn assert_each_job_equal(&self, jobs: &[Value]) {
        let mut differ: Vec<String> = jobs
            .iter()
            .filter_map(|j| {
                let id = j["id"].as_str().unwrap();
                let billed = self.tokens_per_job.get(id).copied().unwrap_or(0);
                let recorded = j["tokens_used"].as_i64().unwrap();
                (billed != recorded).then(|| {
                    format!(
                        "{id} ({}, batch {}, error {}): recorded {recorded}, billed {billed}",
                        j["status"], j["batch_id"], j["error_message"]
                    )
                })
            })
            .collect();
        let known: HashSet<&str> = jobs.iter().filter_map(|j| j["id"].as_str()).collect();
        differ.extend(
            self.tokens_per_job
                .keys()
                .filter(|id| !known.contains(id.as_str()))
                .map(|id| format!("{id}: billed, but no such job")),
        );
        differ.sort();
        assert!(differ.is_empty(), "jobs whose books differ: {differ:#?}");
    }

    /// Asserts the service's stats (an admin's: every job) equal these books.
    pub fn assert_equal_to(&self, stats: &Value) {
        assert_eq!(
            stats["total_tokens_used"].as_i64(),
            Some(self.tokens),
            "tokens: service {stats} vs provider {self:?}"
        );
        assert_eq!(
            stats["total_cost_usd"].as_f64(),
            Some(app::api::nanos_to_usd(self.cost_nanos)),
            "cost: service {stats} vs provider {self:?}"
        );
        let usd = app::api::nanos_to_usd;
        assert_eq!(
            (
                stats["total_savings_usd"].as_f64(),
                stats["total_saved_by_batching_usd"].as_f64(),
                stats["total_saved_by_caching_usd"].as_f64(),
                stats["cache_read_tokens"].as_i64(),
                stats["cache_write_tokens"].as_i64(),
            ),
            (
                Some(usd(self.standard_nanos - self.cost_nanos)),
                Some(usd(self.standard_nanos - self.uncached_nanos)),
                Some(usd(self.uncached_nanos - self.cost_nanos)),
                Some(self.cache_read_tokens),
                Some(self.cache_write_tokens),
            ),
            "savings and cache: service {stats} vs provider {self:?}"
        );
    }
}

pub struct Service {
    child: Child,
    pub url: String,
    pub token: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A database for services, with an admin token made the way an operator makes one.
pub struct Database {
    pub url: String,
    pub admin: String,
    _db: TestDatabase,
}

impl Database {
    pub async fn new() -> Database {
        Self::on(TestDatabase::new().await).await
    }

    /// On PostgreSQL, for tests of several instances.
    pub async fn postgres() -> Database {
        Self::on(TestDatabase::postgres().await).await
    }

    /// A PostgreSQL database of a cluster the caller owns (a test that breaks it).
    pub async fn at(admin_url: &str) -> Database {
        Self::on(TestDatabase::postgres_on(admin_url).await).await
    }

    async fn on(db: TestDatabase) -> Database {
        let store = ai_batch::store::connect(&db.url, 2).await.unwrap();
        let admin = ai_batch::access::issue_token(store.as_ref(), "ops", app::api::Role::Admin)
            .await
            .unwrap()
            .plain;
        Database {
            url: db.url.clone(),
            admin,
            _db: db,
        }
    }
}

/// Where a service's log goes: nowhere, or appended to the file `AI_BATCH_TEST_SERVICE_LOG`
/// names (to read what a failing run did, e.g. the soak's).
fn service_log() -> Stdio {
    let Some(path) = std::env::var_os("AI_BATCH_TEST_SERVICE_LOG") else {
        return Stdio::null();
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_or_else(|_| Stdio::null(), Stdio::from)
}

impl Service {
    /// Starts `ai-batch serve` on `db`, talking to `provider` as Anthropic, with the scheduler
    /// off unless `extra` turns it on; waits until it answers.
    pub async fn start(db: &Database, provider: &Provider, extra: &[(&str, &str)]) -> Service {
        Self::start_logging_to(db, provider, extra, service_log).await
    }

    /// [`Service::start`], its log (stdout and stderr) going where `log` says.
    pub async fn start_logging_to(
        db: &Database,
        provider: &Provider,
        extra: &[(&str, &str)],
        log: impl Fn() -> Stdio,
    ) -> Service {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .env("AI_BATCH_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", &db.url)
            .env("AI_BATCH_PROVIDER", "anthropic")
            .env("ANTHROPIC_BASE_URL", &provider.url)
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("OPENAI_BASE_URL", format!("{}/v1", provider.url))
            .env("OPENAI_API_KEY", "test-key")
            .env("AI_BATCH_PRICES", PRICES)
            .env("AI_BATCH_SCHEDULER", "false")
            .env("RUST_LOG", "warn")
            .stdout(log())
            .stderr(log());
        for (k, v) in extra {
            command.env(k, v);
        }
        let service = Service {
            child: command.spawn().expect("the binary starts"),
            url: format!("http://127.0.0.1:{port}"),
            token: db.admin.clone(),
        };
        for _ in 0..200 {
            if reqwest::get(format!("{}/healthz", service.url))
                .await
                .is_ok()
            {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service did not start");
    }

    /// `GET /healthz` of this instance, or `None` if it does not answer.
    pub async fn health(&self) -> Option<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}/healthz", self.url))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// `kill -9`: no shutdown, no flush of anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself (a failpoint) and returns its exit code.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, json!({ "transport": e.to_string() })),
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Enqueues `n` jobs (each a ticker) and returns their ids.
    pub async fn enqueue(&self, n: usize) -> Vec<String> {
        self.enqueue_of("risk_report", n).await
    }

    /// Enqueues `n` jobs of `job_type` (a ticker each) and returns their ids.
    pub async fn enqueue_of(&self, job_type: &str, n: usize) -> Vec<String> {
        let job_type = app::api::JobType::parse(job_type).expect("a job type");
        let mut ids = Vec::new();
        for i in 0..n {
            let payload = json!({"ticker": format!("T{i}"), "weight": i});
            let (status, body) = self
                .post(
                    "/api/v1/batch/enqueue",
                    json!({"job_type": job_type.as_str(), "payload": payload}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            ids.push(body["job"]["id"].as_str().unwrap().to_string());
        }
        ids
    }

    /// Every job, as an admin sees it, a page of 1,000 at a time.
    pub async fn jobs(&self) -> Vec<Value> {
        let mut jobs = Vec::new();
        loop {
            let page = self
                .get(&format!(
                    "/api/v1/batch/jobs?limit=1000&offset={}",
                    jobs.len()
                ))
                .await;
            let rows = page["jobs"].as_array().unwrap().clone();
            let done = rows.len() < 1000;
            jobs.extend(rows);
            if done {
                return jobs;
            }
        }
    }

    pub async fn batches(&self) -> Vec<Value> {
        self.get("/api/v1/batch/internal/batches?limit=1000").await["batches"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until one of our batches is as `wanted` and returns it; past `within`, fails
    /// naming `what` was awaited and showing the batches as they are.
    pub async fn batch_where(
        &self,
        what: &str,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let batches = self.batches().await;
            if let Some(batch) = batches.iter().find(|batch| wanted(batch)) {
                return batch.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("no batch {what} within {within:?}: {:#}", json!(batches));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the jobs are settled (as [`Service::settled`]) and every batch either
    /// provider made is on our books: a copy whose create answer was lost is found by the sweep,
    /// which waits for its create window to settle, so it may come after the last job ends.
    /// Returns the jobs and our batches; past `within`, them as they are (the caller's
    /// comparison then fails with what is missing).
    pub async fn settled_with_every_batch(
        &self,
        provider: &Provider,
        within: Duration,
    ) -> (Vec<Value>, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let jobs = self.settled(within).await;
            let batches = self.batches().await;
            if provider.batches_on_one_side(&batches).is_empty() {
                // A copy the sweep has just recorded is polled to its end like any batch.
                let jobs = self.settled(within).await;
                return (jobs, self.batches().await);
            }
            if tokio::time::Instant::now() > deadline {
                return (jobs, batches);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every job is terminal and no batch is left open; returns the jobs.
    pub async fn settled(&self, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // The batches before the jobs: a batch collected between the two reads would
            // otherwise pass as settled with the jobs read before its results were written.
            let open_batches = self
                .batches()
                .await
                .iter()
                .filter(|b| {
                    b["results_collected"] == false
                        && b["status"] != "failed"
                        && b["status"] != "lost"
                })
                .count();
            let jobs = self.jobs().await;
            let all_terminal = jobs.iter().all(|j| {
                matches!(
                    j["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            });
            if all_terminal && open_batches == 0 {
                return jobs;
            }
            if tokio::time::Instant::now() > deadline {
                let statuses: Vec<_> = jobs.iter().map(|j| j["status"].clone()).collect();
                panic!(
                    "not settled: jobs {statuses:?}, batches {:#}",
                    json!(self.batches().await)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Which provider a test's jobs go to: the fault and money tests run on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Anthropic,
    OpenAi,
}

impl Side {
    /// The service's settings that send `risk_report` jobs (what `Service::enqueue` makes)
    /// to this side.
    pub fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Side::Anthropic => &[],
            Side::OpenAi => &[("AI_BATCH_ROUTES", "risk_report=gpt-4.1-mini")],
        }
    }

    /// Faults for this side's next calls.
    pub fn set_faults(self, provider: &Provider, faults: Faults) {
        match self {
            Side::Anthropic => provider.emulator.set_faults(faults),
            Side::OpenAi => provider.emulator.openai().set_faults(faults),
        }
    }

    /// The faults this side has left to inject.
    pub fn faults(self, provider: &Provider) -> Faults {
        match self {
            Side::Anthropic => provider.emulator.faults(),
            Side::OpenAi => provider.emulator.openai().faults(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Anthropic => "anthropic",
            Side::OpenAi => "openai",
        }
    }
}

/// Runs a case with its jobs on Anthropic, and again on OpenAI.
macro_rules! on_both_sides {
    ($case:ident: $anthropic:ident, $openai:ident) => {
        #[tokio::test]
        async fn $anthropic() {
            $case($crate::service::Side::Anthropic).await;
        }

        #[tokio::test]
        async fn $openai() {
            $case($crate::service::Side::OpenAi).await;
        }
    };
}
pub(crate) use on_both_sides;

/// A frozen heartbeat and a one-second lease: a create in flight outlives its lease, and
/// reconciliation takes the batch over while it is still on its way.
pub const FROZEN_HOLDER: &[(&str, &str)] = &[
    ("AI_BATCH_FAILPOINT", "stall-heartbeat"),
    ("AI_BATCH_LEASE_SECS", "1"),
];

/// The scheduler with every service on, fast, and a short lease: what the fault tests run.
pub const SCHEDULER: &[(&str, &str)] = &[
    ("AI_BATCH_SCHEDULER", "true"),
    ("AI_BATCH_AUTO_FLUSH", "false"),
    ("AI_BATCH_SCHEDULER_TICK_MS", "100"),
    ("AI_BATCH_POLL_INTERVAL_SECS", "1"),
    ("AI_BATCH_LEASE_SECS", "2"),
    // A restart after kill -9 leads within two seconds, not the default fifteen.
    ("AI_BATCH_LEADER_LEASE_SECS", "2"),
];
