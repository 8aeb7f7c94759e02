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
