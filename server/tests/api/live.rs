//! Live pages: a page's stream says first whether anything changed since the page was
//! rendered, and what changes through one instance is told to a page open on another.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestApp;
use crate::service::{Database, Provider, Service};

/// The live version a dashboard page was rendered at, from its island's props.
pub fn live_version_of(html: &str) -> String {
    let props = html.replace("&quot;", "\"").replace("&#34;", "\"");
    let (_, after) = props
        .split_once(r#""version":""#)
        .unwrap_or_else(|| panic!("no live version in the page: {html}"));
    after.split('"').next().unwrap().to_string()
}

/// A page's stream from `base`, as the browser holding `cookie` opens it.
pub async fn open_stream(base: &str, cookie: &str, since: Option<&str>) -> reqwest::Response {
    let address = match since {
        Some(version) => format!("{base}/live?since={version}"),
        None => format!("{base}/live"),
    };
    let live = reqwest::Client::new()
        .get(address)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    live
}

/// What the stream says within `wait` until its text contains `until`; `None` if it does not.
pub async fn told_within(
    live: &mut reqwest::Response,
    wait: Duration,
    until: &str,
) -> Option<String> {
    let mut seen = String::new();
    tokio::time::timeout(wait, async {
        while let Some(chunk) = live.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(until) {
                return;
            }
        }
    })
    .await
    .ok()
    .map(|()| seen)
}

#[tokio::test]
async fn a_page_rendered_before_a_change_is_told_as_its_stream_opens_and_a_current_one_is_not() {
    let app = TestApp::start().await;
    let cookie = app.session_cookie(&app.alice).await;
    let quiet = Duration::from_millis(1500);
    let rendered_at = live_version_of(&app.page("/jobs", &cookie).await);
    let mut current = open_stream(&app.url, &cookie, Some(&rendered_at)).await;
    let heard = told_within(&mut current, quiet, "event:").await;
    assert_eq!(heard, None, "nothing changed since the page was rendered");

    // A job enqueued between the render and the stream: the page is behind.
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "MU"}}))
        .await;
    let mut behind = open_stream(&app.url, &cookie, Some(&rendered_at)).await;
    let told = told_within(&mut behind, quiet, r#""topics":["jobs"]"#).await;
    assert!(told.is_some(), "the stale page is told at once");
    let mut unversioned = open_stream(&app.url, &cookie, None).await;
    let told = told_within(&mut unversioned, quiet, r#""topics":["jobs"]"#).await;
    assert!(
        told.is_some(),
        "a page without a version reads again as it opens"
    );
    let mut forged = open_stream(&app.url, &cookie, Some("0000000000000000.0")).await;
    let told = told_within(&mut forged, quiet, r#""topics":["jobs"]"#).await;
    assert!(
        told.is_some(),
        "a version not this instance's is a stale one"
    );

    let now = live_version_of(&app.page("/jobs", &cookie).await);
    assert_ne!(now, rendered_at);
    let mut fresh = open_stream(&app.url, &cookie, Some(&now)).await;
    assert_eq!(told_within(&mut fresh, quiet, "event:").await, None);
    // The open stream that was current hears the change as it happened.
    let told = told_within(&mut current, quiet, r#""topics":["jobs"]"#).await;
    assert!(told.is_some());

    // An admin's batches page carries the version too.
    let root = app.session_cookie(&app.admin).await;
    let batches_at = live_version_of(&app.page("/admin/batches", &root).await);
    let mut admins = open_stream(&app.url, &root, Some(&batches_at)).await;
    assert_eq!(told_within(&mut admins, quiet, "event:").await, None);

    // A job changed and no batch did: a Batches page from before has no list to read again.
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "AMD"}}))
        .await;
    let mut jobs_moved = open_stream(&app.url, &root, Some(&batches_at)).await;
    let first = told_within(&mut jobs_moved, quiet, "\n\n").await;
    let first = first.expect("the admin's page is told of the job at once");
    assert!(first.contains(r#""topics":["jobs"]"#), "{first}");
    let flush = app
        .admin
        .post("/api/v1/batch/internal/flush", json!({}))
        .await;
    assert_eq!(flush.status, StatusCode::OK, "{}", flush.body);
    let mut batches_moved = open_stream(&app.url, &root, Some(&batches_at)).await;
    let first = told_within(&mut batches_moved, quiet, "\n\n").await;
    let first = first.expect("the flush is told at once");
    assert!(first.contains(r#""topics":["jobs","batches"]"#), "{first}");
}

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
    // A page rendered by instance a, its stream on b: b cannot vouch for a's version.
    let cookie = format!("aib_session={cookie}");
    let from_a = reqwest::Client::new()
        .get(format!("{}/jobs", a.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut live = open_stream(&b.url, &cookie, Some(&live_version_of(&from_a))).await;
    let first = told_within(&mut live, Duration::from_secs(5), "\n\n").await;
    let first = first.expect("instance b says at once the page may be behind");
    assert!(first.contains(r#""topics":["jobs","batches"]"#), "{first}");

    let enqueued = http
        .post(format!("{}/api/v1/batch/enqueue", a.url))
        .bearer_auth(&db.admin)
        .json(&json!({"job_type": "risk_report", "payload": {"ticker": "AAPL"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(enqueued.status(), StatusCode::OK);
    let told = told_within(&mut live, Duration::from_secs(10), r#""topics":["jobs"]"#).await;
    assert!(
        told.is_some(),
        "instance b told its page nothing of the enqueue"
    );

    let anonymous = http.get(format!("{}/live", b.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
