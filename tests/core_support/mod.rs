//! Helpers shared by the core end-to-end tests (subscriptions, events,
//! delivery, tenancy, examples). Builds on the harness in `tests/common`.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use warp::http::StatusCode;

use crate::common::{Receiver, TestApp};

/// Returns a loopback URL on which nothing listens, because its port was bound and released.
pub fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hooks")
}

/// Sends a request and returns status, headers and the JSON (or text) body.
pub async fn send_raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = app.client.request(method, format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("the service answers");
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, value)
}

/// Returns the `field` names of a problem's `errors` array.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(String::from))
        .collect()
}

/// Asserts that `body` is a problem document with `status`, and returns it.
pub fn assert_problem(status: StatusCode, body: &Value, expected: u16) {
    assert_eq!(status.as_u16(), expected, "unexpected status; body: {body}");
    assert_eq!(body["status"], expected, "problem status; body: {body}");
    assert!(body["type"].is_string(), "problem type; body: {body}");
    assert!(body["title"].is_string(), "problem title; body: {body}");
    assert!(body["detail"].is_string(), "problem detail; body: {body}");
}

/// Returns the ids of a list response's `data` items, in order.
pub fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .expect("a list has data")
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until every event id in `ids` has `status`.
pub async fn wait_all_status(app: &TestApp, token: &str, ids: &[String], status: &str) {
    for id in ids {
        app.wait_for_event_status(token, id, status, Duration::from_secs(30))
            .await;
    }
}

/// Creates a subscription on a fresh receiver and returns both.
pub async fn subscribe(
    app: &TestApp,
    token: &str,
    event_types: &[&str],
    retry: Option<Value>,
) -> (Receiver, Value) {
    let receiver = Receiver::start().await;
    let sub = app
        .create_subscription(token, &receiver.url, event_types, retry)
        .await;
    (receiver, sub)
}

/// Returns the subscription id of a created subscription.
pub fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .expect("the subscription has an id")
        .to_string()
}

/// Starts a minimal HTTP endpoint that returns 200 to every request, echoes a
/// verification challenge and closes each connection after one response.
/// Aborting the returned task closes the port, so the endpoint becomes
/// unreachable.
pub async fn closable_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let Ok(read) = stream.read(&mut chunk).await else {
                    break None;
                };
                if read == 0 {
                    break None;
                }
                buffer.extend_from_slice(&chunk[..read]);
                let text = String::from_utf8_lossy(&buffer).to_string();
                let Some(end) = text.find("\r\n\r\n") else {
                    continue;
                };
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    break Some(buffer[end + 4..end + 4 + length].to_vec());
                }
            };
            let json: Value = body
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            let answer = serde_json::json!({"challenge": json["challenge"]}).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, task)
}
