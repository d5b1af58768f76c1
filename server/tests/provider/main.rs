//! The Anthropic client against the emulator over real HTTP: every call, every error type,
//! retries, cut and stalled result downloads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_batch::emulator::{self, Emulator, Faults, InjectedFailure, Settings, StreamFault};
use ai_batch::provider::{
    AnthropicClient, BatchRequest, BatchResult, ClientConfig, ListParams, ProcessingStatus,
    Provider, ProviderError,
};
use ai_batch::{schema, templates};
use app::api::JobType;
use app::api::examples::example_payload;
use futures::StreamExt;
use serde_json::json;

const MODEL: &str = "claude-sonnet-4-5";

struct Setup {
    client: AnthropicClient,
    emulator: Arc<Emulator>,
    _task: tokio::task::JoinHandle<()>,
}

async fn setup(delay: Duration, tune: impl FnOnce(&mut ClientConfig)) -> Setup {
    let settings = Settings {
        processing_delay: delay,
        known_models: vec![MODEL.into()],
        faults: Faults::default(),
    };
    let (addr, emulator, task) = emulator::start("127.0.0.1:0".parse().unwrap(), settings)
        .await
        .unwrap();
    let mut config = ClientConfig::new(format!("http://{addr}"), "test-key");
    config.retry_base_delay = Duration::from_millis(10);
    config.retry_max_delay = Duration::from_millis(50);
    tune(&mut config);
    Setup {
        client: AnthropicClient::new(config).unwrap(),
        emulator,
        _task: task,
    }
}

fn job_request(id: &str, job_type: JobType) -> BatchRequest {
    templates::render(id, job_type, &example_payload(job_type), MODEL)
        .unwrap()
        .request
}

fn invalid_request(id: &str) -> BatchRequest {
    BatchRequest::new(
        id,
        &json!({"model": MODEL, "max_tokens": 100, "messages": []}),
    )
}

fn faults(fail_next: Vec<InjectedFailure>) -> Faults {
    Faults {
        fail_next,
        ..Faults::default()
    }
}

fn failure(status: u16, retry_after_secs: Option<u64>) -> InjectedFailure {
    InjectedFailure {
        status,
        retry_after_secs,
        endpoint: None,
    }
}

/// A batch of `n` requests of one type, already ended.
async fn ended_batch(s: &Setup, prefix: &str, n: usize, job_type: JobType) -> String {
    let requests: Vec<_> = (0..n)
        .map(|i| job_request(&format!("{prefix}{i}"), job_type))
        .collect();
    let batch = s.client.create_batch(requests).await.unwrap();
    wait_until_ended(&s.client, &batch.id).await;
    batch.id
}

async fn all_results(
    client: &AnthropicClient,
    batch_id: &str,
) -> Vec<Result<ai_batch::provider::ResultLine, ProviderError>> {
    client
        .batch_results(batch_id)
        .await
        .unwrap()
        .collect()
        .await
}

async fn wait_until_ended(client: &AnthropicClient, id: &str) -> ai_batch::provider::MessageBatch {
    for _ in 0..100 {
        let batch = client.retrieve_batch(id).await.unwrap();
        if batch.processing_status == ProcessingStatus::Ended {
            return batch;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("batch {id} did not end");
}

#[tokio::test]
async fn create_retrieve_and_stream_results() {
    let s = setup(Duration::from_millis(300), |_| {}).await;
    let requests = vec![
        job_request("job-a", JobType::RiskReport),
        job_request("job-b", JobType::SentimentAnalysis),
        invalid_request("job-c"),
    ];
    let created = s.client.create_batch(requests).await.unwrap();
    assert!(created.id.starts_with("msgbatch_"));
    assert_eq!(created.processing_status, ProcessingStatus::InProgress);
    // Counts settle only when the batch ends.
    assert_eq!(
        (
            created.request_counts.processing,
            created.request_counts.succeeded
        ),
        (3, 0)
    );
    assert!(created.results_url.is_none());

    let ended = wait_until_ended(&s.client, &created.id).await;
    assert_eq!(
        (
            ended.request_counts.processing,
            ended.request_counts.succeeded,
            ended.request_counts.errored
        ),
        (0, 2, 1)
    );
    assert!(
        ended
            .results_url
            .as_deref()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert!(ended.ended_at.is_some());

    let lines: Vec<_> = s
        .client
        .batch_results(&created.id)
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(lines.len(), 3);
    for line in lines {
        let line = line.unwrap();
        match (line.custom_id.as_str(), &line.result) {
            ("job-a" | "job-b", BatchResult::Succeeded { message }) => {
                let job_type = if line.custom_id == "job-a" {
                    JobType::RiskReport
                } else {
                    JobType::SentimentAnalysis
                };
                schema::validate(
                    &templates::schema(job_type),
                    &message["content"][0]["input"],
                )
                .unwrap();
                assert!(message["usage"]["output_tokens"].as_i64().unwrap() > 0);
            }
            ("job-c", BatchResult::Errored { error }) => {
                assert_eq!(error.error.kind, "invalid_request_error")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn list_pages_newest_first() {
    let s = setup(Duration::ZERO, |_| {}).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            s.client
                .create_batch(vec![job_request(&format!("j{i}"), JobType::RiskReport)])
                .await
                .unwrap()
                .id,
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut params = ListParams {
        limit: Some(2),
        ..ListParams::default()
    };
    loop {
        let page = s.client.list_batches(params.clone()).await.unwrap();
        seen.extend(page.data.iter().map(|b| b.id.clone()));
        if !page.has_more {
            break;
        }
        params.after_id = page.last_id;
    }
    assert_eq!(seen, ids);
    let newer = s
        .client
        .list_batches(ListParams {
            before_id: Some(ids[2].clone()),
            limit: Some(10),
            after_id: None,
        })
        .await
        .unwrap();
    assert_eq!(
        newer.data.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        ids[..2]
    );
}

#[tokio::test]
async fn cancel_then_delete() {
    let s = setup(Duration::from_secs(600), |_| {}).await;
    let batch = s
        .client
        .create_batch(vec![
            job_request("x1", JobType::ModelEvaluation),
            job_request("x2", JobType::RiskReport),
        ])
        .await
        .unwrap();
    let refused = s.client.delete_batch(&batch.id).await.unwrap_err();
    assert!(
        matches!(&refused, ProviderError::Api { status: 400, kind, .. } if kind == "invalid_request_error"),
        "{refused}"
    );

    let canceling = s.client.cancel_batch(&batch.id).await.unwrap();
    assert_eq!(canceling.processing_status, ProcessingStatus::Canceling);
    assert!(canceling.cancel_initiated_at.is_some());
    let ended = wait_until_ended(&s.client, &batch.id).await;
    assert_eq!(ended.request_counts.canceled, 2);
    let lines = all_results(&s.client, &batch.id).await;
    assert!(
        lines
            .iter()
            .all(|l| matches!(l, Ok(line) if line.result == BatchResult::Canceled))
    );

    let deleted = s.client.delete_batch(&batch.id).await.unwrap();
    assert_eq!(
        (deleted.id.as_str(), deleted.kind.as_str()),
        (batch.id.as_str(), "message_batch_deleted")
    );
    let gone = s.client.retrieve_batch(&batch.id).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    assert!(matches!(&gone, ProviderError::Api { kind, .. } if kind == "not_found_error"));
}

#[tokio::test]
async fn expiry_after_24_hours_on_the_emulator_clock() {
    let s = setup(Duration::from_secs(48 * 3600), |_| {}).await;
    let batch = s
        .client
        .create_batch(vec![job_request("e1", JobType::RiskReport)])
        .await
        .unwrap();
    s.emulator.advance_clock(chrono::Duration::hours(25));
    let ended = s.client.retrieve_batch(&batch.id).await.unwrap();
    assert_eq!(ended.processing_status, ProcessingStatus::Ended);
    assert_eq!(ended.request_counts.expired, 1);
}

#[tokio::test]
async fn each_error_type_is_parsed_and_only_server_errors_are_retried() {
    let s = setup(Duration::ZERO, |c| c.max_retries = 2).await;
    for (status, kind, retried) in [
        (400, "invalid_request_error", false),
        (401, "authentication_error", false),
        (403, "permission_error", false),
        (404, "not_found_error", false),
        (413, "request_too_large", false),
        (429, "rate_limit_error", true),
        (500, "api_error", true),
        (529, "overloaded_error", true),
    ] {
        s.emulator
            .set_faults(faults(vec![failure(status, None); 5]));
        let error = s
            .client
            .list_batches(ListParams::default())
            .await
            .unwrap_err();
        match &error {
            ProviderError::Api {
                status: got,
                kind: got_kind,
                message,
                ..
            } => {
                assert_eq!((*got, got_kind.as_str()), (status, kind));
                assert!(message.contains("Injected"), "{message}");
            }
            other => panic!("{status}: {other}"),
        }
        let attempts = 5 - s.emulator.faults().fail_next.len();
        assert_eq!(attempts, if retried { 3 } else { 1 }, "{status}");
    }
}

#[tokio::test]
async fn retries_recover_and_honour_retry_after() {
    let s = setup(Duration::ZERO, |_| {}).await;
    s.emulator
        .set_faults(faults(vec![failure(529, None), failure(500, None)]));
    assert!(s.client.list_batches(ListParams::default()).await.is_ok());
    assert!(s.emulator.faults().fail_next.is_empty());

    s.emulator.set_faults(faults(vec![failure(429, Some(1))]));
    let started = Instant::now();
    assert!(s.client.list_batches(ListParams::default()).await.is_ok());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_cut_results_stream_is_an_error_not_a_short_success() {
    let s = setup(Duration::ZERO, |_| {}).await;
    let batch = ended_batch(&s, "c", 6, JobType::TradingAnalytics).await;
    s.emulator.set_faults(Faults {
        cut_results: Some(StreamFault {
            after_lines: 2,
            times: Some(1),
            millis: 0,
        }),
        ..Faults::default()
    });
    let lines = all_results(&s.client, &batch).await;
    assert_eq!(lines.iter().filter(|l| l.is_ok()).count(), 2);
    assert!(
        matches!(lines.last(), Some(Err(ProviderError::StreamCut(_)))),
        "{:?}",
        lines.last()
    );
    // The fault was for one download only: the next one is whole.
    let again = all_results(&s.client, &batch).await;
    assert_eq!(again.iter().filter(|l| l.is_ok()).count(), 6);
}

#[tokio::test]
async fn the_read_timeout_fires_on_a_stalled_download() {
    let s = setup(Duration::ZERO, |c| {
        c.read_timeout = Duration::from_millis(300)
    })
    .await;
    let batch = ended_batch(&s, "s", 3, JobType::RiskReport).await;
    s.emulator.set_faults(Faults {
        stall_results: Some(StreamFault {
            after_lines: 1,
            times: Some(1),
            millis: 3000,
        }),
        ..Faults::default()
    });
    let started = Instant::now();
    let lines = all_results(&s.client, &batch).await;
    assert!(
        matches!(lines.last(), Some(Err(ProviderError::Timeout(_)))),
        "{:?}",
        lines.last()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up after the stall, not before"
    );
}

#[tokio::test]
async fn invalid_batches_are_refused_before_sending() {
    let s = setup(Duration::ZERO, |_| {}).await;
    let long_id = BatchRequest::new("x".repeat(65), &json!({}));
    assert!(matches!(
        s.client.create_batch(vec![long_id]).await,
        Err(ProviderError::InvalidRequest(_))
    ));
    assert!(
        s.client
            .list_batches(ListParams::default())
            .await
            .unwrap()
            .data
            .is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn injected_shares_of_errored_and_expired_results() {
    let s = setup(Duration::ZERO, |_| {}).await;
    s.emulator.set_faults(Faults {
        errored_percent: 30,
        expired_percent: 30,
        ..Faults::default()
    });
    let requests: Vec<_> = (0..60)
        .map(|i| job_request(&format!("share-{i}"), JobType::RiskReport))
        .collect();
    let batch = s.client.create_batch(requests).await.unwrap();
    let ended = wait_until_ended(&s.client, &batch.id).await;
    let c = ended.request_counts;
    assert_eq!(c.total(), 60);
    assert!(c.errored > 5 && c.expired > 5 && c.succeeded > 5, "{c:?}");
    let lines = all_results(&s.client, &batch.id).await;
    let errored_kinds: Vec<String> = lines
        .iter()
        .filter_map(|l| match &l.as_ref().unwrap().result {
            BatchResult::Errored { error } => Some(error.error.kind.clone()),
            _ => None,
        })
        .collect();
    assert!(errored_kinds.iter().all(|k| k == "api_error"));
}
