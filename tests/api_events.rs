//! The events API against the real binary: list filters and pagination,
//! an event's payload and attempts, and manual retry.

mod common;
mod core_support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use warp::http::StatusCode;

use common::*;
use core_support::*;

const MISSING_ID: &str = "00000000-0000-4000-8000-000000000000";

fn created_at(event: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(event["createdAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// Publishes `event_type` events for `account` and returns every created Event id.
async fn publish_many(app: &TestApp, account: &str, event_types: &[&str]) -> Vec<String> {
    let mut created = Vec::new();
    for event_type in event_types {
        let result = app.publish(&platform_event(account, event_type)).await;
        for event in result["events"].as_array().unwrap() {
            created.push(event["id"].as_str().unwrap().to_string());
        }
    }
    created
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (_ok, delivered_sub) =
        subscribe(&app, &token, &["property.created", "lease.created"], None).await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let no_retries = json!({"maxRetries": 0, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    let failed_sub = app
        .create_subscription(&token, &failing.url, &["lease.created"], Some(no_retries))
        .await;
    let (delivered_id, failed_id) = (id_of(&delivered_sub), id_of(&failed_sub));

    let types = [
        "property.created",
        "lease.created",
        "property.created",
        "lease.created",
        "property.created",
    ];
    let created = publish_many(&app, "acme-capital", &types).await;
    assert_eq!(
        created.len(),
        7,
        "5 for the first subscription, 2 for the second"
    );
    // Another account's events never count.
    let harbor = app.token("harbor-reit");
    subscribe(&app, &harbor, &["property.created"], None).await;
    publish_many(&app, "harbor-reit", &["property.created"]).await;

    for id in &created {
        let event = app.event(&token, id).await;
        let expected = if event["subscriptionId"] == delivered_id.as_str() {
            "Delivered"
        } else {
            "Failed"
        };
        app.wait_for_event_status(&token, id, expected, Duration::from_secs(30))
            .await;
    }

    let (status, all) = app.get("/v1/events", &token).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        all["pagination"],
        json!({"page": 1, "pageSize": 25, "totalItems": 7, "totalPages": 1})
    );
    let listed = ids(&all);
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first, "newest first");
    let times: Vec<_> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(created_at)
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "createdAt descending: {times:?}"
    );

    let count = |query: &str| {
        let app = &app;
        let token = &token;
        let query = query.to_string();
        async move {
            let (status, list) = app.get(&format!("/v1/events?{query}"), token).await;
            assert_eq!(status, StatusCode::OK, "{query}: {list}");
            let total = list["pagination"]["totalItems"].as_u64().unwrap();
            assert_eq!(
                total as usize,
                ids(&list).len(),
                "{query}: totals match the page"
            );
            (total, list)
        }
    };
    assert_eq!(count(&format!("subscriptionId={delivered_id}")).await.0, 5);
    assert_eq!(count(&format!("subscriptionId={failed_id}")).await.0, 2);
    assert_eq!(count("eventType=lease.created").await.0, 4);
    assert_eq!(count("eventType=property.created").await.0, 3);
    assert_eq!(count("eventType=tenant.created").await.0, 0);
    let (failed_total, failed_list) = count("status=Failed").await;
    assert_eq!(failed_total, 2);
    assert!(
        failed_list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["subscriptionId"] == failed_id.as_str())
    );
    assert_eq!(count("status=Delivered").await.0, 5);
    assert_eq!(count("status=Pending").await.0, 0);
    assert_eq!(
        count(&format!(
            "status=Delivered&eventType=lease.created&subscriptionId={delivered_id}"
        ))
        .await
        .0,
        2
    );

    // from and to are inclusive bounds on createdAt.
    let data = all["data"].as_array().unwrap();
    let (to, from) = (created_at(&data[1]), created_at(&data[5]));
    let expected = times.iter().filter(|t| **t >= from && **t <= to).count() as u64;
    let stamp = |t: DateTime<Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .replace('+', "%2B")
    };
    assert_eq!(
        count(&format!("from={}&to={}", stamp(from), stamp(to)))
            .await
            .0,
        expected
    );
    let later = times.iter().filter(|t| **t >= from).count() as u64;
    assert_eq!(count(&format!("from={}", stamp(from))).await.0, later);
    let earlier = times.iter().filter(|t| **t <= to).count() as u64;
    assert_eq!(count(&format!("to={}", stamp(to))).await.0, earlier);
    assert_eq!(count("from=2099-01-01T00:00:00Z").await.0, 0);

    // Pages of 3: 3 + 3 + 1, each id once.
    let mut seen = Vec::new();
    for (page, size) in [(1, 3), (2, 3), (3, 1)] {
        let (status, list) = app
            .get(&format!("/v1/events?page={page}&pageSize=3"), &token)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            list["pagination"],
            json!({"page": page, "pageSize": 3, "totalItems": 7, "totalPages": 3})
        );
        assert_eq!(ids(&list).len(), size, "page {page}");
        seen.extend(ids(&list));
    }
    assert_eq!(seen, newest_first, "pages follow each other without gaps");
    let (status, beyond) = app.get("/v1/events?page=4&pageSize=3", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ids(&beyond).is_empty());
    assert_eq!(beyond["pagination"]["totalItems"], 7);
    let (status, max) = app.get("/v1/events?pageSize=100", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&max).len(), 7);
}

#[tokio::test]
async fn list_rejects_invalid_queries() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let cases = [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("pageSize=0", "pageSize"),
        ("pageSize=101", "pageSize"),
        ("pageSize=2.5", "pageSize"),
        ("status=Lost", "status"),
        ("eventType=lease.signed", "eventType"),
        ("subscriptionId=42", "subscriptionId"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from"),
    ];
    for (query, field) in cases {
        let (status, problem) = app.get(&format!("/v1/events?{query}"), &token).await;
        assert_problem(status, &problem, 400);
        assert_eq!(error_fields(&problem), vec![field], "{query}: {problem}");
    }
    let (status, problem) = app.get("/v1/events?page=0&pageSize=101", &token).await;
    assert_problem(status, &problem, 400);
    assert_eq!(
        error_fields(&problem),
        vec!["page", "pageSize"],
        "every invalid field is named"
    );
}

#[tokio::test]
async fn get_event_shows_payload_and_attempts() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500).body("try later")]);
    let policy = json!({"maxRetries": 2, "retryIntervalSeconds": 10, "backoffMultiplier": 2.0});
    let sub = app
        .create_subscription(&token, &receiver.url, &["valuation.created"], Some(policy))
        .await;
    let platform = platform_event("acme-capital", "valuation.created");
    let result = app.publish(&platform).await;
    assert_eq!(result["deliveries"], 1);
    let event_id = result["events"][0]["id"].as_str().unwrap().to_string();

    let event = app
        .wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(30))
        .await;
    assert_eq!(event["id"], event_id.as_str());
    assert_eq!(event["subscriptionId"], sub["id"]);
    assert_eq!(event["eventType"], "valuation.created");
    let payload = &event["payload"];
    assert_eq!(payload["eventId"], platform["id"]);
    assert_eq!(payload["eventType"], "valuation.created");
    assert_eq!(payload["resourceType"], platform["resourceType"]);
    assert_eq!(payload["resourceId"], platform["resourceId"]);
    assert_eq!(payload["data"], platform["data"]);
    assert_eq!(
        DateTime::parse_from_rfc3339(payload["timestamp"].as_str().unwrap()).unwrap(),
        DateTime::parse_from_rfc3339("2026-11-01T09:30:00Z").unwrap()
    );
    let delivered: Value = receiver.requests()[1].json();
    assert_eq!(&delivered, payload, "the payload is what was delivered");

    let attempts = event["deliveryAttempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{event}");
    let (first, second) = (&attempts[0], &attempts[1]);
    assert_eq!(first["attemptNumber"], 1);
    assert_eq!(first["responseCode"], 500);
    assert_eq!(first["success"], false);
    assert!(
        first["errorMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{first}"
    );
    assert!(first["responseTime"].is_u64());
    assert_eq!(second["attemptNumber"], 2);
    assert_eq!(second["responseCode"], 200);
    assert_eq!(second["success"], true);
    assert!(second["responseTime"].is_u64());
    let t1 = DateTime::parse_from_rfc3339(first["timestamp"].as_str().unwrap()).unwrap();
    let t2 = DateTime::parse_from_rfc3339(second["timestamp"].as_str().unwrap()).unwrap();
    assert!(t2 > t1, "attempt timestamps increase");

    let (status, problem) = app.get(&format!("/v1/events/{MISSING_ID}"), &token).await;
    assert_problem(status, &problem, 404);
    let (status, problem) = app.get("/v1/events/not-a-uuid", &token).await;
    assert_problem(status, &problem, 404);
    assert_eq!(error_fields(&problem), vec!["eventId"]);
}

#[tokio::test]
async fn retry_redelivers_finished_events() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500)]);
    let no_retries = json!({"maxRetries": 0, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    let sub = app
        .create_subscription(&token, &receiver.url, &["lease.expired"], Some(no_retries))
        .await;
    let result = app
        .publish(&platform_event("acme-capital", "lease.expired"))
        .await;
    let event_id = result["events"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_event_status(&token, &event_id, "Failed", Duration::from_secs(30))
        .await;

    let retry_path = format!("/v1/events/{event_id}/retry");
    let (status, body) = app.post_empty(&retry_path, &token).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "retry of a Failed event: {body}"
    );
    assert_eq!(body["id"], event_id.as_str());
    let event = app
        .wait_for_event_status(&token, &event_id, "Delivered", Duration::from_secs(30))
        .await;
    let numbers: Vec<_> = event["deliveryAttempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attemptNumber"].clone())
        .collect();
    assert_eq!(numbers, vec![json!(1), json!(2)]);

    let (status, body) = app.post_empty(&retry_path, &token).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "retry of a Delivered event: {body}"
    );
    receiver.wait_for(3, Duration::from_secs(30)).await;
    let recorded = wait_until(Duration::from_secs(30), || async {
        let event = app.event(&token, &event_id).await;
        event["status"] == "Delivered" && event["deliveryAttempts"].as_array().unwrap().len() == 3
    })
    .await;
    let event = app.event(&token, &event_id).await;
    assert!(
        recorded,
        "the third attempt is recorded as delivered: {event}"
    );
    let numbers: Vec<_> = event["deliveryAttempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attemptNumber"].clone())
        .collect();
    assert_eq!(
        numbers,
        vec![json!(1), json!(2), json!(3)],
        "attempt numbers continue"
    );
    assert_eq!(event["status"], "Delivered");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let webhook_ids: HashSet<_> = requests
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    assert_eq!(
        webhook_ids,
        HashSet::from([event_id.clone()]),
        "one webhook-id across retries"
    );
    let secret = sub["secret"].as_str().unwrap();
    assert!(requests.iter().all(|r| verify_standard(secret, r)));
    let bodies: HashSet<_> = requests.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 1, "the same bytes on every attempt");

    let (status, problem) = app
        .post_empty(&format!("/v1/events/{MISSING_ID}/retry"), &token)
        .await;
    assert_problem(status, &problem, 404);
    let (status, problem) = app.post_empty("/v1/events/nope/retry", &token).await;
    assert_problem(status, &problem, 404);
}

#[tokio::test]
async fn retry_conflicts_while_unfinished() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");

    // Pending: the subscription is paused.
    let (_paused_receiver, paused) = subscribe(&app, &token, &["report.completed"], None).await;
    let (status, _) = app
        .post_empty(
            &format!("/v1/subscriptions/{}/pause", id_of(&paused)),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let result = app
        .publish(&platform_event("acme-capital", "report.completed"))
        .await;
    let pending_id = result["events"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.event(&token, &pending_id).await["status"], "Pending");
    let (status, problem) = app
        .post_empty(&format!("/v1/events/{pending_id}/retry"), &token)
        .await;
    assert_problem(status, &problem, 409);

    // Retrying: the next attempt is an hour away (36 s at the test time scale).
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(503));
    let slow = json!({"maxRetries": 1, "retryIntervalSeconds": 3600, "backoffMultiplier": 1.0});
    app.create_subscription(&token, &failing.url, &["report.failed"], Some(slow))
        .await;
    let result = app
        .publish(&platform_event("acme-capital", "report.failed"))
        .await;
    let retrying_id = result["events"][0]["id"].as_str().unwrap().to_string();
    let event = app
        .wait_for_event_status(&token, &retrying_id, "Retrying", Duration::from_secs(30))
        .await;
    assert!(event["nextAttemptAt"].is_string(), "{event}");
    let (status, problem) = app
        .post_empty(&format!("/v1/events/{retrying_id}/retry"), &token)
        .await;
    assert_problem(status, &problem, 409);
    assert_eq!(
        app.event(&token, &retrying_id).await["deliveryAttempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn delete_fails_unfinished_and_keeps_history() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let slow = json!({"maxRetries": 3, "retryIntervalSeconds": 3600, "backoffMultiplier": 1.0});
    let sub = app
        .create_subscription(&token, &failing.url, &["property.deleted"], Some(slow))
        .await;
    let sub_id = id_of(&sub);
    let created = publish_many(
        &app,
        "acme-capital",
        &["property.deleted", "property.deleted"],
    )
    .await;
    app.wait_for_event_status(&token, &created[0], "Retrying", Duration::from_secs(30))
        .await;

    let (status, _) = app
        .delete(&format!("/v1/subscriptions/{sub_id}"), &token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for id in &created {
        let event = app
            .wait_for_event_status(&token, id, "Failed", Duration::from_secs(30))
            .await;
        assert!(
            event["statusReason"]
                .as_str()
                .is_some_and(|r| r.contains("deleted")),
            "{event}"
        );
        let (status, problem) = app
            .post_empty(&format!("/v1/events/{id}/retry"), &token)
            .await;
        assert_problem(status, &problem, 409);
    }
    let (_, list) = app
        .get(&format!("/v1/events?subscriptionId={sub_id}"), &token)
        .await;
    assert_eq!(
        list["pagination"]["totalItems"], 2,
        "history is kept: {list}"
    );
    let attempts_before = failing.count();
    let more = wait_until(Duration::from_millis(500), || async {
        failing.count() > attempts_before
    })
    .await;
    assert!(!more, "no attempt after delete");
}

#[tokio::test]
async fn retry_while_paused_waits_for_resume() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500)]);
    let no_retries = json!({"maxRetries": 0, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    let sub = app
        .create_subscription(&token, &receiver.url, &["report.failed"], Some(no_retries))
        .await;
    let sub_path = format!("/v1/subscriptions/{}", id_of(&sub));
    let created = publish_many(&app, "acme-capital", &["report.failed"]).await;
    app.wait_for_event_status(&token, &created[0], "Failed", Duration::from_secs(30))
        .await;

    app.post_empty(&format!("{sub_path}/pause"), &token).await;
    let (status, body) = app
        .post_empty(&format!("/v1/events/{}/retry", created[0]), &token)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.event(&token, &created[0]).await["status"], "Pending");
    let sent = wait_until(Duration::from_millis(500), || async {
        receiver.count() > 1
    })
    .await;
    assert!(!sent, "a paused subscription sends no retry");

    app.post_empty(&format!("{sub_path}/resume"), &token).await;
    let event = app
        .wait_for_event_status(&token, &created[0], "Delivered", Duration::from_secs(30))
        .await;
    assert_eq!(event["deliveryAttempts"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_ingest_leaves_nothing_pending() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (_receiver, sub) = subscribe(&app, &token, &["lease.created"], None).await;
    let sub_id = id_of(&sub);
    let (status, _) = app
        .post_empty(&format!("/v1/subscriptions/{sub_id}/pause"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Several publishers keep the router busy until the subscription is deleted.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut publishers = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        let client = app.client.clone();
        let url = format!("{}/v1/platform/events/batch", app.base);
        let token = app.publisher_token();
        publishers.push(tokio::spawn(async move {
            for _ in 0..100 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let batch: Vec<Value> = (0..50)
                    .map(|_| platform_event("acme-capital", "lease.created"))
                    .collect();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&batch)
                    .send()
                    .await;
                assert_eq!(response.unwrap().status().as_u16(), 200);
            }
        }));
    }
    let all_query = format!("/v1/events?subscriptionId={sub_id}&pageSize=1");
    let busy = wait_until(Duration::from_secs(30), || async {
        let (_, list) = app.get(&all_query, &token).await;
        list["pagination"]["totalItems"].as_u64().unwrap_or(0) >= 300
    })
    .await;
    assert!(
        busy,
        "events were routed to the subscription before the delete"
    );
    let (status, _) = app
        .delete(&format!("/v1/subscriptions/{sub_id}"), &token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for publisher in publishers {
        publisher.await.unwrap();
    }

    // Every event stored for the subscription ends Failed; none stays queued.
    let pending_query = format!("/v1/events?subscriptionId={sub_id}&status=Pending&pageSize=1");
    let settled = wait_until(Duration::from_secs(10), || async {
        let (_, list) = app.get(&pending_query, &token).await;
        list["pagination"]["totalItems"] == 0
    })
    .await;
    let (_, pending) = app.get(&pending_query, &token).await;
    let (_, all) = app.get(&all_query, &token).await;
    assert!(
        settled,
        "{} of {} events of the deleted subscription stay Pending",
        pending["pagination"]["totalItems"], all["pagination"]["totalItems"]
    );
    let (_, health) = app
        .request(reqwest::Method::GET, "/v1/health", None, None)
        .await;
    assert_eq!(health["queueDepth"], 0, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_during_ingest_leaves_nothing_pending() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    // The first delivery gets 410 Gone, which disables the subscription.
    receiver.set_default(Reply::status(410).delayed(Duration::from_millis(200)));
    let sub = app
        .create_subscription(&token, &receiver.url, &["tenant.created"], None)
        .await;
    let sub_id = id_of(&sub);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut publishers = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        let client = app.client.clone();
        let url = format!("{}/v1/platform/events/batch", app.base);
        let token = app.publisher_token();
        publishers.push(tokio::spawn(async move {
            for _ in 0..100 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let batch: Vec<Value> = (0..50)
                    .map(|_| platform_event("acme-capital", "tenant.created"))
                    .collect();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&batch)
                    .send()
                    .await;
                assert_eq!(response.unwrap().status().as_u16(), 200);
            }
        }));
    }
    let path = format!("/v1/subscriptions/{sub_id}");
    let disabled = wait_until(Duration::from_secs(30), || async {
        app.get(&path, &token).await.1["status"] == "Disabled"
    })
    .await;
    assert!(disabled, "410 disables the subscription");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for publisher in publishers {
        publisher.await.unwrap();
    }

    let pending_query = format!("/v1/events?subscriptionId={sub_id}&status=Pending&pageSize=1");
    let settled = wait_until(Duration::from_secs(10), || async {
        let (_, list) = app.get(&pending_query, &token).await;
        list["pagination"]["totalItems"] == 0
    })
    .await;
    let (_, pending) = app.get(&pending_query, &token).await;
    assert!(
        settled,
        "{} events of the disabled subscription stay Pending",
        pending["pagination"]["totalItems"]
    );
    assert_eq!(receiver.count(), 1, "nothing is sent after 410");
}
