//! Subscription actors that stop when idle: a small idle timeout must not
//! drop a reply or stop an actor that still has work.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::{Value, json};
use warp::Filter;
use warp::Reply as _;
use warp::http::StatusCode;

const ACCOUNT: &str = "northgate-holdings";
const TYPE: &str = "lease.expired";

/// Starts a loopback endpoint that echoes each verification challenge after
/// `delay` and responds to every delivery with 410 Gone.
async fn slow_verifying_gone_endpoint(delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let route = warp::any()
        .and(warp::body::bytes())
        .then(move |body: Bytes| async move {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match request["challenge"].as_str() {
                Some(challenge) => {
                    tokio::time::sleep(delay).await;
                    warp::reply::json(&json!({"challenge": challenge})).into_response()
                }
                None => warp::reply::with_status(warp::reply(), warp::http::StatusCode::GONE)
                    .into_response(),
            }
        });
    tokio::spawn(warp::serve(route).incoming(listener).run());
    format!("http://{addr}/hooks")
}

#[tokio::test]
async fn resume_verification_outlasts_idle_timeout() {
    let mut config = AppConfig::default();
    config.set("engine", "idle_actor_timeout_seconds", "0.05");
    let app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let url = slow_verifying_gone_endpoint(Duration::from_millis(500)).await;
    let sub = app.create_subscription(&token, &url, &[TYPE], None).await;
    let path = format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap());
    let result = app.publish(&platform_event(ACCOUNT, TYPE)).await;
    let event_id = result["events"][0]["id"].as_str().unwrap();
    app.wait_for_event_status(&token, event_id, "Failed", Duration::from_secs(20))
        .await;
    let (_, disabled) = app.get(&path, &token).await;
    assert_eq!(disabled["status"], "Disabled", "{disabled}");

    // The verification takes ten idle timeouts; the actor waits for it.
    let (status, resumed) = app.post_empty(&format!("{path}/resume"), &token).await;

    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "Active", "{resumed}");
    let (_, fetched) = app.get(&path, &token).await;
    assert_eq!(fetched["status"], "Active", "{fetched}");
}
