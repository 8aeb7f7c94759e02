//! Tenancy: every operation on account A's resources with account B's token
//! returns 404 exactly like a missing id, B's lists show none of A's items,
//! and ingest needs the publish scope.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use warp::http::StatusCode;

#[tokio::test]
async fn other_account_gets_404_everywhere() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token_a = app.token("account-a");
    let token_b = app.token("account-b");
    let sub = app
        .create_subscription(&token_a, &receiver.url, &["property.created"], None)
        .await;
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let result = app
        .publish(&platform_event("account-a", "property.created"))
        .await;
    let event_id = result["events"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_event_status(&token_a, &event_id, "Delivered", Duration::from_secs(20))
        .await;

    // A new URL, so an update that got past the tenancy check would send a
    // verification request.
    let update = json!({"url": format!("{}/b", receiver.url), "eventTypes": ["property.updated"]});
    let missing = uuid::Uuid::new_v4().to_string();
    let operations: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/subscriptions/{sub}".into(), None),
        (
            Method::PUT,
            "/v1/subscriptions/{sub}".into(),
            Some(update.clone()),
        ),
        (Method::POST, "/v1/subscriptions/{sub}/pause".into(), None),
        (Method::POST, "/v1/subscriptions/{sub}/resume".into(), None),
        (Method::POST, "/v1/subscriptions/{sub}/test".into(), None),
        (
            Method::POST,
            "/v1/subscriptions/{sub}/rotate-secret".into(),
            None,
        ),
        (Method::GET, "/v1/events/{event}".into(), None),
        (Method::POST, "/v1/events/{event}/retry".into(), None),
        (Method::DELETE, "/v1/subscriptions/{sub}".into(), None),
    ];
    for (method, template, body) in &operations {
        let path = template
            .replace("{sub}", &sub_id)
            .replace("{event}", &event_id);
        let (status, problem) = app
            .request(method.clone(), &path, Some(&token_b), body.as_ref())
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {problem}");
        // The same response as for an id that does not exist at all.
        let missing_path = template
            .replace("{sub}", &missing)
            .replace("{event}", &missing);
        let (missing_status, missing_problem) = app
            .request(method.clone(), &missing_path, Some(&token_b), body.as_ref())
            .await;
        assert_eq!(
            missing_status,
            StatusCode::NOT_FOUND,
            "{method} {missing_path}"
        );
        assert_eq!(problem, missing_problem, "{method} {template}");
    }

    let (status, list) = app.get("/v1/subscriptions", &token_b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"], json!([]), "{list}");
    let (status, events) = app.get("/v1/events", &token_b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events["data"], json!([]), "{events}");
    assert_eq!(events["pagination"]["totalItems"], 0);
    let (status, filtered) = app
        .get(&format!("/v1/events?subscriptionId={sub_id}"), &token_b)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(filtered["data"], json!([]), "{filtered}");

    // Nothing B did changed A's subscription or event, or reached the endpoint.
    assert_eq!(
        receiver.verifications().len(),
        1,
        "only A's create verified"
    );
    let (status, after) = app
        .get(&format!("/v1/subscriptions/{sub_id}"), &token_a)
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["status"], "Active");
    assert_eq!(after["eventTypes"], json!(["property.created"]));
    let event = app.event(&token_a, &event_id).await;
    assert_eq!(
        event["deliveryAttempts"].as_array().unwrap().len(),
        1,
        "{event}"
    );
    let (_, list_a) = app.get("/v1/subscriptions", &token_a).await;
    assert_eq!(list_a["data"].as_array().unwrap().len(), 1);

    // B's rotate-secret did not rotate A's secret: a new delivery carries
    // one signature, made with the original secret.
    app.publish(&platform_event("account-a", "property.created"))
        .await;
    let requests = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(requests.len(), 2, "B's test call sent nothing");
    assert_eq!(requests[1].header("x-argus-event-type"), "property.created");
    let signature = requests[1].header("webhook-signature");
    assert_eq!(signature.split(' ').count(), 1, "{signature}");
    assert!(verify_standard(
        sub["secret"].as_str().unwrap(),
        &requests[1]
    ));
}

#[tokio::test]
async fn ingest_requires_publish_scope() {
    let app = TestApp::start().await;
    let token = app.token("account-a");
    let event = platform_event("account-a", "property.created");
    let response = app
        .client
        .post(format!("{}/v1/platform/events", app.base))
        .bearer_auth(&token)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("webhooks:publish")
    );
    let (status, problem) = app
        .post("/v1/platform/events/batch", &token, &json!([event]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let other_scope =
        make_token(json!({"account_id": "a", "scope": "webhooks:read", "exp": now() + 60}));
    let (status, _) = app.post("/v1/platform/events", &other_scope, &event).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A scope that only starts with the right name does not count.
    let prefixed =
        make_token(json!({"account_id": "a", "scope": "webhooks:publisher", "exp": now() + 60}));
    let (status, _) = app.post("/v1/platform/events", &prefixed, &event).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post("/v1/platform/events", &app.publisher_token(), &event)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}
