//! Secrets never leak: after creating, rotating, delivering, failing and
//! rejecting with debug logging on, no subscription secret (neither the
//! whsec_ value nor its base64 key), no bearer token and no JWT signing key
//! appears in the log, /metrics, problem bodies or event records.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

/// Both forms of a secret: `whsec_…` and the base64 key after the prefix.
fn secret_forms(secret: &str) -> Vec<String> {
    let key = secret.strip_prefix("whsec_").expect("a whsec_ secret");
    vec![secret.to_string(), key.to_string()]
}

/// Lists the token and each of its parts long enough to be meaningful if found.
fn token_forms(token: &str) -> Vec<String> {
    let mut forms = vec![token.to_string()];
    forms.extend(
        token
            .split('.')
            .filter(|p| p.len() >= 16)
            .map(str::to_string),
    );
    forms
}

#[tokio::test]
async fn secrets_and_tokens_never_leak() {
    let mut config = AppConfig::default();
    config.set("log", "filter", "\"debug\"");
    let app = TestApp::start_with(config).await;
    let token = app.token("acme-capital");
    let publisher = app.publisher_token();
    let good = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500).body("internal error"));

    let mut secrets: Vec<String> = Vec::new();
    let mut problems: Vec<Value> = Vec::new();

    // A generated secret, and one the caller chose.
    let generated = app
        .create_subscription(&token, &good.url, &["property.created"], None)
        .await;
    secrets.push(generated["secret"].as_str().unwrap().to_string());
    let chosen_secret = format!("whsec_{}", BASE64.encode([7u8; 32]));
    let (status, chosen) = app
        .post(
            "/v1/subscriptions",
            &token,
            &json!({"url": failing.url, "eventTypes": ["property.created"], "secret": chosen_secret,
                "retryPolicy": {"maxRetries": 1, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{chosen}");
    secrets.push(chosen_secret.clone());

    // Rotation: both the old and the new secret must stay private.
    let (status, rotated) = app
        .post_empty(
            &format!(
                "/v1/subscriptions/{}/rotate-secret",
                generated["id"].as_str().unwrap()
            ),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    secrets.push(rotated["secret"].as_str().unwrap().to_string());

    // Deliveries that succeed (signed with both secrets in the grace period) and that fail.
    let result = app
        .publish(&platform_event("acme-capital", "property.created"))
        .await;
    for delivery in result["events"].as_array().unwrap() {
        let id = delivery["id"].as_str().unwrap();
        let expected = if delivery["subscriptionId"] == generated["id"] {
            "Delivered"
        } else {
            "Failed"
        };
        app.wait_for_event_status(&token, id, expected, Duration::from_secs(30))
            .await;
    }
    let (status, test) = app
        .post_empty(
            &format!("/v1/subscriptions/{}/test", chosen["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{test}");

    // Rejected requests that carry a secret or a token.
    let bad_secret = format!("whsec_{}", BASE64.encode([9u8; 12]));
    let rejected_secret = secret_forms(&bad_secret);
    let (status, problem) = app
        .post(
            "/v1/subscriptions",
            &token,
            &json!({"url": good.url, "eventTypes": ["lease.created"], "secret": bad_secret}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    problems.push(problem);
    let unverified = Receiver::start().await;
    unverified.script_verification();
    unverified.set_default(Reply::status(403));
    let verify_secret = format!("whsec_{}", BASE64.encode([5u8; 32]));
    let (status, problem) = app
        .post(
            "/v1/subscriptions",
            &token,
            &json!({"url": unverified.url, "eventTypes": ["lease.created"], "secret": verify_secret}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    problems.push(problem);
    secrets.push(verify_secret);
    let (status, problem) = app
        .put(
            &format!("/v1/subscriptions/{}", chosen["id"].as_str().unwrap()),
            &token,
            &json!({"url": failing.url, "eventTypes": ["property.created"], "secret": chosen_secret}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    problems.push(problem);
    let forged = make_token(json!({"account_id": "acme-capital", "exp": now() - 3600}));
    let (status, problem) = app.get("/v1/subscriptions", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    problems.push(problem);
    // Another signature: flip one character in the middle of the last part.
    let middle = token.len() - 10;
    let flipped = if &token[middle..middle + 1] == "A" {
        "B"
    } else {
        "A"
    };
    let wrong_key = format!("{}{flipped}{}", &token[..middle], &token[middle + 1..]);
    let (status, problem) = app.get("/v1/subscriptions", &wrong_key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    problems.push(problem);
    let (status, problem) = app
        .post(
            "/v1/platform/events",
            &token,
            &platform_event("acme-capital", "lease.created"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    problems.push(problem);

    // Everything readable afterwards.
    let (_, events) = app.get("/v1/events?pageSize=100", &token).await;
    let (_, subscriptions) = app.get("/v1/subscriptions", &token).await;
    let (_, one) = app
        .get(
            &format!("/v1/subscriptions/{}", generated["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert!(events["data"].as_array().unwrap().len() >= 2, "{events}");
    let metrics = app.metrics().await;
    let logs = app.logs();
    assert!(logs.contains("DEBUG"), "debug logging is on");

    let places = [
        ("log", logs.clone()),
        ("metrics", metrics),
        ("problems", serde_json::to_string(&problems).unwrap()),
        ("events", events.to_string()),
        ("subscription list", subscriptions.to_string()),
        ("subscription", one.to_string()),
    ];
    let mut needles: Vec<String> = secrets.iter().flat_map(|s| secret_forms(s)).collect();
    needles.extend(rejected_secret);
    for bearer in [&token, &publisher, &forged, &wrong_key] {
        needles.extend(token_forms(bearer));
    }
    // The HS256 key that signs the tokens must not be logged either.
    needles.push(TEST_JWT_SECRET.to_string());
    for (place, text) in &places {
        for needle in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "{place} contains a secret or token: {needle}"
            );
        }
    }
    assert!(!one.as_object().unwrap().contains_key("secret"), "{one}");
}
