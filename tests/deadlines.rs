//! The total timeout covers the whole exchange (TLS handshake, waiting for
//! the status, reading the body), and response bodies are stored capped and
//! safely whatever bytes the endpoint sends.

mod common;
#[path = "common/raw.rs"]
mod raw;
#[path = "common/tls.rs"]
mod tls;

use std::time::Duration;

use common::*;
use raw::{Action, RawReceiver};
use serde_json::{Value, json};
use tls::{TestCa, TlsReceiver};

const ACCOUNT: &str = "castlegate-property";
const TYPE: &str = "report.completed";
/// `delivery.total_timeout_seconds` of these tests, in milliseconds.
const TOTAL_TIMEOUT_MS: u64 = 2000;
/// The default `delivery.response_body_limit_bytes`.
const BODY_LIMIT: usize = 4096;

/// Starts a service whose total timeout is 2 s and whose connect timeout
/// (30 s) cannot end an attempt first.
async fn start(extra_root: Option<&std::path::Path>) -> TestApp {
    let mut config = AppConfig::default();
    config.set("delivery", "total_timeout_seconds", "2").set(
        "delivery",
        "connect_timeout_seconds",
        "30",
    );
    if let Some(path) = extra_root {
        config.set(
            "delivery",
            "extra_root_certificates",
            &format!("[{:?}]", path.display().to_string()),
        );
    }
    TestApp::start_with(config).await
}

/// Publishes one event and waits until it is finished with `status`.
async fn deliver_one(app: &TestApp, token: &str, status: &str) -> Value {
    let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
    let id = ingest["events"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_event_status(token, &id, status, Duration::from_secs(30))
        .await
}

/// Checks that the only attempt of `event` timed out at the total timeout.
fn assert_timed_out(event: &Value) {
    let attempts = event["deliveryAttempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{event}");
    let attempt = &attempts[0];
    assert_eq!(attempt["success"], false);
    let message = attempt["errorMessage"].as_str().unwrap();
    assert!(message.contains("timed out"), "errorMessage: {message}");
    assert!(message.contains("total timeout"), "errorMessage: {message}");
    let elapsed = attempt["responseTime"].as_u64().unwrap();
    assert!(
        elapsed >= TOTAL_TIMEOUT_MS - 100,
        "ended early, after {elapsed} ms"
    );
    assert!(
        elapsed < TOTAL_TIMEOUT_MS + 2000,
        "ended late, after {elapsed} ms"
    );
}

fn no_retries() -> Option<Value> {
    Some(json!({"maxRetries": 0}))
}

#[tokio::test]
async fn stalled_tls_handshake_times_out() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("argus test CA");
    let app = start(Some(&ca.write_pem(dir.path()))).await;
    let receiver = TlsReceiver::start(ca.issue_server()).await;
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url, &[TYPE], no_retries())
        .await;

    receiver.stall_handshakes();
    let event = deliver_one(&app, &token, "Failed").await;
    assert_timed_out(&event);
    assert!(
        receiver.stalled_connections() >= 1,
        "the attempt reached the stalled listener"
    );
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn trickled_body_times_out() {
    let app = start(None).await;
    // 100 bytes at one byte per 100 ms would take 10 s.
    let receiver = RawReceiver::start(|_| Action::Trickle {
        status: 200,
        body: vec![b'x'; 100],
        interval: Duration::from_millis(100),
    })
    .await;
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url("/hooks"), &[TYPE], no_retries())
        .await;

    let event = deliver_one(&app, &token, "Failed").await;
    assert_timed_out(&event);
    // The head arrived, so its status is recorded.
    assert_eq!(event["deliveryAttempts"][0]["responseCode"], 200, "{event}");
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn truncated_body_keeps_status() {
    let app = start(None).await;
    let receiver = RawReceiver::start(|request| Action::Truncated {
        status: if request.path == "/gone" { 410 } else { 200 },
        announced: 1000,
        body: b"partial".to_vec(),
    })
    .await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url("/ok"), &[TYPE], no_retries())
        .await;

    let event = deliver_one(&app, &token, "Failed").await;
    let attempt = &event["deliveryAttempts"][0];
    assert_eq!(attempt["success"], false, "{event}");
    assert_eq!(attempt["responseCode"], 200, "{event}");
    let message = attempt["errorMessage"].as_str().unwrap();
    assert!(message.contains("body broke off"), "{message}");

    // A 410 disables the subscription even when its body breaks off.
    let path = format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap());
    let (status, body) = app
        .put(
            &path,
            &token,
            &json!({"url": receiver.url("/gone"), "eventTypes": [TYPE]}),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    let event = deliver_one(&app, &token, "Failed").await;
    assert_eq!(event["deliveryAttempts"][0]["responseCode"], 410, "{event}");
    let (_, fetched) = app.get(&path, &token).await;
    assert_eq!(fetched["status"], "Disabled", "{fetched}");
}

#[tokio::test]
async fn invalid_status_has_no_response_code() {
    let app = start(None).await;
    let receiver = RawReceiver::start(|_| Action::status(999)).await;
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url("/hooks"), &[TYPE], no_retries())
        .await;

    let event = deliver_one(&app, &token, "Failed").await;

    let attempt = &event["deliveryAttempts"][0];
    assert!(attempt.get("responseCode").is_none(), "{event}");
    let message = attempt["errorMessage"].as_str().unwrap();
    assert!(message.contains("not a final HTTP status"), "{message}");
}

#[tokio::test]
async fn late_success_is_failed_attempt() {
    let app = start(None).await;
    let receiver = RawReceiver::start(|_| Action::delayed(200, Duration::from_millis(3500))).await;
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url("/hooks"), &[TYPE], no_retries())
        .await;

    let event = deliver_one(&app, &token, "Failed").await;
    assert_timed_out(&event);
    assert!(
        event["deliveryAttempts"][0].get("responseCode").is_none(),
        "{event}"
    );
    assert_eq!(receiver.count(), 1, "the request reached the endpoint");
}

#[tokio::test]
async fn response_bodies_stored_safely() {
    let app = start(None).await;
    let mut split = vec![b'a'; BODY_LIMIT - 1];
    split.extend_from_slice("€€".as_bytes());
    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        ("/large-ok", 200, vec![b'a'; 3 * BODY_LIMIT]),
        ("/large-error", 500, vec![b'e'; 3 * BODY_LIMIT]),
        ("/split-char", 200, split),
        ("/invalid-utf8", 200, vec![0xff, 0xfe, b'o', b'k', 0xc3]),
        ("/nul", 500, b"a\0b\0".to_vec()),
        ("/empty", 200, Vec::new()),
    ];
    let bodies: std::collections::HashMap<String, (u16, Vec<u8>)> = cases
        .iter()
        .map(|(path, status, body)| (path.to_string(), (*status, body.clone())))
        .collect();
    let receiver = RawReceiver::start(move |request| {
        let (status, body) = &bodies[&request.path];
        Action::body(*status, body)
    })
    .await;
    let token = app.token(ACCOUNT);
    let mut subscription_paths = std::collections::HashMap::new();
    for (path, _, _) in &cases {
        let sub = app
            .create_subscription(&token, &receiver.url(path), &[TYPE], no_retries())
            .await;
        subscription_paths.insert(sub["id"].as_str().unwrap().to_string(), path.to_string());
    }

    let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
    assert_eq!(ingest["deliveries"], cases.len());
    let mut stored = std::collections::HashMap::new();
    for created in ingest["events"].as_array().unwrap() {
        let id = created["id"].as_str().unwrap();
        let event = wait_for_finished(&app, &token, id).await;
        let path = subscription_paths[created["subscriptionId"].as_str().unwrap()].clone();
        stored.insert(path, event["deliveryAttempts"][0].clone());
    }

    let large = stored["/large-ok"]["responseBody"].as_str().unwrap();
    assert_eq!(large.len(), BODY_LIMIT, "a 2xx body is capped");
    let large = stored["/large-error"]["responseBody"].as_str().unwrap();
    assert_eq!(large.len(), BODY_LIMIT, "an error body is capped");
    let split = stored["/split-char"]["responseBody"].as_str().unwrap();
    assert_eq!(
        split.chars().count(),
        BODY_LIMIT,
        "the cut character becomes one replacement character"
    );
    assert!(
        split.ends_with("a\u{fffd}"),
        "{}",
        &split[split.len() - 8..]
    );
    assert_eq!(
        stored["/invalid-utf8"]["responseBody"],
        "\u{fffd}\u{fffd}ok\u{fffd}"
    );
    assert_eq!(stored["/nul"]["responseBody"], "a\u{0}b\u{0}");
    assert_eq!(stored["/nul"]["responseCode"], 500);
    let empty = &stored["/empty"];
    assert_eq!(empty["success"], true);
    assert!(empty.get("responseBody").is_none_or(|b| b == ""), "{empty}");

    // The event list, which carries every attempt, is valid JSON too.
    let (status, list) = app.get("/v1/events?pageSize=100", &token).await;
    assert_eq!(status, 200);
    assert!(list["data"].is_array(), "the list is JSON: {list}");
    assert_eq!(list["data"].as_array().unwrap().len(), cases.len());
}

async fn wait_for_finished(app: &TestApp, token: &str, id: &str) -> Value {
    let finished = wait_until(Duration::from_secs(30), || async {
        let status = app.event(token, id).await["status"].clone();
        status == "Delivered" || status == "Failed"
    })
    .await;
    let event = app.event(token, id).await;
    assert!(finished, "event did not finish: {event}");
    event
}
