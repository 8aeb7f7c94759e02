//! The `token` and `listen` subcommands against a running service.

mod common;
mod core_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use warp::http::StatusCode;

use common::*;
use core_support::*;

/// Runs `token` with `args` and returns the printed token.
async fn cli_token(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output =
        tokio::task::spawn_blocking(move || Command::new(BIN).arg("token").args(&args).output())
            .await
            .unwrap()
            .expect("the binary runs");
    assert!(
        output.status.success(),
        "token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn token_is_accepted_with_its_scope() {
    let app = TestApp::start().await;
    let config = app.config_path.display().to_string();
    let token = cli_token(&["--config", &config, "--account", "acme-capital"]).await;
    let (status, list) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");

    let event = platform_event("acme-capital", "property.created");
    let (status, problem) = app.post("/v1/platform/events", &token, &event).await;
    assert_problem(status, &problem, 403);
    let publisher = cli_token(&[
        "--config",
        &config,
        "--account",
        "platform",
        "--scope",
        "webhooks:publish",
    ])
    .await;
    let (status, result) = app.post("/v1/platform/events", &publisher, &event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{result}");
}

#[tokio::test]
async fn token_signs_with_the_local_dev_key() {
    let mut config = AppConfig::default();
    config.set("auth", "hs256_secret", "\"\"");
    let app = TestApp::start_with(config).await;
    let data_dir = app.data_dir.display().to_string();
    let token = cli_token(&["--data-dir", &data_dir, "--account", "harbor-reit"]).await;
    let (status, list) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");

    // The test harness signs with another key, which this service rejects.
    let (status, problem) = app
        .get("/v1/subscriptions", &app.token("harbor-reit"))
        .await;
    assert_problem(status, &problem, 401);
}

/// `token` in a data dir without a development key creates one and prints a
/// note on stderr, since a service on another data dir rejects its tokens.
#[test]
fn token_reports_a_new_dev_key() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data").display().to_string();
    let run = || {
        Command::new(BIN)
            .args(["token", "--data-dir", &data_dir, "--account", "harbor-reit"])
            .env("ARGUS_WEBHOOKS_AUTH__HS256_SECRET", "")
            .output()
            .expect("the binary runs")
    };
    let first = run();
    assert!(first.status.success());
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("created a new development key"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("--data-dir"), "stderr: {stderr}");

    let second = run();
    assert!(second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !stderr.contains("development key"),
        "the key exists now: {stderr}"
    );
}

/// A running `listen` process whose stdout lines arrive on a channel.
struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Listener {
    fn spawn(args: &[&str]) -> Listener {
        let mut child = Command::new(BIN)
            .args(["listen", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("listen starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Listener {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a printed line containing `needle` and returns it.
    async fn line_with(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if self.seen.iter().any(|l| l.contains(needle)) {
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "listen printed no line with {needle:?}; output: {:?}",
                self.seen
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn url(&mut self) -> String {
        let line = self.line_with("listening on http://").await;
        let address = line.split("listening on ").nth(1).unwrap().trim();
        format!("{address}/hooks")
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn listen_verifies_and_prints_events() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let mut listener = Listener::spawn(&[]);
    let secret_line = listener.line_with("secret: whsec_").await;
    let secret = secret_line
        .trim()
        .strip_prefix("secret: ")
        .unwrap()
        .to_string();
    let url = listener.url().await;

    let body = json!({"url": url, "eventTypes": ["lease.created"], "secret": secret});
    let (status, sub) = app.post("/v1/subscriptions", &token, &body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "listen answers verification: {sub}"
    );
    listener.line_with("verification request answered").await;

    let event = platform_event("acme-capital", "lease.created");
    let result = app.publish(&event).await;
    let event_id = result["events"][0]["id"].as_str().unwrap().to_string();
    let printed = listener.line_with(event["id"].as_str().unwrap()).await;
    assert!(printed.contains("lease.created"), "{printed}");
    assert!(printed.contains("signature valid"), "{printed}");
    assert!(
        printed.contains(&event_id),
        "the line names the webhook-id: {printed}"
    );
    app.wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn listen_rejects_a_wrong_signature() {
    init();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut listener = Listener::spawn(&["--secret", secret]);
    let url = listener.url().await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = r#"{"eventId":"x","eventType":"lease.created"}"#;
    let wrong =
        standardwebhooks::Webhook::new("whsec_c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1yaWdodC1vbmU=")
            .unwrap();
    let timestamp = now();
    let signature = wrong
        .sign("msg_forged", timestamp, body.as_bytes())
        .unwrap();
    let response = client
        .post(&url)
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    listener.line_with("REJECTED msg_forged").await;

    let right = standardwebhooks::Webhook::new(secret).unwrap();
    let signature = right.sign("msg_good", timestamp, body.as_bytes()).unwrap();
    let response = client
        .post(&url)
        .header("webhook-id", "msg_good")
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    listener.line_with("msg_good").await;
}

#[tokio::test]
async fn publish_json_array_with_a_rejected_event() {
    let mut config = AppConfig::default();
    config.set("auth", "hs256_secret", "\"\"");
    let app = TestApp::start_with(config).await;
    let data_dir = app.data_dir.display().to_string();
    let token = cli_token(&["--data-dir", &data_dir, "--account", "acme-capital"]).await;
    let (receiver, _) = subscribe(&app, &token, &["tenant.created"], None).await;

    let mut invalid = platform_event("acme-capital", "tenant.created");
    invalid["resourceId"] = json!("not-a-uuid");
    let events = json!([
        platform_event("acme-capital", "tenant.created"),
        invalid,
        platform_event("acme-capital", "tenant.created"),
    ]);
    let file = app.dir.join("events.json");
    std::fs::write(&file, serde_json::to_string_pretty(&events).unwrap()).unwrap();

    // No --token: publish signs one with the development key in --data-dir.
    let args: Vec<String> = vec![
        "publish".into(),
        "--url".into(),
        app.base.clone(),
        "--data-dir".into(),
        data_dir,
        file.display().to_string(),
    ];
    let output = tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "a rejected event makes publish fail: {stdout}"
    );
    assert!(
        stdout.contains("3 events: 2 accepted (2 deliveries queued), 0 duplicates, 1 rejected"),
        "{stdout}"
    );
    assert!(
        stdout.contains("event 2:"),
        "the rejected event is named by position: {stdout}"
    );
    assert!(
        stdout.contains("resourceId"),
        "the problem names the field: {stdout}"
    );
    receiver.wait_for(2, Duration::from_secs(30)).await;
}
