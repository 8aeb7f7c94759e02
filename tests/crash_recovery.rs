//! Publishes continuously to several subscriptions, some with flaky
//! receivers, while the real binary is killed with SIGKILL at random points
//! and restarted on the same data dir. Then checks that nothing accepted was
//! lost, that attempt histories are consistent, and that the only duplicates
//! at the receivers are attempts a kill cut off.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rand::Rng;
use serde_json::{Value, json};
use warp::http::StatusCode;

const ACCOUNT: &str = "meridian-property";
const EVENT_TYPE: &str = "property.created";
/// Bounds of the run: platform events published, kills, and the whole test.
const MAX_PUBLISHED: usize = 150;
const KILLS: usize = 4;
const DEADLINE: Duration = Duration::from_secs(240);
const MAX_RETRIES: usize = 3;
/// Maximum time from sending a request to its outcome being on disk, with
/// margin for a busy machine.
const CUT_OFF_WINDOW: Duration = Duration::from_secs(3);
/// How long after the killed process exited the receiver may still record a
/// request that process wrote: the receiver reads it from the socket later.
const RECEIPT_LAG: Duration = Duration::from_millis(250);

/// A kill: when the signal was sent and when the process had exited.
struct Kill {
    sent: Instant,
    exited: Instant,
}

impl Kill {
    /// Returns true when a request received at `at` may have come from the killed
    /// process and been cut off by the kill.
    fn may_cut_off(&self, at: Instant) -> bool {
        at <= self.exited + RECEIPT_LAG && self.sent.saturating_duration_since(at) < CUT_OFF_WINDOW
    }
}

/// Builds a script of `count` replies: `fail_percent` of them 500, and
/// `slow_percent` of the rest delayed, so attempts are in flight at a kill.
fn flaky_script(count: usize, fail_percent: u32, slow_percent: u32) -> Vec<Reply> {
    let mut rng = rand::rng();
    (0..count)
        .map(|_| {
            if rng.random_range(0..100) < fail_percent {
                Reply::status(500)
            } else if rng.random_range(0..100) < slow_percent {
                Reply::ok().delayed(Duration::from_millis(rng.random_range(50..400)))
            } else {
                Reply::ok()
            }
        })
        .collect()
}

/// What the publisher learnt: per platform event, the deliveries the
/// service reported with a 202 or a 200 duplicate.
#[derive(Default)]
struct Published {
    /// Event id → subscription id.
    deliveries: HashMap<String, String>,
    accepted: usize,
    duplicates: usize,
    unanswered: usize,
}

/// Publishes events until `stop` is set or `MAX_PUBLISHED` were accepted.
/// An event without a response (the service was killed) is sent again with
/// the same id until it is accepted, which also exercises idempotency
/// across restarts.
async fn publish_loop(base: Arc<Mutex<String>>, stop: Arc<AtomicBool>, out: Arc<Mutex<Published>>) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let token = make_token(
        json!({"account_id": "platform", "scope": "webhooks:publish", "exp": now() + 3600}),
    );
    let mut sent = 0;
    while sent < MAX_PUBLISHED && !stop.load(Ordering::Relaxed) {
        let event = platform_event(ACCOUNT, EVENT_TYPE);
        loop {
            let url = format!("{}/v1/platform/events", base.lock().unwrap());
            let response = client
                .post(url)
                .bearer_auth(&token)
                .json(&event)
                .send()
                .await;
            let answer = match response {
                Ok(response) => {
                    let status = response.status().as_u16();
                    (status, response.json::<Value>().await.ok())
                }
                Err(_) => (0, None),
            };
            match answer {
                (202 | 200, Some(body)) => {
                    let mut out = out.lock().unwrap();
                    if status_is_duplicate(&body) {
                        out.duplicates += 1;
                    } else {
                        out.accepted += 1;
                    }
                    for delivery in body["events"].as_array().unwrap() {
                        out.deliveries.insert(
                            delivery["id"].as_str().unwrap().to_string(),
                            delivery["subscriptionId"].as_str().unwrap().to_string(),
                        );
                    }
                    break;
                }
                _ => {
                    out.lock().unwrap().unanswered += 1;
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // The service is restarting; wait for it before the repeat.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        sent += 1;
        // Pace the publisher so deliveries keep up and the backlog stays small.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

fn status_is_duplicate(body: &Value) -> bool {
    body["duplicate"] == true
}

/// Lists every event of the account, page by page.
async fn list_all(app: &TestApp, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let (status, body) = app
            .get(&format!("/v1/events?pageSize=100&page={page}"), token)
            .await;
        assert_eq!(status, StatusCode::OK, "list failed: {body}");
        let items = body["data"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        out.extend(items);
    }
    out
}

async fn unfinished(app: &TestApp, token: &str) -> u64 {
    let mut total = 0;
    for status in ["Pending", "Retrying"] {
        let (_, body) = app
            .get(&format!("/v1/events?status={status}&pageSize=1"), token)
            .await;
        total += body["pagination"]["totalItems"]
            .as_u64()
            .unwrap_or(u64::MAX / 4);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_lose_no_accepted_event() {
    let started = Instant::now();
    let mut config = AppConfig::default();
    config
        .set("delivery", "max_in_flight_per_subscription", "2")
        .set("delivery", "disable_after_failed_events", "0");
    let mut app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let retry =
        json!({"maxRetries": MAX_RETRIES, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});

    let steady = Receiver::start().await;
    let flaky = Receiver::start().await;
    flaky.script(flaky_script(5000, 30, 10));
    let slow_flaky = Receiver::start().await;
    slow_flaky.script(flaky_script(5000, 30, 40));
    let receivers = [steady, flaky, slow_flaky];
    let mut receiver_of = HashMap::new();
    for receiver in &receivers {
        let sub = app
            .create_subscription(&token, &receiver.url, &[EVENT_TYPE], Some(retry.clone()))
            .await;
        receiver_of.insert(sub["id"].as_str().unwrap().to_string(), receiver.clone());
    }

    let base = Arc::new(Mutex::new(app.base.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Mutex::new(Published::default()));
    let publisher = tokio::spawn(publish_loop(base.clone(), stop.clone(), published.clone()));

    let mut kills = Vec::new();
    let total_requests = || receivers.iter().map(Receiver::count).sum::<usize>();
    for _ in 0..KILLS {
        // Kill after a random number of further deliveries, or after 3 s.
        let target = total_requests() + rand::rng().random_range(5..60);
        wait_until(Duration::from_secs(3), || async {
            total_requests() >= target
        })
        .await;
        let sent = Instant::now();
        let exited = app.restart().await;
        kills.push(Kill { sent, exited });
        *base.lock().unwrap() = app.base.clone();
    }
    // Let the publisher finish its bounded run on the last process.
    let finished = wait_until(Duration::from_secs(60), || async {
        publisher.is_finished()
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    assert!(finished, "the publisher did not finish in 60 s");

    let drained = wait_until(DEADLINE.saturating_sub(started.elapsed()), || async {
        unfinished(&app, &token).await == 0
    })
    .await;
    assert!(
        drained,
        "{} events still Pending or Retrying",
        unfinished(&app, &token).await
    );

    let published = std::mem::take(&mut *published.lock().unwrap());
    assert!(published.accepted > 0);
    let listed = list_all(&app, &token).await;
    let listed_ids: HashSet<String> = listed
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let by_id: HashMap<String, &Value> = listed
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), e))
        .collect();

    let mut extra_receipts = 0;
    let (mut delivered, mut failed) = (0, 0);
    for (id, sub) in &published.deliveries {
        assert!(listed_ids.contains(id), "accepted event {id} is not listed");
        let event = by_id[id];
        assert_eq!(event["subscriptionId"].as_str(), Some(sub.as_str()));
        let history = event["deliveryAttempts"].as_array().unwrap();
        for (index, attempt) in history.iter().enumerate() {
            assert_eq!(
                attempt["attemptNumber"],
                index + 1,
                "gap in the history of {id}: {event}"
            );
            if attempt["success"] == true {
                let code = attempt["responseCode"].as_u64().unwrap_or(0);
                assert!(
                    (200..300).contains(&code),
                    "success without a 2xx for {id}: {event}"
                );
            }
        }
        let successes = history.iter().filter(|a| a["success"] == true).count();
        match event["status"].as_str() {
            Some("Delivered") => {
                delivered += 1;
                assert_eq!(successes, 1, "{id}: {event}");
                assert_eq!(history.last().unwrap()["success"], true, "{id}: {event}");
            }
            Some("Failed") => {
                failed += 1;
                assert_eq!(successes, 0, "{id}: {event}");
                assert!(
                    history.len() > MAX_RETRIES,
                    "{id} failed before its attempts ran out: {event}"
                );
            }
            other => panic!("event {id} ended {other:?}: {event}"),
        }

        let receipts: Vec<Instant> = receiver_of[sub]
            .requests()
            .iter()
            .filter(|r| r.header("webhook-id") == id)
            .map(|r| r.at)
            .collect();
        assert!(
            !receipts.is_empty(),
            "event {id} never reached its receiver"
        );
        assert!(
            receipts.len() >= history.len(),
            "{id} has more recorded attempts than requests: {event}"
        );
        // A request without a recorded attempt is one a kill cut off: it was
        // in flight, or its outcome was not yet flushed, when the process
        // died. Each kill cuts off at most one attempt of this event, and only
        // one sent shortly before it (replies here take at most 400 ms).
        let extra = receipts.len() - history.len();
        let kills_soon_after_a_request = kills
            .iter()
            .filter(|kill| receipts.iter().any(|at| kill.may_cut_off(*at)))
            .count();
        if extra > kills_soon_after_a_request {
            let since_start = |at: &Instant| format!("{:?}", at.duration_since(started));
            let receipts: Vec<String> = receipts.iter().map(since_start).collect();
            let kills: Vec<String> = kills
                .iter()
                .map(|k| {
                    format!(
                        "{} (exited {})",
                        since_start(&k.sent),
                        since_start(&k.exited)
                    )
                })
                .collect();
            let log: Vec<String> = app
                .logs()
                .lines()
                .filter(|line| line.contains(id.as_str()))
                .map(str::to_string)
                .collect();
            panic!(
                "{id} was received {} times for {} recorded attempts, with {kills_soon_after_a_request} kills that may have cut one off\nreceipts at {}\nkills at {}\nevent: {event}\nservice log lines of the event:\n{}",
                receipts.len(),
                history.len(),
                receipts.join(", "),
                kills.join(", "),
                log.join("\n")
            );
        }
        extra_receipts += extra;
    }
    let (_, health) = app
        .request(reqwest::Method::GET, "/v1/health", None, None)
        .await;
    assert_eq!(health["queueDepth"], 0, "health: {health}");
    println!(
        "published {} platform events ({} repeats answered as duplicates, {} unanswered requests), {} deliveries: {delivered} Delivered, {failed} Failed, {extra_receipts} receipts re-sent after {KILLS} kills, in {:?}",
        published.accepted,
        published.duplicates,
        published.unanswered,
        published.deliveries.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < DEADLINE);
}
