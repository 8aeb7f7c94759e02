//! Bad input of every kind returns a 4xx problem document that names the
//! field or parameter, and the service keeps serving afterwards.

mod common;

use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

struct Answer {
    status: u16,
    content_type: String,
    allow: String,
    body: Value,
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(app.publisher_token());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request
        .body(body)
        .send()
        .await
        .expect("the service answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (content_type, allow) = (header("content-type"), header("allow"));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        status,
        content_type,
        allow,
        body,
    }
}

async fn post_json(app: &TestApp, path: &str, body: &Value) -> Answer {
    send(
        app,
        reqwest::Method::POST,
        path,
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await
}

async fn get(app: &TestApp, path: &str) -> Answer {
    send(app, reqwest::Method::GET, path, None, Vec::new()).await
}

/// Asserts a problem document with `status` whose `errors` (or, without
/// `errors`, whose detail) names `field`.
fn assert_problem(answer: &Answer, status: u16, field: &str, case: &str) {
    assert_eq!(answer.status, status, "{case}: {}", answer.body);
    assert_eq!(
        answer.content_type, "application/problem+json",
        "{case}: {}",
        answer.body
    );
    assert_eq!(answer.body["status"], status, "{case}");
    assert!(answer.body["title"].is_string(), "{case}");
    assert!(answer.body["type"].is_string(), "{case}");
    if field.is_empty() {
        return;
    }
    let named_in_errors = answer.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .any(|e| e["field"].as_str().unwrap_or("").starts_with(field))
        })
        .unwrap_or(false);
    let named_in_detail = answer.body["detail"].as_str().unwrap_or("").contains(field);
    assert!(
        named_in_errors || named_in_detail,
        "{case}: '{field}' not named in {}",
        answer.body
    );
}

fn subscription() -> Value {
    json!({"url": "http://127.0.0.1:9/hooks", "eventTypes": ["property.created"]})
}

#[tokio::test]
async fn subscription_bodies() {
    let app = TestApp::start().await;
    let with = |key: &str, value: Value| {
        let mut body = subscription();
        body[key] = value;
        body
    };
    let cases = [
        ("url wrong type", with("url", json!(5)), "url"),
        (
            "eventTypes wrong type",
            with("eventTypes", json!("property.created")),
            "eventTypes",
        ),
        (
            "unknown event type",
            with("eventTypes", json!(["property.exploded"])),
            "eventTypes",
        ),
        (
            "empty eventTypes",
            with("eventTypes", json!([])),
            "eventTypes",
        ),
        (
            "duplicate eventTypes",
            with("eventTypes", json!(["lease.created", "lease.created"])),
            "eventTypes",
        ),
        ("unknown field", with("colour", json!("red")), "colour"),
        (
            "unknown retry field",
            with("retryPolicy", json!({"maxTries": 3})),
            "retryPolicy",
        ),
        (
            "maxRetries wrong type",
            with("retryPolicy", json!({"maxRetries": "three"})),
            "retryPolicy.maxRetries",
        ),
        (
            "maxRetries out of range",
            with("retryPolicy", json!({"maxRetries": 11})),
            "retryPolicy.maxRetries",
        ),
        (
            "backoff out of range",
            with("retryPolicy", json!({"backoffMultiplier": 0.5})),
            "retryPolicy.backoffMultiplier",
        ),
        (
            "url too long",
            with(
                "url",
                json!(format!("http://127.0.0.1:9/{}", "a".repeat(2048))),
            ),
            "url",
        ),
        ("url not a URL", with("url", json!("not a url")), "url"),
        (
            "url with user info",
            with("url", json!("http://user:pw@127.0.0.1:9/")),
            "url",
        ),
        (
            "description too long",
            with("description", json!("d".repeat(1025))),
            "description",
        ),
        (
            "secret malformed",
            with("secret", json!("whsec_short")),
            "secret",
        ),
        (
            "url missing",
            json!({"eventTypes": ["property.created"]}),
            "url",
        ),
        ("body not an object", json!([1, 2]), ""),
    ];
    for (case, body, field) in cases {
        let answer = post_json(&app, "/v1/subscriptions", &body).await;
        assert_problem(&answer, 400, field, case);
    }
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("application/json"),
        b"{\"url\":".to_vec(),
    )
    .await;
    assert_problem(&answer, 400, "", "malformed JSON");
    assert!(
        answer.body["type"].as_str().unwrap().contains("malformed"),
        "{}",
        answer.body
    );
    // The text broke off, so no field is at fault.
    assert!(answer.body.get("errors").is_none(), "{}", answer.body);
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(detail.contains("not valid JSON"), "{detail}");
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("application/json"),
        Vec::new(),
    )
    .await;
    assert_problem(&answer, 400, "", "empty body");
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("application/json"),
        b"{\"url\": \"\xff\xfe\"}".to_vec(),
    )
    .await;
    assert_problem(&answer, 400, "", "invalid UTF-8");
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("application/json"),
        b"{} {}".to_vec(),
    )
    .await;
    assert_problem(&answer, 400, "", "trailing data");
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("text/plain"),
        subscription().to_string().into_bytes(),
    )
    .await;
    assert_problem(&answer, 415, "", "text/plain");
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/subscriptions",
        None,
        subscription().to_string().into_bytes(),
    )
    .await;
    assert_problem(&answer, 415, "", "no content type");
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("application/json"),
        vec![b' '; 262_145],
    )
    .await;
    assert_problem(&answer, 413, "", "over the body limit");

    // PUT takes the same body but not a secret.
    let answer = send(&app, reqwest::Method::PUT, &format!("/v1/subscriptions/{}", uuid::Uuid::new_v4()), Some("application/json"),
        json!({"url": "http://127.0.0.1:9/", "eventTypes": ["lease.created"], "secret": format!("whsec_{}", "A".repeat(44))}).to_string().into_bytes()).await;
    assert_problem(&answer, 400, "secret", "PUT with secret");
    let answer = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/subscriptions/{}/rotate-secret", uuid::Uuid::new_v4()),
        Some("application/json"),
        json!({"gracePeriodSeconds": -1}).to_string().into_bytes(),
    )
    .await;
    assert_problem(&answer, 400, "gracePeriodSeconds", "negative grace period");
    assert_eq!(app.get("/v1/health", "").await.0, StatusCode::OK);
}

#[tokio::test]
async fn ingest_bodies() {
    let app = TestApp::start().await;
    let with = |key: &str, value: Value| {
        let mut body = platform_event("acme", "property.created");
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = platform_event("acme", "property.created");
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases = [
        (
            "unknown event type",
            with("eventType", json!("property.exploded")),
            "eventType",
        ),
        (
            "eventType wrong type",
            with("eventType", json!(7)),
            "eventType",
        ),
        ("id not a UUID", with("id", json!("1234")), "id"),
        (
            "resourceId not a UUID",
            with("resourceId", json!("zz")),
            "resourceId",
        ),
        (
            "accountId too long",
            with("accountId", json!("a".repeat(129))),
            "accountId",
        ),
        (
            "accountId bad characters",
            with("accountId", json!("acme capital")),
            "accountId",
        ),
        (
            "resourceType too long",
            with("resourceType", json!("r".repeat(65))),
            "resourceType",
        ),
        (
            "resourceType empty",
            with("resourceType", json!("")),
            "resourceType",
        ),
        (
            "timestamp without offset",
            with("timestamp", json!("2026-11-01T09:30:00")),
            "timestamp",
        ),
        (
            "timestamp not a date",
            with("timestamp", json!("yesterday")),
            "timestamp",
        ),
        ("data not an object", with("data", json!([1])), "data"),
        ("data missing", without("data"), "data"),
        ("unknown field", with("tenant", json!("x")), "tenant"),
    ];
    for (case, body, field) in cases {
        let answer = post_json(&app, "/v1/platform/events", &body).await;
        assert_problem(&answer, 400, field, case);
    }
    for offset in ["+05:30", "-08:00", "+00:00", "Z", "+14:00"] {
        let body = with("timestamp", json!(format!("2026-11-01T09:30:00{offset}")));
        let answer = post_json(&app, "/v1/platform/events", &body).await;
        assert_eq!(answer.status, 202, "offset {offset}: {}", answer.body);
    }

    // 10,000 levels of nesting in data: rejected, not a stack overflow.
    let deep = format!(
        "{{\"eventType\":\"property.created\",\"accountId\":\"acme\",\"resourceType\":\"property\",\"resourceId\":\"{}\",\"data\":{}{}}}",
        uuid::Uuid::new_v4(),
        "{\"a\":".repeat(10_000) + "1",
        "}".repeat(10_000)
    );
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/platform/events",
        Some("application/json"),
        deep.into_bytes(),
    )
    .await;
    assert_problem(&answer, 400, "", "deeply nested data");
    let deep_array = "[".repeat(10_000) + &"]".repeat(10_000);
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/platform/events/batch",
        Some("application/json"),
        deep_array.into_bytes(),
    )
    .await;
    assert_problem(&answer, 400, "", "deeply nested batch");

    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/platform/events",
        Some("application/json"),
        vec![b' '; 262_145],
    )
    .await;
    assert_problem(&answer, 413, "", "event over the body limit");
    let answer = send(
        &app,
        reqwest::Method::POST,
        "/v1/platform/events",
        Some("application/xml"),
        b"<event/>".to_vec(),
    )
    .await;
    assert_problem(&answer, 415, "", "xml");
    let answer = post_json(&app, "/v1/platform/events/batch", &json!({"events": []})).await;
    assert_problem(&answer, 400, "", "batch not an array");
    let answer = post_json(&app, "/v1/platform/events/batch", &json!([])).await;
    assert_problem(&answer, 400, "", "empty batch");
    let too_many: Vec<Value> = (0..501)
        .map(|_| platform_event("acme", "lease.created"))
        .collect();
    let answer = post_json(&app, "/v1/platform/events/batch", &json!(too_many)).await;
    assert_problem(&answer, 400, "", "501 events");

    // A batch reports per item: bad items name their field, good ones are accepted.
    let batch = json!([
        platform_event("acme", "lease.created"),
        with("resourceId", json!("zz"))
    ]);
    let answer = post_json(&app, "/v1/platform/events/batch", &batch).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["accepted"], 1);
    assert_eq!(answer.body["rejected"], 1);
    assert_eq!(answer.body["results"][1]["status"], 400);
    assert_eq!(
        answer.body["results"][1]["problem"]["errors"][0]["field"],
        "resourceId"
    );
    assert_eq!(app.get("/v1/health", "").await.0, StatusCode::OK);
}

#[tokio::test]
async fn paths_and_queries() {
    let app = TestApp::start().await;
    // A path id that is not a UUID names no resource: 404, naming the field.
    let malformed_ids = [
        ("/v1/subscriptions/not-a-uuid", "subscriptionId"),
        ("/v1/subscriptions/%00", "subscriptionId"),
        ("/v1/subscriptions/%FF%FE", "subscriptionId"),
        ("/v1/events/12345", "eventId"),
    ];
    for (path, field) in malformed_ids {
        let answer = get(&app, path).await;
        assert_problem(&answer, 404, field, path);
        let detail = answer.body["detail"].as_str().unwrap_or("");
        assert!(detail.contains("must be a UUID"), "{path}: {detail}");
    }
    let cases = [
        ("/v1/events?subscriptionId=zzz", "subscriptionId"),
        ("/v1/events?subscriptionId=%FF%FE", "subscriptionId"),
        ("/v1/events?page=0", "page"),
        ("/v1/events?page=-1", "page"),
        ("/v1/events?page=abc", "page"),
        ("/v1/events?pageSize=101", "pageSize"),
        ("/v1/events?pageSize=0", "pageSize"),
        ("/v1/events?status=Lost", "status"),
        ("/v1/events?eventType=property.exploded", "eventType"),
        ("/v1/events?from=yesterday", "from"),
        ("/v1/events?to=2026-11-01T09:30:00", "to"),
        (
            "/v1/events?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            "from",
        ),
        ("/v1/subscriptions?status=Sleeping", "status"),
        ("/v1/subscriptions?eventType=nope", "eventType"),
    ];
    for (path, field) in cases {
        let answer = get(&app, path).await;
        assert_problem(&answer, 400, field, path);
    }
    let post = send(
        &app,
        reqwest::Method::POST,
        "/v1/events/zzz/retry",
        None,
        Vec::new(),
    )
    .await;
    assert_problem(&post, 404, "eventId", "retry with a bad id");

    for path in [
        "/v1/events?page=1&pageSize=100",
        "/v1/events?from=2026-11-01T09:30:00%2B05:30&to=2026-11-01T09:30:00-08:00",
        // A literal '+' in a query decodes to a space; the offset still counts.
        "/v1/events?from=2026-11-01T09:30:00+05:30",
        "/v1/events?from=2026-11-01T00:00:00Z&to=2026-11-01T00:00:00Z",
    ] {
        let answer = get(&app, path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }

    let answer = get(&app, "/v1/nothing").await;
    assert_problem(&answer, 404, "", "unknown route");
    let answer = get(&app, "/v2/subscriptions").await;
    assert_problem(&answer, 404, "", "unknown version");
    let answer = send(
        &app,
        reqwest::Method::PATCH,
        "/v1/subscriptions",
        None,
        Vec::new(),
    )
    .await;
    assert_problem(&answer, 405, "", "PATCH");
    assert!(
        answer.allow.contains("GET") && answer.allow.contains("POST"),
        "{}",
        answer.allow
    );
    let answer = send(
        &app,
        reqwest::Method::DELETE,
        "/v1/events",
        None,
        Vec::new(),
    )
    .await;
    assert_problem(&answer, 405, "", "DELETE events");
    assert_eq!(answer.allow, "GET, HEAD");
    let answer = send(
        &app,
        reqwest::Method::GET,
        "/v1/platform/events",
        None,
        Vec::new(),
    )
    .await;
    assert_problem(&answer, 405, "", "GET ingest");
}

/// Found by schemathesis: `null` for a non-nullable field was taken as
/// absent, and `6.0` for an integer field was rejected.
#[tokio::test]
async fn nulls_rejected_integral_floats_accepted() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let token = app.token("acme");
    for (key, field) in [
        ("description", "description"),
        ("secret", "secret"),
        ("retryPolicy", "retryPolicy"),
        ("url", "url"),
    ] {
        let mut body = json!({"url": receiver.url, "eventTypes": ["lease.created"]});
        body[key] = Value::Null;
        let answer = post_json(&app, "/v1/subscriptions", &body).await;
        assert_problem(&answer, 400, field, &format!("null {key}"));
    }
    let body = json!({"url": receiver.url, "eventTypes": ["lease.created"],
        "retryPolicy": {"maxRetries": null}});
    let answer = post_json(&app, "/v1/subscriptions", &body).await;
    assert_problem(&answer, 400, "retryPolicy.maxRetries", "null maxRetries");
    for key in ["timestamp", "id", "resourceType"] {
        let mut event = platform_event("acme", "lease.created");
        event[key] = Value::Null;
        let answer = post_json(&app, "/v1/platform/events", &event).await;
        assert_problem(&answer, 400, key, &format!("null {key}"));
    }

    let body = json!({"url": receiver.url, "eventTypes": ["lease.created"],
        "retryPolicy": {"maxRetries": 6.0, "retryIntervalSeconds": 60.0, "backoffMultiplier": 2}});
    let (status, sub) = app.post("/v1/subscriptions", &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["retryPolicy"]["maxRetries"], 6);
    assert_eq!(sub["retryPolicy"]["retryIntervalSeconds"], 60);
    let fractional = json!({"url": format!("{}/2", receiver.url), "eventTypes": ["lease.created"],
        "retryPolicy": {"maxRetries": 6.5}});
    let answer = post_json(&app, "/v1/subscriptions", &fractional).await;
    assert_problem(
        &answer,
        400,
        "retryPolicy.maxRetries",
        "fractional maxRetries",
    );

    let rotate = format!(
        "/v1/subscriptions/{}/rotate-secret",
        sub["id"].as_str().unwrap()
    );
    let (status, rotated) = app
        .post(&rotate, &token, &json!({"gracePeriodSeconds": 306.0}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let answer = post_json(&app, &rotate, &json!({"gracePeriodSeconds": null})).await;
    assert_problem(&answer, 400, "gracePeriodSeconds", "null grace period");
}

/// A request rejected before its whole body was read (too large, no token,
/// unknown route) still gets its response. Closing the connection while the
/// client was still sending made its write fail with a broken pipe, so it
/// never read the response.
#[tokio::test]
async fn rejected_large_bodies_get_responses() {
    let app = TestApp::start().await;
    let token = Some(app.token("acme-capital"));
    let publisher = Some(app.publisher_token());
    let large = vec![b' '; 2 * 1024 * 1024];
    let past_batch_limit = vec![b' '; 9 * 1024 * 1024];
    let missing = "/v1/subscriptions/00000000-0000-4000-8000-000000000000";
    let cases = [
        ("POST", "/v1/subscriptions", &token, &large, 413),
        ("PUT", missing, &token, &large, 413),
        (
            "POST",
            "/v1/platform/events/batch",
            &publisher,
            &past_batch_limit,
            413,
        ),
        ("POST", "/v1/subscriptions", &None, &large, 401),
        ("POST", "/v1/nothing-here", &token, &large, 404),
        ("PATCH", "/v1/subscriptions", &token, &large, 405),
    ];
    for round in 0..5 {
        for (method, path, token, body, expected) in &cases {
            let mut request = app
                .client
                .request(method.parse().unwrap(), format!("{}{path}", app.base))
                .header("content-type", "application/json")
                .body((*body).clone());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap_or_else(|error| {
                panic!("round {round}: {method} {path} got no response: {error:?}")
            });
            assert_eq!(
                response.status().as_u16(),
                *expected,
                "round {round}: {method} {path}"
            );
        }
    }
    let (status, _) = app
        .get("/v1/subscriptions", token.as_deref().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "the service still serves");
}

/// Returns the message of the first error that names `field`.
fn field_message(answer: &Answer, field: &str) -> String {
    answer.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["field"] == field)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error names '{field}': {}", answer.body))
        .to_string()
}

/// Unknown values are validation errors that name the field, the value
/// given and what is accepted, in bodies as in queries.
#[tokio::test]
async fn unknown_values_name_field_and_choices() {
    let app = TestApp::start().await;
    let validation = "urn:argus-webhooks:problem:validation-error";

    let mut body = subscription();
    body["eventTypes"] = json!(["property.created", "property.exploded"]);
    let answer = post_json(&app, "/v1/subscriptions", &body).await;
    assert_problem(&answer, 400, "eventTypes[1]", "unknown event type");
    assert_eq!(answer.body["type"], validation);
    let message = field_message(&answer, "eventTypes[1]");
    assert!(message.contains("got 'property.exploded'"), "{message}");
    assert!(message.contains("lease.created"), "{message}");

    let mut body = subscription();
    body["url"] = json!("ftp://127.0.0.1:9/hooks");
    let answer = post_json(&app, "/v1/subscriptions", &body).await;
    let message = field_message(&answer, "url");
    assert!(
        message.contains("https or http"),
        "http is allowed here: {message}"
    );

    let mut event = platform_event("acme-capital", "lease.created");
    event["eventType"] = json!("lease.exploded");
    event["resourceId"] = json!("r1");
    let answer = post_json(&app, "/v1/platform/events", &event).await;
    assert_problem(&answer, 400, "eventType", "unknown ingest event type");
    assert_eq!(answer.body["type"], validation);
    let message = field_message(&answer, "eventType");
    assert!(message.contains("got 'lease.exploded'"), "{message}");
    let message = field_message(&answer, "resourceId");
    assert!(message.contains("got 'r1'"), "{message}");

    let answer = get(&app, "/v1/events?eventType=lease.exploded").await;
    let message = field_message(&answer, "eventType");
    assert!(message.contains("got 'lease.exploded'"), "{message}");
}

/// A batch that is not an array gets a message that expects an array of
/// events.
#[tokio::test]
async fn batch_object_names_the_problem() {
    let app = TestApp::start().await;
    let event = platform_event("acme-capital", "lease.created");

    let answer = post_json(&app, "/v1/platform/events/batch", &event).await;

    assert_problem(&answer, 400, "", "batch as an object");
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("expected a JSON array of platform events; got an object"),
        "{detail}"
    );
}

/// A rejected request whose client stops sending the body gets its response
/// once the body pauses, not after the body read timeout.
#[tokio::test]
async fn rejected_stalled_body_gets_prompt_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /v1/subscriptions HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"url\": ";
    stream.write_all(head.as_bytes()).await.unwrap();

    // The body read timeout is 30 s; the client never sends the rest.
    let mut response = [0u8; 64];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read(&mut response),
    )
    .await;

    let read = read.expect("the 401 came before the body read timeout");
    let text = String::from_utf8_lossy(&response[..read.unwrap()]).to_string();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
}
