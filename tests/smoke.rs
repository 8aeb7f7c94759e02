mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn delivers_one_event_signed() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token("acme-capital");
    let sub = app
        .create_subscription(&token, &receiver.url, &["property.created"], None)
        .await;
    let result = app
        .publish(&platform_event("acme-capital", "property.created"))
        .await;
    assert_eq!(result["deliveries"], 1);
    let requests = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert!(verify_standard(
        sub["secret"].as_str().unwrap(),
        &requests[0]
    ));
}
