//! The `data` object reaches the endpoint byte for byte as the platform sent
//! it: key order, large integers and number spelling are kept, through the
//! single-event and the batch endpoints.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;

const ACCOUNT: &str = "acme-capital";
const DATA: &str = r#"{"zeta":1,"alpha":{"units":[3,2,1]},"loanAmount":123456789012345678901234567890,"capRate":0.0650,"note":"Ünïcode ✓"}"#;

fn event_body(event_type: &str) -> String {
    format!(
        r#"{{"id":"{}","eventType":"{event_type}","accountId":"{ACCOUNT}","resourceType":"property","resourceId":"{}","timestamp":"2026-11-01T09:30:00Z","data":{DATA}}}"#,
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4()
    )
}

async fn post_raw(app: &TestApp, path: &str, body: String) -> StatusCode {
    let response = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(app.publisher_token())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    StatusCode::from_u16(response.status().as_u16()).unwrap()
}

fn delivered_data(request: &Received) -> String {
    let body = String::from_utf8(request.body.to_vec()).unwrap();
    let start = body.find(r#""data":"#).expect("the payload has data") + r#""data":"#.len();
    body[start..body.len() - 1].to_string()
}

#[tokio::test]
async fn data_bytes_reach_endpoint_unchanged() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url, &["property.updated"], None)
        .await;

    let status = post_raw(&app, "/v1/platform/events", event_body("property.updated")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let batch = format!("[{}]", event_body("property.updated"));
    let status = post_raw(&app, "/v1/platform/events/batch", batch).await;
    assert_eq!(status, StatusCode::OK);

    let requests = receiver.wait_for(2, Duration::from_secs(20)).await;
    for request in &requests {
        assert_eq!(delivered_data(request), DATA);
    }
}

/// An event for several subscriptions keeps its payload once, shared by its
/// copies. Every copy still delivers and lists the same bytes, signed with
/// its own subscription's secret, also after a restart and a resume, and on
/// a manual retry. The batch is large enough for the router to write it
/// straight to the store instead of staging it.
#[tokio::test]
async fn shared_payload_reaches_every_subscription() {
    let mut app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let types = &["property.updated"];
    let mut active = Vec::new();
    for _ in 0..2 {
        let receiver = Receiver::start().await;
        let sub = app
            .create_subscription(&token, &receiver.url, types, None)
            .await;
        active.push((receiver, sub["secret"].as_str().unwrap().to_string()));
    }
    let paused_receiver = Receiver::start().await;
    let paused = app
        .create_subscription(&token, &paused_receiver.url, types, None)
        .await;
    let paused_id = paused["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .post_empty(&format!("/v1/subscriptions/{paused_id}/pause"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);

    let status = post_raw(&app, "/v1/platform/events", event_body("property.updated")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let batch: Vec<String> = (0..30).map(|_| event_body("property.updated")).collect();
    let batch = format!("[{}]", batch.join(","));
    let status = post_raw(&app, "/v1/platform/events/batch", batch).await;
    assert_eq!(status, StatusCode::OK);

    for (receiver, secret) in &active {
        let requests = receiver.wait_for(31, Duration::from_secs(20)).await;
        for request in &requests {
            assert_eq!(delivered_data(request), DATA);
            assert!(
                verify_standard(secret, request),
                "signature of a shared payload"
            );
        }
    }
    let (status, listed) = app
        .get(
            &format!("/v1/events?subscriptionId={paused_id}&status=Pending&pageSize=100"),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let queued = listed["data"].as_array().unwrap();
    assert_eq!(queued.len(), 31, "{listed}");
    for event in queued {
        assert_eq!(event["payload"]["data"]["zeta"], 1, "{event}");
    }

    app.restart().await;
    let (status, _) = app
        .post_empty(&format!("/v1/subscriptions/{paused_id}/resume"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let requests = paused_receiver.wait_for(31, Duration::from_secs(20)).await;
    let secret = paused["secret"].as_str().unwrap();
    for request in &requests {
        assert_eq!(delivered_data(request), DATA);
        assert!(
            verify_standard(secret, request),
            "signature after the restart"
        );
    }
    let id = queued[0]["id"].as_str().unwrap();
    let stored = app.event(&token, id).await;
    assert_eq!(stored["payload"]["data"]["note"], "Ünïcode ✓", "{stored}");

    app.wait_for_event_status(&token, id, "Delivered", Duration::from_secs(20))
        .await;
    let (status, body) = app
        .post_empty(&format!("/v1/events/{id}/retry"), &token)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let requests = paused_receiver.wait_for(32, Duration::from_secs(20)).await;
    let retried = requests.last().unwrap();
    assert_eq!(retried.header("webhook-id"), id);
    assert_eq!(delivered_data(retried), DATA);
    assert!(
        verify_standard(secret, retried),
        "signature of a manual retry"
    );
}
