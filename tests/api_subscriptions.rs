//! Every subscription operation of the contract against the real binary:
//! success cases and each documented error status.

mod common;
mod core_support;

use reqwest::Method;
use serde_json::{Value, json};
use warp::http::StatusCode;

use common::*;
use core_support::*;

const MISSING_ID: &str = "00000000-0000-4000-8000-000000000000";

#[tokio::test]
async fn create_returns_secret_once_and_verifies() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token("acme-capital");
    let body = json!({
        "url": receiver.url,
        "eventTypes": ["property.created", "lease.created"],
        "description": "Portfolio sync",
        "retryPolicy": {"maxRetries": 3, "retryIntervalSeconds": 10, "backoffMultiplier": 1.5}
    });
    let (status, created) = app.post("/v1/subscriptions", &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"]
        .as_str()
        .expect("the create response has the secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(created["status"], "Active");
    assert_eq!(created["url"], receiver.url);
    assert_eq!(created["description"], "Portfolio sync");
    assert_eq!(created["retryPolicy"]["maxRetries"], 3);
    assert_eq!(created["retryPolicy"]["retryIntervalSeconds"], 10);
    assert_eq!(created["retryPolicy"]["backoffMultiplier"], 1.5);
    assert!(created["createdAt"].is_string());

    let verifications = receiver.verifications();
    assert_eq!(verifications.len(), 1, "exactly one verification request");
    assert_eq!(verifications[0].json()["type"], "webhook.verification");
    assert!(verifications[0].json()["challenge"].is_string());
    assert!(
        verify_standard(secret, &verifications[0]),
        "the verification request is signed with the new secret"
    );

    let id = id_of(&created);
    let (status, fetched) = app.get(&format!("/v1/subscriptions/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        fetched.get("secret").is_none(),
        "get hides the secret: {fetched}"
    );
    let (_, list) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(ids(&list), vec![id]);
    assert!(
        list["data"][0].get("secret").is_none(),
        "list hides the secret"
    );
}

#[tokio::test]
async fn create_with_client_secret() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token("acme-capital");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = json!({"url": receiver.url, "eventTypes": ["tenant.created"], "secret": secret});
    let (status, created) = app.post("/v1/subscriptions", &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["secret"], secret);
    assert!(verify_standard(secret, &receiver.verifications()[0]));

    let short =
        json!({"url": receiver.url, "eventTypes": ["tenant.updated"], "secret": "whsec_c2hvcnQ="});
    let (status, problem) = app.post("/v1/subscriptions", &token, &short).await;
    assert_problem(status, &problem, 400);
    assert_eq!(error_fields(&problem), vec!["secret"]);
}

#[tokio::test]
async fn create_rejects_invalid_fields() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let body = json!({
        "url": "ftp://example.test/hooks",
        "eventTypes": [],
        "description": "x".repeat(1025),
        "retryPolicy": {"maxRetries": 11, "retryIntervalSeconds": 0, "backoffMultiplier": 0.5}
    });
    let (status, problem) = app.post("/v1/subscriptions", &token, &body).await;
    assert_problem(status, &problem, 400);
    let fields = error_fields(&problem);
    for expected in [
        "url",
        "eventTypes",
        "description",
        "retryPolicy.maxRetries",
        "retryPolicy.retryIntervalSeconds",
        "retryPolicy.backoffMultiplier",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} missing from {fields:?}"
        );
    }

    let cases = [
        (json!({"eventTypes": ["property.created"]}), "url"),
        (json!({"url": "http://127.0.0.1:9/h"}), "eventTypes"),
        (
            json!({"url": "http://127.0.0.1:9/h", "eventTypes": ["property.exploded"]}),
            "eventTypes",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "eventTypes": ["lease.created", "lease.created"]}),
            "eventTypes",
        ),
        (
            json!({"url": "http://user:pw@127.0.0.1:9/h", "eventTypes": ["lease.created"]}),
            "url",
        ),
        (
            json!({"url": format!("http://127.0.0.1:9/{}", "a".repeat(2048)), "eventTypes": ["lease.created"]}),
            "url",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "eventTypes": ["lease.created"], "colour": "red"}),
            "",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = app.post("/v1/subscriptions", &token, &body).await;
        assert_problem(status, &problem, 400);
        if !field.is_empty() {
            let fields = error_fields(&problem);
            assert!(
                fields.iter().any(|f| f.starts_with(field)),
                "{field} missing for {body}: {problem}"
            );
        }
    }

    let response = app
        .client
        .post(format!("{}/v1/subscriptions", app.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400, "malformed JSON");

    let response = app
        .client
        .post(format!("{}/v1/subscriptions", app.base))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415, "wrong content type");

    let huge = json!({"url": "http://127.0.0.1:9/h", "eventTypes": ["lease.created"], "description": "x".repeat(300 * 1024)});
    let (status, problem) = app.post("/v1/subscriptions", &token, &huge).await;
    assert_problem(status, &problem, 413);
    let (status, problem) = app
        .put(&format!("/v1/subscriptions/{MISSING_ID}"), &token, &huge)
        .await;
    assert_problem(status, &problem, 413);
    let response = app
        .client
        .put(format!("{}/v1/subscriptions/{MISSING_ID}", app.base))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        415,
        "PUT without a JSON content type"
    );

    let (_, list) = app.get("/v1/subscriptions", &token).await;
    assert!(ids(&list).is_empty(), "nothing was stored");
}

#[tokio::test]
async fn create_conflicts_only_within_account() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let acme = app.token("acme-capital");
    let harbor = app.token("harbor-reit");
    app.create_subscription(
        &acme,
        &receiver.url,
        &["property.created", "lease.created"],
        None,
    )
    .await;

    let shared = json!({"url": receiver.url, "eventTypes": ["lease.created", "tenant.created"]});
    let (status, problem) = app.post("/v1/subscriptions", &acme, &shared).await;
    assert_problem(status, &problem, 409);

    let disjoint = json!({"url": receiver.url, "eventTypes": ["tenant.created"]});
    let (status, body) = app.post("/v1/subscriptions", &acme, &disjoint).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "disjoint types do not conflict: {body}"
    );

    let (status, body) = app.post("/v1/subscriptions", &harbor, &shared).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another account does not conflict: {body}"
    );
}

#[tokio::test]
async fn create_fails_verification_and_stores_nothing() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    receiver.script_verification();
    receiver.script([
        Reply::status(500),
        Reply::ok().body("not the challenge"),
        Reply::status(302).header("location", "http://127.0.0.1:9/elsewhere"),
    ]);

    let body = json!({"url": receiver.url, "eventTypes": ["property.created"]});
    let (status, problem) = app.post("/v1/subscriptions", &token, &body).await;
    assert_problem(status, &problem, 400);
    assert!(
        problem["detail"].as_str().unwrap().contains("500"),
        "{problem}"
    );

    let (status, problem) = app.post("/v1/subscriptions", &token, &body).await;
    assert_problem(status, &problem, 400);
    assert!(
        problem["detail"].as_str().unwrap().contains("challenge"),
        "{problem}"
    );

    let (status, problem) = app
        .post(
            "/v1/subscriptions",
            &token,
            &json!({"url": unreachable_url(), "eventTypes": ["property.created"]}),
        )
        .await;
    assert_problem(status, &problem, 400);

    let (status, problem) = app.post("/v1/subscriptions", &token, &body).await;
    assert_problem(status, &problem, 400);
    assert!(
        problem["detail"].as_str().unwrap().contains("302"),
        "a redirect fails: {problem}"
    );

    assert_eq!(receiver.verifications().len(), 3);
    let (_, list) = app.get("/v1/subscriptions", &token).await;
    assert!(ids(&list).is_empty(), "nothing was stored: {list}");
}

#[tokio::test]
async fn list_filters_by_status_and_type() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (_r1, first) = subscribe(&app, &token, &["property.created", "lease.created"], None).await;
    let (_r2, second) = subscribe(&app, &token, &["lease.created"], None).await;
    let (_r3, third) = subscribe(&app, &token, &["report.failed"], None).await;
    let second_id = id_of(&second);
    let (status, _) = app
        .post_empty(&format!("/v1/subscriptions/{second_id}/pause"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, all) = app.get("/v1/subscriptions", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&all).len(), 3);

    let (_, paused) = app.get("/v1/subscriptions?status=Paused", &token).await;
    assert_eq!(ids(&paused), vec![second_id.clone()]);
    let (_, active) = app.get("/v1/subscriptions?status=Active", &token).await;
    let mut active_ids = ids(&active);
    active_ids.sort();
    let mut expected = vec![id_of(&first), id_of(&third)];
    expected.sort();
    assert_eq!(active_ids, expected);

    let (_, lease) = app
        .get("/v1/subscriptions?eventType=lease.created", &token)
        .await;
    let mut lease_ids = ids(&lease);
    lease_ids.sort();
    let mut expected = vec![id_of(&first), second_id.clone()];
    expected.sort();
    assert_eq!(lease_ids, expected);

    let (_, both) = app
        .get(
            "/v1/subscriptions?eventType=lease.created&status=Active",
            &token,
        )
        .await;
    assert_eq!(ids(&both), vec![id_of(&first)]);
    let (_, none) = app
        .get("/v1/subscriptions?eventType=tenant.updated", &token)
        .await;
    assert!(ids(&none).is_empty());

    let (status, problem) = app.get("/v1/subscriptions?status=Sleeping", &token).await;
    assert_problem(status, &problem, 400);
    assert_eq!(error_fields(&problem), vec!["status"]);
    let (status, problem) = app.get("/v1/subscriptions?eventType=nope", &token).await;
    assert_problem(status, &problem, 400);
    assert_eq!(error_fields(&problem), vec!["eventType"]);
}

#[tokio::test]
async fn get_and_path_errors() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (_receiver, sub) = subscribe(&app, &token, &["property.created"], None).await;
    let id = id_of(&sub);
    let (status, fetched) = app.get(&format!("/v1/subscriptions/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["id"], id.as_str());
    assert_eq!(fetched["eventTypes"], json!(["property.created"]));
    assert_eq!(
        fetched["retryPolicy"],
        json!({"maxRetries": 5, "retryIntervalSeconds": 60, "backoffMultiplier": 2.0})
    );

    let paths = ["", "/pause", "/resume", "/test"];
    for suffix in paths {
        let method = if suffix.is_empty() {
            Method::GET
        } else {
            Method::POST
        };
        let (status, _, problem) = send_raw(
            &app,
            method.clone(),
            &format!("/v1/subscriptions/{MISSING_ID}{suffix}"),
            Some(&token),
            None,
        )
        .await;
        assert_problem(status, &problem, 404);
        let (status, _, problem) = send_raw(
            &app,
            method,
            &format!("/v1/subscriptions/not-a-uuid{suffix}"),
            Some(&token),
            None,
        )
        .await;
        assert_problem(status, &problem, 404);
        assert_eq!(error_fields(&problem), vec!["subscriptionId"], "{suffix}");
    }
    let body = json!({"url": "http://127.0.0.1:9/h", "eventTypes": ["lease.created"]});
    let (status, problem) = app.put("/v1/subscriptions/not-a-uuid", &token, &body).await;
    assert_problem(status, &problem, 404);
    let (status, problem) = app.delete("/v1/subscriptions/not-a-uuid", &token).await;
    assert_problem(status, &problem, 404);
}

#[tokio::test]
async fn put_replaces_and_reverifies_changed_url() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let receiver = Receiver::start().await;
    let body = json!({
        "url": receiver.url,
        "eventTypes": ["property.created"],
        "description": "first",
        "retryPolicy": {"maxRetries": 2, "retryIntervalSeconds": 12, "backoffMultiplier": 3.0}
    });
    let (status, created) = app.post("/v1/subscriptions", &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    let secret = created["secret"].as_str().unwrap().to_string();
    let path = format!("/v1/subscriptions/{id}");

    // Same URL: a full replacement, no new verification.
    let replacement =
        json!({"url": receiver.url, "eventTypes": ["lease.updated", "lease.expired"]});
    let (status, updated) = app.put(&path, &token, &replacement).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        updated["eventTypes"],
        json!(["lease.updated", "lease.expired"])
    );
    assert!(
        updated.get("description").is_none() || updated["description"].is_null(),
        "description removed: {updated}"
    );
    assert_eq!(
        updated["retryPolicy"],
        json!({"maxRetries": 5, "retryIntervalSeconds": 60, "backoffMultiplier": 2.0})
    );
    assert!(updated.get("secret").is_none());
    assert_eq!(
        receiver.verifications().len(),
        1,
        "an unchanged URL is not verified again"
    );
    let (_, fetched) = app.get(&path, &token).await;
    assert_eq!(fetched["eventTypes"], updated["eventTypes"]);

    // A new URL is verified at the new endpoint, signed with the same secret.
    let moved = Receiver::start().await;
    let (status, updated) = app
        .put(
            &path,
            &token,
            &json!({"url": moved.url, "eventTypes": ["lease.updated"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["url"], moved.url);
    assert_eq!(moved.verifications().len(), 1);
    assert!(verify_standard(&secret, &moved.verifications()[0]));

    // A new URL that fails verification changes nothing.
    let failing = Receiver::start().await;
    failing.script_verification();
    failing.set_default(Reply::status(503));
    let (status, problem) = app
        .put(
            &path,
            &token,
            &json!({"url": failing.url, "eventTypes": ["tenant.created"]}),
        )
        .await;
    assert_problem(status, &problem, 400);
    let (_, fetched) = app.get(&path, &token).await;
    assert_eq!(fetched["url"], moved.url);
    assert_eq!(fetched["eventTypes"], json!(["lease.updated"]));

    // Invalid fields, a secret, a conflict and an unknown id.
    let (status, problem) = app.put(&path, &token, &json!({"url": moved.url})).await;
    assert_problem(status, &problem, 400);
    assert_eq!(error_fields(&problem), vec!["eventTypes"]);
    let (status, problem) = app
        .put(
            &path,
            &token,
            &json!({"url": moved.url, "eventTypes": ["lease.updated"], "secret": secret}),
        )
        .await;
    assert_problem(status, &problem, 400);
    assert_eq!(error_fields(&problem), vec!["secret"]);

    let other = app
        .create_subscription(&token, &receiver.url, &["report.completed"], None)
        .await;
    let (status, problem) = app
        .put(
            &format!("/v1/subscriptions/{}", id_of(&other)),
            &token,
            &json!({"url": moved.url, "eventTypes": ["lease.updated"]}),
        )
        .await;
    assert_problem(status, &problem, 409);

    let (status, problem) = app
        .put(
            &format!("/v1/subscriptions/{MISSING_ID}"),
            &token,
            &json!({"url": moved.url, "eventTypes": ["lease.updated"]}),
        )
        .await;
    assert_problem(status, &problem, 404);
}

#[tokio::test]
async fn delete_then_not_found() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (_receiver, sub) = subscribe(&app, &token, &["property.created"], None).await;
    let path = format!("/v1/subscriptions/{}", id_of(&sub));
    let (status, body) = app.delete(&path, &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null, "204 has no body");
    let (status, problem) = app.get(&path, &token).await;
    assert_problem(status, &problem, 404);
    let (status, problem) = app.delete(&path, &token).await;
    assert_problem(status, &problem, 404);
    let (_, list) = app.get("/v1/subscriptions", &token).await;
    assert!(ids(&list).is_empty());
}

#[tokio::test]
async fn pause_and_resume_change_status() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (_receiver, sub) = subscribe(&app, &token, &["property.created"], None).await;
    let path = format!("/v1/subscriptions/{}", id_of(&sub));

    let (status, paused) = app.post_empty(&format!("{path}/pause"), &token).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["status"], "Paused");
    assert!(paused.get("secret").is_none());
    let (_, fetched) = app.get(&path, &token).await;
    assert_eq!(fetched["status"], "Paused");

    let (status, again) = app.post_empty(&format!("{path}/pause"), &token).await;
    assert_eq!(status, StatusCode::OK, "pausing twice is harmless");
    assert_eq!(again["status"], "Paused");

    let (status, resumed) = app.post_empty(&format!("{path}/resume"), &token).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "Active");
    let (_, fetched) = app.get(&path, &token).await;
    assert_eq!(fetched["status"], "Active");
}

#[tokio::test]
async fn test_endpoint_reports_results() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (receiver, sub) = subscribe(&app, &token, &["property.created"], None).await;
    let path = format!("/v1/subscriptions/{}/test", id_of(&sub));
    let secret = sub["secret"].as_str().unwrap();

    let (status, result) = app.post_empty(&path, &token).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["success"], true);
    assert_eq!(result["responseCode"], 200);
    assert!(result["responseTime"].is_u64());
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json()["eventType"], "webhook.test");
    assert_eq!(requests[0].header("x-argus-event-type"), "webhook.test");
    assert!(verify_standard(secret, &requests[0]));

    receiver.script([Reply::status(500)]);
    let (status, result) = app.post_empty(&path, &token).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["success"], false);
    assert_eq!(result["responseCode"], 500);

    // The test event is not stored as an event.
    let (_, events) = app.get("/v1/events", &token).await;
    assert_eq!(events["pagination"]["totalItems"], 0, "{events}");

    // An endpoint that passed verification and then went away.
    let (url, endpoint) = closable_endpoint().await;
    let second = app
        .create_subscription(&token, &url, &["lease.created"], None)
        .await;
    endpoint.abort();
    let _ = endpoint.await;
    let (status, result) = app
        .post_empty(
            &format!("/v1/subscriptions/{}/test", id_of(&second)),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["success"], false);
    assert!(
        result.get("responseCode").is_none() || result["responseCode"].is_null(),
        "{result}"
    );
    assert!(
        result["errorMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{result}"
    );
}

#[tokio::test]
async fn routes_require_a_bearer_token() {
    let app = TestApp::start().await;
    let routes = [
        (Method::GET, "/v1/subscriptions".to_string()),
        (Method::POST, "/v1/subscriptions".to_string()),
        (Method::GET, format!("/v1/subscriptions/{MISSING_ID}")),
        (Method::PUT, format!("/v1/subscriptions/{MISSING_ID}")),
        (Method::DELETE, format!("/v1/subscriptions/{MISSING_ID}")),
        (
            Method::POST,
            format!("/v1/subscriptions/{MISSING_ID}/pause"),
        ),
        (
            Method::POST,
            format!("/v1/subscriptions/{MISSING_ID}/resume"),
        ),
        (Method::POST, format!("/v1/subscriptions/{MISSING_ID}/test")),
        (Method::GET, "/v1/events".to_string()),
        (Method::GET, format!("/v1/events/{MISSING_ID}")),
        (Method::POST, format!("/v1/events/{MISSING_ID}/retry")),
    ];
    let expired = make_token(json!({"account_id": "acme-capital", "exp": now() - 600}));
    for (method, path) in routes {
        let (status, headers, problem) = send_raw(&app, method.clone(), &path, None, None).await;
        assert_problem(status, &problem, 401);
        let challenge = headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(
            challenge
                .as_deref()
                .is_some_and(|c| c.starts_with("Bearer")),
            "{method} {path}: {challenge:?}"
        );

        for token in ["not.a.jwt", expired.as_str()] {
            let (status, headers, problem) =
                send_raw(&app, method.clone(), &path, Some(token), None).await;
            assert_problem(status, &problem, 401);
            assert!(headers.get("www-authenticate").is_some(), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn disabled_subscription_resumes_after_verification() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (receiver, sub) = subscribe(&app, &token, &["lease.expired"], None).await;
    let path = format!("/v1/subscriptions/{}", id_of(&sub));
    receiver.script([Reply::status(410)]);
    let result = app
        .publish(&platform_event("acme-capital", "lease.expired"))
        .await;
    let event_id = result["events"][0]["id"].as_str().unwrap();
    let event = app
        .wait_for_event_status(
            &token,
            event_id,
            "Failed",
            std::time::Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        event["deliveryAttempts"].as_array().unwrap().len(),
        1,
        "410 is not retried"
    );

    let (_, fetched) = app.get(&path, &token).await;
    assert_eq!(fetched["status"], "Disabled", "{fetched}");
    assert!(
        fetched["statusReason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{fetched}"
    );
    let result = app
        .publish(&platform_event("acme-capital", "lease.expired"))
        .await;
    assert_eq!(
        result["deliveries"], 0,
        "no events are stored for a Disabled subscription"
    );
    let (_, disabled) = app.get("/v1/subscriptions?status=Disabled", &token).await;
    assert_eq!(ids(&disabled), vec![id_of(&sub)]);

    let (status, problem) = app.post_empty(&format!("{path}/pause"), &token).await;
    assert_problem(status, &problem, 409);

    receiver.script_verification();
    receiver.set_default(Reply::status(500));
    let (status, problem) = app.post_empty(&format!("{path}/resume"), &token).await;
    assert_problem(status, &problem, 400);
    let (_, fetched) = app.get(&path, &token).await;
    assert_eq!(fetched["status"], "Disabled");

    receiver.answer_verification();
    receiver.set_default(Reply::ok());
    let (status, resumed) = app.post_empty(&format!("{path}/resume"), &token).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "Active");
    let result = app
        .publish(&platform_event("acme-capital", "lease.expired"))
        .await;
    assert_eq!(result["deliveries"], 1);
    let event_id = result["events"][0]["id"].as_str().unwrap();
    app.wait_for_event_status(
        &token,
        event_id,
        "Delivered",
        std::time::Duration::from_secs(30),
    )
    .await;
}

#[tokio::test]
async fn put_reroutes_and_keeps_status() {
    let app = TestApp::start().await;
    let token = app.token("acme-capital");
    let (receiver, sub) = subscribe(&app, &token, &["property.created"], None).await;
    let path = format!("/v1/subscriptions/{}", id_of(&sub));
    let (status, _) = app.post_empty(&format!("{path}/pause"), &token).await;
    assert_eq!(status, StatusCode::OK);

    let body = json!({"url": receiver.url, "eventTypes": ["portfolio.updated"]});
    let (status, updated) = app.put(&path, &token, &body).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        updated["status"], "Paused",
        "an update does not change the status"
    );

    let old = app
        .publish(&platform_event("acme-capital", "property.created"))
        .await;
    assert_eq!(old["deliveries"], 0, "the old type no longer matches");
    let new = app
        .publish(&platform_event("acme-capital", "portfolio.updated"))
        .await;
    assert_eq!(new["deliveries"], 1, "the new type matches");
    let (_, fetched) = app.get(&path, &token).await;
    assert_eq!(fetched["status"], "Paused");
    assert_eq!(receiver.count(), 0);
}
