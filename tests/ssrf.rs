//! The SSRF guard, aimed only at loopback. The service exempts 127.0.0.2/32
//! and nothing else. A receiver on 127.0.0.1 must never see a request, and a
//! receiver on 127.0.0.2 on the same port shows that exempt addresses work.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use raw::{Action, RawReceiver};
use serde_json::json;
use warp::http::StatusCode;

const ACCOUNT: &str = "meridian-estates";

fn guarded_config(extra: &str) -> AppConfig {
    let mut config = AppConfig::default();
    config.set("delivery", "ssrf_exempt", r#"["127.0.0.2/32"]"#);
    config.extra = extra.to_string();
    config
}

/// Starts a receiver on 127.0.0.1 and one on 127.0.0.2 with the same port, so
/// a URL that reaches the wrong address reaches the 127.0.0.1 receiver.
async fn receiver_pair() -> (Receiver, RawReceiver) {
    let blocked = Receiver::start().await;
    let exempt_addr: SocketAddr = format!("127.0.0.2:{}", blocked.addr.port())
        .parse()
        .unwrap();
    let exempt = RawReceiver::start_on(exempt_addr, |_| Action::status(204)).await;
    (blocked, exempt)
}

/// Builds a URL with `port` for every textual form of 127.0.0.1 and the other
/// loopback names.
fn loopback_urls(port: u16) -> Vec<String> {
    [
        "127.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f000001",
        "0x7f.0.0.1",
        "127.1",
        "127.0.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[::1]",
        "localhost",
        "LOCALHOST",
    ]
    .iter()
    .map(|host| format!("http://{host}:{port}/hooks"))
    .collect()
}

fn assert_url_problem(status: StatusCode, problem: &serde_json::Value, url: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {problem}");
    assert_eq!(problem["errors"][0]["field"], "url", "{url}: {problem}");
    let message = problem["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("loopback"),
        "{url}: the message names the range: {message}"
    );
}

#[tokio::test]
async fn loopback_literals_rejected_on_create() {
    let app = TestApp::start_with(guarded_config("")).await;
    let (blocked, _exempt) = receiver_pair().await;
    let token = app.token(ACCOUNT);

    for url in loopback_urls(blocked.addr.port()) {
        let body = json!({"url": url, "eventTypes": ["property.created"]});
        let (status, problem) = app.post("/v1/subscriptions", &token, &body).await;
        assert_url_problem(status, &problem, &url);
    }
    let (_, list) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        0,
        "nothing was stored"
    );
    assert!(
        blocked.verifications().is_empty(),
        "127.0.0.1 got a verification request"
    );
    assert!(blocked.requests().is_empty());
}

#[tokio::test]
async fn loopback_literals_rejected_on_update() {
    let app = TestApp::start_with(guarded_config("")).await;
    let (blocked, exempt) = receiver_pair().await;
    let token = app.token(ACCOUNT);
    let exempt_url = exempt.url("/hooks");
    let sub = app
        .create_subscription(&token, &exempt_url, &["property.created"], None)
        .await;
    let path = format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap());

    for url in loopback_urls(blocked.addr.port()) {
        let body = json!({"url": url, "eventTypes": ["property.created"]});
        let (status, problem) = app.put(&path, &token, &body).await;
        assert_url_problem(status, &problem, &url);
    }
    let (_, stored) = app.get(&path, &token).await;
    assert_eq!(
        stored["url"], exempt_url,
        "a rejected update changed nothing"
    );
    assert!(
        blocked.verifications().is_empty(),
        "127.0.0.1 got a verification request"
    );
    assert!(blocked.requests().is_empty());
}

#[tokio::test]
async fn exempt_address_receives_deliveries() {
    let app = TestApp::start_with(guarded_config("")).await;
    let (blocked, exempt) = receiver_pair().await;
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &exempt.url("/hooks"), &["property.created"], None)
        .await;

    let ingest = app
        .publish(&platform_event(ACCOUNT, "property.created"))
        .await;
    let event_id = ingest["events"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(20))
        .await;
    assert_eq!(exempt.count(), 1);
    assert!(blocked.requests().is_empty());
    assert!(blocked.verifications().is_empty());
}

#[tokio::test]
async fn rebinding_blocked_at_connect() {
    // The name resolves to the exempt address for the create-time check and
    // for the verification connection, then to 127.0.0.1 for every delivery.
    let overrides = r#"
[delivery.dns_overrides]
"rebind.test" = [["127.0.0.2"], ["127.0.0.2"], ["127.0.0.1"]]
"#;
    let app = TestApp::start_with(guarded_config(overrides)).await;
    let (blocked, exempt) = receiver_pair().await;
    let token = app.token(ACCOUNT);
    let url = format!("http://rebind.test:{}/hooks", blocked.addr.port());
    let retry = json!({"maxRetries": 1, "retryIntervalSeconds": 10});
    app.create_subscription(&token, &url, &["property.created"], Some(retry))
        .await;
    assert!(blocked.verifications().is_empty());

    let ingest = app
        .publish(&platform_event(ACCOUNT, "property.created"))
        .await;
    let event_id = ingest["events"][0]["id"].as_str().unwrap().to_string();
    let event = app
        .wait_for_event_status(&token, &event_id, "Failed", Duration::from_secs(20))
        .await;

    let attempts = event["deliveryAttempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{event}");
    for attempt in attempts {
        assert_eq!(attempt["success"], false);
        assert!(attempt.get("responseCode").is_none(), "{attempt}");
        let message = attempt["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("blocked"),
            "the attempt records why: {message}"
        );
        assert!(
            message.contains("127.0.0.1"),
            "the attempt names the address: {message}"
        );
    }
    assert!(
        blocked.requests().is_empty(),
        "127.0.0.1 received a delivery"
    );
    assert_eq!(
        exempt.count(),
        0,
        "deliveries did not go to the earlier address either"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"argus_webhooks_delivery_attempts_total{result="blocked"} 2"#),
        "blocked attempts are counted"
    );
}

#[tokio::test]
async fn rebinding_at_verification_names_url() {
    // The create-time check resolves the exempt address, and the verification
    // connection resolves 127.0.0.1, which the guard blocks.
    let overrides = r#"
[delivery.dns_overrides]
"rebind.test" = [["127.0.0.2"], ["127.0.0.1"]]
"#;
    let app = TestApp::start_with(guarded_config(overrides)).await;
    let (blocked, _exempt) = receiver_pair().await;
    let token = app.token(ACCOUNT);
    let url = format!("http://rebind.test:{}/hooks", blocked.addr.port());

    let body = json!({"url": url, "eventTypes": ["property.created"]});
    let (status, problem) = app.post("/v1/subscriptions", &token, &body).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("127.0.0.1"), "{problem}");
    assert!(blocked.verifications().is_empty());
}
