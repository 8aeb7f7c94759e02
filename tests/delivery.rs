//! Delivery against real loopback receivers: signatures checked with the
//! independent `standardwebhooks` crate, headers, the retry schedule, final
//! failure, redirects, timeouts, and pause and resume order.

mod common;
mod core_support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use warp::http::StatusCode;

use common::*;
use core_support::*;

const WAIT: Duration = Duration::from_secs(30);

/// Publishes one event and returns the id of the single Event it created.
async fn publish_one(app: &TestApp, account: &str, event_type: &str) -> String {
    let result = app.publish(&platform_event(account, event_type)).await;
    assert_eq!(result["deliveries"], 1, "{result}");
    result["events"][0]["id"].as_str().unwrap().to_string()
}

fn attempt_count(event: &Value) -> usize {
    event["deliveryAttempts"].as_array().unwrap().len()
}

#[tokio::test]
async fn requests_are_signed_with_headers() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let types = ["property.created", "cashflow.updated", "tenant.updated"];
    let (receiver, sub) = subscribe(&app, &token, &types, None).await;
    let secret = sub["secret"].as_str().unwrap();

    let mut event_ids = Vec::new();
    for event_type in types {
        event_ids.push(publish_one(&app, "acme-capital", event_type).await);
    }
    let requests = receiver.wait_for(3, WAIT).await;
    let user_agent = format!("argus-webhooks/{}", env!("CARGO_PKG_VERSION"));
    for (index, request) in requests.iter().enumerate() {
        assert!(verify_standard(secret, request), "request {index} verifies");
        assert!(
            !verify_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", request),
            "another secret fails"
        );
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.header("user-agent"), user_agent);
        assert_eq!(request.header("x-argus-event-type"), types[index]);
        assert_eq!(
            request.header("webhook-id"),
            event_ids[index],
            "webhook-id is the Event id"
        );
        assert!(request.header("webhook-signature").starts_with("v1,"));
        let sent: i64 = request.header("webhook-timestamp").parse().unwrap();
        assert!(
            (now() - sent).abs() < 60,
            "webhook-timestamp is the attempt time"
        );

        let event = app.event(&token, &event_ids[index]).await;
        assert_eq!(
            request.json(),
            event["payload"],
            "the body is the stored payload"
        );
        assert_eq!(request.json()["eventType"], types[index]);
    }
    for id in &event_ids {
        app.wait_for_event_status(&token, id, "Delivered", WAIT)
            .await;
    }
}

#[tokio::test]
async fn retries_follow_backoff_ratios() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500), Reply::status(500), Reply::status(500)]);
    // At time scale 0.01 the gaps are 0.2 s, 0.4 s and 0.8 s.
    let policy = json!({"maxRetries": 5, "retryIntervalSeconds": 20, "backoffMultiplier": 2.0});
    let sub = app
        .create_subscription(&token, &receiver.url, &["lease.updated"], Some(policy))
        .await;
    let event_id = publish_one(&app, "acme-capital", "lease.updated").await;

    let event = app
        .wait_for_event_status(&token, &event_id, "Delivered", WAIT)
        .await;
    assert_eq!(attempt_count(&event), 4, "{event}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4);
    let secret = sub["secret"].as_str().unwrap();
    for request in &requests {
        assert!(verify_standard(secret, request));
        assert_eq!(
            request.header("webhook-id"),
            event_id,
            "stable across retries"
        );
    }
    let codes: Vec<_> = event["deliveryAttempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["responseCode"].clone())
        .collect();
    assert_eq!(codes, vec![json!(500), json!(500), json!(500), json!(200)]);

    let gaps: Vec<f64> = requests
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    for (gap, scheduled) in gaps.iter().zip([0.2, 0.4, 0.8]) {
        assert!(
            *gap >= scheduled * 0.95,
            "gap {gap:.3} s is shorter than the schedule {scheduled} s; gaps {gaps:?}"
        );
    }
    for pair in gaps.windows(2) {
        let ratio = pair[1] / pair[0];
        assert!(
            (1.5..=2.6).contains(&ratio),
            "gap ratio {ratio:.2} should be about 2; gaps {gaps:?}"
        );
    }
}

#[tokio::test]
async fn max_retries_zero_fails_once() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(500));
    let policy = json!({"maxRetries": 0, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    app.create_subscription(&token, &receiver.url, &["portfolio.created"], Some(policy))
        .await;
    let event_id = publish_one(&app, "acme-capital", "portfolio.created").await;

    let event = app
        .wait_for_event_status(&token, &event_id, "Failed", WAIT)
        .await;
    assert_eq!(attempt_count(&event), 1, "{event}");
    assert_eq!(event["deliveryAttempts"][0]["success"], false);
    assert!(event.get("nextAttemptAt").is_none() || event["nextAttemptAt"].is_null());
    // A retry would come 0.1 s later at this time scale; give it ten times that.
    let more = wait_until(Duration::from_secs(1), || async { receiver.count() > 1 }).await;
    assert!(!more, "no second attempt");
    assert_eq!(attempt_count(&app.event(&token, &event_id).await), 1);
}

#[tokio::test]
async fn redirects_are_failures_not_followed() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let target = Receiver::start().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(302).header("location", &target.url));
    let policy = json!({"maxRetries": 1, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    app.create_subscription(&token, &receiver.url, &["report.completed"], Some(policy))
        .await;
    let event_id = publish_one(&app, "acme-capital", "report.completed").await;

    let event = app
        .wait_for_event_status(&token, &event_id, "Failed", WAIT)
        .await;
    let attempts = event["deliveryAttempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        2,
        "a redirect counts as a failed attempt: {event}"
    );
    for attempt in attempts {
        assert_eq!(attempt["responseCode"], 302);
        assert_eq!(attempt["success"], false);
    }
    assert_eq!(receiver.count(), 2);
    assert_eq!(target.count(), 0, "the redirect was not followed");
}

#[tokio::test]
async fn only_2xx_counts_as_success() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(400), Reply::status(404), Reply::status(204)]);
    let policy = json!({"maxRetries": 3, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    app.create_subscription(&token, &receiver.url, &["tenant.created"], Some(policy))
        .await;
    let event_id = publish_one(&app, "acme-capital", "tenant.created").await;

    let event = app
        .wait_for_event_status(&token, &event_id, "Delivered", WAIT)
        .await;
    let codes: Vec<_> = event["deliveryAttempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["responseCode"].clone())
        .collect();
    assert_eq!(codes, vec![json!(400), json!(404), json!(204)]);
}

#[tokio::test]
async fn slow_endpoint_times_out() {
    let mut config = AppConfig::default();
    config.set("delivery", "total_timeout_seconds", "1");
    let app = TestApp::start_with(config).await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    receiver.script([Reply::ok().delayed(Duration::from_secs(4))]);
    let policy = json!({"maxRetries": 1, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    app.create_subscription(&token, &receiver.url, &["valuation.updated"], Some(policy))
        .await;
    let event_id = publish_one(&app, "acme-capital", "valuation.updated").await;

    let event = app
        .wait_for_event_status(&token, &event_id, "Delivered", WAIT)
        .await;
    let first = &event["deliveryAttempts"][0];
    assert_eq!(first["success"], false, "{event}");
    assert!(
        first.get("responseCode").is_none() || first["responseCode"].is_null(),
        "{first}"
    );
    let message = first["errorMessage"].as_str().unwrap_or("").to_lowercase();
    assert!(
        message.contains("time"),
        "the error names the timeout: {first}"
    );
    let elapsed = first["responseTime"].as_u64().unwrap();
    assert!(
        (900..3500).contains(&elapsed),
        "the attempt ended at the 1 s timeout, took {elapsed} ms"
    );
    assert_eq!(event["deliveryAttempts"][1]["success"], true);
}

#[tokio::test]
async fn pause_queues_and_resume_keeps_order() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (receiver, sub) = subscribe(&app, &token, &["property.updated"], None).await;
    let sub_id = id_of(&sub);
    let (status, _) = app
        .post_empty(&format!("/v1/subscriptions/{sub_id}/pause"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut published = Vec::new();
    for sequence in 0..20 {
        let mut event = platform_event("acme-capital", "property.updated");
        event["data"]["sequence"] = json!(sequence);
        app.publish(&event).await;
        published.push(event["id"].as_str().unwrap().to_string());
    }
    let pending_query = format!("/v1/events?subscriptionId={sub_id}&status=Pending&pageSize=100");
    let (_, pending) = app.get(&pending_query, &token).await;
    assert_eq!(pending["pagination"]["totalItems"], 20, "{pending}");
    let delivered = wait_until(Duration::from_millis(500), || async {
        receiver.count() > 0
    })
    .await;
    assert!(!delivered, "a paused subscription delivers nothing");

    let (status, resumed) = app
        .post_empty(&format!("/v1/subscriptions/{sub_id}/resume"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    let requests = receiver.wait_for(20, WAIT).await;
    let order: Vec<_> = requests
        .iter()
        .map(|r| r.json()["eventId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, published, "delivered in publication order");
    let unique: HashSet<_> = order.iter().collect();
    assert_eq!(unique.len(), 20, "each once");

    let all_delivered = wait_until(WAIT, || async {
        let (_, list) = app
            .get(
                &format!("/v1/events?subscriptionId={sub_id}&status=Delivered&pageSize=100"),
                &token,
            )
            .await;
        list["pagination"]["totalItems"] == 20
    })
    .await;
    assert!(all_delivered, "all 20 events end Delivered");
    assert_eq!(receiver.count(), 20, "no duplicates");
}

#[tokio::test]
async fn hanging_endpoint_blocks_nothing() {
    let mut config = AppConfig::default();
    config.set("delivery", "total_timeout_seconds", "30");
    let app = TestApp::start_with(config).await;
    let token = app.token("acme-capital");
    let hanging = Receiver::start().await;
    hanging.set_default(Reply::ok().delayed(Duration::from_secs(25)));
    let stuck = app
        .create_subscription(&token, &hanging.url, &["lease.created"], None)
        .await;
    let stuck_path = format!("/v1/subscriptions/{}", id_of(&stuck));
    let (healthy, _) = subscribe(&app, &token, &["lease.updated"], None).await;

    let stuck_event = publish_one(&app, "acme-capital", "lease.created").await;
    hanging.wait_for(1, WAIT).await;

    let quick = Duration::from_secs(3);
    for action in ["pause", "resume"] {
        let started = std::time::Instant::now();
        let (status, body) = app
            .post_empty(&format!("{stuck_path}/{action}"), &token)
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
        assert!(
            started.elapsed() < quick,
            "{action} took {:?} while an attempt hangs",
            started.elapsed()
        );
    }
    let started = std::time::Instant::now();
    let healthy_event = publish_one(&app, "acme-capital", "lease.updated").await;
    healthy.wait_for(1, WAIT).await;
    app.wait_for_event_status(&token, &healthy_event, "Delivered", WAIT)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "another subscription is not delayed"
    );

    let started = std::time::Instant::now();
    let (status, _) = app.delete(&stuck_path, &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        started.elapsed() < quick,
        "delete took {:?} while an attempt hangs",
        started.elapsed()
    );
    let event = app
        .wait_for_event_status(&token, &stuck_event, "Failed", WAIT)
        .await;
    assert!(
        event["statusReason"]
            .as_str()
            .is_some_and(|r| r.contains("deleted")),
        "{event}"
    );
}

#[tokio::test]
async fn retry_after_postpones_the_retry() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    // The schedule gives 10 s and the header 60 s, so 0.1 s and 0.6 s at time scale 0.01.
    receiver.script([Reply::status(503).header("retry-after", "60")]);
    let policy = json!({"maxRetries": 2, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    app.create_subscription(&token, &receiver.url, &["cashflow.updated"], Some(policy))
        .await;
    let event_id = publish_one(&app, "acme-capital", "cashflow.updated").await;

    app.wait_for_event_status(&token, &event_id, "Delivered", WAIT)
        .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let gap = (requests[1].at - requests[0].at).as_secs_f64();
    assert!(
        gap >= 0.55,
        "the retry waited {gap:.3} s, less than Retry-After"
    );
}

/// Publishes `count` events of `event_type` for acme-capital and returns their platform ids.
async fn publish_sequence(app: &TestApp, event_type: &str, count: usize) -> Vec<String> {
    let mut published = Vec::new();
    for sequence in 0..count {
        let mut event = platform_event("acme-capital", event_type);
        event["data"]["sequence"] = json!(sequence);
        app.publish(&event).await;
        published.push(event["id"].as_str().unwrap().to_string());
    }
    published
}

fn received_order(receiver: &Receiver) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .map(|r| r.json()["eventId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn order_holds_beyond_the_memory_window() {
    let mut config = AppConfig::default();
    config.set("engine", "queue_window", "3");
    let app = TestApp::start_with(config).await;
    let token = app.token("acme-capital");

    // A queue built while paused is read back from disk in windows of 3.
    let (paused, sub) = subscribe(&app, &token, &["lease.created"], None).await;
    let sub_path = format!("/v1/subscriptions/{}", id_of(&sub));
    app.post_empty(&format!("{sub_path}/pause"), &token).await;
    let published = publish_sequence(&app, "lease.created", 20).await;
    app.post_empty(&format!("{sub_path}/resume"), &token).await;
    paused.wait_for(20, WAIT).await;
    assert_eq!(received_order(&paused), published, "paused queue in order");

    // Events arriving while a slow endpoint works through the queue.
    let slow = Receiver::start().await;
    slow.set_default(Reply::ok().delayed(Duration::from_millis(30)));
    app.create_subscription(&token, &slow.url, &["lease.updated"], None)
        .await;
    let published = publish_sequence(&app, "lease.updated", 20).await;
    slow.wait_for(20, WAIT).await;
    assert_eq!(received_order(&slow), published, "live queue in order");
    let extra = wait_until(Duration::from_millis(300), || async { slow.count() > 20 }).await;
    assert!(!extra, "each event once");
}

#[tokio::test]
async fn idle_actor_restarts_when_work_arrives() {
    let mut config = AppConfig::default();
    config.set("engine", "idle_actor_timeout_seconds", "1");
    let app = TestApp::start_with(config).await;
    let token = app.token("acme-capital");
    let (receiver, _) = subscribe(&app, &token, &["tenant.updated"], None).await;
    publish_one(&app, "acme-capital", "tenant.updated").await;
    receiver.wait_for(1, WAIT).await;

    let stopped = wait_until(WAIT, || async {
        app.metrics()
            .await
            .lines()
            .any(|l| l == "argus_webhooks_subscription_actors 0")
    })
    .await;
    assert!(stopped, "the idle actor stops");
    let event_id = publish_one(&app, "acme-capital", "tenant.updated").await;
    receiver.wait_for(2, WAIT).await;
    app.wait_for_event_status(&token, &event_id, "Delivered", WAIT)
        .await;
}

#[tokio::test]
async fn store_write_failure_does_not_flood_endpoint() {
    let mut config = AppConfig::default();
    let fault = StoreFault::configure(&mut config);
    let app = TestApp::start_with(config).await;
    let token = app.token("acme-capital");
    let (receiver, _) = subscribe(&app, &token, &["lease.created"], None).await;
    receiver.script([Reply::ok().delayed(Duration::from_millis(300))]);
    let event_id = publish_one(&app, "acme-capital", "lease.created").await;

    // The attempt finishes while store writes fail, so it cannot be recorded.
    receiver.wait_for(1, WAIT).await;
    fault.start();
    let flooded = wait_until(Duration::from_millis(1500), || async {
        receiver.count() > 4
    })
    .await;
    fault.stop();
    assert!(
        !flooded,
        "{} requests while the store failed; the resend must wait",
        receiver.count()
    );

    let event = app
        .wait_for_event_status(&token, &event_id, "Delivered", WAIT)
        .await;
    assert_eq!(
        attempt_count(&event),
        1,
        "only the recorded attempt: {event}"
    );
}

#[tokio::test]
async fn parallel_delivery_sends_each_once() {
    let mut config = AppConfig::default();
    config.set("delivery", "max_in_flight_per_subscription", "4");
    let app = TestApp::start_with(config).await;
    let token = app.token("acme-capital");
    let (receiver, _) = subscribe(&app, &token, &["lease.created"], None).await;
    receiver.set_default(Reply::ok().delayed(Duration::from_millis(50)));
    let published = publish_sequence(&app, "lease.created", 24).await;
    receiver.wait_for(24, WAIT).await;
    let mut got = received_order(&receiver);
    got.sort();
    let mut want = published.clone();
    want.sort();
    assert_eq!(got, want, "every event once");
    let extra = wait_until(Duration::from_millis(300), || async {
        receiver.count() > 24
    })
    .await;
    assert!(!extra, "no duplicates");
}

#[tokio::test]
async fn url_change_moves_next_delivery() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (first, sub) = subscribe(&app, &token, &["property.created"], None).await;
    let secret = sub["secret"].as_str().unwrap();
    let event_id = publish_one(&app, "acme-capital", "property.created").await;
    app.wait_for_event_status(&token, &event_id, "Delivered", WAIT)
        .await;

    // The running actor parsed the first URL, so it must see the change.
    let moved = Receiver::start().await;
    let path = format!("/v1/subscriptions/{}", id_of(&sub));
    let replacement = json!({"url": moved.url, "eventTypes": ["property.created"]});
    let (status, updated) = app.put(&path, &token, &replacement).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let event_id = publish_one(&app, "acme-capital", "property.created").await;
    app.wait_for_event_status(&token, &event_id, "Delivered", WAIT)
        .await;

    let arrived = moved.wait_for(1, WAIT).await;
    assert_eq!(arrived.len(), 1);
    assert_eq!(arrived[0].header("webhook-id"), event_id);
    assert!(verify_standard(secret, &arrived[0]));
    assert_eq!(first.count(), 1, "the old URL got only the first event");
}

#[tokio::test]
async fn many_response_headers_still_deliver() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    // Proxies and frameworks can add many headers, and hyper accepts 100 by default.
    let mut reply = Reply::ok();
    for index in 0..150 {
        reply = reply.header(&format!("x-extra-{index}"), "1");
    }
    receiver.set_default(reply);
    app.create_subscription(&token, &receiver.url, &["lease.created"], None)
        .await;
    let event_id = publish_one(&app, "acme-capital", "lease.created").await;

    let event = app
        .wait_for_event_status(&token, &event_id, "Delivered", WAIT)
        .await;
    assert_eq!(attempt_count(&event), 1, "{event}");
    assert_eq!(event["deliveryAttempts"][0]["responseCode"], 200);
    assert_eq!(receiver.count(), 1);
}
