//! Health, unknown routes and the dashboard's first pages.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{TestApp, usd_nanos};

#[tokio::test]
async fn healthz_answers_without_auth_and_says_who_leads() {
    let app = TestApp::start().await;
    let answer = app.anonymous.get("/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["status"], "ok");
    assert_eq!(answer.body["leader"], false, "no scheduler, no leadership");
    let engine = if crate::database::on_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(answer.body["database"], engine);
    assert_eq!(answer.body["instance"], &*app.ctx.instance);

    let led = TestApp::start_with(&[("--scheduler", "true"), ("--leader-lease-secs", "2")]).await;
    for _ in 0..50 {
        if led.anonymous.get("/healthz").await.body["leader"] == true {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("a lone instance with a scheduler leads");
}

#[tokio::test]
async fn unknown_api_paths_and_methods_answer_json() {
    let app = TestApp::start().await;
    let answer = app.alice.get("/api/v1/nothing/here").await;
    assert_eq!(
        (answer.status, answer.body),
        (StatusCode::NOT_FOUND, json!({"detail": "Not Found"}))
    );
    let answer = app
        .alice
        .request(Method::DELETE, "/api/v1/batch/stats")
        .await;
    assert_eq!(
        (answer.status, answer.body),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "Method Not Allowed"})
        )
    );
}

#[tokio::test]
async fn the_sign_in_page_renders_and_jobs_needs_a_session() {
    let app = TestApp::start().await;
    let page = app.anonymous.get("/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().unwrap();
    // A plain page: the form and nothing to hydrate, so ready as it arrives.
    assert!(
        html.contains("Access token")
            && html.contains(r#"<form method="post" action="/sign-in""#)
            && html.contains(r#"data-hydrated="true""#),
        "{html}"
    );
    assert!(
        !html.contains(".wasm") && !html.contains("/pkg/ai-batch.js"),
        "the sign-in page loads no WASM: {html}"
    );

    // A browser asking for the page is sent to sign in.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let jobs = http
        .get(format!("{}/jobs", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), StatusCode::FOUND);
    assert_eq!(jobs.headers()["location"], "/sign-in");
}

/// The jobs page and the admin pages hydrate by islands: each names its own small bundle and
/// not the whole-page one, and its content is the server's HTML inside its island; other pages
/// keep the whole one.
#[tokio::test]
async fn island_pages_load_their_own_bundle_alone() {
    let app = TestApp::start().await;
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "AMD"}}))
        .await;
    let cookie = app.session_cookie(&app.admin).await;
    let preload = |bundle: &str| format!(r#"<link rel="modulepreload" href="/pkg/{bundle}."#);
    let jobs = app.page("/jobs", &cookie).await;
    assert!(
        jobs.contains(&preload("jobs")) && jobs.matches("modulepreload").count() == 1,
        "{jobs}"
    );
    let island = jobs.find("<leptos-island").expect("an island");
    let row = jobs.find("data-job-id").expect("a row");
    assert!(island < row && jobs.contains("data-cancel="), "{jobs}");
    for (path, bundle, inside) in [
        ("/admin/batches", "batches", "Flush queued jobs"),
        ("/admin/access", "access", "Monthly budgets"),
    ] {
        let admin = app.page(path, &cookie).await;
        assert!(
            admin.contains(&preload(bundle)) && admin.matches("modulepreload").count() == 1,
            "{admin}"
        );
        let island = admin.find("<leptos-island").expect("an island");
        assert!(admin.find(inside).is_some_and(|at| at > island), "{admin}");
    }

    let savings = app.page("/savings", &cookie).await;
    assert!(
        savings.contains(&preload("ai-batch")) && !savings.contains("/pkg/jobs."),
        "{savings}"
    );
    // Links to the jobs page are full loads: the whole-page bundle's router cannot render it.
    assert!(
        savings.contains(r#"href="/jobs" rel="external""#),
        "{savings}"
    );
}

#[tokio::test]
async fn a_job_id_that_is_not_text_is_a_json_404() {
    let app = TestApp::start().await;
    for path in [
        "/api/v1/batch/jobs/%FF%FE",
        "/api/v1/batch/jobs/%FF/result",
        "/api/v1/batch/jobs/%C0/events",
    ] {
        let answer = app.alice.get(path).await;
        assert_eq!(
            (answer.status, &answer.body),
            (StatusCode::NOT_FOUND, &json!({"detail": "Job not found"})),
            "{path}"
        );
    }
    let cancel = app
        .alice
        .post("/api/v1/batch/jobs/%FF/cancel", json!({}))
        .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_answer_carries_a_request_id_the_clients_own_if_it_sent_one() {
    let app = TestApp::start().await;
    let made = app.alice.get("/api/v1/batch/stats").await;
    let id = made.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let refused = app.anonymous.get("/api/v1/batch/stats").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.headers.contains_key("x-request-id"), "errors too");

    let given = reqwest::Client::new()
        .get(format!("{}/healthz", app.url))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-42");
    let page = reqwest::Client::new()
        .get(format!("{}/sign-in", app.url))
        .send()
        .await
        .unwrap();
    assert!(page.headers().contains_key("x-request-id"), "pages too");
}

/// The site's files go out compressed when the browser takes it, content-hashed ones are
/// kept a year, and everything else (pages, unhashed files) is asked for again each visit,
/// answered 304 when unchanged.
#[tokio::test]
async fn site_files_are_sent_compressed_and_cached_by_their_names() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    let hashed = "ai-batch.SsLBLd1h5QAr_6a2ehOd8A.wasm";
    std::fs::write(pkg.join(hashed), b"\0asm plain").unwrap();
    std::fs::write(pkg.join(format!("{hashed}.br")), b"brotli bytes").unwrap();
    std::fs::write(pkg.join(format!("{hashed}.gz")), b"gzip bytes").unwrap();
    std::fs::write(site.path().join("favicon.svg"), b"<svg/>").unwrap();
    let root = site.path().to_str().unwrap();
    let app = TestApp::start_with(&[("--site-root", root)]).await;
    let http = reqwest::Client::new();
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut request = http.get(format!("{}{path}", app.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move { request.send().await.unwrap() }
    };
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };

    let wasm = format!("/pkg/{hashed}");
    for (accepts, encoding, body) in [
        ("gzip, deflate, br", Some("br"), "brotli bytes"),
        ("gzip", Some("gzip"), "gzip bytes"),
        ("identity", None, "\0asm plain"),
    ] {
        let sent = get(&wasm, &[("accept-encoding", accepts)]).await;
        assert_eq!(sent.status(), StatusCode::OK);
        assert_eq!(header(&sent, "content-encoding").as_deref(), encoding);
        assert_eq!(
            header(&sent, "cache-control").as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(sent.text().await.unwrap(), body, "{accepts}");
    }

    // An unhashed file is revalidated: unchanged, it answers 304 with no body.
    let icon = get("/favicon.svg", &[]).await;
    assert_eq!(header(&icon, "cache-control").as_deref(), Some("no-cache"));
    let modified = header(&icon, "last-modified").expect("a validator");
    let again = get("/favicon.svg", &[("if-modified-since", &modified)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let page = get("/sign-in", &[]).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, "cache-control").as_deref(), Some("no-cache"));
    // Pages are compressed as they are sent, for a browser that takes gzip.
    let zipped = get("/sign-in", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(header(&zipped, "content-encoding").as_deref(), Some("gzip"));
    let plain = page.text().await.unwrap();
    let sent = zipped.bytes().await.unwrap();
    assert!(
        sent.len() < plain.len(),
        "{} of {}",
        sent.len(),
        plain.len()
    );

    // A missing file, hashed name or not, is the page that says so, never kept.
    let missing = get("/pkg/ai-batch.AAAAAAAAAAAAAAAAAAAAAA.wasm", &[]).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        header(&missing, "cache-control").as_deref(),
        Some("no-cache")
    );
}

/// Posts the sign-in form as a browser does, without following the answer's redirect.
async fn post_sign_in(
    app: &TestApp,
    headers: &[(&str, &str)],
    form: &[(&str, &str)],
) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = http.post(format!("{}/sign-in", app.url)).form(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_sign_in_form_opens_a_session_or_says_why_not() {
    let app = TestApp::start().await;
    // A good token: a session cookie the page's script cannot read, and on to the jobs.
    let signed_in = post_sign_in(&app, &[], &[("token", app.alice.token())]).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()["location"], "/jobs");
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("aib_session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap();
    let jobs = reqwest::Client::new()
        .get(format!("{}/jobs", app.url))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), StatusCode::OK);
    assert!(jobs.text().await.unwrap().contains("alice"));

    // A bad token, none, strange bytes, or a good token in a body that is not a form: the
    // page again, saying why, and no cookie.
    let as_json = reqwest::Client::new()
        .post(format!("{}/sign-in", app.url))
        .json(&json!({"token": app.alice.token()}))
        .send()
        .await
        .unwrap();
    let mut answers = vec![as_json];
    for form in [
        vec![("token", "aib_nope_nope")],
        vec![],
        vec![("token", "é\u{0}\"=<script>")],
    ] {
        answers.push(post_sign_in(&app, &[], &form).await);
    }
    for refused in answers {
        assert_eq!(refused.status(), StatusCode::OK);
        assert!(refused.headers().get("set-cookie").is_none());
        let html = refused.text().await.unwrap();
        assert!(
            html.contains(r#"role="alert""#) && html.contains("That token is not valid"),
            "{html}"
        );
        assert!(
            !html.contains(".wasm") && !html.contains("<script>"),
            "{html}"
        );
    }

    // Another site cannot sign a visitor in to an account of its choosing.
    let cross_site = post_sign_in(
        &app,
        &[("sec-fetch-site", "cross-site")],
        &[("token", app.alice.token())],
    )
    .await;
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert!(cross_site.headers().get("set-cookie").is_none());
    let other_origin = post_sign_in(
        &app,
        &[("origin", "http://evil.example")],
        &[("token", app.alice.token())],
    )
    .await;
    assert_eq!(other_origin.status(), StatusCode::FORBIDDEN);

    // A token the size of a book is refused before it is read.
    let huge = "a".repeat(2 << 20);
    let too_large = post_sign_in(&app, &[], &[("token", huge.as_str())]).await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// An answer slower than five seconds is logged as a warning with its route and status, in
/// plain text when the log is not a terminal: a stall an operator can find (here a flush
/// whose create the provider holds for five and a half seconds).
#[tokio::test]
async fn a_slow_answer_is_logged_as_a_warning_with_its_route() {
    use crate::service::{Database, Provider, Service};
    let provider = Provider::start(std::time::Duration::from_millis(100)).await;
    provider.emulator.set_faults(ai_batch::emulator::Faults {
        before_create_ms: vec![5500],
        ..Default::default()
    });
    let db = Database::new().await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let to_file = || std::process::Stdio::from(log.reopen().unwrap());
    let service = Service::start_logging_to(&db, &provider, &[], to_file).await;
    let job = json!({"job_type": "risk_report", "payload": {"ticker": "NVDA"}});
    assert_eq!(service.post("/api/v1/batch/enqueue", job).await.0, 200);
    let (status, flushed) = service
        .post("/api/v1/batch/internal/flush", json!({}))
        .await;
    assert_eq!(status, 200, "{flushed}");
    service.get("/api/v1/batch/stats").await;

    let text = std::fs::read_to_string(log.path()).unwrap();
    let slow: Vec<&str> = text.lines().filter(|l| l.contains("slow answer")).collect();
    assert_eq!(slow.len(), 1, "only the flush was slow: {text}");
    for part in [
        "WARN",
        "route=\"/api/v1/batch/internal/flush\"",
        "status=200",
    ] {
        assert!(slow[0].contains(part), "{part} in {}", slow[0]);
    }
    assert!(
        !text.contains('\x1b'),
        "no terminal colours in a file: {text:?}"
    );
}

/// The Batches page writes every bill in its list to one precision, as the jobs page does its
/// costs: beside a batch that cost under a cent, one that cost more is in millionths too
/// (not rounded to "$0.01").
#[tokio::test]
async fn the_batches_page_writes_its_bills_to_one_precision() {
    let app = TestApp::start().await;
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "AMD"}}))
        .await;
    app.flush_and_collect().await;
    // About 25,000 tokens of input: over a cent at any model's batch price.
    let notes = "position notes ".repeat(6_000);
    app.alice
        .enqueue(json!({"job_type": "risk_report", "payload": {"ticker": "AMD", "notes": notes}}))
        .await;
    app.flush_and_collect().await;
    let listed = app.admin.get("/api/v1/batch/internal/batches").await;
    let mut bills: Vec<i64> = listed.body["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| usd_nanos(&b["billed_cost_usd"]))
        .collect();
    bills.sort_unstable();
    assert!(
        bills.len() == 2 && bills[0] < 10_000_000 && bills[1] > 10_000_000,
        "a batch under a cent and one over it: {bills:?}"
    );

    let cookie = app.session_cookie(&app.admin).await;
    let page = app.page("/admin/batches", &cookie).await;
    for bill in bills {
        let shown = format!("billed {} (", app::api::Precision::Micros.show(bill));
        assert!(page.contains(&shown), "{shown} in {page}");
    }
}
