//! Receivers can de-duplicate by `webhook-id`: it is the Event id, the same
//! on every automatic attempt and every manual retry of that event, and
//! different for each subscription's copy of a platform event.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use warp::http::StatusCode;

const ACCOUNT: &str = "riverbank-offices";
const TYPE: &str = "property.updated";

#[tokio::test]
async fn webhook_id_stable_across_attempts() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let retry = json!({"maxRetries": 2, "retryIntervalSeconds": 10});
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], Some(retry))
        .await;
    let secret = sub["secret"].as_str().unwrap();
    receiver.script([Reply::status(500), Reply::status(503), Reply::ok()]);

    let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
    let event_id = ingest["events"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(20))
        .await;

    // Two manual retries of the delivered event.
    for round in 1..=2 {
        let (status, retried) = app
            .post_empty(&format!("/v1/events/{event_id}/retry"), &token)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
        receiver.wait_for(3 + round, Duration::from_secs(20)).await;
        app.wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(20))
            .await;
    }

    let requests = receiver.requests();
    assert_eq!(requests.len(), 5);
    for (index, request) in requests.iter().enumerate() {
        assert_eq!(request.header("webhook-id"), event_id, "request {index}");
        assert_eq!(
            request.body, requests[0].body,
            "request {index} carries the same bytes"
        );
        assert!(
            verify_standard(secret, request),
            "request {index} is signed"
        );
    }
    let event = app.event(&token, &event_id).await;
    let numbers: Vec<u64> = event["deliveryAttempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attemptNumber"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        [1, 2, 3, 4, 5],
        "attempt numbers continue across manual retries"
    );
}

#[tokio::test]
async fn webhook_id_stable_on_failed_retry() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let retry = json!({"maxRetries": 1, "retryIntervalSeconds": 10});
    app.create_subscription(&token, &receiver.url, &[TYPE], Some(retry))
        .await;
    receiver.script([Reply::status(500), Reply::status(500)]);

    let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
    let event_id = ingest["events"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_event_status(&token, &event_id, "Failed", Duration::from_secs(20))
        .await;
    let (status, _) = app
        .post_empty(&format!("/v1/events/{event_id}/retry"), &token)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(20))
        .await;

    let ids: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    assert_eq!(ids, vec![event_id.clone(); 3]);
}

#[tokio::test]
async fn webhook_id_differs_per_subscription() {
    let app = TestApp::start().await;
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &first.url, &[TYPE], None)
        .await;
    app.create_subscription(&token, &second.url, &[TYPE], None)
        .await;

    let platform = platform_event(ACCOUNT, TYPE);
    app.publish(&platform).await;
    let a = first.wait_for(1, Duration::from_secs(20)).await[0].clone();
    let b = second.wait_for(1, Duration::from_secs(20)).await[0].clone();
    assert_ne!(a.header("webhook-id"), b.header("webhook-id"));
    assert_eq!(
        a.json()["eventId"],
        platform["id"],
        "the payload names the platform event"
    );
    assert_eq!(b.json()["eventId"], platform["id"]);
}
