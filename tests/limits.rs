//! Limits that protect the service: each is configurable, has a documented
//! default, and returns a 4xx problem when exceeded.

mod common;

use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

async fn limited_app() -> TestApp {
    let mut config = AppConfig::default();
    config
        .set("limits", "max_subscriptions_per_account", "2")
        .set("limits", "max_event_types_per_subscription", "3")
        .set("limits", "max_url_length", "64")
        .set("server", "max_body_bytes", "4096")
        .set("server", "max_batch_events", "3")
        .set("server", "max_batch_body_bytes", "16384");
    TestApp::start_with(config).await
}

fn assert_problem(status: StatusCode, problem: &Value, expected: StatusCode, field: &str) {
    assert_eq!(status, expected, "{problem}");
    assert_eq!(problem["status"], expected.as_u16(), "{problem}");
    if !field.is_empty() {
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
}

#[test]
fn documented_defaults() {
    let settings = argus_webhooks::config::Settings::load(None).unwrap();
    assert_eq!(settings.limits.max_subscriptions_per_account, 100);
    assert_eq!(settings.limits.max_event_types_per_subscription, 16);
    assert_eq!(settings.limits.max_url_length, 2048);
    assert_eq!(settings.server.max_body_bytes, 262_144);
    assert_eq!(settings.server.max_batch_body_bytes, 8_388_608);
    assert_eq!(settings.server.max_batch_events, 500);
}

#[test]
fn out_of_range_limits_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("max_url_length", "4096"),
        ("max_event_types_per_subscription", "17"),
        ("max_subscriptions_per_account", "0"),
    ] {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, format!("[limits]\n{key} = {value}\n")).unwrap();
        let output = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "{key} = {value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
}

#[tokio::test]
async fn subscriptions_per_account() {
    let app = limited_app().await;
    let receiver = Receiver::start().await;
    let token = app.token("acme");
    let first = app
        .create_subscription(
            &token,
            &format!("{}/1", receiver.url),
            &["lease.created"],
            None,
        )
        .await;
    app.create_subscription(
        &token,
        &format!("{}/2", receiver.url),
        &["lease.created"],
        None,
    )
    .await;
    let third = json!({"url": format!("{}/3", receiver.url), "eventTypes": ["lease.created"]});
    let (status, problem) = app.post("/v1/subscriptions", &token, &third).await;
    assert_problem(status, &problem, StatusCode::CONFLICT, "");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("limit-exceeded"),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains('2'),
        "{problem}"
    );
    assert_eq!(
        receiver.verifications().len(),
        2,
        "no verification past the limit"
    );

    // Another account has its own budget.
    app.create_subscription(
        &app.token("globex"),
        &format!("{}/3", receiver.url),
        &["lease.created"],
        None,
    )
    .await;
    // A delete makes room again.
    let (status, _) = app
        .delete(
            &format!("/v1/subscriptions/{}", first["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, created) = app.post("/v1/subscriptions", &token, &third).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

#[tokio::test]
async fn event_types_and_url_length() {
    let app = limited_app().await;
    let receiver = Receiver::start().await;
    let token = app.token("acme");
    let four = [
        "lease.created",
        "lease.updated",
        "lease.expired",
        "tenant.created",
    ];
    let (status, problem) = app
        .post(
            "/v1/subscriptions",
            &token,
            &json!({"url": receiver.url, "eventTypes": four}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "eventTypes");
    let sub = app
        .create_subscription(&token, &receiver.url, &four[..3], None)
        .await;
    let (status, problem) = app
        .put(
            &format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap()),
            &token,
            &json!({"url": receiver.url, "eventTypes": four}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "eventTypes");

    let long_url = format!("{}/{}", receiver.url, "p".repeat(64));
    let (status, problem) = app
        .post(
            "/v1/subscriptions",
            &token,
            &json!({"url": long_url, "eventTypes": ["lease.created"]}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "url");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("64"),
        "{problem}"
    );
}

#[tokio::test]
async fn ingest_body_and_batch_size() {
    let app = limited_app().await;
    let publisher = app.publisher_token();
    let mut big = platform_event("acme", "lease.created");
    big["data"] = json!({"notes": "n".repeat(5000)});
    let (status, problem) = app.post("/v1/platform/events", &publisher, &big).await;
    assert_problem(status, &problem, StatusCode::PAYLOAD_TOO_LARGE, "");
    assert!(
        problem["detail"].as_str().unwrap().contains("4096"),
        "{problem}"
    );
    let (status, _) = app
        .post(
            "/v1/platform/events",
            &publisher,
            &platform_event("acme", "lease.created"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let batch = |n: usize| -> Value {
        (0..n)
            .map(|_| platform_event("acme", "lease.created"))
            .collect()
    };
    let (status, problem) = app
        .post("/v1/platform/events/batch", &publisher, &batch(4))
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "");
    assert!(problem.to_string().contains("1 to 3"), "{problem}");
    let (status, result) = app
        .post("/v1/platform/events/batch", &publisher, &batch(3))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["accepted"], 3);
    let oversized: Value = (0..3)
        .map(|_| {
            let mut event = platform_event("acme", "lease.created");
            event["data"] = json!({"notes": "n".repeat(6000)});
            event
        })
        .collect();
    let (status, problem) = app
        .post("/v1/platform/events/batch", &publisher, &oversized)
        .await;
    assert_problem(status, &problem, StatusCode::PAYLOAD_TOO_LARGE, "");
}

#[tokio::test]
async fn concurrent_creates_respect_limit() {
    let app = limited_app().await;
    let receiver = Receiver::start().await;
    let token = app.token("acme");
    let requests = (0..6).map(|i| {
        let body = json!({"url": format!("{}/{i}", receiver.url), "eventTypes": ["lease.created"]});
        let (app, token) = (&app, &token);
        async move { app.post("/v1/subscriptions", token, &body).await }
    });
    let answers = futures_util::future::join_all(requests).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let limited = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .count();
    assert_eq!(created, 2, "{answers:?}");
    assert_eq!(limited, 4, "{answers:?}");
    let (_, list) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
}
