//! Fairness between subscriptions: hanging endpoints do not delay a healthy
//! one, the per-subscription and service-wide in-flight limits hold, and a
//! pooled connection the server closed does not cost an attempt.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::time::{Duration, Instant};

use common::*;
use raw::{Action, RawReceiver};
use serde_json::json;

const ACCOUNT: &str = "lakeside-portfolio";
const TYPE: &str = "portfolio.updated";

#[tokio::test]
async fn hanging_endpoints_do_not_delay_healthy() {
    let mut config = AppConfig::default();
    // The hanging attempts outlive the test.
    config.set("delivery", "total_timeout_seconds", "60");
    let app = TestApp::start_with(config).await;
    let hanging = RawReceiver::start(|_| Action::Hang).await;
    let healthy = Receiver::start().await;
    let token = app.token(ACCOUNT);
    for index in 0..20 {
        let url = hanging.url(&format!("/hang/{index}"));
        app.create_subscription(&token, &url, &[TYPE], None).await;
    }
    app.create_subscription(&token, &healthy.url, &[TYPE], None)
        .await;

    let started = Instant::now();
    for round in 1..=5 {
        let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
        assert_eq!(ingest["deliveries"], 21);
        healthy.wait_for(round, Duration::from_secs(10)).await;
    }
    let elapsed = started.elapsed();
    // A generous bound: one hanging attempt alone would take 60 s.
    assert!(
        elapsed < Duration::from_secs(10),
        "5 healthy deliveries took {elapsed:?}"
    );

    let all_hanging = wait_until(Duration::from_secs(10), || async {
        hanging.max_in_flight() >= 20
    })
    .await;
    assert!(
        all_hanging,
        "only {} hanging requests at once",
        hanging.max_in_flight()
    );
    assert_eq!(
        hanging.count(),
        20,
        "each hanging subscription has one attempt in flight"
    );
}

#[tokio::test]
async fn in_flight_limits_hold() {
    let mut config = AppConfig::default();
    config
        .set("delivery", "max_in_flight_per_subscription", "2")
        .set("delivery", "max_in_flight_total", "3");
    let app = TestApp::start_with(config).await;
    let receiver = RawReceiver::start(|_| Action::delayed(200, Duration::from_millis(150))).await;
    let token = app.token(ACCOUNT);

    // One subscription alone: the per-subscription limit bounds it.
    app.create_subscription(&token, &receiver.url("/a"), &[TYPE], None)
        .await;
    publish_and_deliver(&app, &token, 6).await;
    assert_eq!(receiver.count(), 6);
    assert_eq!(
        receiver.max_in_flight_on("/a"),
        2,
        "one subscription runs at most 2 attempts at once, and does run 2"
    );

    // Three subscriptions: the service-wide limit bounds them together.
    for path in ["/b", "/c"] {
        app.create_subscription(&token, &receiver.url(path), &[TYPE], None)
            .await;
    }
    publish_and_deliver(&app, &token, 6).await;
    assert_eq!(receiver.count(), 6 + 18);
    for path in ["/a", "/b", "/c"] {
        let max = receiver.max_in_flight_on(path);
        assert!(max <= 2, "{path} had {max} requests in flight");
    }
    let max_total = receiver.max_in_flight();
    assert!(
        max_total <= 3,
        "{max_total} requests in flight across subscriptions"
    );
    assert_eq!(
        max_total, 3,
        "the service-wide limit was reached, so it is what bounded concurrency"
    );
}

/// Publishes `count` events and waits until every copy is delivered.
async fn publish_and_deliver(app: &TestApp, token: &str, count: usize) {
    let mut ids = Vec::new();
    for _ in 0..count {
        let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
        for event in ingest["events"].as_array().unwrap() {
            ids.push(event["id"].as_str().unwrap().to_string());
        }
    }
    for id in &ids {
        app.wait_for_event_status(token, id, "Delivered", Duration::from_secs(30))
            .await;
    }
}

#[tokio::test]
async fn closed_pooled_connection_not_a_failure() {
    let app = TestApp::start().await;
    // Each response announces keep-alive, then the server closes the connection.
    let receiver = RawReceiver::start(|_| Action::Respond {
        status: 200,
        body: b"ok".to_vec(),
        delay: Duration::ZERO,
        close: true,
    })
    .await;
    let token = app.token(ACCOUNT);
    let retry = json!({"maxRetries": 3, "retryIntervalSeconds": 10});
    app.create_subscription(&token, &receiver.url("/hooks"), &[TYPE], Some(retry))
        .await;

    // Back to back, so each delivery starts right after the previous response.
    let mut ids = Vec::new();
    for _ in 0..20 {
        let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
        ids.push(ingest["events"][0]["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let event = app
            .wait_for_event_status(&token, id, "Delivered", Duration::from_secs(30))
            .await;
        let attempts = event["deliveryAttempts"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            1,
            "a closed pooled connection cost an attempt: {event}"
        );
    }
    // One at a time, so each delivery finds the pool holding a closed connection.
    for _ in 0..5 {
        let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
        let id = ingest["events"][0]["id"].as_str().unwrap();
        let event = app
            .wait_for_event_status(&token, id, "Delivered", Duration::from_secs(30))
            .await;
        assert_eq!(
            event["deliveryAttempts"].as_array().unwrap().len(),
            1,
            "{event}"
        );
    }
    assert_eq!(receiver.count(), 25);
    assert!(
        receiver.connections() >= 25,
        "each delivery used a new connection"
    );
}

#[tokio::test]
async fn closed_without_response_sent_once() {
    let app = TestApp::start().await;
    // Every connection is new, as none ever carried a response, so the
    // resend meant for stale pooled connections must not double the requests.
    let receiver = RawReceiver::start(|_| Action::Drop).await;
    let token = app.token(ACCOUNT);
    let retry = json!({"maxRetries": 2, "retryIntervalSeconds": 10});
    app.create_subscription(&token, &receiver.url("/hooks"), &[TYPE], Some(retry))
        .await;
    let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
    let id = ingest["events"][0]["id"].as_str().unwrap();
    let event = app
        .wait_for_event_status(&token, id, "Failed", Duration::from_secs(30))
        .await;
    let attempts = event["deliveryAttempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{event}");
    assert_eq!(
        receiver.count_path("/hooks"),
        3,
        "each attempt sent the event once"
    );
}
