//! Live pages across instances: what changes through one instance is told to a page open on
//! another (PostgreSQL, whatever the run's default).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::service::{Database, Provider, Service};

#[tokio::test]
async fn a_job_enqueued_through_one_instance_is_told_to_a_page_open_on_another() {
    let db = Database::postgres().await;
    let provider = Provider::start(Duration::from_secs(60)).await;
    let a = Service::start(&db, &provider, &[]).await;
    let b = Service::start(&db, &provider, &[]).await;
    let http = reqwest::Client::new();
    // Signed in on instance b, as a person would (the cookie comes with the redirect).
    let signed_in = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}{}", b.url, app::SIGN_IN_PATH))
        .form(&[("token", db.admin.as_str())])
        .send()
        .await
        .unwrap();
    let set_cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = set_cookie
        .strip_prefix("aib_session=")
        .and_then(|rest| rest.split(';').next())
        .expect("the session cookie")
        .to_string();
    let mut live = http
        .get(format!("{}/live", b.url))
        .header("cookie", format!("aib_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(live.headers()["content-type"], "text/event-stream");

    let enqueued = http
        .post(format!("{}/api/v1/batch/enqueue", a.url))
        .bearer_auth(&db.admin)
        .json(&json!({"job_type": "risk_report", "payload": {"ticker": "AAPL"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(enqueued.status(), StatusCode::OK);
    let mut seen = String::new();
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = live.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: change") && seen.contains(r#""topics":["jobs"]"#) {
                return;
            }
        }
    })
    .await;
    assert!(told.is_ok(), "instance b told its page nothing: {seen:?}");

    let anonymous = http.get(format!("{}/live", b.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
