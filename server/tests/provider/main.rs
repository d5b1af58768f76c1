//! The Anthropic client against the emulator over real HTTP: every call, every error type,
//! retries (and the creates never retried blindly), cut, stalled, short and malformed results.
//! The OpenAI client's own calls are in `openai`; both clients' bodies against the providers'
//! descriptions in `spec`.

mod openai;
mod spec;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_batch::emulator::{
    self, AfterCreate, Emulator, Faults, InjectedFailure, Settings, StreamFault, Times,
};
use ai_batch::provider::{
    AnthropicClient, BatchBody, BatchRequest, BatchResult, ClientConfig, ListParams, MessageBatch,
    ProcessingStatus, Provider, ProviderError, ResultItem,
};
use ai_batch::{json_schema, templates};
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
        caching: Default::default(),
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
    let payload = example_payload(job_type).to_string();
    templates::render(job_type, &payload, MODEL, None, &templates::CachePlan::NONE).request(id)
}

async fn create(
    client: &AnthropicClient,
    requests: Vec<BatchRequest>,
) -> Result<MessageBatch, ProviderError> {
    client
        .create_batch("local-batch", BatchBody::from_requests(&requests)?)
        .await
}

/// How many batches the provider holds: what it will bill for.
async fn provider_batches(client: &AnthropicClient) -> usize {
    client
        .list_batches(ListParams {
            limit: Some(100),
            ..ListParams::default()
        })
        .await
        .unwrap()
        .data
        .len()
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
    let batch = create(&s.client, requests).await.unwrap();
    wait_until_ended(&s.client, &batch.id).await;
    batch.id
}

async fn all_results(
    client: &AnthropicClient,
    batch_id: &str,
) -> Vec<Result<ResultItem, ProviderError>> {
    let batch = client.retrieve_batch(batch_id).await.unwrap();
    client.batch_results(&batch).await.unwrap().collect().await
}

fn line(item: &Result<ResultItem, ProviderError>) -> &ai_batch::provider::ResultLine {
    match item {
        Ok(ResultItem::Line(line)) => line,
        other => panic!("expected a readable line, got {other:?}"),
    }
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
    let created = create(&s.client, requests).await.unwrap();
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

    let lines = all_results(&s.client, &created.id).await;
    assert_eq!(lines.len(), 3);
    for item in &lines {
        let line = line(item);
        match (line.custom_id.as_str(), &line.result) {
            ("job-a" | "job-b", BatchResult::Succeeded { message }) => {
                let job_type = if line.custom_id == "job-a" {
                    JobType::RiskReport
                } else {
                    JobType::SentimentAnalysis
                };
                json_schema::validate(
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
            create(
                &s.client,
                vec![job_request(&format!("j{i}"), JobType::RiskReport)],
            )
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
    let batch = create(
        &s.client,
        vec![
            job_request("x1", JobType::ModelEvaluation),
            job_request("x2", JobType::RiskReport),
        ],
    )
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
            .all(|l| line(l).result == BatchResult::Canceled)
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
    let batch = create(&s.client, vec![job_request("e1", JobType::RiskReport)])
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
            ..StreamFault::default()
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
            ..StreamFault::default()
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
        create(&s.client, vec![long_id]).await,
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
    let batch = create(&s.client, requests).await.unwrap();
    let ended = wait_until_ended(&s.client, &batch.id).await;
    let c = ended.request_counts;
    assert_eq!(c.total(), 60);
    assert!(c.errored > 5 && c.expired > 5 && c.succeeded > 5, "{c:?}");
    let lines = all_results(&s.client, &batch.id).await;
    let errored_kinds: Vec<String> = lines
        .iter()
        .filter_map(|l| match &line(l).result {
            BatchResult::Errored { error } => Some(error.error.kind.clone()),
            _ => None,
        })
        .collect();
    assert!(errored_kinds.iter().all(|k| k == "api_error"));
}

#[tokio::test]
async fn a_create_is_retried_only_after_refusals_that_prove_nothing_was_made() {
    let s = setup(Duration::from_secs(600), |c| c.max_retries = 3).await;
    // 429 and 529 are refusals: retried, and one batch results.
    s.emulator.set_faults(Faults {
        fail_next: vec![failure(429, Some(0)), failure(529, None)],
        ..Faults::default()
    });
    create(&s.client, vec![job_request("r1", JobType::RiskReport)])
        .await
        .unwrap();
    assert!(s.emulator.faults().fail_next.is_empty());
    assert_eq!(provider_batches(&s.client).await, 1);

    // A 500 after the batch was made: not retried, and uncertain.
    s.emulator.set_faults(Faults {
        after_create: vec![AfterCreate::Error500],
        ..Faults::default()
    });
    let error = create(&s.client, vec![job_request("r2", JobType::RiskReport)])
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Api { status: 500, .. }),
        "{error}"
    );
    assert!(!error.proves_nothing_created());
    assert_eq!(provider_batches(&s.client).await, 2, "one batch, not two");

    // A plain 500 proves nothing either, so it is not retried: the caller reconciles.
    s.emulator.set_faults(faults(vec![failure(500, None)]));
    let error = create(&s.client, vec![job_request("r3", JobType::RiskReport)])
        .await
        .unwrap_err();
    assert!(!error.proves_nothing_created(), "{error}");
    assert_eq!(provider_batches(&s.client).await, 2);
}

#[tokio::test]
async fn a_dropped_connection_after_a_create_is_uncertain() {
    let s = setup(Duration::from_secs(600), |_| {}).await;
    s.emulator.set_faults(Faults {
        after_create: vec![AfterCreate::Drop],
        ..Faults::default()
    });
    let error = create(&s.client, vec![job_request("d1", JobType::RiskReport)])
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Dropped(_)), "{error:?}");
    assert!(!error.proves_nothing_created());
    assert_eq!(provider_batches(&s.client).await, 1, "the batch exists");
}

#[tokio::test]
async fn a_create_answered_after_the_timeout_is_uncertain() {
    let s = setup(Duration::from_secs(600), |c| {
        c.request_timeout = Duration::from_millis(500)
    })
    .await;
    s.emulator.set_faults(Faults {
        after_create: vec![AfterCreate::Late { millis: 1500 }],
        ..Faults::default()
    });
    let error = create(&s.client, vec![job_request("l1", JobType::RiskReport)])
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Timeout(_)), "{error:?}");
    assert!(!error.proves_nothing_created());
    assert_eq!(provider_batches(&s.client).await, 1, "the batch exists");
}

#[tokio::test]
async fn no_connection_at_all_proves_nothing_was_created() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = ClientConfig::new(format!("http://127.0.0.1:{port}"), "k");
    config.max_retries = 0;
    let client = AnthropicClient::new(config).unwrap();
    let error = create(&client, vec![job_request("c1", JobType::RiskReport)])
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Connect(_)), "{error:?}");
    assert!(error.proves_nothing_created());
}

#[tokio::test]
async fn bad_lines_are_items_and_the_download_goes_on() {
    let s = setup(Duration::ZERO, |c| c.max_result_line_bytes = 200_000).await;
    let batch = ended_batch(&s, "m", 5, JobType::RiskReport).await;
    s.emulator.set_faults(Faults {
        malformed_results: Some(StreamFault {
            after_lines: 1,
            times: Some(1),
            ..StreamFault::default()
        }),
        long_results: Some(StreamFault {
            after_lines: 3,
            times: Some(1),
            bytes: 300_000,
            ..StreamFault::default()
        }),
        ..Faults::default()
    });
    let items = all_results(&s.client, &batch).await;
    assert_eq!(items.len(), 5, "{items:?}");
    for (i, item) in items.iter().enumerate() {
        match (i, item) {
            (1 | 3, Ok(ResultItem::Unreadable(bad))) => {
                assert_eq!(bad.custom_id.as_deref(), Some(format!("m{i}").as_str()));
                assert_eq!(bad.result_type.as_deref(), Some("succeeded"));
                assert!(
                    bad.usage.as_ref().unwrap()["output_tokens"]
                        .as_i64()
                        .unwrap()
                        > 0
                );
            }
            (_, Ok(ResultItem::Line(_))) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_short_file_ends_cleanly_and_gone_results_are_404() {
    let s = setup(Duration::ZERO, |_| {}).await;
    let batch = ended_batch(&s, "f", 4, JobType::RiskReport).await;
    s.emulator.set_faults(Faults {
        short_results: Some(StreamFault {
            after_lines: 2,
            times: Some(1),
            ..StreamFault::default()
        }),
        ..Faults::default()
    });
    let items = all_results(&s.client, &batch).await;
    assert_eq!(items.len(), 2);
    assert!(
        items.iter().all(|i| i.is_ok()),
        "a short file is no error by itself"
    );
    s.emulator.set_faults(Faults {
        results_gone: Some(Times { times: Some(1) }),
        ..Faults::default()
    });
    let ended = s.client.retrieve_batch(&batch).await.unwrap();
    let gone = s.client.batch_results(&ended).await.err().unwrap();
    assert!(gone.is_not_found(), "{gone}");
    assert_eq!(all_results(&s.client, &batch).await.len(), 4, "once only");
}
