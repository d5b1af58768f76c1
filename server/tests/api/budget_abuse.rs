//! A budget against a hostile trader: cancels in flight, concurrent flushes, a backlog that
//! blocks everyone, retries near the cap, text that costs more than it looks, billed jobs
//! retried, and a confirmation that sends more than it said.

use std::time::Duration;

use ai_batch::store::NewJob;
use app::api::{JobType, Precision};
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Answer, Client, TestApp, usd_nanos};

const BUDGET: &str = "/api/v1/batch/budget";
const FLUSH: &str = "/api/v1/batch/internal/flush";
const PREVIEW: &str = "/api/v1/batch/internal/flush/preview";

fn risk(ticker: &str) -> Value {
    json!({"job_type": "risk_report", "payload": {"ticker": ticker}})
}

async fn nanos(client: &Client, field: &str) -> i64 {
    client.get(BUDGET).await.body[field].as_i64().unwrap()
}

/// The cost bound of one `risk(ticker)` job, read from the budget before and after.
async fn bound_of_one(app: &TestApp) -> i64 {
    let before = nanos(&app.bob, "pending_bound_nanos").await;
    let id = app.bob.enqueue(risk("BOUND")).await;
    let bound = nanos(&app.bob, "pending_bound_nanos").await - before;
    app.bob
        .post(&format!("/api/v1/batch/jobs/{id}/cancel"), json!({}))
        .await;
    bound
}

async fn set_cap_nanos(app: &TestApp, user: &str, cap: i64) {
    let answer = app
        .admin
        .put(
            &format!("/api/v1/admin/budgets/{user}"),
            json!({"monthly_cap_usd": cap as f64 / 1e9}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

/// Polls every batch until each has ended and its results are in.
async fn collect_all(app: &TestApp) {
    for _ in 0..120 {
        let batches = app
            .admin
            .get("/api/v1/batch/internal/batches?limit=1000")
            .await;
        let open: Vec<String> = batches.body["batches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["results_collected"] == false)
            .filter_map(|b| b["batch_id"].as_str().map(String::from))
            .collect();
        if open.is_empty() {
            return;
        }
        for batch in open {
            app.admin
                .post("/api/v1/batch/internal/poll", json!({"batch_id": batch}))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("batches did not end");
}

#[tokio::test]
async fn cancelling_in_flight_does_not_free_the_budget_until_the_batch_ends() {
    let app = TestApp::start().await;
    let bound = bound_of_one(&app).await;
    let cap = 3 * bound + bound / 2;
    set_cap_nanos(&app, "alice", cap).await;
    let mut enqueued = 0;
    for round in 0..8 {
        // Tickers as long as the one the bound was measured with: the same bound each.
        let three = json!({"jobs": [risk(&format!("A{round:04}")), risk(&format!("B{round:04}")), risk(&format!("C{round:04}"))]});
        let answer = app.alice.post("/api/v1/batch/enqueue/bulk", three).await;
        if answer.status == StatusCode::PAYMENT_REQUIRED {
            continue;
        }
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        enqueued += 3;
        let flushed = app.admin.post(FLUSH, json!({"max_jobs": 10})).await;
        assert_eq!(flushed.status, StatusCode::OK, "{}", flushed.body);
        for job in answer.body["jobs"].as_array().unwrap() {
            let id = job["id"].as_str().unwrap();
            app.alice
                .post(&format!("/api/v1/batch/jobs/{id}/cancel"), json!({}))
                .await;
        }
        assert!(
            nanos(&app.alice, "pending_bound_nanos").await >= 3 * bound,
            "jobs cancelled in flight are still owed (round {round})"
        );
    }
    assert_eq!(
        enqueued, 3,
        "no more enqueues while the cancelled jobs may be billed"
    );
    collect_all(&app).await;
    let spent = nanos(&app.alice, "spent_nanos").await;
    assert!(spent > 0, "the cancelled jobs were billed");
    assert!(spent <= cap, "spent {spent} > cap {cap}");
    assert_eq!(nanos(&app.alice, "pending_bound_nanos").await, 0, "settled");
}

#[tokio::test]
async fn flushes_at_once_never_send_past_a_cap_together() {
    flushes_at_once(&[]).await;
}

/// The same with the two job types on different providers: one cap, whichever provider runs
/// the jobs.
#[tokio::test]
async fn flushes_at_once_to_both_providers_never_send_past_a_cap_together() {
    let providers = flushes_at_once(&[("--routes", "model_evaluation=gpt-4.1-mini")]).await;
    // OpenAI's model evaluations cost a fraction of a risk report: some go in either order.
    assert_eq!(providers, ["anthropic", "openai"].map(String::from).into());
}

/// Two flushes at once, one per job type, against a cap with room for two and a half jobs;
/// the providers of the batches sent.
async fn flushes_at_once(overrides: &[(&str, &str)]) -> std::collections::BTreeSet<String> {
    let app = TestApp::start_with(overrides).await;
    let bound = bound_of_one(&app).await;
    for i in 0..4 {
        app.alice.enqueue(risk(&format!("R{i}"))).await;
        app.alice
            .enqueue(json!({"job_type": "model_evaluation", "payload": {"model": format!("m{i}")}}))
            .await;
    }
    // Room for about two and a half jobs; each flush alone would take two of its type.
    let cap = 2 * bound + bound / 2;
    set_cap_nanos(&app, "alice", cap).await;
    let flushes: Vec<_> = ["risk_report", "model_evaluation"]
        .into_iter()
        .map(|kind| {
            let admin = app.admin.clone();
            tokio::spawn(async move {
                admin
                    .post(FLUSH, json!({"max_jobs": 10, "job_types": [kind]}))
                    .await
            })
        })
        .collect();
    for flush in flushes {
        let answer = flush.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let alice = user_id(&app, "alice").await;
    let usage = app
        .ctx
        .store()
        .budget_usage(&alice, ai_batch::budgets::month_start(Utc::now()))
        .await
        .unwrap();
    let in_flight = usage.in_flight_bound_nanos;
    assert!(
        in_flight <= cap,
        "{in_flight} in flight > cap {cap}: {usage:?}"
    );
    assert!(in_flight > 0, "something was sent");
    let batches = app.admin.get("/api/v1/batch/internal/batches").await;
    batches.body["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["provider"].as_str().unwrap().to_string())
        .collect()
}

async fn user_id(app: &TestApp, name: &str) -> String {
    app.ctx
        .store()
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.name == name)
        .unwrap()
        .id
}

/// What each job of a `backlog` may cost at most.
fn backlog_bound(app: &TestApp) -> i64 {
    app.ctx
        .prices
        .job_bound_nanos(JobType::RiskReport, &backlog_payload(), None)
}

fn backlog_payload() -> String {
    json!({"ticker": "HOLD"}).to_string()
}

/// Jobs of `owner` put straight into the store, each with the bound an enqueue would give it:
/// a backlog their budget now holds back.
async fn backlog(app: &TestApp, owner: &str, count: usize, priority: i64) {
    let store = app.ctx.store();
    let owner_id = user_id(app, owner).await;
    let payload = backlog_payload();
    let bound = backlog_bound(app);
    let now = Utc::now();
    let jobs: Vec<NewJob> = (0..count)
        .map(|i| NewJob {
            id: uuid::Uuid::now_v7().to_string(),
            owner_id: owner_id.clone(),
            owner_name: owner.to_string(),
            job_type: JobType::RiskReport,
            priority,
            payload: payload.clone(),
            run_after: None,
            idempotency_key: None,
            request_hash: format!("backlog-{i}"),
            callback_url: None,
            cost_bound_nanos: bound,
            context_id: None,
            created_at: now,
        })
        .collect();
    for chunk in jobs.chunks(5000) {
        store
            .insert_jobs(chunk.to_vec(), ai_batch::store::KeyConflicts::Refuse)
            .await
            .unwrap();
    }
}

async fn status(app: &TestApp, id: &str) -> String {
    app.admin
        .get(&format!("/api/v1/batch/jobs/{id}"))
        .await
        .body["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn jobs_held_back_by_a_budget_neither_fill_a_flush_nor_stand_before_others() {
    let app = TestApp::start().await;
    set_cap_nanos(&app, "alice", 0).await;
    backlog(&app, "alice", 3, 90).await;
    let theirs = app
        .bob
        .enqueue(json!({"job_type": "risk_report", "payload": {}, "priority": 0}))
        .await;
    let preview = app.admin.post(PREVIEW, json!({"max_jobs": 3})).await;
    assert_eq!(preview.body["jobs_count"], 1, "{}", preview.body);
    let flushed = app.admin.post(FLUSH, json!({"max_jobs": 3})).await;
    assert_eq!(flushed.body["jobs_count"], 1, "{}", flushed.body);
    let message = flushed.body["message"].as_str().unwrap();
    assert!(
        message.contains("3 jobs of alice stay pending: over their monthly budget"),
        "{message}"
    );
    assert_eq!(status(&app, &theirs).await, "processing");
}

/// A flush reads its candidates 500 at a time, the next page while it renders this one: an
/// owner whose budget runs out within a page is left out of every page after, and the jobs
/// behind theirs fill the flush exactly, across pages.
#[tokio::test]
async fn an_owner_out_of_budget_mid_page_leaves_the_later_pages_to_others() {
    let app = TestApp::start().await;
    backlog(&app, "alice", 700, 90).await;
    backlog(&app, "bob", 700, 50).await;
    let bound = backlog_bound(&app);
    set_cap_nanos(&app, "alice", bound * 300 + bound / 2).await;
    let flushed = app.admin.post(FLUSH, json!({"max_jobs": 1000})).await;
    assert_eq!(flushed.body["jobs_count"], 1000, "{}", flushed.body);
    for (client, processing, pending) in [(&app.alice, 300, 400), (&app.bob, 700, 0)] {
        let counts = client.get("/api/v1/batch/jobs?limit=1").await.body;
        assert_eq!(
            (
                counts["processing_count"].as_i64(),
                counts["pending_count"].as_i64()
            ),
            (Some(processing), Some(pending)),
            "{counts}"
        );
    }
}

#[tokio::test]
async fn a_backlog_of_ten_thousand_over_budget_jobs_does_not_stop_the_scheduler() {
    let app = TestApp::start_with(&[
        ("--scheduler", "true"),
        ("--auto-poll", "false"),
        ("--rescuer", "false"),
        ("--webhooks", "false"),
        ("--tick-ms", "200"),
        ("--auto-flush-min-jobs", "1"),
    ])
    .await;
    set_cap_nanos(&app, "alice", 0).await;
    backlog(&app, "alice", 10_000, 100).await;
    let theirs = app
        .bob
        .enqueue(json!({"job_type": "risk_report", "payload": {}, "priority": 0}))
        .await;
    let mut sent = false;
    for _ in 0..50 {
        if status(&app, &theirs).await != "pending" {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "bob's job was flushed within five seconds");
    let alice_pending = app
        .admin
        .get("/api/v1/batch/jobs?status_filter=pending&limit=1")
        .await
        .body["pending_count"]
        .as_i64()
        .unwrap();
    assert_eq!(alice_pending, 10_000, "alice's stay pending");
    // And an idle tick with only held-back jobs flushes nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let batches = app.admin.get("/api/v1/batch/internal/batches").await;
    assert_eq!(batches.body["batches"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_idempotent_retry_near_the_cap_is_answered_with_its_job() {
    let app = TestApp::start().await;
    let bound = bound_of_one(&app).await;
    set_cap_nanos(&app, "alice", bound + bound / 2).await;
    let keyed = json!({"job_type": "risk_report", "payload": {"ticker": "BOUND"}, "idempotency_key": "k-1"});
    let first = app.alice.post("/api/v1/batch/enqueue", keyed.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let again = app.alice.post("/api/v1/batch/enqueue", keyed.clone()).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the retry gets its job: {}",
        again.body
    );
    assert_eq!(again.body["job"]["id"], first.body["job"]["id"]);
    assert_eq!(again.body["job"]["payload"], json!({"ticker": "BOUND"}));
    let bulk = app
        .alice
        .post("/api/v1/batch/enqueue/bulk", json!({"jobs": [keyed]}))
        .await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.body);
    assert_eq!(bulk.body["existing"], 1);
    // A new job does not fit, and a reused key for another request is still a conflict.
    let new = app.alice.post("/api/v1/batch/enqueue", risk("NEW")).await;
    assert_eq!(new.status, StatusCode::PAYMENT_REQUIRED);
    let other = app
        .alice
        .post(
            "/api/v1/batch/enqueue",
            json!({"job_type": "risk_report", "payload": {"x": 1}, "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::CONFLICT);
}

/// A refusal compares the job's bound with what is left of the cap. With both over a cent
/// and less than one apart, cents would write them alike ("may cost up to $0.04, and $0.04 of
/// your $0.04 cap is left"): the message writes them in millionths.
#[tokio::test]
async fn a_refusal_near_the_cap_writes_the_bound_and_what_is_left_apart() {
    let app = TestApp::start().await;
    let bound = bound_of_one(&app).await;
    // A cap under the bound that cents would write as the bound.
    let cents = Precision::Cents.round(bound);
    let cap = if cents < bound { cents } else { bound - 1 };
    assert!(
        bound > 10_000_000 && Precision::Cents.round(cap) == cents,
        "a bound over a cent, a cap alike in cents: {bound}, {cap}"
    );
    set_cap_nanos(&app, "alice", cap).await;
    let refused = app.alice.post("/api/v1/batch/enqueue", risk("BOUND")).await;
    let detail = refused.detail(StatusCode::PAYMENT_REQUIRED);
    let micros = |nanos| Precision::Micros.show(nanos);
    let compared = format!(
        "may cost up to {}, and {} of your {} cap is left",
        micros(bound),
        micros(cap),
        micros(cap)
    );
    assert!(detail.contains(&compared), "{compared} in {detail}");
}

#[tokio::test]
async fn no_text_costs_more_than_its_bound() {
    let app = TestApp::start().await;
    let texts = [
        "🚀".repeat(20_000),
        "漢字".repeat(20_000),
        "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}".repeat(5_000),
        "plain ascii words ".repeat(5_000),
    ];
    let mut bounds = Vec::new();
    for text in &texts {
        let before = nanos(&app.alice, "pending_bound_nanos").await;
        let id = app
            .alice
            .enqueue(json!({"job_type": "sentiment_analysis", "payload": {"headlines": [text]}}))
            .await;
        bounds.push((id, nanos(&app.alice, "pending_bound_nanos").await - before));
    }
    app.flush_and_collect().await;
    for (id, bound) in bounds {
        let job = app
            .alice
            .get(&format!("/api/v1/batch/jobs/{id}"))
            .await
            .body;
        assert_eq!(job["status"], "completed", "{job}");
        let cost = usd_nanos(&job["cost_usd"]);
        assert!(cost > 0);
        assert!(cost <= bound, "{id}: cost {cost} > bound {bound}");
    }
}

#[tokio::test]
async fn retrying_a_billed_job_needs_a_confirmation_of_the_new_charge() {
    let app = TestApp::start_with(&[(
        "--emulator-faults",
        r#"{"malformed_results": {"after_lines": 0, "times": 1}}"#,
    )])
    .await;
    let id = app.alice.enqueue(risk("BILLED")).await;
    app.flush_and_collect().await;
    let job = app
        .admin
        .get(&format!("/api/v1/batch/jobs/{id}"))
        .await
        .body;
    assert_eq!(job["status"], "failed", "{job}");
    let billed = job["cost_usd"].as_f64().unwrap();
    assert!(billed > 0.0, "{job}");
    let retry = "/api/v1/batch/internal/jobs/retry";
    let refused = app.admin.post(retry, json!({"job_ids": [id]})).await;
    let detail = refused.detail(StatusCode::CONFLICT);
    assert!(
        detail.contains("billed already") && detail.contains("confirm_rebill"),
        "{detail}"
    );
    assert_eq!(status(&app, &id).await, "failed", "nothing was retried");
    let confirmed = app
        .admin
        .post(retry, json!({"job_ids": [id], "confirm_rebill": true}))
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["retried"], 1);
    app.flush_and_collect().await;
    let job = app
        .admin
        .get(&format!("/api/v1/batch/jobs/{id}"))
        .await
        .body;
    assert_eq!(job["status"], "completed");
    assert!(
        job["cost_usd"].as_f64().unwrap() > billed,
        "billed twice, and both charges are on the books"
    );
    let entries = app.admin.get("/api/v1/admin/audit?action=retry").await.body;
    assert!(
        entries["entries"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("confirmed to bill again"),
        "{entries}"
    );
}

/// The admin flushes one job, confirming the preview that gave `token`.
async fn flush_one_as_previewed(app: &TestApp, token: &Value) -> Answer {
    app.admin
        .post(FLUSH, json!({"max_jobs": 1, "preview_token": token}))
        .await
}

#[tokio::test]
async fn a_flush_confirming_a_preview_sends_no_more_than_it_promised() {
    let app = TestApp::start().await;
    for i in 0..5 {
        app.alice.enqueue(risk(&format!("P{i}"))).await;
    }
    let preview = app.admin.post(PREVIEW, json!({"max_jobs": 1})).await.body;
    assert_eq!(preview["jobs_count"], 1);
    let token = preview["preview_token"].as_str().unwrap().to_string();
    // The options changed after the preview: refused, nothing sent.
    let changed = app
        .admin
        .post(FLUSH, json!({"max_jobs": 100, "preview_token": token}))
        .await;
    assert_eq!(changed.status, StatusCode::CONFLICT, "{}", changed.body);
    assert_eq!(
        app.admin
            .get("/api/v1/batch/jobs?status_filter=processing")
            .await
            .body["total_count"],
        0
    );
    // A costlier job arrived first in line since the preview: refused too.
    app.bob
        .enqueue(json!({"job_type": "strategy_backtest", "payload": {"n": "x".repeat(20_000)}, "priority": 100}))
        .await;
    let costlier = flush_one_as_previewed(&app, &json!(token)).await;
    assert_eq!(costlier.status, StatusCode::CONFLICT, "{}", costlier.body);
    // Previewed again, the send is exactly what the preview said.
    let preview = app.admin.post(PREVIEW, json!({"max_jobs": 1})).await.body;
    let sent = flush_one_as_previewed(&app, &preview["preview_token"]).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(sent.body["jobs_count"], preview["jobs_count"]);
    assert_eq!(sent.body["estimated_tokens"], preview["estimated_tokens"]);
    // Without a token, a flush is as the contract describes it.
    let plain = app.admin.post(FLUSH, json!({"max_jobs": 100})).await;
    assert_eq!(plain.body["jobs_count"], 5);
}

/// The flush confirming a preview plans no more jobs than the preview promised, and still
/// names the owners the preview found over budget further down the line.
#[tokio::test]
async fn a_confirmed_flush_names_the_owners_its_preview_held_back() {
    let app = TestApp::start().await;
    let bound = bound_of_one(&app).await;
    for ticker in ["ALIC1", "ALIC2"] {
        app.alice.enqueue(risk(ticker)).await;
    }
    let bobs = [
        app.bob.enqueue(risk("BOB01")).await,
        app.bob.enqueue(risk("BOB02")).await,
    ];
    // Room for one of bob's two jobs, the last in line.
    set_cap_nanos(&app, "bob", bound * 3 / 2).await;
    let held = "1 job of bob stays pending: over their monthly budget.";
    let preview = app.admin.post(PREVIEW, json!({"max_jobs": 100})).await.body;
    assert_eq!(preview["jobs_count"], 3, "{preview}");
    assert!(
        preview["message"].as_str().unwrap().contains(held),
        "{preview}"
    );

    let sent = app
        .admin
        .post(
            FLUSH,
            json!({"max_jobs": 100, "preview_token": preview["preview_token"]}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(sent.body["jobs_count"], 3, "{}", sent.body);
    let message = sent.body["message"].as_str().unwrap();
    assert!(message.contains(held), "{message}");
    assert_eq!(status(&app, &bobs[1]).await, "pending");
}

/// A flush refused for costing more than its preview compares the two bounds. With both over
/// a cent and less than one apart, cents would write them alike ("may cost up to $0.04, more
/// than the $0.04 previewed"): the message writes them in millionths.
#[tokio::test]
async fn a_flush_costing_more_than_its_preview_writes_both_bounds_apart() {
    let app = TestApp::start().await;
    app.alice.enqueue(risk("PREVIEWED")).await;
    let preview = app.admin.post(PREVIEW, json!({"max_jobs": 1})).await.body;
    let previewed = usd_nanos(&preview["estimated_cost_usd"]);
    // First in line since the preview: a job a few tokens longer.
    app.bob
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "PREVIEWED", "note": "a little longer than the first"}, "priority": 100}))
        .await;
    let now = app.admin.post(PREVIEW, json!({"max_jobs": 1})).await.body;
    let now = usd_nanos(&now["estimated_cost_usd"]);
    assert!(
        previewed > 10_000_000
            && now > previewed
            && Precision::Cents.round(now) == Precision::Cents.round(previewed),
        "two bounds over a cent, alike in cents: {previewed}, {now}"
    );
    let refused = flush_one_as_previewed(&app, &preview["preview_token"]).await;
    let detail = refused.detail(StatusCode::CONFLICT);
    let micros = |nanos| Precision::Micros.show(nanos);
    let compared = format!(
        "may cost up to {}, more than the {} previewed",
        micros(now),
        micros(previewed)
    );
    assert!(detail.contains(&compared), "{compared} in {detail}");
}
