//! The OpenAPI document and the served routes agree: every route the service
//! serves is documented, every documented operation is served, and
//! `GET /v1/openapi.json` returns the document.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn document() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml"))
            .expect("openapi/openapi.yaml is readable");
    serde_yaml::from_str(&text).expect("openapi/openapi.yaml is valid YAML")
}

fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

fn served_operations() -> BTreeSet<(String, String)> {
    argus_webhooks::api::route_table().into_iter().collect()
}

#[test]
fn every_served_route_is_documented() {
    let documented = documented_operations(&document());
    let missing: Vec<_> = served_operations()
        .difference(&documented)
        .cloned()
        .collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
}

#[test]
fn every_documented_route_is_served() {
    let documented = documented_operations(&document());
    let extra: Vec<_> = documented
        .difference(&served_operations())
        .cloned()
        .collect();
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
}

#[test]
fn request_bodies_reject_unknown_fields() {
    let document = document();
    for schema in [
        "SubscriptionInput",
        "SubscriptionUpdateInput",
        "RetryPolicyInput",
        "RotateSecretInput",
        "PlatformEventInput",
    ] {
        assert_eq!(
            document["components"]["schemas"][schema]["additionalProperties"],
            Value::Bool(false),
            "{schema} must document that unknown fields are rejected"
        );
    }
}

#[test]
fn protected_operations_document_401() {
    let document = document();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let public = operation["security"] == serde_json::json!([]);
            let responses = operation["responses"].as_object().unwrap();
            if !public {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path} lacks 404");
            }
        }
    }
}

#[tokio::test]
async fn served_document_equals_the_file() {
    let app = TestApp::start().await;
    let response = app
        .client
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: Value = response.json().await.unwrap();
    assert_eq!(served, document());
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
}
