//! Secret rotation: the new secret is shown once, requests carry both
//! signatures during the grace period, and the grace period is bounded.
//! Signatures are checked with the independent `standardwebhooks` crate.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

const ACCOUNT: &str = "fairway-industrial";
const TYPE: &str = "tenant.updated";
const WEEK_SECONDS: i64 = 604_800;

async fn rotate(app: &TestApp, token: &str, id: &str, body: Option<Value>) -> (StatusCode, Value) {
    let path = format!("/v1/subscriptions/{id}/rotate-secret");
    match body {
        Some(body) => app.post(&path, token, &body).await,
        None => app.post_empty(&path, token).await,
    }
}

/// Publishes one event and returns the request the receiver got for it.
async fn deliver_one(app: &TestApp, receiver: &Receiver) -> Received {
    let before = receiver.count();
    app.publish(&platform_event(ACCOUNT, TYPE)).await;
    receiver.wait_for(before + 1, Duration::from_secs(20)).await[before].clone()
}

fn signature_count(request: &Received) -> usize {
    request
        .header("webhook-signature")
        .split(' ')
        .filter(|s| s.starts_with("v1,"))
        .count()
}

fn expires_at(value: &Value) -> DateTime<Utc> {
    let text = value["previousSecretExpiresAt"]
        .as_str()
        .expect("previousSecretExpiresAt is set");
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn rotate_returns_new_secret_once() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let id = sub["id"].as_str().unwrap();
    let old_secret = sub["secret"].as_str().unwrap();

    let (status, rotated) = rotate(&app, &token, id, None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_"));
    assert_ne!(new_secret, old_secret);
    let grace = expires_at(&rotated) - Utc::now();
    assert!(
        (86_300..=86_400).contains(&grace.num_seconds()),
        "default grace is 24 h: {grace}"
    );

    let (_, fetched) = app.get(&format!("/v1/subscriptions/{id}"), &token).await;
    assert!(
        fetched.get("secret").is_none(),
        "GET shows no secret: {fetched}"
    );
    assert!(
        fetched.get("previousSecretExpiresAt").is_none(),
        "{fetched}"
    );
    let (_, list) = app.get("/v1/subscriptions", &token).await;
    assert!(
        list["data"][0].get("secret").is_none(),
        "the list shows no secret: {list}"
    );

    let (status, _) = rotate(&app, &app.token("another-account"), id, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another account cannot rotate"
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        rotate(&app, &token, &unknown, None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn both_secrets_verify_during_grace() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let id = sub["id"].as_str().unwrap();
    let old_secret = sub["secret"].as_str().unwrap().to_string();

    let before = deliver_one(&app, &receiver).await;
    assert_eq!(signature_count(&before), 1);

    let (status, rotated) =
        rotate(&app, &token, id, Some(json!({"gracePeriodSeconds": 3600}))).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    let grace = expires_at(&rotated) - Utc::now();
    assert!((3500..=3600).contains(&grace.num_seconds()), "{grace}");

    for _ in 0..3 {
        let request = deliver_one(&app, &receiver).await;
        assert_eq!(
            signature_count(&request),
            2,
            "{}",
            request.header("webhook-signature")
        );
        assert!(
            verify_standard(&new_secret, &request),
            "the new secret verifies"
        );
        assert!(
            verify_standard(&old_secret, &request),
            "the old secret verifies during grace"
        );
    }
    let (status, result) = app
        .post_empty(&format!("/v1/subscriptions/{id}/test"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let test_request = receiver.requests().last().unwrap().clone();
    assert!(
        verify_standard(&new_secret, &test_request),
        "the test event is signed with the new secret"
    );
    assert!(
        verify_standard(&old_secret, &test_request),
        "and with the old one during grace"
    );
}

#[tokio::test]
async fn zero_grace_signs_with_new_only() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let id = sub["id"].as_str().unwrap();
    let old_secret = sub["secret"].as_str().unwrap().to_string();

    let (status, rotated) = rotate(&app, &token, id, Some(json!({"gracePeriodSeconds": 0}))).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();

    let request = deliver_one(&app, &receiver).await;
    assert_eq!(signature_count(&request), 1);
    assert!(verify_standard(&new_secret, &request));
    assert!(
        !verify_standard(&old_secret, &request),
        "the old secret no longer verifies"
    );
}

#[tokio::test]
async fn old_secret_stops_after_grace() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let id = sub["id"].as_str().unwrap();
    let old_secret = sub["secret"].as_str().unwrap().to_string();

    let (_, rotated) = rotate(&app, &token, id, Some(json!({"gracePeriodSeconds": 1}))).await;
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    let expiry = expires_at(&rotated);
    assert!(wait_until(Duration::from_secs(5), || async { Utc::now() > expiry }).await);

    let request = deliver_one(&app, &receiver).await;
    assert_eq!(signature_count(&request), 1);
    assert!(verify_standard(&new_secret, &request));
    assert!(
        !verify_standard(&old_secret, &request),
        "the old secret expired with the grace period"
    );
}

#[tokio::test]
async fn grace_period_bounds_enforced() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let id = sub["id"].as_str().unwrap();

    for seconds in [-1, WEEK_SECONDS + 1, i64::MAX] {
        let (status, problem) = rotate(
            &app,
            &token,
            id,
            Some(json!({"gracePeriodSeconds": seconds})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{seconds}: {problem}");
        assert_eq!(
            problem["errors"][0]["field"], "gracePeriodSeconds",
            "{seconds}: {problem}"
        );
    }
    for body in [
        json!({"gracePeriodSeconds": "60"}),
        json!({"gracePeriodSeconds": 1.5}),
        json!({"grace": 60}),
    ] {
        let (status, problem) = rotate(&app, &token, id, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
    }
    let (_, fetched) = app.get(&format!("/v1/subscriptions/{id}"), &token).await;
    assert_eq!(
        fetched["updatedAt"], sub["updatedAt"],
        "rejected rotations changed nothing"
    );

    for seconds in [0, WEEK_SECONDS] {
        let (status, rotated) = rotate(
            &app,
            &token,
            id,
            Some(json!({"gracePeriodSeconds": seconds})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{seconds}: {rotated}");
        let grace = expires_at(&rotated) - Utc::now();
        assert!(
            (seconds - 100..=seconds).contains(&grace.num_seconds()),
            "{seconds}: {grace}"
        );
    }
}

#[tokio::test]
async fn verification_during_grace_carries_both() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let moved = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let id = sub["id"].as_str().unwrap();
    let old_secret = sub["secret"].as_str().unwrap().to_string();
    let (_, rotated) = rotate(&app, &token, id, Some(json!({"gracePeriodSeconds": 3600}))).await;
    let new_secret = rotated["secret"].as_str().unwrap().to_string();

    // An update to a new URL verifies it with a challenge signed with both secrets.
    let body = json!({"url": moved.url, "eventTypes": [TYPE]});
    let (status, updated) = app
        .put(&format!("/v1/subscriptions/{id}"), &token, &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let challenge = moved.verifications()[0].clone();
    assert_eq!(
        signature_count(&challenge),
        2,
        "{}",
        challenge.header("webhook-signature")
    );
    assert!(verify_standard(&new_secret, &challenge));
    assert!(
        verify_standard(&old_secret, &challenge),
        "an endpoint that knows only the old secret can verify"
    );
}
