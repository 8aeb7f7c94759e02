//! Restart tests: the real binary is killed with SIGKILL (or stopped with
//! SIGTERM) and started again on the same data dir, and each test checks
//! one promise about what survives.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

const ACCOUNT: &str = "harbour-estates";
const WAIT: Duration = Duration::from_secs(30);

/// Publishes an event that matches no subscription. Its 202 comes after a
/// group flush, so every write made before it is on disk when it returns.
async fn durable_barrier(app: &TestApp) {
    let (status, body) = app
        .post(
            "/v1/platform/events",
            &app.publisher_token(),
            &platform_event("barrier-account", "report.completed"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "barrier ingest failed: {body}"
    );
}

/// Publishes one event for `ACCOUNT` and returns its per-subscription event ids.
async fn publish_ids(app: &TestApp, event_type: &str) -> Vec<String> {
    let result = app.publish(&platform_event(ACCOUNT, event_type)).await;
    result["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn attempts(event: &Value) -> Vec<Value> {
    event["deliveryAttempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn parse_time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp"))
        .expect("an RFC 3339 timestamp")
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn retrying_event_keeps_schedule_after_kill() {
    let mut app = TestApp::start().await;
    let receiver = Receiver::start().await;
    // 503 with Retry-After 400 s: the retry is due 4 s later at time scale 0.01.
    receiver.script([Reply::status(503).header("retry-after", "400")]);
    let token = app.token(ACCOUNT);
    let retry = json!({"maxRetries": 3, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    app.create_subscription(&token, &receiver.url, &["lease.created"], Some(retry))
        .await;
    let id = publish_ids(&app, "lease.created").await.remove(0);

    let event = app
        .wait_for_event_status(&token, &id, "Retrying", WAIT)
        .await;
    let due = parse_time(&event["nextAttemptAt"]);
    durable_barrier(&app).await;
    app.restart().await;

    let after = app.event(&token, &id).await;
    assert_eq!(after["status"], "Retrying", "status after restart: {after}");
    assert_eq!(attempts(&after).len(), 1, "attempts after restart: {after}");
    assert_eq!(after["nextAttemptAt"], event["nextAttemptAt"]);

    let delivered = app
        .wait_for_event_status(&token, &id, "Delivered", WAIT)
        .await;
    let history = attempts(&delivered);
    assert_eq!(history.len(), 2, "history: {delivered}");
    assert_eq!(history[0]["attemptNumber"], 1);
    assert_eq!(history[0]["responseCode"], 503);
    assert_eq!(
        history[1]["attemptNumber"], 2,
        "the count was reset: {delivered}"
    );
    assert_eq!(history[1]["success"], true);
    let second_started = parse_time(&history[1]["timestamp"]);
    assert!(
        second_started >= due - chrono::Duration::milliseconds(50),
        "retry sent at {second_started}, before its stored time {due}"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
}

#[tokio::test]
async fn overdue_retries_spread_after_restart() {
    let mut config = AppConfig::default();
    // 10 s × the floor of 0.02 the recovery spread is scaled by: 200 ms apart.
    config.set("delivery", "recovery_spread_ms", "10000");
    let mut app = TestApp::start_with(config).await;
    let receiver = Receiver::start().await;
    const EVENTS: usize = 5;
    receiver.script((0..EVENTS).map(|_| Reply::status(503).header("retry-after", "200")));
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url, &["tenant.created"], None)
        .await;
    let mut ids = Vec::new();
    for _ in 0..EVENTS {
        ids.extend(publish_ids(&app, "tenant.created").await);
    }
    let mut latest_due = chrono::Utc::now();
    for id in &ids {
        let event = app
            .wait_for_event_status(&token, id, "Retrying", WAIT)
            .await;
        latest_due = latest_due.max(parse_time(&event["nextAttemptAt"]));
    }
    durable_barrier(&app).await;
    app.kill();
    let overdue = wait_until(WAIT, || async { chrono::Utc::now() > latest_due }).await;
    assert!(overdue, "the retries did not fall due");

    app.restart().await;
    let requests = receiver.wait_for(2 * EVENTS, WAIT).await;
    let retries = &requests[EVENTS..];
    for pair in retries.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(150),
            "overdue retries were sent {gap:?} apart, a burst"
        );
    }
    for id in &ids {
        let event = app
            .wait_for_event_status(&token, id, "Delivered", WAIT)
            .await;
        let numbers: Vec<_> = attempts(&event)
            .iter()
            .map(|a| a["attemptNumber"].clone())
            .collect();
        assert_eq!(
            numbers,
            vec![json!(1), json!(2)],
            "history of {id}: {event}"
        );
    }
}

#[tokio::test]
async fn attempt_in_flight_at_kill_is_resent() {
    let mut app = TestApp::start().await;
    let receiver = Receiver::start().await;
    // The first delivery hangs past the kill, so the receiver never replies to it.
    receiver.script([Reply::ok().delayed(Duration::from_secs(60))]);
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url, &["property.updated"], None)
        .await;
    let id = publish_ids(&app, "property.updated").await.remove(0);
    receiver.wait_for(1, WAIT).await;
    app.restart().await;

    let event = app
        .wait_for_event_status(&token, &id, "Delivered", WAIT)
        .await;
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        2,
        "expected the hanging attempt and its re-send"
    );
    assert_eq!(requests[0].header("webhook-id"), id);
    assert_eq!(requests[1].header("webhook-id"), id);
    let history = attempts(&event);
    assert_eq!(
        history.len(),
        1,
        "the unanswered attempt was recorded: {event}"
    );
    assert_eq!(history[0]["attemptNumber"], 1);
    assert_eq!(history[0]["success"], true);
    assert_eq!(history[0]["responseCode"], 200);
}

#[tokio::test]
async fn paused_subscription_survives_kill() {
    let mut config = AppConfig::default();
    // A window smaller than the queue, so order must survive refills from disk.
    config.set("engine", "queue_window", "4");
    let mut app = TestApp::start_with(config).await;
    let receiver = Receiver::start().await;
    let token = app.token(ACCOUNT);
    let sub = app
        .create_subscription(&token, &receiver.url, &["valuation.created"], None)
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    let (status, body) = app
        .post_empty(&format!("/v1/subscriptions/{sub_id}/pause"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "pause failed: {body}");
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.extend(publish_ids(&app, "valuation.created").await);
    }
    app.restart().await;

    let (_, after) = app
        .get(&format!("/v1/subscriptions/{sub_id}"), &token)
        .await;
    assert_eq!(
        after["status"], "Paused",
        "subscription after restart: {after}"
    );
    for id in &ids {
        assert_eq!(app.event(&token, id).await["status"], "Pending");
    }
    let early = wait_until(Duration::from_secs(1), || async { receiver.count() > 0 }).await;
    assert!(!early, "a paused subscription delivered after restart");

    let (status, body) = app
        .post_empty(&format!("/v1/subscriptions/{sub_id}/resume"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "resume failed: {body}");
    let requests = receiver.wait_for(ids.len(), WAIT).await;
    let order: Vec<_> = requests
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    assert_eq!(order, ids, "the queue was not delivered oldest first");
}

/// The copies of an event with several subscriptions reach the disk just
/// after the ingest's 202. A kill right after the 202 must still find them
/// all after the restart, with the payload, and deliver them.
#[tokio::test]
async fn copies_survive_kill_right_after_ingest() {
    let mut app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let mut subscriptions = Vec::new();
    for _ in 0..3 {
        let receiver = Receiver::start().await;
        let sub = app
            .create_subscription(&token, &receiver.url, &["lease.created"], None)
            .await;
        let id = sub["id"].as_str().unwrap().to_string();
        let (status, body) = app
            .post_empty(&format!("/v1/subscriptions/{id}/pause"), &token)
            .await;
        assert_eq!(status, StatusCode::OK, "pause failed: {body}");
        let secret = sub["secret"].as_str().unwrap().to_string();
        subscriptions.push((id, secret, receiver));
    }
    let mut published = Vec::new();
    for _ in 0..3 {
        let event = platform_event(ACCOUNT, "lease.created");
        let result = app.publish(&event).await;
        app.restart().await;
        published.push((event, result));
    }

    for (event, result) in &published {
        let copies = result["events"].as_array().unwrap();
        assert_eq!(copies.len(), 3, "ingest result: {result}");
        for copy in copies {
            let stored = app.event(&token, copy["id"].as_str().unwrap()).await;
            assert_eq!(stored["status"], "Pending", "copy after restart: {stored}");
            assert_eq!(stored["payload"]["data"], event["data"], "{stored}");
        }
    }
    for (id, secret, receiver) in &subscriptions {
        let (status, body) = app
            .post_empty(&format!("/v1/subscriptions/{id}/resume"), &token)
            .await;
        assert_eq!(status, StatusCode::OK, "resume failed: {body}");
        let requests = receiver.wait_for(published.len(), WAIT).await;
        for (request, (event, result)) in requests.iter().zip(&published) {
            let copy = result["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|copy| copy["subscriptionId"] == id.as_str())
                .expect("a copy for each subscription");
            assert_eq!(request.header("webhook-id"), copy["id"]);
            assert_eq!(request.json()["data"], event["data"]);
            assert!(verify_standard(secret, request), "bad signature");
        }
    }
}

/// Starts a second `serve` on the app's config and waits for it to exit.
async fn second_serve(app: &TestApp) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&app.config_path)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    let exited = wait_until(Duration::from_secs(10), || {
        let done = matches!(child.try_wait(), Ok(Some(_)));
        async move { done }
    })
    .await;
    if !exited {
        let _ = child.kill();
    }
    assert!(exited, "the second serve kept running");
    assert!(started.elapsed() < Duration::from_secs(10));
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn second_serve_on_locked_dir_exits() {
    let app = TestApp::start().await;
    let (status, stderr) = second_serve(&app).await;
    assert!(!status.success(), "the second serve exited with success");
    let dir = app.data_dir.display().to_string();
    assert!(
        stderr.contains(&dir),
        "the error does not name {dir}: {stderr}"
    );
    assert!(
        stderr.contains("in use"),
        "the error does not say why: {stderr}"
    );
    let (health, _) = app
        .request(reqwest::Method::GET, "/v1/health", None, None)
        .await;
    assert_eq!(
        health,
        StatusCode::OK,
        "the first service stopped answering"
    );
}

#[tokio::test]
async fn unknown_format_version_is_rejected() {
    let mut app = TestApp::start().await;
    app.kill();
    {
        let db = sled::open(app.data_dir.join("sled")).expect("the store opens");
        db.insert(b"Mformat_version", b"99").unwrap();
        db.flush().unwrap();
    }
    let (status, stderr) = second_serve(&app).await;
    assert!(!status.success(), "a store of version 99 was opened");
    assert!(
        stderr.contains("version 99"),
        "the error does not name the version: {stderr}"
    );
    let dir = app.data_dir.display().to_string();
    assert!(
        stderr.contains(&dir),
        "the error does not name {dir}: {stderr}"
    );
}

#[tokio::test]
async fn retention_prunes_only_finished_events() {
    let mut config = AppConfig::default();
    // 0.00001 days is 0.864 s.
    config
        .set("retention", "days", "0.00001")
        .set("retention", "interval_seconds", "0.2");
    let app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let ok = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let slow = Receiver::start().await;
    slow.set_default(Reply::status(503).header("retry-after", "3600"));
    let paused = Receiver::start().await;
    let no_retry = json!({"maxRetries": 0});
    app.create_subscription(&token, &ok.url, &["cashflow.updated"], None)
        .await;
    app.create_subscription(&token, &failing.url, &["cashflow.updated"], Some(no_retry))
        .await;
    app.create_subscription(&token, &slow.url, &["cashflow.updated"], None)
        .await;
    let paused_sub = app
        .create_subscription(&token, &paused.url, &["cashflow.updated"], None)
        .await;
    let paused_id = paused_sub["id"].as_str().unwrap();
    app.post_empty(&format!("/v1/subscriptions/{paused_id}/pause"), &token)
        .await;

    let result = app
        .publish(&platform_event(ACCOUNT, "cashflow.updated"))
        .await;
    let mut by_receiver = std::collections::HashMap::new();
    for event in result["events"].as_array().unwrap() {
        let sub = event["subscriptionId"].as_str().unwrap().to_string();
        by_receiver.insert(sub, event["id"].as_str().unwrap().to_string());
    }
    let (_, subs) = app.get("/v1/subscriptions", &token).await;
    let id_for = |url: &str| -> String {
        let sub = subs["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["url"] == url)
            .unwrap();
        by_receiver[sub["id"].as_str().unwrap()].clone()
    };
    let delivered = id_for(&ok.url);
    let failed = id_for(&failing.url);
    let retrying = id_for(&slow.url);
    let pending = id_for(&paused.url);
    app.wait_for_event_status(&token, &retrying, "Retrying", WAIT)
        .await;

    for id in [&delivered, &failed] {
        let pruned = wait_until(WAIT, || async {
            app.get(&format!("/v1/events/{id}"), &token).await.0 == StatusCode::NOT_FOUND
        })
        .await;
        assert!(pruned, "finished event {id} was not pruned");
    }
    let (_, list) = app.get("/v1/events?pageSize=100", &token).await;
    let listed: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !listed.contains(&delivered),
        "a pruned event is still listed"
    );
    assert!(!listed.contains(&failed), "a pruned event is still listed");
    assert!(listed.contains(&retrying), "a Retrying event was pruned");
    assert!(listed.contains(&pending), "a Pending event was pruned");
    assert_eq!(app.event(&token, &retrying).await["status"], "Retrying");
    assert_eq!(app.event(&token, &pending).await["status"], "Pending");
}

// `terminate` blocks its thread while the process drains, so the receiver
// needs another worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_attempt_finish() {
    let mut config = AppConfig::default();
    config.set("server", "shutdown_grace_seconds", "10");
    let mut app = TestApp::start_with(config).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::ok().delayed(Duration::from_millis(1500))]);
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url, &["portfolio.updated"], None)
        .await;
    let id = publish_ids(&app, "portfolio.updated").await.remove(0);
    receiver.wait_for(1, WAIT).await;

    let started = Instant::now();
    let status = app.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the drain took the whole grace period"
    );
    let logs = app.logs();
    for step in [
        "SIGTERM received",
        "stopped accepting requests",
        "every attempt in flight has finished",
        "subscription actors stopped",
        "store flushed",
        "shutdown complete",
    ] {
        assert!(logs.contains(step), "no log line for {step:?}:\n{logs}");
    }

    app.restart().await;
    let event = app.event(&token, &id).await;
    assert_eq!(
        event["status"], "Delivered",
        "the drained attempt was not recorded: {event}"
    );
    assert_eq!(attempts(&event).len(), 1);
    let resent = wait_until(Duration::from_secs(1), || async { receiver.count() > 1 }).await;
    assert!(!resent, "a finished attempt was sent again after restart");
}

// `terminate` blocks its thread while the process drains, so the receiver
// needs another worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_interrupts_attempt_past_grace() {
    let mut config = AppConfig::default();
    config.set("server", "shutdown_grace_seconds", "0.5");
    let mut app = TestApp::start_with(config).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::ok().delayed(Duration::from_secs(30))]);
    let token = app.token(ACCOUNT);
    app.create_subscription(&token, &receiver.url, &["report.failed"], None)
        .await;
    let id = publish_ids(&app, "report.failed").await.remove(0);
    receiver.wait_for(1, WAIT).await;

    let status = app.terminate();
    assert!(status.success(), "exit status {status}");
    let logs = app.logs();
    assert!(
        logs.contains("grace period over"),
        "no log line for the grace period:\n{logs}"
    );
    assert!(
        logs.contains("attempt interrupted by shutdown"),
        "no log line for the interrupted attempt:\n{logs}"
    );

    app.restart().await;
    let event = app
        .wait_for_event_status(&token, &id, "Delivered", WAIT)
        .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("webhook-id"), id);
    let history = attempts(&event);
    assert_eq!(history.len(), 2, "history: {event}");
    assert_eq!(history[0]["attemptNumber"], 1);
    assert_eq!(history[0]["success"], false);
    assert!(
        history[0]["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("interrupted")
    );
    assert_eq!(history[1]["attemptNumber"], 2);
    assert_eq!(history[1]["success"], true);
}

#[tokio::test]
async fn ctrl_c_shuts_down_cleanly() {
    let mut app = TestApp::start().await;
    let pid = app.pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();

    // The process is a zombie once it has exited and until it is reaped.
    let exited = wait_until(WAIT, || async {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
    .await;
    assert!(
        exited,
        "the service did not exit on SIGINT:\n{}",
        app.logs()
    );

    // `terminate` signals the exited process, which is harmless, and reaps it.
    let status = app.terminate();
    assert!(status.success(), "exit status {status}");

    let logs = app.logs();
    assert!(
        logs.contains("Ctrl-C received"),
        "no log line for Ctrl-C:\n{logs}"
    );
    assert!(
        logs.contains("shutdown complete"),
        "no log line for the end:\n{logs}"
    );
}
