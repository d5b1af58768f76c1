//! Monthly budgets end to end, and the audit log of admin actions.

use ai_batch::store::Visibility;
use app::api::ListQuery;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestApp;

const PREVIEW: &str = "/api/v1/batch/internal/flush/preview";

fn risk(ticker: &str) -> Value {
    json!({"job_type": "risk_report", "payload": {"ticker": ticker}})
}

async fn status(app: &TestApp, id: &str) -> Value {
    app.admin
        .get(&format!("/api/v1/batch/jobs/{id}"))
        .await
        .body["status"]
        .clone()
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let answer = app.admin.get(&format!("/api/v1/admin/audit{query}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_cap_refuses_enqueues_and_flushes_leave_the_capped_owner_pending() {
    let app = TestApp::start().await;
    let waiting = app.alice.enqueue(risk("AAPL")).await;
    let mine = app.alice.get("/api/v1/batch/budget").await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(mine.body["monthly_cap_usd"], Value::Null);
    assert!(
        mine.body["pending_bound_nanos"].as_i64().unwrap() > 0,
        "{}",
        mine.body
    );

    let path = "/api/v1/admin/budgets/alice";
    let forbidden = app.alice.put(path, json!({"monthly_cap_usd": 100})).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    for bad in [
        json!({"monthly_cap_usd": -1}),
        json!({"monthly_cap_usd": "ten"}),
        json!({}),
    ] {
        let refused = app.admin.put(path, bad.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            refused.body
        );
        assert_eq!(
            refused.body["detail"][0]["loc"],
            json!(["body", "monthly_cap_usd"])
        );
    }
    let unknown = app
        .admin
        .put(
            "/api/v1/admin/budgets/nobody",
            json!({"monthly_cap_usd": 1}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let capped = app.admin.put(path, json!({"monthly_cap_usd": 0})).await;
    assert_eq!(capped.status, StatusCode::OK, "{}", capped.body);
    assert_eq!(capped.body["monthly_cap_nanos"], 0);
    assert!(
        capped.body["remaining_nanos"].as_i64().unwrap() < 0,
        "the pending job is owed"
    );

    let refused = app.alice.post("/api/v1/batch/enqueue", risk("MSFT")).await;
    let detail = refused.detail(StatusCode::PAYMENT_REQUIRED);
    assert!(detail.starts_with("Over your monthly budget"), "{detail}");
    let bulk = app
        .alice
        .post(
            "/api/v1/batch/enqueue/bulk",
            json!({"jobs": [risk("A"), risk("B")]}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::PAYMENT_REQUIRED, "{}", bulk.body);
    let listed = app.alice.get("/api/v1/batch/jobs").await;
    assert_eq!(listed.body["total_count"], 1, "nothing more was enqueued");

    let theirs = app.bob.enqueue(risk("IBM")).await;
    let preview = app.admin.post(PREVIEW, json!({})).await;
    assert_eq!(preview.body["jobs_count"], 1, "{}", preview.body);
    let message = preview.body["message"].as_str().unwrap();
    assert!(
        message.contains("1 job of alice stays pending: over their monthly budget"),
        "{message}"
    );
    app.flush_and_collect().await;
    assert_eq!(status(&app, &theirs).await, "completed");
    assert_eq!(
        status(&app, &waiting).await,
        "pending",
        "over the cap, not sent"
    );

    let raised = app.admin.put(path, json!({"monthly_cap_usd": 50})).await;
    assert_eq!(raised.status, StatusCode::OK);
    let more = app.alice.enqueue(risk("NVDA")).await;
    app.flush_and_collect().await;
    for id in [&waiting, &more] {
        assert_eq!(status(&app, id).await, "completed");
    }
    // The books: what the budget counts as spent is what the jobs were billed.
    let mine = app.alice.get("/api/v1/batch/budget").await.body;
    let alice_jobs = app
        .ctx
        .store()
        .list_jobs(
            &Visibility::All,
            &ListQuery {
                limit: 100,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    let billed: i64 = alice_jobs
        .jobs
        .iter()
        .filter(|j| j.owner_name == "alice")
        .map(|j| j.bill.cost_nanos)
        .sum();
    assert!(billed > 0);
    assert_eq!(mine["spent_nanos"].as_i64(), Some(billed), "{mine}");
    assert_eq!(mine["pending_bound_nanos"], 0);
    assert_eq!(mine["monthly_cap_nanos"], 50_000_000_000i64);

    let all = app.admin.get("/api/v1/admin/budgets").await;
    let users: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["user"].as_str())
        .collect();
    assert_eq!(users, ["alice"]);
    let removed = app.admin.put(path, json!({"monthly_cap_usd": null})).await;
    assert_eq!(removed.body["monthly_cap_usd"], Value::Null);
    assert_eq!(app.admin.get("/api/v1/admin/budgets").await.body, json!([]));

    let changes = audit(&app, "?action=budget_change").await;
    let details: Vec<&str> = changes
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert_eq!(
        details,
        ["cap removed", "monthly cap $50.00", "monthly cap $0.00"]
    );
    assert!(
        changes
            .iter()
            .all(|e| e["actor"] == "root" && e["target"] == "alice")
    );
    assert_eq!(
        audit(&app, "?action=flush").await.len(),
        2,
        "each flush, with its batch"
    );
}

#[tokio::test]
async fn admin_actions_are_in_the_audit_log_for_admins_only() {
    let app = TestApp::start().await;
    let issued = app
        .admin
        .post(
            "/api/v1/admin/tokens",
            json!({"user": "carol", "role": "trader"}),
        )
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let token_id = issued.body["token_id"].as_str().unwrap().to_string();
    let revoked = app
        .admin
        .request(Method::DELETE, &format!("/api/v1/admin/tokens/{token_id}"))
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    app.alice.enqueue(risk("AAPL")).await;
    let batch = app.flush_and_collect().await;

    let entries = audit(&app, "").await;
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions.first(), Some(&"poll"), "newest first: {actions:?}");
    assert!(
        actions.ends_with(&["flush", "token_revoke", "token_create"]),
        "{actions:?}"
    );
    assert_eq!(entries.last().unwrap()["target"], token_id.as_str());
    assert_eq!(entries.last().unwrap()["detail"], "for carol (trader)");
    let polls = audit(&app, "?action=poll").await;
    assert!(polls.iter().all(|p| p["target"] == batch.as_str()));

    let first = app.admin.get("/api/v1/admin/audit?limit=1").await.body;
    let before = first["next_before"].as_i64().expect("a next page");
    let second = audit(&app, &format!("?limit=1&before={before}")).await;
    assert_eq!(
        second[0]["id"].as_i64(),
        Some(entries[1]["id"].as_i64().unwrap())
    );
    assert!(audit(&app, "?actor=alice").await.is_empty());
    assert_eq!(
        app.admin
            .get("/api/v1/admin/audit?action=launch")
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.alice.get("/api/v1/admin/audit").await.status,
        StatusCode::FORBIDDEN
    );
}
