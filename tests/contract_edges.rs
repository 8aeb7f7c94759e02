//! Contract and HTTP details that clients and probes rely on.
//! Covered: `Location` on create, objects only where the contract names an
//! object, the per-event size limit inside a batch, 503 with `Retry-After`,
//! HEAD on GET routes and token edge cases. Also the metrics of events failed
//! without an attempt, and stored `http` subscriptions once plain http is off.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

const ACCOUNT: &str = "harbour-estates";
const TYPE: &str = "lease.created";

/// Sums every sample of `name` whose labels contain `label`.
fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn create_sets_location_header() {
    let app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let receiver = Receiver::start().await;

    let response = app
        .client
        .post(format!("{}/v1/subscriptions", app.base))
        .bearer_auth(&token)
        .json(&json!({"url": receiver.url, "eventTypes": [TYPE]}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 201);
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = response.json().await.unwrap();
    let expected = format!("/v1/subscriptions/{}", body["id"].as_str().unwrap());
    assert_eq!(location.as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn arrays_rejected_where_objects_expected() {
    let app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let receiver = Receiver::start().await;

    // serde reads a struct from an array by position; the API must not.
    let positional = json!([receiver.url, [TYPE]]);
    let (status, body) = app.post("/v1/subscriptions", &token, &positional).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("expected a JSON object; got an array"),
        "{body}"
    );
    let (_, list) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");

    let event = platform_event(ACCOUNT, TYPE);
    let values: Vec<Value> = event.as_object().unwrap().values().cloned().collect();
    let publisher = app.publisher_token();
    let (status, body) = app
        .post(
            "/v1/platform/events",
            &publisher,
            &Value::Array(values.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = app
        .post(
            "/v1/platform/events/batch",
            &publisher,
            &json!([event, values]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], 202, "{body}");
    assert_eq!(body["results"][1]["status"], 400, "{body}");
}

#[tokio::test]
async fn field_errors_say_what_is_accepted() {
    let app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let receiver = Receiver::start().await;

    let body = json!({"url": receiver.url, "eventTypes": [TYPE, "lease.exploded"]});
    let (status, problem) = app.post("/v1/subscriptions", &token, &body).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let error = &problem["errors"][0];
    assert_eq!(error["field"], "eventTypes[1]", "{problem}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("lease.exploded"), "{problem}");
    assert!(message.contains("lease.created"), "{problem}");
    assert!(!message.contains(" at line "), "{problem}");

    // A syntax error names no field, rather than the unknown path "?".
    let response = app
        .client
        .post(format!("{}/v1/subscriptions", app.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let problem: Value = response.json().await.unwrap();
    assert!(problem.get("errors").is_none(), "{problem}");
}

#[tokio::test]
async fn batch_item_over_event_limit() {
    let mut config = AppConfig::default();
    config.set("server", "max_body_bytes", "4096");
    let app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let receiver = Receiver::start().await;
    app.create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let small = platform_event(ACCOUNT, TYPE);
    let mut large = platform_event(ACCOUNT, TYPE);
    large["data"] = json!({"notes": "x".repeat(8000)});

    let (status, single) = app
        .post("/v1/platform/events", &app.publisher_token(), &large)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{single}");

    let (status, body) = app
        .post(
            "/v1/platform/events/batch",
            &app.publisher_token(),
            &json!([small, large]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], 202, "{body}");
    assert_eq!(body["results"][1]["status"], 413, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["rejected"], 1, "{body}");
    receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn store_down_answers_503_with_retry_after() {
    let mut config = AppConfig::default();
    let fault = StoreFault::configure(&mut config);
    let app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let receiver = Receiver::start().await;
    app.create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let event = platform_event(ACCOUNT, TYPE);
    fault.start();

    for (path, body) in [
        ("/v1/platform/events", event.clone()),
        ("/v1/platform/events/batch", json!([event, event])),
    ] {
        let response = app
            .client
            .post(format!("{}{path}", app.base))
            .bearer_auth(app.publisher_token())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        assert_eq!(status, 503, "{path}: {text}");
        assert_eq!(retry_after.as_deref(), Some("5"), "{path}");
        assert!(text.contains("service-unavailable"), "{path}: {text}");
    }
    fault.stop();
}

#[tokio::test]
async fn head_runs_get_routes() {
    let app = TestApp::start().await;
    let token = app.token(ACCOUNT);

    let (status, body) = app
        .request(reqwest::Method::HEAD, "/v1/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Value::Null, "a HEAD response has no body");
    let (status, _) = app
        .request(
            reqwest::Method::HEAD,
            "/v1/subscriptions",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let response = app
        .client
        .patch(format!("{}/v1/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let allow = response.headers()["allow"].to_str().unwrap().to_string();
    assert_eq!(allow, "GET, HEAD");
}

#[tokio::test]
async fn events_page_beyond_a_million() {
    let app = TestApp::start().await;
    let token = app.token(ACCOUNT);

    let (status, body) = app.get("/v1/events?page=2147483647", &token).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 0, "{body}");
    let (status, body) = app.get("/v1/events?page=4294967296", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn token_edge_cases() {
    let app = TestApp::start().await;
    let own = app.token(ACCOUNT);
    let other = app.token("other-account");

    // Two Authorization headers: neither account is trusted.
    let response = app
        .client
        .get(format!("{}/v1/subscriptions", app.base))
        .header("authorization", format!("Bearer {own}"))
        .header("authorization", format!("Bearer {other}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("more than one Authorization header"),
        "{problem}"
    );

    // RFC 7519 allows a fractional NumericDate.
    let fractional = make_token(json!({"account_id": ACCOUNT, "exp": now() as f64 + 600.25}));
    let (status, body) = app.get("/v1/subscriptions", &fractional).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let no_account = make_token(json!({"exp": now() + 600}));
    let (status, body) = app.get("/v1/subscriptions", &no_account).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("'account_id' is missing"),
        "{body}"
    );

    // No leeway by default: a token is rejected once its exp has passed.
    let expired = make_token(json!({"account_id": ACCOUNT, "exp": now() - 2}));
    let (status, body) = app.get("/v1/subscriptions", &expired).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn numeric_looking_secret_from_env() {
    let secret = "0123456789012345678901234567890123";
    let mut config = AppConfig::default();
    config
        .env
        .push(("ARGUS_WEBHOOKS_AUTH__HS256_SECRET".into(), secret.into()));
    let app = TestApp::start_with(config).await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"account_id": ACCOUNT, "exp": now() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap();

    let (status, body) = app.get("/v1/subscriptions", &token).await;

    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn failed_without_attempt_counted() {
    let app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let receiver = Receiver::start().await;
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let id = sub["id"].as_str().unwrap();
    let (status, body) = app
        .post_empty(&format!("/v1/subscriptions/{id}/pause"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for _ in 0..3 {
        app.publish(&platform_event(ACCOUNT, TYPE)).await;
    }
    let event = platform_event(ACCOUNT, TYPE);
    let (status, body) = app
        .post(
            "/v1/platform/events/batch",
            &app.publisher_token(),
            &json!([event, event]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicates"], 1, "{body}");

    let (status, body) = app.delete(&format!("/v1/subscriptions/{id}"), &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let text = app.metrics().await;
    let failed = metric_sum(
        &text,
        "argus_webhooks_deliveries_total",
        "outcome=\"failed\"",
    );
    assert_eq!(failed, 4.0, "{text}");
    let duplicates = metric_sum(&text, "argus_webhooks_ingest_duplicates_total", "");
    assert_eq!(duplicates, 1.0, "{text}");
}

#[tokio::test]
async fn stored_http_endpoint_blocked_without_allow_http() {
    let mut app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let receiver = Receiver::start().await;
    app.create_subscription(
        &token,
        &receiver.url,
        &[TYPE],
        Some(json!({"maxRetries": 0})),
    )
    .await;
    app.config_mut().set("delivery", "allow_http", "false");
    app.restart().await;

    let result = app.publish(&platform_event(ACCOUNT, TYPE)).await;
    let event_id = result["events"][0]["id"].as_str().unwrap().to_string();
    let event = app
        .wait_for_event_status(&token, &event_id, "Failed", Duration::from_secs(20))
        .await;

    let error = event["deliveryAttempts"][0]["errorMessage"]
        .as_str()
        .unwrap();
    assert!(error.contains("delivery.allow_http"), "{event}");
    assert_eq!(receiver.count(), 0, "a plain http request was sent");
}
