//! The sample platform events in `examples/platform-events.jsonl`, sent with
//! the real `argus-webhooks publish` subcommand: each subscription receives
//! exactly the events of its account and types, each once, and the events
//! API lists them. Publishing the file again creates nothing.

mod common;
mod core_support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use warp::http::StatusCode;

use common::*;
use core_support::*;

const EXAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/platform-events.jsonl"
);

/// Runs the binary with `args` and returns its output; panics unless it succeeded.
async fn run_cli(args: Vec<String>) -> Output {
    let output = tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output())
        .await
        .unwrap()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "argus-webhooks failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Signs a publisher token with the `token` subcommand and the service's config.
async fn cli_publisher_token(config: &Path) -> String {
    let output = run_cli(vec![
        "token".into(),
        "--config".into(),
        config.display().to_string(),
        "--account".into(),
        "platform".into(),
        "--scope".into(),
        "webhooks:publish".into(),
        "--ttl".into(),
        "10m".into(),
    ])
    .await;
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

async fn publish_file(app: &TestApp, token: &str) -> String {
    let output = run_cli(vec![
        "publish".into(),
        "--url".into(),
        app.base.clone(),
        "--token".into(),
        token.into(),
        EXAMPLES.into(),
    ])
    .await;
    String::from_utf8(output.stdout).unwrap()
}

struct Expected {
    account: &'static str,
    types: Vec<&'static str>,
    receiver: Receiver,
    subscription_id: String,
    event_ids: Vec<String>,
}

#[tokio::test]
async fn publish_examples_reach_each_subscription_once() {
    let app = TestApp::start().await;
    let events: Vec<Value> = std::fs::read_to_string(EXAMPLES)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let layout: [(&str, &[&str]); 6] = [
        (
            "acme-capital",
            &[
                "property.created",
                "property.updated",
                "valuation.created",
                "valuation.updated",
            ],
        ),
        (
            "acme-capital",
            &[
                "lease.created",
                "lease.updated",
                "lease.expired",
                "tenant.created",
                "tenant.updated",
            ],
        ),
        ("acme-capital", &["property.created"]),
        (
            "harbor-reit",
            &["report.completed", "report.failed", "cashflow.updated"],
        ),
        (
            "harbor-reit",
            &[
                "portfolio.created",
                "portfolio.updated",
                "portfolio.deleted",
                "property.deleted",
            ],
        ),
        (
            "northwind-properties",
            &[
                "property.created",
                "property.updated",
                "property.deleted",
                "valuation.created",
                "valuation.updated",
                "lease.created",
                "lease.updated",
                "lease.expired",
                "portfolio.created",
                "portfolio.updated",
                "portfolio.deleted",
                "report.completed",
                "report.failed",
                "cashflow.updated",
                "tenant.created",
                "tenant.updated",
            ],
        ),
    ];
    let mut expected = Vec::new();
    for (account, types) in layout {
        let token = app.token(account);
        let (receiver, sub) = subscribe(&app, &token, types, None).await;
        let event_ids = events
            .iter()
            .filter(|e| {
                e["accountId"] == account && types.contains(&e["eventType"].as_str().unwrap())
            })
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        assert!(
            !event_ids.is_empty(),
            "the sample has events for {account} {types:?}"
        );
        expected.push(Expected {
            account,
            types: types.to_vec(),
            receiver,
            subscription_id: id_of(&sub),
            event_ids,
        });
    }
    let total_deliveries: usize = expected.iter().map(|e| e.event_ids.len()).sum();

    let token = cli_publisher_token(&app.config_path).await;
    let summary = publish_file(&app, &token).await;
    let line = format!(
        "{} events: {} accepted ({total_deliveries} deliveries queued), 0 duplicates, 0 rejected",
        events.len(),
        events.len()
    );
    assert!(summary.contains(&line), "summary: {summary}");

    for sub in &expected {
        let requests = sub
            .receiver
            .wait_for(sub.event_ids.len(), Duration::from_secs(60))
            .await;
        let received: Vec<String> = requests
            .iter()
            .map(|r| r.json()["eventId"].as_str().unwrap().to_string())
            .collect();
        let unique: HashSet<_> = received.iter().collect();
        assert_eq!(
            unique.len(),
            received.len(),
            "{} {:?}: each event once",
            sub.account,
            sub.types
        );
        let mut got = received.clone();
        got.sort();
        let mut want = sub.event_ids.clone();
        want.sort();
        assert_eq!(
            got, want,
            "{} {:?}: exactly its events",
            sub.account, sub.types
        );
        // Strict order per subscription: first attempts follow the file.
        assert_eq!(
            received, sub.event_ids,
            "{} {:?}: in file order",
            sub.account, sub.types
        );
        for request in &requests {
            let payload = request.json();
            assert!(sub.types.contains(&payload["eventType"].as_str().unwrap()));
            assert_eq!(
                request.header("x-argus-event-type"),
                payload["eventType"].as_str().unwrap()
            );
        }
    }

    let mut per_account: BTreeMap<&str, u64> = BTreeMap::new();
    for sub in &expected {
        let token = app.token(sub.account);
        let query = format!(
            "/v1/events?subscriptionId={}&status=Delivered&pageSize=1",
            sub.subscription_id
        );
        let listed = wait_until(Duration::from_secs(30), || async {
            let (_, list) = app.get(&query, &token).await;
            list["pagination"]["totalItems"] == sub.event_ids.len() as u64
        })
        .await;
        assert!(
            listed,
            "{} {:?}: every event listed as Delivered",
            sub.account, sub.types
        );
        *per_account.entry(sub.account).or_default() += sub.event_ids.len() as u64;
    }
    for (account, count) in &per_account {
        let (status, list) = app
            .get("/v1/events?pageSize=100", &app.token(account))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["pagination"]["totalItems"], *count, "{account}");
    }

    // The same file again: all duplicates, no new deliveries.
    let summary = publish_file(&app, &token).await;
    let line = format!(
        "{} events: 0 accepted (0 deliveries queued), {} duplicates, 0 rejected",
        events.len(),
        events.len()
    );
    assert!(summary.contains(&line), "summary: {summary}");
    let extra = wait_until(Duration::from_millis(500), || async {
        expected
            .iter()
            .any(|sub| sub.receiver.count() > sub.event_ids.len())
    })
    .await;
    assert!(!extra, "a repeated file delivers nothing new");
    for (account, count) in &per_account {
        let (_, list) = app.get("/v1/events?pageSize=1", &app.token(account)).await;
        assert_eq!(
            list["pagination"]["totalItems"], *count,
            "{account}: no new events"
        );
    }
}
