//! GET /v1/health driven into Healthy, Degraded and Unhealthy with live data.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

const ACCOUNT: &str = "acme-health";
const TIMEOUT: Duration = Duration::from_secs(30);

async fn health(app: &TestApp) -> Value {
    let (status, body) = app
        .request(reqwest::Method::GET, "/v1/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "health failed: {body}");
    body
}

/// Polls GET /v1/health until `status` holds; returns that body.
async fn wait_for_health(app: &TestApp, status: &str) -> Value {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let body = health(app).await;
        if body["status"] == status {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health did not become {status}; last: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Parses an ISO 8601 duration of the form `P[nD]T[nH][nM]nS` into seconds.
fn parse_duration(text: &str) -> u64 {
    let rest = text.strip_prefix('P').expect("a duration starts with P");
    let (days, time) = rest.split_once('T').expect("a duration has a T part");
    let mut seconds = if days.is_empty() {
        0
    } else {
        days.strip_suffix('D')
            .expect("days end in D")
            .parse::<u64>()
            .unwrap()
            * 86_400
    };
    let mut number = String::new();
    for c in time.chars() {
        match c {
            '0'..='9' => number.push(c),
            'H' | 'M' | 'S' => {
                let n: u64 = number.parse().expect("a number before each unit");
                seconds += n * match c {
                    'H' => 3600,
                    'M' => 60,
                    _ => 1,
                };
                number.clear();
            }
            other => panic!("unexpected {other:?} in duration {text}"),
        }
    }
    assert!(number.is_empty(), "duration {text} ends without a unit");
    assert!(time.ends_with('S'), "duration {text} ends in seconds");
    seconds
}

/// Checks the fields every health body has, whatever its status.
fn check_fields(body: &Value) {
    let object = body.as_object().expect("health is an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "lastChecked",
            "queueDepth",
            "recentErrorRate",
            "status",
            "uptime"
        ]
    );
    assert!(body["queueDepth"].is_u64(), "queueDepth: {body}");
    let rate = body["recentErrorRate"]
        .as_f64()
        .expect("recentErrorRate is a number");
    assert!((0.0..=100.0).contains(&rate), "recentErrorRate {rate}");
    let uptime = body["uptime"].as_str().expect("uptime is a string");
    assert!(parse_duration(uptime) < 3600, "uptime {uptime}");
    let checked = body["lastChecked"]
        .as_str()
        .expect("lastChecked is a string");
    let checked: DateTime<Utc> = DateTime::parse_from_rfc3339(checked)
        .unwrap_or_else(|e| panic!("lastChecked {checked} is not RFC 3339: {e}"))
        .into();
    let skew = (Utc::now() - checked).num_seconds().abs();
    assert!(skew <= 5, "lastChecked is {skew} s away from now");
}

fn slow_retry() -> Value {
    json!({"maxRetries": 3, "retryIntervalSeconds": 600, "backoffMultiplier": 1.0})
}

#[tokio::test]
async fn healthy_when_idle() {
    let app = TestApp::start().await;
    let body = health(&app).await;
    check_fields(&body);
    assert_eq!(body["status"], "Healthy");
    assert_eq!(body["queueDepth"], 0);
    assert_eq!(body["recentErrorRate"], 0.0);

    // Health needs no token and ignores a bad one.
    let (status, _) = app
        .request(reqwest::Method::GET, "/v1/health", Some("not-a-jwt"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn uptime_grows() {
    let app = TestApp::start().await;
    let first = parse_duration(health(&app).await["uptime"].as_str().unwrap());
    let grew = wait_until(TIMEOUT, || async {
        parse_duration(health(&app).await["uptime"].as_str().unwrap()) > first
    })
    .await;
    assert!(grew, "uptime stayed at {first} s");
}

#[tokio::test]
async fn degraded_by_queue_depth() {
    let mut config = AppConfig::default();
    config.set("health", "degraded_queue_depth", "5");
    let app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let receiver = Receiver::start().await;
    let sub = app
        .create_subscription(&token, &receiver.url, &["property.updated"], None)
        .await;
    let id = sub["id"].as_str().unwrap();
    let (status, body) = app
        .post_empty(&format!("/v1/subscriptions/{id}/pause"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for n in 1..=10 {
        app.publish(&platform_event(ACCOUNT, "property.updated"))
            .await;
        let body = health(&app).await;
        check_fields(&body);
        assert_eq!(body["queueDepth"], n, "{body}");
        let expected = if n > 5 { "Degraded" } else { "Healthy" };
        assert_eq!(body["status"], expected, "at queue depth {n}: {body}");
    }
    assert_eq!(health(&app).await["recentErrorRate"], 0.0);

    let (status, body) = app
        .post_empty(&format!("/v1/subscriptions/{id}/resume"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    receiver.wait_for(10, TIMEOUT).await;
    // Health is already Healthy at a depth of 5, so wait for the queue to drain.
    let drained = wait_until(TIMEOUT, || async { health(&app).await["queueDepth"] == 0 }).await;
    assert!(drained, "the queue did not drain: {}", health(&app).await);
    let body = health(&app).await;
    check_fields(&body);
    assert_eq!(body["status"], "Healthy");
    assert_eq!(body["recentErrorRate"], 0.0);
}

#[tokio::test]
async fn degraded_by_error_rate_counts_retrying() {
    let mut config = AppConfig::default();
    // Real delays, so the failed event stays Retrying for the whole test.
    config.set("delivery", "time_scale", "1.0").set(
        "health",
        "degraded_error_rate_percent",
        "25.0",
    );
    let app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let ok = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(503));
    let paused = Receiver::start().await;
    app.create_subscription(&token, &ok.url, &["lease.created"], None)
        .await;
    app.create_subscription(&token, &failing.url, &["lease.expired"], Some(slow_retry()))
        .await;
    let paused_sub = app
        .create_subscription(&token, &paused.url, &["tenant.updated"], None)
        .await;
    let paused_id = paused_sub["id"].as_str().unwrap();
    let (status, body) = app
        .post_empty(&format!("/v1/subscriptions/{paused_id}/pause"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let delivered = app.publish(&platform_event(ACCOUNT, "lease.created")).await;
    let delivered_id = delivered["events"][0]["id"].as_str().unwrap();
    app.wait_for_event_status(&token, delivered_id, "Delivered", TIMEOUT)
        .await;
    assert_eq!(
        wait_for_health(&app, "Healthy").await["recentErrorRate"],
        0.0
    );

    let retrying = app.publish(&platform_event(ACCOUNT, "lease.expired")).await;
    let retrying_id = retrying["events"][0]["id"].as_str().unwrap();
    app.wait_for_event_status(&token, retrying_id, "Retrying", TIMEOUT)
        .await;
    for _ in 0..2 {
        app.publish(&platform_event(ACCOUNT, "tenant.updated"))
            .await;
    }

    // One of two attempts failed: 50 % is above the 25 % threshold.
    let body = health(&app).await;
    check_fields(&body);
    assert_eq!(body["status"], "Degraded", "{body}");
    assert_eq!(body["recentErrorRate"], 50.0, "{body}");
    // Two Pending events of the paused subscription and one Retrying event.
    assert_eq!(body["queueDepth"], 3, "{body}");
}

#[tokio::test]
async fn unhealthy_while_store_fails() {
    let mut config = AppConfig::default();
    let fault = StoreFault::configure(&mut config);
    let app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let receiver = Receiver::start().await;
    app.create_subscription(&token, &receiver.url, &["report.completed"], None)
        .await;
    assert_eq!(health(&app).await["status"], "Healthy");

    fault.start();
    let (status, body) = app
        .post(
            "/v1/platform/events",
            &app.publisher_token(),
            &platform_event(ACCOUNT, "report.completed"),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let body = health(&app).await;
    check_fields(&body);
    assert_eq!(body["status"], "Unhealthy", "{body}");

    // A read that works does not hide the failing writes.
    let (status, _) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health(&app).await["status"], "Unhealthy");

    // Recovery needs no other traffic once the fault is gone.
    fault.stop();
    let body = wait_for_health(&app, "Healthy").await;
    check_fields(&body);
    let result = app
        .publish(&platform_event(ACCOUNT, "report.completed"))
        .await;
    assert_eq!(result["deliveries"], 1);
    receiver.wait_for(1, TIMEOUT).await;
    assert!(app.logs().contains("store"), "the store error is logged");
}
