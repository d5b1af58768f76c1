use super::*;
use crate::api::{EnqueueRequest, FlushRequest, JobStatus, JobType, ListQuery, PreviewToken};
use serde_json::json;

/// A bulk body read as the server reads it: its items, then each in turn.
fn parse_bulk(body: &Value) -> Validated<Vec<EnqueueRequest>> {
    let text = body.to_string();
    let items = parse_bulk_items(text.as_bytes())?;
    let mut requests = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match read_bulk_item(i, item) {
            Ok(request) => requests.push(request),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(requests)
    } else {
        Err(errors)
    }
}

fn kinds(errors: &[FieldError]) -> Vec<(String, Vec<Value>)> {
    errors
        .iter()
        .map(|e| (e.kind.clone(), e.loc.clone()))
        .collect()
}

#[test]
fn enqueue_applies_defaults() {
    let req =
        parse_enqueue(&json!({"job_type": "risk_report", "payload": {"ticker": "AAPL"}})).unwrap();
    assert_eq!(req.job_type, JobType::RiskReport);
    assert_eq!(req.priority, DEFAULT_PRIORITY);
    assert_eq!(req.run_after, None);
    assert_eq!(req.idempotency_key, None);
    assert_eq!(req.payload["ticker"], "AAPL");
}

#[test]
fn enqueue_reports_every_invalid_field_at_once() {
    let body = json!({"job_type": "x", "payload": [1], "priority": 101, "run_after": "not a date", "idempotency_key": ""});
    let errors = parse_enqueue(&body).unwrap_err();
    assert_eq!(
        kinds(&errors),
        vec![
            ("enum".into(), vec![json!("body"), json!("job_type")]),
            ("dict_type".into(), vec![json!("body"), json!("payload")]),
            (
                "less_than_equal".into(),
                vec![json!("body"), json!("priority")]
            ),
            (
                "datetime_from_date_parsing".into(),
                vec![json!("body"), json!("run_after")]
            ),
            (
                "string_too_short".into(),
                vec![json!("body"), json!("idempotency_key")]
            ),
        ]
    );
    assert_eq!(errors[2].ctx, Some(json!({"le": 100})));
    assert_eq!(errors[2].msg, "Input should be less than or equal to 100");
    assert_eq!(errors[2].input, json!(101));
    assert!(
        errors[0]
            .msg
            .starts_with("Input should be 'portfolio_summary', 'risk_report'")
    );
    assert!(errors[0].msg.ends_with(" or 'trading_analytics'"));
}

#[test]
fn enqueue_missing_fields_carry_the_body_as_input() {
    let errors = parse_enqueue(&json!({})).unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(
        errors
            .iter()
            .all(|e| e.kind == "missing" && e.input == json!({}) && e.msg == "Field required")
    );
}

#[test]
fn enqueue_rejects_a_non_object_body() {
    let errors = parse_enqueue(&json!([1, 2])).unwrap_err();
    assert_eq!(
        kinds(&errors),
        vec![("model_attributes_type".into(), vec![json!("body")])]
    );
}

#[test]
fn priority_bounds_and_lax_integers() {
    let ok =
        |p: Value| parse_enqueue(&json!({"job_type": "risk_report", "payload": {}, "priority": p}));
    assert_eq!(ok(json!(0)).unwrap().priority, 0);
    assert_eq!(ok(json!(100)).unwrap().priority, 100);
    assert_eq!(ok(json!(7.0)).unwrap().priority, 7);
    assert_eq!(ok(json!("42")).unwrap().priority, 42);
    assert_eq!(ok(json!(-1)).unwrap_err()[0].kind, "greater_than_equal");
    assert_eq!(ok(json!(1.5)).unwrap_err()[0].kind, "int_from_float");
    assert_eq!(ok(json!("high")).unwrap_err()[0].kind, "int_parsing");
    assert_eq!(ok(json!(true)).unwrap_err()[0].kind, "int_type");
    assert_eq!(ok(json!(null)).unwrap_err()[0].kind, "int_type");
}

#[test]
fn run_after_formats() {
    let at = |v: Value| {
        parse_enqueue(&json!({"job_type": "risk_report", "payload": {}, "run_after": v}))
    };
    let utc = "2030-01-02T03:04:05Z".parse::<DateTime<Utc>>().unwrap();
    assert_eq!(
        at(json!("2030-01-02T03:04:05Z")).unwrap().run_after,
        Some(utc)
    );
    assert_eq!(
        at(json!("2030-01-02T03:04:05")).unwrap().run_after,
        Some(utc),
        "no timezone means UTC"
    );
    assert_eq!(
        at(json!("2030-01-02T05:04:05+02:00")).unwrap().run_after,
        Some(utc)
    );
    assert_eq!(at(json!(utc.timestamp())).unwrap().run_after, Some(utc));
    assert_eq!(
        at(json!("2030-01-02")).unwrap().run_after,
        Some("2030-01-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap())
    );
    assert_eq!(at(json!(null)).unwrap().run_after, None);
    assert_eq!(at(json!({})).unwrap_err()[0].kind, "datetime_type");
    let bad = at(json!("2030-13-45")).unwrap_err();
    assert_eq!(bad[0].kind, "datetime_from_date_parsing");
    assert!(bad[0].ctx.as_ref().unwrap()["error"].is_string());
}

#[test]
fn run_after_numbers_follow_pydantic() {
    let at = |v: Value| {
        parse_enqueue(&json!({"job_type": "risk_report", "payload": {}, "run_after": v}))
    };
    let when = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
    // Seconds up to 2×10¹⁰, milliseconds beyond: a JavaScript Date.now() means what it says.
    assert_eq!(
        at(json!(1_764_300_000)).unwrap().run_after,
        when("2025-11-28T03:20:00Z")
    );
    assert_eq!(
        at(json!(1_764_300_000_000i64)).unwrap().run_after,
        when("2025-11-28T03:20:00Z")
    );
    assert_eq!(
        at(json!(1_764_300_000.5)).unwrap().run_after,
        when("2025-11-28T03:20:00.500Z")
    );
    assert_eq!(
        at(json!("1764300000")).unwrap().run_after,
        when("2025-11-28T03:20:00Z"),
        "a number in a string is a timestamp too"
    );
    // 8210266876000 ms is in 2230: fine. Past year 9999 or before 1600: a 422, not a panic.
    assert_eq!(
        at(json!(8_210_266_876_000i64)).unwrap().run_after,
        when("2230-03-05T05:41:16Z")
    );
    for (input, error) in [
        (json!(8.3e17), "dates after 9999 are not supported"),
        (json!(9.9e300), "dates after 9999 are not supported"),
        (json!(u64::MAX), "dates after 9999 are not supported"),
        (json!(-1.2e13), "dates before 1600 are not supported"),
        (json!(-9.9e300), "dates before 1600 are not supported"),
    ] {
        let errors = at(input.clone()).unwrap_err();
        assert_eq!(errors.len(), 1, "{input}");
        assert_eq!(errors[0].kind, "datetime_parsing", "{input}");
        assert_eq!(errors[0].loc, vec![json!("body"), json!("run_after")]);
        assert_eq!(errors[0].input, input);
        assert_eq!(errors[0].ctx.as_ref().unwrap()["error"], error, "{input}");
    }
    assert_eq!(
        at(json!("9999-12-31T23:59:59Z")).unwrap().run_after,
        when("9999-12-31T23:59:59Z"),
        "the last supported second"
    );
}

#[test]
fn idempotency_key_length() {
    let key = |k: Value| {
        parse_enqueue(&json!({"job_type": "risk_report", "payload": {}, "idempotency_key": k}))
    };
    assert_eq!(
        key(json!("k".repeat(255)))
            .unwrap()
            .idempotency_key
            .unwrap()
            .len(),
        255
    );
    assert_eq!(
        key(json!("é".repeat(255)))
            .unwrap()
            .idempotency_key
            .unwrap()
            .chars()
            .count(),
        255
    );
    assert_eq!(
        key(json!("k".repeat(256))).unwrap_err()[0].kind,
        "string_too_long"
    );
    assert_eq!(key(json!(5)).unwrap_err()[0].kind, "string_type");
}

#[test]
fn payload_size_limit() {
    let fits = "x".repeat(MAX_PAYLOAD_BYTES - 20);
    assert!(parse_enqueue(&json!({"job_type": "risk_report", "payload": {"note": fits}})).is_ok());
    let big = "x".repeat(MAX_PAYLOAD_BYTES);
    let errors =
        parse_enqueue(&json!({"job_type": "risk_report", "payload": {"note": big}})).unwrap_err();
    assert_eq!(
        kinds(&errors),
        vec![("value_error".into(), vec![json!("body"), json!("payload")])]
    );
}

#[test]
fn list_query_rules() {
    assert_eq!(
        parse_list_query([]).unwrap(),
        ListQuery {
            limit: 50,
            ..ListQuery::default()
        }
    );
    let q = parse_list_query([("status_filter", "processing"), ("limit", "1000")]).unwrap();
    assert_eq!(
        q,
        ListQuery {
            status_filter: Some(JobStatus::Processing),
            limit: 1000,
            ..ListQuery::default()
        }
    );
    let errors = parse_list_query([("status_filter", "done"), ("limit", "abc")]).unwrap_err();
    assert_eq!(
        kinds(&errors),
        vec![
            ("enum".into(), vec![json!("query"), json!("status_filter")]),
            ("int_parsing".into(), vec![json!("query"), json!("limit")]),
        ]
    );
    assert_eq!(
        parse_list_query([("limit", "0")]).unwrap_err()[0].kind,
        "greater_than_equal"
    );
    assert_eq!(
        parse_list_query([("limit", "1001")]).unwrap_err()[0].kind,
        "less_than_equal"
    );
}

#[test]
fn flush_rules() {
    let f = parse_flush(&json!({})).unwrap();
    assert_eq!(
        f,
        FlushRequest {
            max_jobs: 100,
            job_types: None,
            min_priority: 0,
            preview_token: None,
        }
    );
    let f =
        parse_flush(&json!({"max_jobs": 10000, "job_types": ["risk_report"], "min_priority": 100}))
            .unwrap();
    assert_eq!(f.job_types, Some(vec![JobType::RiskReport]));
    let errors = parse_flush(
        &json!({"max_jobs": 0, "job_types": ["risk_report", "nope"], "min_priority": 101}),
    )
    .unwrap_err();
    assert_eq!(
        kinds(&errors),
        vec![
            (
                "greater_than_equal".into(),
                vec![json!("body"), json!("max_jobs")]
            ),
            (
                "less_than_equal".into(),
                vec![json!("body"), json!("min_priority")]
            ),
            (
                "enum".into(),
                vec![json!("body"), json!("job_types"), json!(1)]
            ),
        ]
    );
    assert_eq!(
        parse_flush(&json!({"job_types": "risk_report"})).unwrap_err()[0].kind,
        "list_type"
    );
}

#[test]
fn poll_rules() {
    assert_eq!(
        parse_poll(&json!({"batch_id": "msgbatch_1"}))
            .unwrap()
            .batch_id,
        "msgbatch_1"
    );
    assert_eq!(parse_poll(&json!({})).unwrap_err()[0].kind, "missing");
    assert_eq!(
        parse_poll(&json!({"batch_id": 3})).unwrap_err()[0].kind,
        "string_type"
    );
}

#[test]
fn json_errors_point_at_the_body() {
    let e = FieldError::json_invalid(7, "EOF while parsing");
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(
        v,
        json!({"type": "json_invalid", "loc": ["body", 7], "msg": "JSON decode error", "input": {}, "ctx": {"error": "EOF while parsing"}})
    );
}

#[test]
fn huge_integers_are_range_errors() {
    let p =
        |v: Value| parse_enqueue(&json!({"job_type": "risk_report", "payload": {}, "priority": v}));
    assert_eq!(p(json!(u64::MAX)).unwrap_err()[0].kind, "less_than_equal");
    assert_eq!(p(json!(1e300)).unwrap_err()[0].kind, "less_than_equal");
    assert_eq!(p(json!(-1e300)).unwrap_err()[0].kind, "greater_than_equal");
}

#[test]
fn list_query_search_type_and_paging() {
    let q = parse_list_query([
        ("job_type", "risk_report"),
        ("q", " NVDA "),
        ("offset", "100"),
    ])
    .unwrap();
    assert_eq!(
        (q.job_type, q.search.as_deref(), q.offset),
        (Some(JobType::RiskReport), Some("NVDA"), 100)
    );
    assert_eq!(parse_list_query([("q", "  ")]).unwrap().search, None);
    let errors = parse_list_query([("job_type", "x"), ("offset", "-1"), ("q", &"x".repeat(201))])
        .unwrap_err();
    assert_eq!(
        errors.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["enum", "greater_than_equal", "string_too_long"]
    );
}

#[test]
fn bulk_enqueue_reads_each_item_and_names_it_in_errors() {
    let ok = json!({"job_type": "risk_report", "payload": {"ticker": "AAPL"}});
    let requests = parse_bulk(&json!({"jobs": [ok.clone(), ok.clone()]})).unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].priority, DEFAULT_PRIORITY);

    let errors = parse_bulk(&json!({"jobs": [
        ok,
        {"job_type": "nope", "payload": {}},
        {"payload": {}, "priority": 101},
        7
    ]}))
    .unwrap_err();
    assert_eq!(
        kinds(&errors),
        vec![
            (
                "enum".to_string(),
                vec![json!("body"), json!("jobs"), json!(1), json!("job_type")]
            ),
            (
                "missing".to_string(),
                vec![json!("body"), json!("jobs"), json!(2), json!("job_type")]
            ),
            (
                "less_than_equal".to_string(),
                vec![json!("body"), json!("jobs"), json!(2), json!("priority")]
            ),
            (
                "model_attributes_type".to_string(),
                vec![json!("body"), json!("jobs"), json!(3)]
            ),
        ]
    );
    // The list itself: present, a list, 1 to 10,000 items.
    for (body, kind) in [
        (json!({}), "missing"),
        (json!({"jobs": {}}), "list_type"),
        (json!({"jobs": []}), "too_short"),
    ] {
        assert_eq!(parse_bulk(&body).unwrap_err()[0].kind, kind, "{body}");
    }
    let many = vec![json!({"job_type": "risk_report", "payload": {}}); MAX_BULK_ENQUEUE + 1];
    let errors = parse_bulk(&json!({"jobs": many})).unwrap_err();
    assert_eq!(
        (errors[0].kind.as_str(), &errors[0].loc),
        ("too_long", &vec![json!("body"), json!("jobs")])
    );
}

#[test]
fn a_preview_token_carries_what_the_preview_promised() {
    let token = PreviewToken {
        max_jobs: 100,
        job_types: Some(vec![JobType::RiskReport, JobType::SentimentAnalysis]),
        min_priority: 5,
        jobs_count: 3,
        cost_nanos: 12_345,
    };
    let text = token.encode();
    assert_eq!(PreviewToken::decode(&text), Some(token.clone()));
    let request = parse_flush(&json!({"max_jobs": 100, "min_priority": 5,
        "job_types": ["risk_report", "sentiment_analysis"], "preview_token": text}))
    .unwrap();
    assert!(token.matches(&request));
    assert!(!token.matches(&FlushRequest::options(101, request.job_types.clone(), 5)));
    for bad in [json!(7), json!("x".repeat(201)), json!("v1\u{0}")] {
        let errors = parse_flush(&json!({"preview_token": bad})).unwrap_err();
        assert_eq!(
            errors[0].loc,
            vec![json!("body"), json!("preview_token")],
            "{bad}"
        );
    }
    // Any other text is read; whether it is a preview of these options is the flush's to say.
    for other in ["v1.1.2", "nonsense", "v1.1.0.*.1.1.extra"] {
        let request = parse_flush(&json!({"preview_token": other})).unwrap();
        assert_eq!(
            PreviewToken::decode(other).filter(|t| t.matches(&request)),
            None
        );
    }
    let any = PreviewToken {
        job_types: None,
        ..token
    };
    assert_eq!(PreviewToken::decode(&any.encode()), Some(any));
}

#[test]
fn nul_is_refused_wherever_text_is_stored_or_looked_up() {
    let enqueue = |field: &str, value: Value| {
        let mut body = json!({"job_type": "risk_report", "payload": {"ticker": "AAPL"}});
        body[field] = value;
        parse_enqueue(&body)
    };
    for (field, value) in [
        ("payload", json!({"ticker": "A\u{0}B"})),
        ("payload", json!({"nested": [{"k\u{0}": 1}]})),
        ("idempotency_key", json!("key\u{0}")),
    ] {
        let errors = enqueue(field, value).unwrap_err();
        assert_eq!(errors[0].kind, "string_pattern_mismatch", "{field}");
        assert_eq!(errors[0].loc, vec![json!("body"), json!(field)]);
    }
    for name in ["q", "error", "cursor"] {
        let errors = parse_list_query([(name, "a\u{0}b")]).unwrap_err();
        assert_eq!(errors[0].loc, vec![json!("query"), json!(name)], "{name}");
    }
    assert!(parse_poll(&json!({"batch_id": "msgbatch_\u{0}"})).is_err());
    assert!(parse_bulk_cancel(&json!({"job_ids": ["ok", "bad\u{0}"]})).is_err());
    assert!(parse_path_text("job_id", "x\u{0}").is_err());
    assert_eq!(parse_path_text("job_id", "x").unwrap(), "x");
}

#[test]
fn enqueue_bodies_are_measured_before_they_are_built() {
    // Thirty-two megabytes of zeros: refused by size, whatever memory its value would take.
    let zeros = format!(
        r#"{{"job_type": "risk_report", "payload": {{"a": [{}0]}}}}"#,
        "0,".repeat(400_000)
    );
    let errors = parse_enqueue_bytes(zeros.as_bytes()).unwrap_err();
    assert_eq!(errors[0].loc, vec![json!("body"), json!("payload")]);
    assert_eq!(errors[0].input, json!({"size_bytes": 800_009}));
    let long_key = format!(
        r#"{{"job_type": "risk_report", "payload": {{}}, "idempotency_key": [{}0]}}"#,
        "0,".repeat(20_000)
    );
    let errors = parse_enqueue_bytes(long_key.as_bytes()).unwrap_err();
    assert_eq!(errors[0].loc, vec![json!("body"), json!("idempotency_key")]);
    // The same rules as a value: defaults, every error at once, json_invalid positions.
    let ok = parse_enqueue_bytes(br#"{"job_type": "risk_report", "payload": {"ticker": "AAPL"}}"#)
        .unwrap();
    assert_eq!(ok.priority, DEFAULT_PRIORITY);
    let errors = parse_enqueue_bytes(br#"{"payload": [1], "priority": 101}"#).unwrap_err();
    assert_eq!(
        kinds(&errors)
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        ["missing", "dict_type", "less_than_equal"]
    );
    let broken = parse_enqueue_bytes(b"{\"job_type\": ").unwrap_err();
    assert_eq!(broken[0].kind, "json_invalid");
}
