//! CSV exports: the list's filters and visibility apply, every page is in, money is exact,
//! and the dashboard's download is the same file.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{TestApp, usd_nanos};

/// A CSV body as records (the csv crate reads quoting back).
fn records(text: &str) -> Vec<Vec<String>> {
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

async fn csv_text(client: &crate::harness::Client, path: &str) -> String {
    let answer = client.get(path).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    assert_eq!(answer.headers["content-type"], "text/csv; charset=utf-8");
    answer.body.as_str().expect("CSV text").to_string()
}

#[tokio::test]
async fn the_jobs_export_holds_every_visible_job_across_pages_with_the_filters() {
    let app = TestApp::start().await;
    let jobs: Vec<_> = (0..2500)
        .map(|i| json!({"job_type": "risk_report", "payload": {"ticker": if i % 2 == 0 { "NVDA" } else { "AAPL" }, "note": "a, \"quoted\"\nline"}}))
        .collect();
    let bulk = app
        .alice
        .post("/api/v1/batch/enqueue/bulk", json!({"jobs": jobs}))
        .await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.body);
    let alice_ids: HashSet<String> = bulk.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    let bob = app
        .bob
        .enqueue(json!({"job_type": "sentiment_analysis", "payload": {"ticker": "NVDA"}}))
        .await;
    let cancelled: Vec<String> = alice_ids.iter().take(7).cloned().collect();
    let answer = app
        .alice
        .post("/api/v1/batch/jobs/cancel", json!({"job_ids": cancelled}))
        .await;
    assert_eq!(answer.body["cancelled"], 7);

    let all = records(&csv_text(&app.alice, "/api/v1/batch/exports/jobs.csv").await);
    assert_eq!(all.len(), 2500, "every page, once");
    let exported: HashSet<String> = all.iter().map(|r| r[0].clone()).collect();
    assert_eq!(exported, alice_ids, "alice's jobs and no one else's");
    assert!(!exported.contains(&bob));

    let only_cancelled = records(
        &csv_text(
            &app.alice,
            "/api/v1/batch/exports/jobs.csv?status_filter=cancelled",
        )
        .await,
    );
    let ids: HashSet<String> = only_cancelled.iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, cancelled.into_iter().collect());
    assert!(only_cancelled.iter().all(|r| r[2] == "cancelled"));

    let nvda = records(&csv_text(&app.admin, "/api/v1/batch/exports/jobs.csv?q=nvda").await);
    assert_eq!(
        nvda.len(),
        1250 + 1,
        "half of alice's and bob's one, for an admin"
    );
    let list = app
        .admin
        .get("/api/v1/batch/jobs?q=nvda&limit=1")
        .await
        .body;
    assert_eq!(list["total_count"], 1251, "the export and the list agree");

    let refused = app
        .alice
        .get("/api/v1/batch/exports/jobs.csv?status_filter=lost")
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let anonymous = app.anonymous.get("/api/v1/batch/exports/jobs.csv").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn daily_costs_export_exactly_what_the_stats_count_and_the_dashboard_serves_the_same() {
    let app = TestApp::start().await;
    for ticker in ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"] {
        app.alice
            .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": ticker}}))
            .await;
    }
    app.flush_and_collect().await;
    let stats = app.alice.get("/api/v1/batch/stats").await.body;
    assert_eq!(stats["completed_jobs"], 5);

    let text = csv_text(&app.alice, "/api/v1/batch/exports/daily.csv?days=7").await;
    let rows = records(&text);
    assert!(!rows.is_empty());
    let nanos = |s: &str| {
        let (whole, frac) = s.split_once('.').unwrap();
        whole.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap()
    };
    let paid: i64 = rows.iter().map(|r| nanos(&r[4])).sum();
    let saved: i64 = rows.iter().map(|r| nanos(&r[6])).sum();
    let jobs: i64 = rows.iter().map(|r| r[3].parse::<i64>().unwrap()).sum();
    assert_eq!(jobs, 5);
    assert_eq!(paid, usd_nanos(&stats["total_cost_usd"]));
    assert_eq!(saved, usd_nanos(&stats["total_savings_usd"]));
    assert!(paid > 0 && saved > 0);

    // The dashboard's link, with the session cookie instead of a token: the same file.
    let cookie = app.session_cookie(&app.alice).await;
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/exports/daily.csv?days=7", app.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("daily-costs.csv")
    );
    assert_eq!(page.text().await.unwrap(), text);
    let signed_out = http
        .get(format!("{}/exports/jobs.csv", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::UNAUTHORIZED);
}
