//! What operators scrape at `GET /metrics` (Prometheus text). Counters and histograms are
//! recorded where things happen (the API middleware, the provider client, ingest, enqueue);
//! the money and job gauges are written from the books a use case reads at scrape time
//! (`books::scrape`), so they are the books themselves, not a second count that could drift.
//! Nothing here reads the store.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use app::api::{JobStatus, JobType};
use metrics::{counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::TotalsRow;

const API_SECONDS: &str = "aib_api_request_duration_seconds";
const ENQUEUED: &str = "aib_jobs_enqueued_total";
const PROVIDER_CALLS: &str = "aib_provider_calls_total";
const PROVIDER_SECONDS: &str = "aib_provider_call_duration_seconds";
const RESULTS_INGESTED: &str = "aib_results_ingested_total";
const WEBHOOKS: &str = "aib_webhook_attempts_total";

/// Latency buckets from 0.5 ms to a minute: enqueues sit at the low end, provider calls high.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The process's recorder, installed once (every app in a test process shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("static buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (an embedding program's): keep theirs.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// One API request, by its route pattern (never the raw path: ids would explode the series).
pub fn api_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    histogram!(API_SECONDS, "method" => method.to_string(), "route" => route.to_string(),
        "status" => status.to_string())
    .record(elapsed.as_secs_f64());
}

pub fn jobs_enqueued(count: usize) {
    counter!(ENQUEUED).increment(count as u64);
}

/// One HTTP call to the provider (each retry counts), by operation and outcome.
pub fn provider_call(operation: &'static str, outcome: &str, elapsed: Duration) {
    counter!(PROVIDER_CALLS, "operation" => operation, "outcome" => outcome.to_string())
        .increment(1);
    histogram!(PROVIDER_SECONDS, "operation" => operation).record(elapsed.as_secs_f64());
}

/// One webhook attempt, delivered or not.
pub fn webhook_attempt(delivered: bool) {
    let outcome = if delivered { "delivered" } else { "failed" };
    counter!(WEBHOOKS, "outcome" => outcome).increment(1);
}

/// Result lines read from results files (a re-read after a cut download counts again).
pub fn results_ingested(count: usize) {
    counter!(RESULTS_INGESTED).increment(count as u64);
}

/// A gauge read from the totals: name, help, and the value of one totals row.
type Gauge = (&'static str, &'static str, fn(&TotalsRow) -> f64);

/// What the books say at the moment of a scrape (read by `books::scrape`).
pub struct Books {
    pub totals: Vec<TotalsRow>,
    /// Batches whose results are still to collect.
    pub open_batches: i64,
    /// Whether this instance runs the background work.
    pub leader: bool,
}

/// The Prometheus text: what was recorded, then gauges of the books. The gauges are written
/// per scrape, not kept in the recorder: each app (and each test's) has its own.
pub fn render(books: &Books) -> String {
    let mut text = handle().render();
    let gauges: [Gauge; 8] = [
        ("aib_jobs", "Jobs by status and type.", |t| t.jobs as f64),
        ("aib_tokens", "Input and output tokens billed.", |t| {
            t.bill.tokens() as f64
        }),
        (
            "aib_cache_read_tokens",
            "Prompt tokens read from the provider's cache.",
            |t| t.bill.cache_read_tokens as f64,
        ),
        (
            "aib_cache_write_tokens",
            "Prompt tokens written to the provider's cache.",
            |t| t.bill.cache_write_tokens as f64,
        ),
        ("aib_cost_usd", "What the provider billed, in USD.", |t| {
            t.bill.cost_nanos as f64 / 1e9
        }),
        (
            "aib_savings_usd",
            "Standard price less what was billed, in USD.",
            |t| t.bill.savings_nanos() as f64 / 1e9,
        ),
        (
            "aib_saved_by_batching_usd",
            "What the batch discount saved, in USD.",
            |t| t.bill.saved_by_batching_nanos() as f64 / 1e9,
        ),
        (
            "aib_saved_by_caching_usd",
            "What the provider's cache saved on top of the batch discount, in USD.",
            |t| t.bill.saved_by_caching_nanos() as f64 / 1e9,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for &status in JobStatus::ALL {
            for &job_type in JobType::ALL {
                let sum: f64 = books
                    .totals
                    .iter()
                    .filter(|t| t.status == status && t.job_type == job_type)
                    .map(value)
                    .sum();
                let _ = writeln!(
                    text,
                    "{name}{{status=\"{}\",job_type=\"{}\"}} {sum}",
                    status.as_str(),
                    job_type.as_str()
                );
            }
        }
    }
    let (open, leader) = (books.open_batches, u8::from(books.leader));
    let _ = writeln!(
        text,
        "# HELP aib_batches_open Batches whose results are still to collect.\n# TYPE aib_batches_open gauge\naib_batches_open {open}\n\
         # HELP aib_leader 1 when this instance runs the background work.\n# TYPE aib_leader gauge\naib_leader {leader}"
    );
    text
}
