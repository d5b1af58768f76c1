//! Rate limits, security headers, and admin checks that live in the use cases.

use std::time::Duration;

use ai_batch::access;
use ai_batch::batches;
use ai_batch::error::Error;
use app::api::{Caller, FlushRequest, Role};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestApp;

fn retry_after(answer: &crate::harness::Answer) -> u64 {
    answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds")
}

#[tokio::test]
async fn past_the_read_limit_a_token_gets_429_and_a_client_that_waits_gets_through() {
    let app = TestApp::start_with(&[("--reads-per-sec", "2"), ("--reads-burst", "2")]).await;
    let mut statuses = vec![];
    let mut limited = None;
    for _ in 0..4 {
        let answer = app.alice.get("/api/v1/batch/stats").await;
        statuses.push(answer.status);
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(answer);
        }
    }
    assert_eq!(&statuses[..2], &[StatusCode::OK, StatusCode::OK]);
    let limited = limited.expect("a 429 once the burst of 2 is spent");
    let wait = retry_after(&limited);
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let detail = limited.body["detail"].as_str().expect("FastAPI's detail");
    assert!(detail.contains("2 per second"), "{detail}");

    // Another token has its own bucket.
    assert_eq!(
        app.bob.get("/api/v1/batch/stats").await.status,
        StatusCode::OK
    );

    // A client that honours Retry-After succeeds.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        app.alice.get("/api/v1/batch/stats").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_refused_enqueue_stores_nothing_and_reads_have_their_own_limit() {
    let app = TestApp::start_with(&[
        ("--enqueue-per-sec", "1"),
        ("--enqueue-burst", "1"),
        ("--reads-per-sec", "100"),
    ])
    .await;
    let job = json!({"job_type": "risk_report", "payload": {"ticker": "NVDA"}});
    app.alice.enqueue(job.clone()).await;
    let refused = app.alice.post("/api/v1/batch/enqueue", job.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert!(retry_after(&refused) >= 1);
    let bulk = app
        .alice
        .post("/api/v1/batch/enqueue/bulk", json!({"jobs": [job]}))
        .await;
    assert_eq!(
        bulk.status,
        StatusCode::TOO_MANY_REQUESTS,
        "bulk shares the enqueue limit"
    );

    // Reads are not held back by the spent enqueue bucket, and only the first job exists.
    let list = app.alice.get("/api/v1/batch/jobs").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["total_count"], 1);
}

#[tokio::test]
async fn api_answers_are_never_cached_and_pages_only_run_our_scripts() {
    let app = TestApp::start().await;
    let stats = app.alice.get("/api/v1/batch/stats").await;
    assert_eq!(stats.headers["cache-control"], "no-store");
    assert_eq!(stats.headers["x-content-type-options"], "nosniff");
    let unauthenticated = app.anonymous.get("/api/v1/batch/stats").await;
    assert_eq!(unauthenticated.headers["cache-control"], "no-store");

    let page = app.anonymous.get("/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let script_src = policy
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .expect("a script-src directive");
    assert!(!script_src.contains("unsafe-inline"), "{script_src}");
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in script-src");
    assert!(nonce.len() >= 16, "{nonce}");
    // Every inline script of the page carries this render's nonce.
    let html = page.body.as_str().unwrap();
    let scripts = html.matches("<script").count();
    assert!(scripts >= 1, "{html}");
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        scripts,
        "{html}"
    );

    // A second render has a new nonce.
    let again = app.anonymous.get("/sign-in").await;
    assert_ne!(
        again.headers["content-security-policy"],
        page.headers["content-security-policy"]
    );
}

#[tokio::test]
async fn batch_use_cases_refuse_a_trader_whoever_calls_them() {
    let app = TestApp::start().await;
    let trader = Caller {
        user_id: "t".into(),
        name: "trader".into(),
        role: Role::Trader,
    };
    let request = FlushRequest::options(10, None, 0);
    let ctx = &app.ctx;
    assert!(matches!(
        batches::flush(ctx, &trader, request.clone()).await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        batches::preview(ctx, &trader, request).await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        batches::poll(ctx, &trader, "msgbatch_x").await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        batches::list(ctx, &trader, 10).await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        access::price_table(ctx, &trader),
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        ai_batch::webhooks::rotate_secret(ctx, &trader, "someone-else").await,
        Err(Error::Forbidden)
    ));
    // The scheduler acts as an admin no token can become.
    assert!(
        batches::list(ctx, &app::api::Caller::scheduler(), 10)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn revoking_a_token_ends_the_dashboard_sessions_opened_with_it() {
    let app = TestApp::start().await;
    let issued = app
        .admin
        .post(
            "/api/v1/admin/tokens",
            json!({"user": "carol", "role": "trader"}),
        )
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let token = issued.body["token"].as_str().unwrap();
    let token_id = issued.body["token_id"].as_str().unwrap();
    let other = access::issue_token(app.ctx.store(), "carol", Role::Trader)
        .await
        .unwrap()
        .plain;
    let hour = chrono::Duration::hours(1);
    let session = access::open_session(&app.ctx, token, hour).await.unwrap();
    let other_session = access::open_session(&app.ctx, &other, hour).await.unwrap();
    let signed_in = |cookie: String| {
        let store = app.ctx.clone();
        async move { access::session_caller(&store, &cookie).await.unwrap() }
    };
    assert!(signed_in(session.clone()).await.is_some());

    let revoked = app
        .admin
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/tokens/{token_id}"),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(
        signed_in(session).await.is_none(),
        "the session died with its token"
    );
    assert!(
        signed_in(other_session).await.is_some(),
        "a session opened with another token of the same user lives on"
    );
}

/// The value of one Prometheus sample line, `name{labels} value`, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_move_with_real_traffic_and_only_admins_read_them() {
    let app = TestApp::start().await;
    let read = |client: crate::harness::Client| async move {
        let answer = client.get("/metrics").await;
        (
            answer.status,
            answer.body.as_str().unwrap_or_default().to_string(),
        )
    };
    let (status, before) = read(app.admin.clone()).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(read(app.alice.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        read(app.anonymous.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let enqueued_before = sample(&before, "aib_jobs_enqueued_total").unwrap_or(0.0);

    for ticker in ["AAPL", "MSFT", "NVDA"] {
        app.alice
            .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": ticker}}))
            .await;
    }
    app.flush_and_collect().await;

    let (_, after) = read(app.admin.clone()).await;
    // Counters are per process (tests run side by side): they grew by at least our traffic.
    let enqueued = sample(&after, "aib_jobs_enqueued_total").unwrap();
    assert!(
        enqueued - enqueued_before >= 3.0,
        "{enqueued_before} → {enqueued}"
    );
    assert!(sample(&after, "aib_results_ingested_total").unwrap() >= 3.0);
    assert!(
        sample(
            &after,
            "aib_provider_calls_total{operation=\"create\",outcome=\"ok\"}"
        )
        .unwrap()
            >= 1.0,
        "{after}"
    );
    assert!(after.contains(
        "aib_api_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/batch/enqueue\",status=\"200\"}"
    ), "{after}");
    // Gauges are this app's books.
    assert_eq!(
        sample(
            &after,
            "aib_jobs{status=\"completed\",job_type=\"risk_report\"}"
        ),
        Some(3.0)
    );
    let stats = app.admin.get("/api/v1/batch/stats").await.body;
    let cost = sample(
        &after,
        "aib_cost_usd{status=\"completed\",job_type=\"risk_report\"}",
    )
    .unwrap();
    assert!(
        (cost - stats["total_cost_usd"].as_f64().unwrap()).abs() < 1e-9,
        "{cost} {stats}"
    );
    assert!(cost > 0.0);
    assert_eq!(sample(&after, "aib_batches_open"), Some(0.0));
}
