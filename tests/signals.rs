//! What endpoints tell the service: `Retry-After` on 429 and 503, 410 Gone,
//! and a run of failed events, plus the re-verification on resume.
//! Tests run with `delivery.time_scale = 0.01`, so one scheduled or
//! `Retry-After` second takes 10 ms.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

const ACCOUNT: &str = "northgate-holdings";
const TYPE: &str = "valuation.updated";

async fn publish_one(app: &TestApp) -> String {
    let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
    ingest["events"][0]["id"].as_str().unwrap().to_string()
}

fn http_date(after: Duration) -> String {
    let at = Utc::now() + chrono::Duration::from_std(after).unwrap();
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn parse_time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn subscription(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, sub) = app.get(&format!("/v1/subscriptions/{id}"), token).await;
    assert_eq!(status, StatusCode::OK);
    sub
}

#[tokio::test]
async fn retry_after_postpones_next_attempt() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    // The schedule alone would retry after 10 s × 0.01 = 100 ms.
    let retry = json!({"maxRetries": 3, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    app.create_subscription(&token, &receiver.url, &[TYPE], Some(retry))
        .await;
    receiver.script([
        Reply::status(429).header("retry-after", "300"),
        Reply::status(503).header("retry-after", &http_date(Duration::from_secs(300))),
        Reply::ok(),
    ]);

    let event_id = publish_one(&app).await;
    app.wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(30))
        .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);

    // 300 s × 0.01 = 3 s. The HTTP-date was computed before publishing, so it
    // is a little closer than 300 s when the 503 arrives.
    let after_429 = requests[1].at - requests[0].at;
    let after_503 = requests[2].at - requests[1].at;
    assert!(
        after_429 >= Duration::from_millis(2900),
        "429 Retry-After: 300 waited {after_429:?}"
    );
    assert!(
        after_503 >= Duration::from_millis(2500),
        "503 Retry-After date waited {after_503:?}"
    );
    assert!(
        after_429 < Duration::from_secs(10),
        "429 waited {after_429:?}"
    );
    assert!(
        after_503 < Duration::from_secs(10),
        "503 waited {after_503:?}"
    );
}

#[tokio::test]
async fn schedule_wins_over_shorter_retry_after() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    // The schedule waits 200 s × 0.01 = 2 s; the header requests 10 ms.
    let retry = json!({"maxRetries": 1, "retryIntervalSeconds": 200});
    app.create_subscription(&token, &receiver.url, &[TYPE], Some(retry))
        .await;
    receiver.script([Reply::status(429).header("retry-after", "1"), Reply::ok()]);

    let event_id = publish_one(&app).await;
    app.wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(30))
        .await;
    let requests = receiver.requests();
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "the retry waited only {gap:?}"
    );
}

#[tokio::test]
async fn retry_after_capped_at_one_hour() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let retry = json!({"maxRetries": 2, "retryIntervalSeconds": 10});
    app.create_subscription(&token, &receiver.url, &[TYPE], Some(retry))
        .await;
    let cases = [
        Reply::status(503).header("retry-after", "86400"),
        Reply::status(429).header("retry-after", &http_date(Duration::from_secs(86_400))),
    ];

    for reply in cases {
        receiver.script([reply.clone()]);
        let event_id = publish_one(&app).await;
        let event = app
            .wait_for_event_status(&token, &event_id, "Retrying", Duration::from_secs(20))
            .await;
        let attempt_at = parse_time(&event["deliveryAttempts"][0]["timestamp"]);
        let next_at = parse_time(&event["nextAttemptAt"]);
        // One hour × 0.01 = 36 s after the attempt started, not 864 s.
        let wait = (next_at - attempt_at).to_std().unwrap();
        assert!(
            wait >= Duration::from_secs(35),
            "{reply:?}: next attempt after {wait:?}"
        );
        assert!(
            wait <= Duration::from_secs(40),
            "{reply:?}: next attempt after {wait:?}"
        );
    }
}

#[tokio::test]
async fn gone_disables_at_once() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let retry = json!({"maxRetries": 5, "retryIntervalSeconds": 10});
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], Some(retry))
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    // The response to the first delivery is slow, so the next two wait in the queue.
    receiver.script([Reply::status(410).delayed(Duration::from_millis(800))]);

    let first = publish_one(&app).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let queued = [publish_one(&app).await, publish_one(&app).await];

    let event = app
        .wait_for_event_status(&token, &first, "Failed", Duration::from_secs(20))
        .await;
    assert_eq!(
        event["deliveryAttempts"].as_array().unwrap().len(),
        1,
        "410 is not retried"
    );
    assert!(event["statusReason"].as_str().unwrap().contains("410"));
    for id in &queued {
        let event = app
            .wait_for_event_status(&token, id, "Failed", Duration::from_secs(20))
            .await;
        assert!(event["deliveryAttempts"].as_array().unwrap().is_empty());
        assert!(
            event["statusReason"].as_str().unwrap().contains("disabled"),
            "{event}"
        );
    }

    let stored = subscription(&app, &token, sub_id).await;
    assert_eq!(stored["status"], "Disabled");
    assert!(
        stored["statusReason"].as_str().unwrap().contains("410"),
        "{stored}"
    );
    let (_, list) = app.get("/v1/subscriptions?status=Disabled", &token).await;
    assert_eq!(list["data"][0]["id"], sub_id);
    assert_eq!(list["data"][0]["status"], "Disabled");

    let ingest = app.publish(&platform_event(ACCOUNT, TYPE)).await;
    assert_eq!(
        ingest["deliveries"], 0,
        "a disabled subscription gets no new events"
    );
    assert_eq!(receiver.count(), 1);
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"argus_webhooks_subscriptions_disabled_total{reason="gone"} 1"#));
}

#[tokio::test]
async fn failed_event_run_disables() {
    let mut config = AppConfig::default();
    config.set("delivery", "disable_after_failed_events", "3");
    let app = TestApp::start_with(config).await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let retry = json!({"maxRetries": 0});
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], Some(retry))
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    receiver.set_default(Reply::status(500));
    // Two failures, a success that resets the run, then two more failures.
    receiver.script([
        Reply::status(500),
        Reply::status(500),
        Reply::ok(),
        Reply::status(500),
        Reply::status(500),
    ]);

    for expected in ["Failed", "Failed", "Delivered", "Failed", "Failed"] {
        let id = publish_one(&app).await;
        app.wait_for_event_status(&token, &id, expected, Duration::from_secs(20))
            .await;
    }
    assert_eq!(
        subscription(&app, &token, sub_id).await["status"],
        "Active",
        "a success reset the run"
    );

    let id = publish_one(&app).await;
    app.wait_for_event_status(&token, &id, "Failed", Duration::from_secs(20))
        .await;
    let disabled = wait_for_status(&app, &token, sub_id, "Disabled").await;
    assert!(
        disabled["statusReason"]
            .as_str()
            .unwrap()
            .contains("3 events in a row"),
        "{disabled}"
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains(
        r#"argus_webhooks_subscriptions_disabled_total{reason="consecutive_failures"} 1"#
    ));
}

async fn wait_for_status(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    let reached = wait_until(Duration::from_secs(20), || async {
        subscription(app, token, id).await["status"] == status
    })
    .await;
    let sub = subscription(app, token, id).await;
    assert!(reached, "subscription did not reach {status}: {sub}");
    sub
}

#[tokio::test]
async fn resume_reverifies_disabled_subscription() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url, &[TYPE], None)
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    receiver.script([Reply::status(410)]);
    publish_one(&app).await;
    wait_for_status(&app, &token, sub_id, "Disabled").await;
    let verifications_before = receiver.verifications().len();

    // The endpoint fails verification: resume returns 400 and nothing changes.
    receiver.script_verification();
    receiver.script([Reply::status(500)]);
    let (status, problem) = app
        .post_empty(&format!("/v1/subscriptions/{sub_id}/resume"), &token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("500"),
        "{problem}"
    );
    assert_eq!(receiver.verifications().len(), verifications_before + 1);
    let stored = subscription(&app, &token, sub_id).await;
    assert_eq!(stored["status"], "Disabled");
    assert!(stored["statusReason"].as_str().unwrap().contains("410"));

    // The endpoint echoes the challenge, so resume reactivates it.
    receiver.answer_verification();
    let (status, resumed) = app
        .post_empty(&format!("/v1/subscriptions/{sub_id}/resume"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "Active");
    assert!(resumed.get("statusReason").is_none(), "{resumed}");
    assert_eq!(receiver.verifications().len(), verifications_before + 2);

    let id = publish_one(&app).await;
    app.wait_for_event_status(&token, &id, "Delivered", Duration::from_secs(20))
        .await;
}
