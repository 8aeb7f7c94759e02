//! Ingest of platform events (`POST /v1/platform/events` and `/batch`):
//! fan-out, idempotency by event id, validation, limits and the publish
//! scope; and the unauthenticated health route.

mod common;
mod core_support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use warp::http::StatusCode;

use common::*;
use core_support::*;

#[tokio::test]
async fn ingest_fans_out_and_is_idempotent() {
    let app = TestApp::start().await;
    let acme = app.token("acme-capital");
    let (first, first_sub) =
        subscribe(&app, &acme, &["lease.created", "lease.updated"], None).await;
    let (second, second_sub) = subscribe(&app, &acme, &["lease.created"], None).await;
    let (other, _) = subscribe(&app, &acme, &["tenant.created"], None).await;
    let publisher = app.publisher_token();

    let event = platform_event("acme-capital", "lease.created");
    let (status, result) = app.post("/v1/platform/events", &publisher, &event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{result}");
    assert_eq!(result["eventId"], event["id"]);
    assert_eq!(result["deliveries"], 2);
    assert_eq!(result["duplicate"], false);
    let mut targets: Vec<_> = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subscriptionId"].as_str().unwrap().to_string())
        .collect();
    targets.sort();
    let mut expected = vec![id_of(&first_sub), id_of(&second_sub)];
    expected.sort();
    assert_eq!(targets, expected);
    for created in result["events"].as_array().unwrap() {
        let stored = app.event(&acme, created["id"].as_str().unwrap()).await;
        assert_eq!(stored["subscriptionId"], created["subscriptionId"]);
        assert_eq!(
            stored["payload"]["eventId"], event["id"],
            "payload.eventId is the platform id"
        );
    }

    let (status, again) = app.post("/v1/platform/events", &publisher, &event).await;
    assert_eq!(status, StatusCode::OK, "a repeated id answers 200: {again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["events"], result["events"], "the original result");
    first.wait_for(1, Duration::from_secs(30)).await;
    second.wait_for(1, Duration::from_secs(30)).await;
    let extra = wait_until(Duration::from_millis(300), || async {
        first.count() > 1 || second.count() > 1 || other.count() > 0
    })
    .await;
    assert!(!extra, "the duplicate created no deliveries");
    let (_, list) = app.get("/v1/events", &acme).await;
    assert_eq!(list["pagination"]["totalItems"], 2);

    // Without an id the service assigns one; with no subscriber nothing is created.
    let mut anonymous = platform_event("northwind-properties", "report.completed");
    anonymous.as_object_mut().unwrap().remove("id");
    anonymous.as_object_mut().unwrap().remove("timestamp");
    let (status, result) = app
        .post("/v1/platform/events", &publisher, &anonymous)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{result}");
    assert!(uuid::Uuid::parse_str(result["eventId"].as_str().unwrap()).is_ok());
    assert_eq!(result["deliveries"], 0);
}

#[tokio::test]
async fn ingest_rejects_invalid_events() {
    let app = TestApp::start().await;
    let publisher = app.publisher_token();
    let valid = platform_event("acme-capital", "property.created");
    let with = |field: &str, value: Value| {
        let mut event = valid.clone();
        event[field] = value;
        event
    };
    let without = |field: &str| {
        let mut event = valid.clone();
        event.as_object_mut().unwrap().remove(field);
        event
    };
    let cases = [
        (with("id", json!("not-a-uuid")), "id"),
        (with("eventType", json!("property.burned")), "eventType"),
        (without("eventType"), "eventType"),
        (without("accountId"), "accountId"),
        (with("accountId", json!("")), "accountId"),
        (with("accountId", json!("acme capital")), "accountId"),
        (with("accountId", json!("a".repeat(129))), "accountId"),
        (without("resourceType"), "resourceType"),
        (with("resourceType", json!("r".repeat(65))), "resourceType"),
        (with("resourceId", json!("17")), "resourceId"),
        (with("timestamp", json!("yesterday")), "timestamp"),
        (with("timestamp", json!("2026-11-01T09:30:00")), "timestamp"),
        (without("data"), "data"),
        (with("data", json!([1, 2])), "data"),
        (with("colour", json!("red")), ""),
        (json!([valid.clone()]), ""),
    ];
    for (event, field) in cases {
        let (status, problem) = app.post("/v1/platform/events", &publisher, &event).await;
        assert_problem(status, &problem, 400);
        if !field.is_empty() {
            assert!(
                error_fields(&problem).iter().any(|f| f == field),
                "{field} for {event}: {problem}"
            );
        }
    }

    let oversized = with("data", json!({"blob": "x".repeat(300 * 1024)}));
    let (status, problem) = app
        .post("/v1/platform/events", &publisher, &oversized)
        .await;
    assert_problem(status, &problem, 413);

    let response = app
        .client
        .post(format!("{}/v1/platform/events", app.base))
        .bearer_auth(&publisher)
        .header("content-type", "text/plain")
        .body(valid.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);

    let (status, problem) = app
        .post("/v1/platform/events", &app.token("acme-capital"), &valid)
        .await;
    assert_problem(status, &problem, 403);
    let (status, headers, problem) = send_raw(
        &app,
        Method::POST,
        "/v1/platform/events",
        None,
        Some(&valid),
    )
    .await;
    assert_problem(status, &problem, 401);
    assert!(headers.get("www-authenticate").is_some());

    // Nothing invalid was accepted: the valid event is still new.
    let (status, _) = app.post("/v1/platform/events", &publisher, &valid).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn batch_answers_per_item() {
    let app = TestApp::start().await;
    let acme = app.token("acme-capital");
    let (receiver, _) = subscribe(&app, &acme, &["valuation.created"], None).await;
    let publisher = app.publisher_token();
    let first = platform_event("acme-capital", "valuation.created");
    let (status, _) = app.post("/v1/platform/events", &publisher, &first).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let second = platform_event("acme-capital", "valuation.created");
    let mut invalid = platform_event("acme-capital", "valuation.created");
    invalid["resourceId"] = json!("nope");
    let batch = json!([first, second, invalid, second]);
    let (status, body) = app
        .post("/v1/platform/events/batch", &publisher, &batch)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["duplicates"], 2, "{body}");
    assert_eq!(body["rejected"], 1, "{body}");
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<_> = results.iter().map(|r| r["status"].clone()).collect();
    assert_eq!(
        statuses,
        vec![json!(200), json!(202), json!(400), json!(200)]
    );
    let indexes: Vec<_> = results.iter().map(|r| r["index"].clone()).collect();
    assert_eq!(indexes, vec![json!(0), json!(1), json!(2), json!(3)]);
    assert_eq!(results[1]["deliveries"], 1);
    assert_eq!(
        results[3]["events"], results[1]["events"],
        "a repeat within the batch has the same result"
    );
    assert!(
        error_fields(&results[2]["problem"]).contains(&"resourceId".to_string()),
        "{}",
        results[2]
    );

    receiver.wait_for(2, Duration::from_secs(30)).await;
    let extra = wait_until(Duration::from_millis(300), || async {
        receiver.count() > 2
    })
    .await;
    assert!(!extra, "each event delivered once");

    for bad in [
        json!([]),
        json!({"id": "x"}),
        Value::Array(vec![platform_event("acme-capital", "lease.created"); 501]),
    ] {
        let (status, problem) = app
            .post("/v1/platform/events/batch", &publisher, &bad)
            .await;
        assert_problem(status, &problem, 400);
    }
    let full: Vec<_> = (0..500)
        .map(|_| platform_event("harbor-reit", "lease.created"))
        .collect();
    let (status, body) = app
        .post("/v1/platform/events/batch", &publisher, &Value::Array(full))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["accepted"], 500);
    let (status, problem) = app
        .post("/v1/platform/events/batch", &acme, &json!([second]))
        .await;
    assert_problem(status, &problem, 403);
}

#[tokio::test]
async fn health_needs_no_token() {
    let app = TestApp::start().await;
    let (status, health) = app.request(Method::GET, "/v1/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "Healthy");
    assert_eq!(health["queueDepth"], 0);
    assert!(health["recentErrorRate"].is_number());
    assert!(
        health["uptime"].as_str().unwrap().starts_with("PT"),
        "{health}"
    );
    assert!(health["lastChecked"].is_string());

    // queueDepth counts Pending events of a paused subscription.
    let token = app.token("acme-capital");
    let (_receiver, sub) = subscribe(&app, &token, &["lease.created"], None).await;
    app.post_empty(&format!("/v1/subscriptions/{}/pause", id_of(&sub)), &token)
        .await;
    for _ in 0..3 {
        app.publish(&platform_event("acme-capital", "lease.created"))
            .await;
    }
    let (_, health) = app.request(Method::GET, "/v1/health", None, None).await;
    assert_eq!(health["queueDepth"], 3, "{health}");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (status, headers, problem) =
        send_raw(&app, Method::GET, "/v1/nothing", Some(&token), None).await;
    assert_problem(status, &problem, 404);
    assert_eq!(headers["content-type"], "application/problem+json");
    let (status, headers, problem) =
        send_raw(&app, Method::PATCH, "/v1/subscriptions", Some(&token), None).await;
    assert_problem(status, &problem, 405);
    assert!(headers.get("allow").is_some());
}

#[tokio::test]
async fn failed_batch_reports_no_duplicates() {
    let mut config = AppConfig::default();
    let fault = StoreFault::configure(&mut config);
    let app = TestApp::start_with(config).await;
    let acme = app.token("acme-capital");
    let (receiver, _) = subscribe(&app, &acme, &["lease.created"], None).await;
    let publisher = app.publisher_token();
    let event = platform_event("acme-capital", "lease.created");

    // The store cannot write: no item may claim to be accepted, not even a repeat.
    fault.start();
    let (status, body) = app
        .post(
            "/v1/platform/events/batch",
            &publisher,
            &json!([event, event]),
        )
        .await;
    fault.stop();
    if status == StatusCode::OK {
        for result in body["results"].as_array().unwrap() {
            let item = result["status"].as_u64().unwrap();
            assert!(
                item >= 500,
                "an item claims success although nothing was stored: {body}"
            );
        }
        assert_eq!(body["accepted"], 0, "{body}");
        assert_eq!(body["duplicates"], 0, "{body}");
    } else {
        assert!(status.is_server_error(), "{status} {body}");
    }

    // Sent again once the store works, the event is new and delivered once.
    let (status, body) = app
        .post(
            "/v1/platform/events/batch",
            &publisher,
            &json!([event, event]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["duplicates"], 1, "{body}");
    receiver.wait_for(1, Duration::from_secs(30)).await;
}

/// A timestamp the service assigns has milliseconds at most, as every other
/// timestamp it writes, and a subscription keeps its event types in the
/// order they were sent.
#[tokio::test]
async fn assigned_values_keep_the_api_forms() {
    let app = TestApp::start().await;
    let acme = app.token("acme-capital");
    let types = ["tenant.created", "lease.created", "property.updated"];
    let (receiver, sub) = subscribe(&app, &acme, &types, None).await;
    assert_eq!(sub["eventTypes"], json!(types), "{sub}");
    let (_, fetched) = app
        .get(&format!("/v1/subscriptions/{}", id_of(&sub)), &acme)
        .await;
    assert_eq!(fetched["eventTypes"], json!(types), "{fetched}");

    let mut event = platform_event("acme-capital", "lease.created");
    event.as_object_mut().unwrap().remove("timestamp");
    let (status, result) = app
        .post("/v1/platform/events", &app.publisher_token(), &event)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{result}");
    let request = receiver.wait_for(1, Duration::from_secs(20)).await[0].clone();
    let payload: Value = serde_json::from_slice(&request.body).unwrap();
    let timestamp = payload["timestamp"].as_str().unwrap();
    let fraction = timestamp
        .trim_end_matches('Z')
        .rsplit_once('.')
        .map_or("", |(_, digits)| digits);
    assert!(fraction.len() <= 3, "{timestamp}");
}
