//! Injected store failures: while the configured fault file exists every
//! store write and flush fails, as on a full disk.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

const ACCOUNT: &str = "quayside-holdings";
const WAIT: Duration = Duration::from_secs(30);

async fn start_with_fault_file() -> (TestApp, PathBuf) {
    let fault = std::env::temp_dir().join(format!("argus-store-fault-{}", uuid::Uuid::new_v4()));
    let mut config = AppConfig::default();
    config.set(
        "store",
        "fault_file",
        &format!("{:?}", fault.display().to_string()),
    );
    (TestApp::start_with(config).await, fault)
}

async fn health_status(app: &TestApp) -> Value {
    let (status, body) = app
        .request(reqwest::Method::GET, "/v1/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    body["status"].clone()
}

fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "body: {body}");
    assert_eq!(
        body["status"],
        expected.as_u16(),
        "not a problem body: {body}"
    );
    assert!(body["title"].is_string(), "not a problem body: {body}");
    assert!(body["type"].is_string(), "not a problem body: {body}");
}

#[tokio::test]
async fn store_failure_answers_503_then_recovers() {
    let (app, fault) = start_with_fault_file().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url, &["property.created"], None)
        .await;
    let sub_id = sub["id"].as_str().unwrap().to_string();
    assert_eq!(health_status(&app).await, "Healthy");

    std::fs::write(&fault, b"").unwrap();
    let event = platform_event(ACCOUNT, "property.created");
    let (status, body) = app
        .post("/v1/platform/events", &app.publisher_token(), &event)
        .await;
    assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    let other = Receiver::start().await;
    let (status, body) = app
        .post(
            "/v1/subscriptions",
            &token,
            &json!({"url": other.url, "eventTypes": ["lease.created"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = app
        .post_empty(&format!("/v1/subscriptions/{sub_id}/pause"), &token)
        .await;
    assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health_status(&app).await, "Unhealthy");
    // Health stays down while reads succeed and writes fail.
    let (status, _) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health_status(&app).await, "Unhealthy");

    std::fs::remove_file(&fault).unwrap();
    let healthy = wait_until(WAIT, || async { health_status(&app).await == "Healthy" }).await;
    assert!(
        healthy,
        "health did not recover after the fault was removed"
    );
    let (status, body) = app
        .post("/v1/platform/events", &app.publisher_token(), &event)
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the retried ingest was not accepted: {body}"
    );
    assert_eq!(
        body["duplicate"], false,
        "the failed ingest left a record: {body}"
    );
    let id = body["events"][0]["id"].as_str().unwrap().to_string();
    // The rejected pause must not have paused the actor.
    app.wait_for_event_status(&token, &id, "Delivered", WAIT)
        .await;
    let (_, after) = app
        .get(&format!("/v1/subscriptions/{sub_id}"), &token)
        .await;
    assert_eq!(after["status"], "Active");
    let (_, list) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "the rejected create was stored: {list}"
    );
}

#[tokio::test]
async fn failed_outcome_write_sends_no_burst() {
    let (app, fault) = start_with_fault_file().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::ok().delayed(Duration::from_millis(500))]);
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url, &["lease.updated"], None)
        .await;
    let result = app.publish(&platform_event(ACCOUNT, "lease.updated")).await;
    let id = result["events"][0]["id"].as_str().unwrap().to_string();
    receiver.wait_for(1, WAIT).await;
    // The attempt finishes while writes fail, so its outcome cannot be stored.
    std::fs::write(&fault, b"").unwrap();
    let failed = wait_until(WAIT, || async {
        app.logs().contains("cannot record the attempt")
    })
    .await;
    assert!(failed, "the outcome write did not fail");
    let burst = wait_until(Duration::from_secs(3), || async { receiver.count() > 6 }).await;
    assert!(
        !burst,
        "{} requests in 3 s while the store failed",
        receiver.count()
    );

    std::fs::remove_file(&fault).unwrap();
    let event = app
        .wait_for_event_status(&token, &id, "Delivered", WAIT)
        .await;
    for attempt in event["deliveryAttempts"].as_array().unwrap() {
        if attempt["success"] == true {
            assert_eq!(attempt["responseCode"], 200);
        }
    }
    for request in receiver.requests() {
        assert_eq!(request.header("webhook-id"), id);
    }
}
