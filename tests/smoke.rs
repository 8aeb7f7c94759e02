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

/// The service turns transparent huge pages off for itself: with them, each
/// log buffer of the store faulted in a fresh 2 MiB page and stalled flushes.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn runs_without_transparent_huge_pages() {
    let app = TestApp::start().await;
    let pid = app.pid().expect("the service is running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("THP_enabled:"))
        .expect("the kernel reports THP_enabled in /proc/PID/status");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
