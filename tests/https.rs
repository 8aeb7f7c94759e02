//! Deliveries over HTTPS: a receiver with a certificate from a test CA that
//! the service trusts through `delivery.extra_root_certificates`, one whose CA
//! it does not trust, and the https-only rule for endpoint URLs.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::time::Duration;

use common::*;
use serde_json::json;
use tls::{TestCa, TlsReceiver};
use warp::http::StatusCode;

const ACCOUNT: &str = "harbour-reit";

/// Starts a service that allows only https and trusts `ca`.
async fn start_trusting(ca: &TestCa, dir: &tempfile::TempDir) -> TestApp {
    let pem = ca.write_pem(dir.path());
    let mut config = AppConfig::default();
    config.set("delivery", "allow_http", "false").set(
        "delivery",
        "extra_root_certificates",
        &format!("[{:?}]", pem.display().to_string()),
    );
    TestApp::start_with(config).await
}

#[tokio::test]
async fn delivers_over_https_with_test_ca() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("argus test CA");
    let app = start_trusting(&ca, &dir).await;
    let receiver = TlsReceiver::start(ca.issue_server()).await;
    let token = app.token(ACCOUNT);

    let sub = app
        .create_subscription(&token, &receiver.url, &["lease.created"], None)
        .await;
    assert_eq!(
        receiver.verifications().len(),
        1,
        "verification went over https"
    );

    let ingest = app.publish(&platform_event(ACCOUNT, "lease.created")).await;
    let event_id = ingest["events"][0]["id"].as_str().unwrap().to_string();
    let event = app
        .wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(20))
        .await;
    assert_eq!(event["deliveryAttempts"].as_array().unwrap().len(), 1);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert!(verify_standard(
        sub["secret"].as_str().unwrap(),
        &requests[0]
    ));
    assert_eq!(requests[0].header("webhook-id"), event_id);
}

#[tokio::test]
async fn untrusted_certificate_fails_attempt() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let trusted = TestCa::new("argus test CA");
    let untrusted = TestCa::new("unknown CA");
    let app = start_trusting(&trusted, &dir).await;
    let token = app.token(ACCOUNT);

    // A create against an endpoint with an untrusted certificate fails verification.
    let stranger = TlsReceiver::start(untrusted.issue_server()).await;
    let (status, problem) = app
        .post(
            "/v1/subscriptions",
            &token,
            &json!({"url": stranger.url, "eventTypes": ["lease.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let detail = problem["detail"].as_str().unwrap().to_lowercase();
    assert!(
        detail.contains("certificate"),
        "detail names the certificate: {detail}"
    );
    assert!(stranger.verifications().is_empty());
    assert!(
        stranger.handshakes_failed() >= 1,
        "the client ended the handshake"
    );

    // An endpoint that switches to an untrusted certificate fails its attempts.
    let receiver = TlsReceiver::start(trusted.issue_server()).await;
    app.create_subscription(
        &token,
        &receiver.url,
        &["lease.created"],
        Some(json!({"maxRetries": 0})),
    )
    .await;
    receiver.set_identity(untrusted.issue_server());
    let ingest = app.publish(&platform_event(ACCOUNT, "lease.created")).await;
    let event_id = ingest["events"][0]["id"].as_str().unwrap().to_string();
    let event = app
        .wait_for_event_status(&token, &event_id, "Failed", Duration::from_secs(20))
        .await;

    let attempt = &event["deliveryAttempts"][0];
    assert_eq!(attempt["success"], false);
    assert!(
        attempt.get("responseCode").is_none(),
        "no HTTP status was received: {attempt}"
    );
    let message = attempt["errorMessage"].as_str().unwrap().to_lowercase();
    assert!(
        message.contains("certificate"),
        "errorMessage names the certificate: {message}"
    );
    assert!(
        receiver.requests().is_empty(),
        "no request was sent over the untrusted connection"
    );
}

#[tokio::test]
async fn http_url_rejected_without_allow_http() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("argus test CA");
    let app = start_trusting(&ca, &dir).await;
    let plain = Receiver::start().await;
    let token = app.token(ACCOUNT);

    let (status, problem) = app
        .post(
            "/v1/subscriptions",
            &token,
            &json!({"url": plain.url, "eventTypes": ["lease.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("https")
    );
    assert!(
        plain.verifications().is_empty(),
        "no request went to the http endpoint"
    );

    let receiver = TlsReceiver::start(ca.issue_server()).await;
    let sub = app
        .create_subscription(&token, &receiver.url, &["lease.created"], None)
        .await;
    let id = sub["id"].as_str().unwrap();
    let (status, problem) = app
        .put(
            &format!("/v1/subscriptions/{id}"),
            &token,
            &json!({"url": plain.url, "eventTypes": ["lease.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
    assert!(plain.verifications().is_empty());
}
