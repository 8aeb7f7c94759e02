//! Tenancy: the `account_id` claim scopes every subscription and event. A
//! resource of another account returns 404, exactly like a missing one, and
//! never shows up in a list.

mod common;
mod core_support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use warp::http::StatusCode;

use common::*;
use core_support::*;

#[tokio::test]
async fn other_account_sees_nothing() {
    let app = TestApp::start().await;
    let acme = app.token("acme-capital");
    let harbor = app.token("harbor-reit");
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let no_retries = json!({"maxRetries": 0, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0});
    let sub = app
        .create_subscription(&acme, &failing.url, &["lease.created"], Some(no_retries))
        .await;
    let sub_id = id_of(&sub);
    let result = app
        .publish(&platform_event("acme-capital", "lease.created"))
        .await;
    let event_id = result["events"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_event_status(&acme, &event_id, "Failed", Duration::from_secs(30))
        .await;
    // harbor-reit has a subscription and an event of its own.
    let (_harbor_receiver, harbor_sub) = subscribe(&app, &harbor, &["lease.created"], None).await;
    app.publish(&platform_event("harbor-reit", "lease.created"))
        .await;

    let sub_path = format!("/v1/subscriptions/{sub_id}");
    let update = json!({"url": failing.url, "eventTypes": ["tenant.created"]});
    let calls = [
        (Method::GET, sub_path.clone(), None),
        (Method::PUT, sub_path.clone(), Some(update)),
        (Method::POST, format!("{sub_path}/pause"), None),
        (Method::POST, format!("{sub_path}/resume"), None),
        (Method::POST, format!("{sub_path}/test"), None),
        (Method::POST, format!("{sub_path}/rotate-secret"), None),
        (Method::GET, format!("/v1/events/{event_id}"), None),
        (Method::POST, format!("/v1/events/{event_id}/retry"), None),
        (Method::DELETE, sub_path.clone(), None),
    ];
    for (method, path, body) in &calls {
        let (status, _, problem) =
            send_raw(&app, method.clone(), path, Some(&harbor), body.as_ref()).await;
        assert_problem(status, &problem, 404);
        let missing = path
            .replace(&sub_id, "00000000-0000-4000-8000-000000000000")
            .replace(&event_id, "00000000-0000-4000-8000-000000000000");
        let (_, _, missing_problem) =
            send_raw(&app, method.clone(), &missing, Some(&harbor), body.as_ref()).await;
        assert_eq!(
            problem, missing_problem,
            "{method} {path}: same answer as a missing id"
        );
    }

    let (_, list) = app.get("/v1/subscriptions", &harbor).await;
    assert_eq!(ids(&list), vec![id_of(&harbor_sub)]);
    let (_, events) = app.get("/v1/events?pageSize=100", &harbor).await;
    assert_eq!(events["pagination"]["totalItems"], 1, "{events}");
    assert!(
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["subscriptionId"] == harbor_sub["id"])
    );
    let (status, filtered) = app
        .get(&format!("/v1/events?subscriptionId={sub_id}"), &harbor)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(filtered["pagination"]["totalItems"], 0, "{filtered}");
    assert!(ids(&filtered).is_empty());
    let (_, by_status) = app.get("/v1/events?status=Failed", &harbor).await;
    assert!(ids(&by_status).is_empty());

    // Nothing harbor-reit tried changed acme-capital's resources.
    let (status, fetched) = app.get(&sub_path, &acme).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["status"], "Active");
    assert_eq!(fetched["eventTypes"], json!(["lease.created"]));
    let event = app.event(&acme, &event_id).await;
    assert_eq!(event["status"], "Failed");
    assert_eq!(event["deliveryAttempts"].as_array().unwrap().len(), 1);
    assert_eq!(failing.count(), 1, "the test and retry calls sent nothing");

    // A deleted subscription's history stays private too.
    let (status, _) = app.delete(&sub_path, &acme).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, filtered) = app
        .get(&format!("/v1/events?subscriptionId={sub_id}"), &harbor)
        .await;
    assert_eq!(filtered["pagination"]["totalItems"], 0, "{filtered}");
    let (_, own) = app
        .get(&format!("/v1/events?subscriptionId={sub_id}"), &acme)
        .await;
    assert_eq!(own["pagination"]["totalItems"], 1, "{own}");
}

#[tokio::test]
async fn events_route_by_account() {
    let app = TestApp::start().await;
    let acme = app.token("acme-capital");
    let harbor = app.token("harbor-reit");
    let (acme_receiver, _) = subscribe(&app, &acme, &["property.created"], None).await;
    let (harbor_receiver, _) = subscribe(&app, &harbor, &["property.created"], None).await;

    let result = app
        .publish(&platform_event("acme-capital", "property.created"))
        .await;
    assert_eq!(
        result["deliveries"], 1,
        "only the event's account receives it"
    );
    acme_receiver.wait_for(1, Duration::from_secs(30)).await;
    let leaked = wait_until(Duration::from_millis(300), || async {
        harbor_receiver.count() > 0
    })
    .await;
    assert!(!leaked, "harbor-reit received acme-capital's event");

    // An account token without the publish scope cannot ingest.
    let (status, problem) = app
        .post(
            "/v1/platform/events",
            &acme,
            &platform_event("acme-capital", "property.created"),
        )
        .await;
    assert_problem(status, &problem, 403);
}
