//! What a hostile trader sends: NUL in every text input, formulas for the admin's
//! spreadsheet, headers dressed up to dodge a limit, forged tokens, oversized dashboard calls.
//! Every answer is a 4xx that says why, on both stores, and nothing is stored.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Answer, TestApp};
use crate::live::{live_version_of, open_stream, told_within};

const NUL: &str = "\u{0}";

async fn enqueue_one(app: &TestApp) -> String {
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "AAPL"}}))
        .await
}

fn assert_refused(what: &str, answer: &Answer) {
    assert!(
        answer.status.is_client_error(),
        "{what}: {} {}",
        answer.status,
        answer.body
    );
    assert!(
        answer.status != StatusCode::NOT_FOUND || what.contains("path"),
        "{what}: refused as input, not missing: {}",
        answer.body
    );
}

#[tokio::test]
async fn nul_in_any_text_input_is_a_422_on_every_endpoint() {
    let app = TestApp::start().await;
    let id = enqueue_one(&app).await;
    let job = |extra: Value| {
        let mut body = json!({"job_type": "risk_report", "payload": {"ticker": "AAPL"}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let bodies = [
        (
            "payload value",
            job(json!({"payload": {"ticker": format!("A{NUL}")}})),
        ),
        (
            "payload key",
            job(json!({"payload": {format!("k{NUL}"): 1}})),
        ),
        (
            "nested payload",
            job(json!({"payload": {"a": [{"b": NUL}]}})),
        ),
        (
            "idempotency key",
            job(json!({"idempotency_key": format!("key{NUL}")})),
        ),
        (
            "callback",
            job(json!({"callback_url": format!("https://example.com/{NUL}")})),
        ),
        (
            "job type",
            job(json!({"job_type": format!("risk_report{NUL}")})),
        ),
        (
            "run after",
            job(json!({"run_after": format!("2030-01-01{NUL}")})),
        ),
    ];
    for (what, body) in &bodies {
        let single = app.alice.post("/api/v1/batch/enqueue", body.clone()).await;
        assert_eq!(
            single.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            single.body
        );
        let bulk = app
            .alice
            .post("/api/v1/batch/enqueue/bulk", json!({"jobs": [body]}))
            .await;
        assert_eq!(
            bulk.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "bulk {what}: {}",
            bulk.body
        );
    }
    let nul = "%00";
    for path in [
        format!("/api/v1/batch/jobs?q=a{nul}"),
        format!("/api/v1/batch/jobs?error=a{nul}"),
        format!("/api/v1/batch/jobs?cursor=1.a{nul}"),
        format!("/api/v1/batch/jobs?status_filter={nul}"),
        format!("/api/v1/batch/jobs?job_type={nul}"),
        format!("/api/v1/batch/exports/jobs.csv?q={nul}"),
        format!("/api/v1/batch/exports/jobs.csv?error=x{nul}"),
    ] {
        let answer = app.alice.get(&path).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            answer.body
        );
        assert!(
            answer.body.is_object(),
            "{path}: a JSON answer, not a cut CSV"
        );
    }
    for path in [
        format!("/api/v1/batch/jobs/{id}{nul}"),
        format!("/api/v1/batch/jobs/{nul}/result"),
        format!("/api/v1/batch/jobs/{nul}/events"),
    ] {
        let answer = app.alice.get(&path).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "path {path}: {}",
            answer.body
        );
        assert_eq!(answer.body["detail"][0]["loc"], json!(["path", "job_id"]));
    }
    let cancel = app
        .alice
        .post(&format!("/api/v1/batch/jobs/{nul}/cancel"), json!({}))
        .await;
    assert_refused("path cancel", &cancel);
    for (path, body) in [
        ("/api/v1/batch/jobs/cancel", json!({"job_ids": [NUL]})),
        (
            "/api/v1/batch/internal/jobs/retry",
            json!({"job_ids": [format!("{id}{NUL}")]}),
        ),
        (
            "/api/v1/batch/internal/poll",
            json!({"batch_id": format!("msgbatch_{NUL}")}),
        ),
        ("/api/v1/batch/internal/flush", json!({"job_types": [NUL]})),
        (
            "/api/v1/batch/internal/flush",
            json!({"preview_token": format!("v1.1.0.*.1.1{NUL}")}),
        ),
        (
            "/api/v1/admin/tokens",
            json!({"user": format!("eve{NUL}"), "role": "trader"}),
        ),
    ] {
        let answer = app.admin.post(path, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {}",
            answer.body
        );
    }
    let revoke = app
        .admin
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/tokens/x{nul}"),
        )
        .await;
    assert_refused("path token", &revoke);
    let budget = app
        .admin
        .put(
            &format!("/api/v1/admin/budgets/a{nul}"),
            json!({"monthly_cap_usd": 1}),
        )
        .await;
    assert_refused("path user", &budget);
    let audit = app
        .admin
        .get(&format!("/api/v1/admin/audit?actor=a{nul}"))
        .await;
    assert_eq!(
        audit.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        audit.body
    );
    // Nothing was stored, and the service answers as before.
    let jobs = app.alice.get("/api/v1/batch/jobs").await;
    assert_eq!(jobs.body["total_count"], 1);
}

#[tokio::test]
async fn a_nul_request_does_not_spoil_the_group_it_arrives_with() {
    let app = TestApp::start().await;
    let requests: Vec<_> = (0..40)
        .map(|i| {
            let alice = app.alice.clone();
            let ticker = if i == 7 {
                format!("BAD{NUL}")
            } else {
                format!("T{i}")
            };
            tokio::spawn(async move {
                alice
                    .post(
                        "/api/v1/batch/enqueue",
                        json!({"job_type": "risk_report", "payload": {"ticker": ticker}}),
                    )
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = vec![];
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        39
    );
    assert_eq!(statuses[7], StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn spreadsheet_formulas_in_an_export_are_written_as_text() {
    let app = TestApp::start().await;
    let keys = [
        "=cmd|' /C calc'!A0",
        "+1+2",
        "-1+2",
        "@SUM(1,1)",
        "\tTAB",
        "plain",
    ];
    for key in keys {
        app.alice
            .enqueue(json!({"job_type": "risk_report", "payload": {}, "idempotency_key": key}))
            .await;
    }
    for client in [&app.admin, &app.alice] {
        let csv = client.get("/api/v1/batch/exports/jobs.csv").await;
        assert_eq!(csv.status, StatusCode::OK);
        let text = csv.body.as_str().unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let column = reader
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "idempotency_key")
            .unwrap();
        let mut cells: Vec<String> = reader
            .records()
            .map(|r| r.unwrap()[column].to_string())
            .collect();
        cells.sort();
        let mut expected: Vec<String> = keys
            .iter()
            .map(|k| {
                if k.starts_with(['=', '+', '-', '@', '\t']) {
                    format!("'{k}")
                } else {
                    k.to_string()
                }
            })
            .collect();
        expected.sort();
        assert_eq!(cells, expected);
    }
}

#[tokio::test]
async fn limits_key_on_the_authenticated_token_not_on_the_header_text() {
    let app = TestApp::start_with(&[
        ("--reads-per-sec", "1"),
        ("--reads-burst", "5"),
        ("--auth-failures-per-sec", "1"),
        ("--auth-failures-burst", "5"),
    ])
    .await;
    let token = app.alice.token().to_string();
    let http = reqwest::Client::new();
    let mut passed = 0;
    for i in 0..30 {
        let header = match i % 4 {
            0 => format!("Bearer {token}"),
            1 => format!("Bearer    {token}"),
            2 => format!("bearer {token}"),
            _ => format!("  BEARER {token}  "),
        };
        let answer = http
            .get(format!("{}/api/v1/batch/stats", app.url))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        if answer.status() == StatusCode::OK {
            passed += 1;
        }
    }
    assert!(passed <= 6, "{passed} of 30 passed a limit of 5 + 1/s");
    // A forged token with alice's id does not spend her bucket; failures are limited per address.
    let bob = app.bob.get("/api/v1/batch/stats").await;
    assert_eq!(bob.status, StatusCode::OK, "bob has a bucket of his own");
    let (id, _) = token
        .strip_prefix("aib_")
        .and_then(|rest| rest.split_once('_'))
        .unwrap();
    let forged = app.with_token(&format!("aib_{id}_{}", "x".repeat(40)));
    let mut statuses = vec![];
    for _ in 0..10 {
        statuses.push(forged.get("/api/v1/batch/stats").await.status);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "failed authentication is limited: {statuses:?}"
    );
    let anonymous = app.anonymous.get("/api/v1/batch/stats").await;
    assert_eq!(
        anonymous.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the same address"
    );
}

/// The admin pages' islands read their lists again through server functions of their own; a
/// trader's session calling them gets nobody's data.
#[tokio::test]
async fn a_trader_calling_the_admin_pages_server_functions_reads_nothing() {
    let app = TestApp::start().await;
    let trader = app.session_cookie(&app.alice).await;
    let admin = app.session_cookie(&app.admin).await;
    for name in ["users", "budgets", "list_batches", "access_overview"] {
        let (status, body) = app.server_fn(&trader, name, &[]).await;
        assert_ne!(status, StatusCode::OK, "{name}: {body}");
        assert!(body.contains("admin"), "{name} says why: {body}");
        assert!(!body.contains("bob"), "{name} names no user: {body}");
        let (status, body) = app.server_fn(&admin, name, &[]).await;
        assert_eq!(status, StatusCode::OK, "{name} as an admin: {body}");
    }
    let (_, users) = app.server_fn(&admin, "users", &[]).await;
    assert!(users.contains("bob"), "{users}");
}

#[tokio::test]
async fn the_dashboard_has_the_same_limits_and_answers_in_the_apis_words() {
    let app = TestApp::start_with(&[
        ("--reads-per-sec", "1"),
        ("--reads-burst", "3"),
        ("--auth-failures-per-sec", "1"),
        ("--auth-failures-burst", "3"),
    ])
    .await;
    // Eight calls at once, past a burst of three: the last refusal's words.
    let refused_past_the_limit = async |cookie: &str, name: &str| {
        let mut refused = None;
        for _ in 0..8 {
            let (status, body) = app.server_fn(cookie, name, &[]).await;
            if status != StatusCode::OK {
                refused = Some(body);
            }
        }
        refused.unwrap_or_else(|| panic!("{name} past the limit is refused"))
    };
    let cookie = app.session_cookie(&app.alice).await;
    let refused = refused_past_the_limit(&cookie, "budget").await;
    assert!(refused.contains("Too many requests"), "{refused}");
    // A page's rows and the live version they were read at are one call: three renders fit
    // a burst of three (two calls a render would refuse the second), and the limit holds.
    let root = app.session_cookie(&app.admin).await;
    for render in 1..=3 {
        let page = app.page("/jobs", &root).await;
        assert!(
            !page.contains("Too many requests"),
            "render {render}: {page}"
        );
        live_version_of(&page);
    }
    let refused = refused_past_the_limit(&root, "list_batches").await;
    assert!(refused.contains("Too many requests"), "{refused}");
    // Failed sign-ins from one address are limited; the form says so.
    let mut last = String::new();
    for _ in 0..6 {
        last = reqwest::Client::new()
            .post(format!("{}{}", app.url, app::SIGN_IN_PATH))
            .form(&[("token", "aib_nope_nope")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    assert!(last.contains("Too many requests"), "{last}");

    // A reused idempotency key from the form is a field error, as REST's 409 is.
    let cookie = app.session_cookie(&app.bob).await;
    let form = |payload: &'static str| {
        vec![
            ("job_type", "risk_report"),
            ("payload", payload),
            ("priority", "50"),
            ("run_after", ""),
            ("idempotency_key", "form-key"),
        ]
    };
    let (status, _) = app
        .server_fn(&cookie, "enqueue_job", &form(r#"{"a": 1}"#))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .server_fn(&cookie, "enqueue_job", &form(r#"{"a": 2}"#))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("idempotency_key") && body.contains("different request"),
        "{body}"
    );

    // A body past 1 MB is a 413 before any server function reads it, in the encoding the
    // page reads a refusal in (REST's JSON there would be "unreadable").
    let huge = "x".repeat(3 * 1024 * 1024);
    let (status, body) = app
        .server_fn(&cookie, "budget", &[("pad", huge.as_str())])
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body.starts_with("ServerError|Request body is too large: the limit is 1 MB"),
        "{body}"
    );

    // A context upload may carry up to a MiB of text, form-encoded; past it, the answer is
    // the REST API's refusal, as a value the page shows; past 4 MB, a 413 unread.
    let text = "Rates held; spreads tightened. ".repeat(30_000);
    let (status, body) = app
        .server_fn(
            &cookie,
            "create_context",
            &[("name", "Brief"), ("text", &text)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("ctx_"), "{body}");
    let too_long = "y".repeat(1024 * 1024 + 1);
    let (status, body) = app
        .server_fn(
            &cookie,
            "create_context",
            &[("name", "Big"), ("text", &too_long)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Err") && body.contains("1048576"), "{body}");
    let (status, body) = app
        .server_fn(
            &cookie,
            "create_context",
            &[("name", "Huge"), ("text", &huge), ("pad", &huge)],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body.starts_with("ServerError|Request body is too large"),
        "{body}"
    );
}

#[tokio::test]
async fn a_job_for_the_last_day_of_9999_has_a_valid_estimated_completion() {
    let app = TestApp::start().await;
    let answer = app
        .alice
        .post(
            "/api/v1/batch/enqueue",
            json!({"job_type": "risk_report", "payload": {}, "run_after": "9999-12-31T23:00:00Z"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let estimate = answer.body["estimated_completion"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(estimate).is_ok(),
        "{estimate} is not RFC 3339"
    );
    assert!(estimate.starts_with("9999-12-31T23:59:59"), "{estimate}");
}

#[tokio::test]
async fn health_says_nothing_of_the_machine() {
    let app = TestApp::start().await;
    let health = app.anonymous.get("/healthz").await.body;
    let instance = health["instance"].as_str().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(!instance.contains(host.trim()), "{instance}");
    assert!(
        !instance.contains(&std::process::id().to_string()),
        "{instance}"
    );
    assert!(
        instance.starts_with("i-") && instance.len() == 14,
        "{instance}"
    );
}

#[tokio::test]
async fn a_traders_live_stream_hears_only_of_their_own_jobs() {
    let app = TestApp::start().await;
    let cookie = app.session_cookie(&app.alice).await;
    let rendered_at = live_version_of(&app.page("/jobs", &cookie).await);
    let mut live = open_stream(&app.url, &cookie, Some(&rendered_at)).await;
    // Another trader's jobs, and the batch an admin sends them in.
    let theirs = app
        .bob
        .enqueue(json!({"job_type": "risk_report", "payload": {}}))
        .await;
    app.admin
        .post("/api/v1/batch/internal/flush", json!({}))
        .await;
    app.bob
        .post(&format!("/api/v1/batch/jobs/{theirs}/cancel"), json!({}))
        .await;
    let heard = told_within(&mut live, Duration::from_millis(1500), "event:").await;
    assert_eq!(heard, None, "alice was told of others' changes");
    assert_eq!(
        live_version_of(&app.page("/jobs", &cookie).await),
        rendered_at,
        "others' changes move her page's version: she could watch their activity"
    );
    enqueue_one(&app).await;
    let told = told_within(&mut live, Duration::from_secs(5), r#""topics":["jobs"]"#).await;
    assert!(told.is_some(), "her own change is told");
    assert_ne!(
        live_version_of(&app.page("/jobs", &cookie).await),
        rendered_at
    );
}
