//! Service logs: JSON lines with `log.format = "json"`, one debug line per API
//! request, one info line per delivery outcome, and caught errors with their cause.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

const ACCOUNT: &str = "acme-logs";
const TIMEOUT: Duration = Duration::from_secs(30);

/// Parses every line of the log as a JSON object; panics on any other line.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            assert!(value.is_object(), "log line is not an object: {line}");
            value
        })
        .collect()
}

fn with_message<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

#[tokio::test]
async fn json_logs_cover_requests_and_errors() {
    let mut config = AppConfig::default();
    let fault_dir = tempfile::tempdir().unwrap();
    let fault = fault_dir.path().join("store-fault");
    config.set("log", "format", "\"json\"").set(
        "store",
        "fault_file",
        &format!("{:?}", fault.display().to_string()),
    );
    let app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let ok = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let delivered_sub = app
        .create_subscription(&token, &ok.url, &["valuation.created"], None)
        .await;
    let no_retries = json!({"maxRetries": 0, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    let failed_sub = app
        .create_subscription(
            &token,
            &failing.url,
            &["valuation.updated"],
            Some(no_retries),
        )
        .await;

    let delivered = app
        .publish(&platform_event(ACCOUNT, "valuation.created"))
        .await;
    let delivered_id = delivered["events"][0]["id"].as_str().unwrap().to_string();
    let failed = app
        .publish(&platform_event(ACCOUNT, "valuation.updated"))
        .await;
    let failed_id = failed["events"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_event_status(&token, &delivered_id, "Delivered", TIMEOUT)
        .await;
    app.wait_for_event_status(&token, &failed_id, "Failed", TIMEOUT)
        .await;

    for _ in 0..3 {
        let (status, _) = app
            .request(reqwest::Method::GET, "/v1/openapi.json", None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = app
        .request(reqwest::Method::GET, "/v1/no-such-route", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    std::fs::write(&fault, b"").unwrap();
    let (status, _) = app
        .post(
            "/v1/platform/events",
            &app.publisher_token(),
            &platform_event(ACCOUNT, "valuation.created"),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    std::fs::remove_file(&fault).unwrap();

    // The 503 request is the last one, so its line marks the end of the workload.
    let logged = wait_until(TIMEOUT, || async { app.logs().contains("\"status\":503") }).await;
    assert!(logged, "no request line for the 503; log:\n{}", app.logs());

    let lines = json_lines(&app.logs());
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line.get(field).is_some(), "no {field} in {line}");
        }
    }

    let requests = with_message(&lines, "request served");
    for line in &requests {
        assert_eq!(line["level"], "DEBUG", "{line}");
        assert!(line["method"].is_string(), "{line}");
        assert!(line["route"].is_string(), "{line}");
        assert!(line["status"].is_u64(), "{line}");
        assert!(line["duration_ms"].is_f64(), "{line}");
    }
    let count = |route: &str, status: u64| {
        requests
            .iter()
            .filter(|l| l["route"] == route && l["status"] == status)
            .count()
    };
    assert_eq!(count("/v1/openapi.json", 200), 3);
    assert_eq!(count("unmatched", 404), 1);
    assert_eq!(count("/v1/platform/events", 202), 2);
    assert_eq!(count("/v1/platform/events", 503), 1);
    assert_eq!(count("/v1/subscriptions", 201), 2);

    let outcomes = with_message(&lines, "delivery finished");
    assert_eq!(
        outcomes.len(),
        2,
        "one outcome line per event: {outcomes:?}"
    );
    for (event_id, subscription, status) in [
        (&delivered_id, &delivered_sub, "Delivered"),
        (&failed_id, &failed_sub, "Failed"),
    ] {
        let line = outcomes
            .iter()
            .find(|l| l["event_id"] == event_id.as_str())
            .unwrap_or_else(|| panic!("no outcome line for {event_id}"));
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["subscription_id"], subscription["id"], "{line}");
        assert_eq!(line["status"], status, "{line}");
    }

    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(!errors.is_empty(), "the store fault is logged as an error");
    for line in &errors {
        let cause = line["error"].as_str().unwrap_or("");
        assert!(!cause.is_empty(), "error line without its cause: {line}");
    }
    assert!(
        errors
            .iter()
            .any(|l| l["error"].as_str().unwrap_or("").contains("fault file")),
        "no error line names the store fault: {errors:?}"
    );

    let secrets = [&delivered_sub, &failed_sub].map(|s| s["secret"].as_str().unwrap().to_string());
    let log = app.logs();
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a signing secret is in the log"
        );
    }
    assert!(
        !log.contains(TEST_JWT_SECRET),
        "the JWT secret is in the log"
    );
}

#[tokio::test]
async fn text_format_is_default() {
    let app = TestApp::start().await;
    let (status, _) = app
        .request(reqwest::Method::GET, "/v1/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let log = app.logs();
    let first = log.lines().next().expect("the service logs its start");
    assert!(
        serde_json::from_str::<Value>(first).is_err(),
        "the default log format is text: {first}"
    );
    assert!(log.contains("listening"), "{log}");
}
