//! GET /metrics after a known workload: exact counter values, histogram
//! buckets, gauges, and label values that never carry ids, URLs or secrets.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use warp::http::StatusCode;

const ACCOUNT: &str = "acme-metrics";
const TIMEOUT: Duration = Duration::from_secs(30);

/// The documented histogram buckets, as Prometheus renders `le`.
const BUCKETS: [&str; 16] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "15", "30", "+Inf",
];

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text exposition format (comments skipped).
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let (labels, after) = parse_labels(&line[open + 1..]);
                (&line[..open], labels, after)
            }
            None => {
                let space = line.find(' ').expect("a sample has a value");
                (&line[..space], BTreeMap::new(), &line[space..])
            }
        };
        let value = rest
            .split_whitespace()
            .next()
            .expect("a sample has a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("invalid value in {line:?}")),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// Parses `key="value",...}` and returns the labels and the text after `}`.
fn parse_labels(text: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while let Some((_, ' ' | ',')) = chars.peek() {
            chars.next();
        }
        let (start, first) = chars.next().expect("labels end with }");
        if first == '}' {
            return (labels, &text[start + 1..]);
        }
        let mut key = first.to_string();
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        assert_eq!(
            chars.next().map(|(_, c)| c),
            Some('"'),
            "label {key} is quoted"
        );
        let mut value = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("unterminated escape"),
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.insert(key.trim().to_string(), value);
    }
}

/// Sums the samples of `name` whose labels include every pair of `filter`.
fn value(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            filter
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

fn has_series(samples: &[Sample], name: &str) -> bool {
    samples.iter().any(|s| s.name == name)
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    parse_metrics(&app.metrics().await)
}

fn fast_retry(max_retries: u32) -> Value {
    json!({"maxRetries": max_retries, "retryIntervalSeconds": 10, "backoffMultiplier": 1.0})
}

/// The workload shared by the tests below, with what it must have produced.
struct Workload {
    app: TestApp,
    token: String,
    subscription_ids: Vec<String>,
    event_ids: Vec<String>,
    secrets: Vec<String>,
    receiver_urls: Vec<String>,
}

/// Three property.created events delivered, two lease.created events that fail
/// three attempts each, one repeated platform event id, and a third
/// subscription paused.
async fn run_workload() -> Workload {
    let app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let ok = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let idle = Receiver::start().await;

    let delivered_sub = app
        .create_subscription(&token, &ok.url, &["property.created"], Some(fast_retry(2)))
        .await;
    let failing_sub = app
        .create_subscription(
            &token,
            &failing.url,
            &["lease.created"],
            Some(fast_retry(2)),
        )
        .await;
    let paused_sub = app
        .create_subscription(&token, &idle.url, &["tenant.created"], None)
        .await;
    let paused_id = paused_sub["id"].as_str().unwrap().to_string();
    let (status, body) = app
        .post_empty(&format!("/v1/subscriptions/{paused_id}/pause"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "pause failed: {body}");

    let mut event_ids = Vec::new();
    let first = platform_event(ACCOUNT, "property.created");
    for event in [
        first.clone(),
        platform_event(ACCOUNT, "property.created"),
        platform_event(ACCOUNT, "property.created"),
        platform_event(ACCOUNT, "lease.created"),
        platform_event(ACCOUNT, "lease.created"),
    ] {
        let result = app.publish(&event).await;
        assert_eq!(result["duplicate"], false, "{result}");
        assert_eq!(result["deliveries"], 1, "{result}");
        event_ids.push(result["events"][0]["id"].as_str().unwrap().to_string());
    }
    let repeated = app.publish(&first).await;
    assert_eq!(repeated["duplicate"], true, "{repeated}");

    for id in &event_ids[..3] {
        app.wait_for_event_status(&token, id, "Delivered", TIMEOUT)
            .await;
    }
    for id in &event_ids[3..] {
        app.wait_for_event_status(&token, id, "Failed", TIMEOUT)
            .await;
    }
    // The outcome counter moves just after the event is stored, so poll for it.
    let counted = wait_until(TIMEOUT, || async {
        value(&scrape(&app).await, "argus_webhooks_deliveries_total", &[]) == 5.0
    })
    .await;
    assert!(counted, "deliveries_total did not reach 5");

    let subscription_ids = [&delivered_sub, &failing_sub, &paused_sub]
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let secrets = [&delivered_sub, &failing_sub, &paused_sub]
        .iter()
        .map(|s| s["secret"].as_str().unwrap().to_string())
        .collect();
    Workload {
        app,
        token,
        subscription_ids,
        event_ids,
        secrets,
        receiver_urls: vec![ok.url, failing.url, idle.url],
    }
}

#[tokio::test]
async fn counters_match_known_workload() {
    let workload = run_workload().await;
    let app = &workload.app;
    let samples = scrape(app).await;

    let ingested = "argus_webhooks_events_ingested_total";
    assert_eq!(
        value(&samples, ingested, &[("event_type", "property.created")]),
        3.0
    );
    assert_eq!(
        value(&samples, ingested, &[("event_type", "lease.created")]),
        2.0
    );
    assert_eq!(value(&samples, ingested, &[]), 5.0);
    assert_eq!(
        value(&samples, "argus_webhooks_ingest_duplicates_total", &[]),
        1.0
    );

    let created = "argus_webhooks_events_created_total";
    assert_eq!(
        value(&samples, created, &[("event_type", "property.created")]),
        3.0
    );
    assert_eq!(
        value(&samples, created, &[("event_type", "lease.created")]),
        2.0
    );

    let deliveries = "argus_webhooks_deliveries_total";
    let delivered = [("event_type", "property.created"), ("outcome", "delivered")];
    let failed = [("event_type", "lease.created"), ("outcome", "failed")];
    assert_eq!(value(&samples, deliveries, &delivered), 3.0);
    assert_eq!(value(&samples, deliveries, &failed), 2.0);
    assert_eq!(value(&samples, deliveries, &[]), 5.0);

    // Verification requests are not delivery attempts.
    let attempts = "argus_webhooks_delivery_attempts_total";
    assert_eq!(value(&samples, attempts, &[("result", "2xx")]), 3.0);
    assert_eq!(value(&samples, attempts, &[("result", "5xx")]), 6.0);
    assert_eq!(value(&samples, attempts, &[]), 9.0);
    assert_eq!(
        value(
            &samples,
            "argus_webhooks_delivery_retries_scheduled_total",
            &[]
        ),
        4.0
    );

    let requests = "argus_webhooks_http_requests_total";
    let ingest = [("route", "/v1/platform/events"), ("method", "POST")];
    assert_eq!(
        value(
            &samples,
            requests,
            &[ingest[0], ingest[1], ("status", "202")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &samples,
            requests,
            &[ingest[0], ingest[1], ("status", "200")]
        ),
        1.0
    );
    let creates = [
        ("route", "/v1/subscriptions"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(value(&samples, requests, &creates), 3.0);
    let pause = [
        ("route", "/v1/subscriptions/{subscriptionId}/pause"),
        ("method", "POST"),
        ("status", "200"),
    ];
    assert_eq!(value(&samples, requests, &pause), 1.0);

    assert_eq!(value(&samples, "argus_webhooks_queue_depth", &[]), 0.0);
    assert_eq!(
        value(&samples, "argus_webhooks_deliveries_in_flight", &[]),
        0.0
    );
    let subscriptions = "argus_webhooks_subscriptions";
    assert_eq!(value(&samples, subscriptions, &[("status", "Active")]), 2.0);
    assert_eq!(value(&samples, subscriptions, &[("status", "Paused")]), 1.0);
    assert_eq!(
        value(&samples, subscriptions, &[("status", "Disabled")]),
        0.0
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(
            &samples,
            "argus_webhooks_build_info",
            &[("version", version)]
        ),
        1.0
    );
    assert!(value(&samples, "argus_webhooks_uptime_seconds", &[]) > 0.0);
}

#[tokio::test]
async fn fresh_service_exports_zero_series() {
    let app = TestApp::start().await;
    let samples = scrape(&app).await;
    let zeroed: [(&str, &[(&str, &str)]); 12] = [
        ("argus_webhooks_ingest_duplicates_total", &[]),
        ("argus_webhooks_delivery_retries_scheduled_total", &[]),
        ("argus_webhooks_deliveries_in_flight", &[]),
        ("argus_webhooks_queue_depth", &[]),
        ("argus_webhooks_subscription_actors", &[]),
        ("argus_webhooks_actor_restarts_total", &[]),
        ("argus_webhooks_store_errors_total", &[]),
        ("argus_webhooks_subscriptions", &[("status", "Active")]),
        ("argus_webhooks_subscriptions", &[("status", "Paused")]),
        ("argus_webhooks_subscriptions", &[("status", "Disabled")]),
        (
            "argus_webhooks_subscriptions_disabled_total",
            &[("reason", "gone")],
        ),
        (
            "argus_webhooks_subscriptions_disabled_total",
            &[("reason", "consecutive_failures")],
        ),
    ];
    for (name, labels) in zeroed {
        let present = samples.iter().any(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        });
        assert!(present, "{name}{labels:?} is missing at start");
        assert_eq!(value(&samples, name, labels), 0.0, "{name}{labels:?}");
    }
}

#[tokio::test]
async fn metrics_requests_are_counted() {
    let app = TestApp::start().await;
    let requests = "argus_webhooks_http_requests_total";
    let route = [("route", "/metrics"), ("method", "GET"), ("status", "200")];
    let first = value(&scrape(&app).await, requests, &route);
    let second = value(&scrape(&app).await, requests, &route);
    assert_eq!(second, first + 1.0);

    let (status, _) = app
        .request(reqwest::Method::GET, "/v1/no-such-route", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let samples = scrape(&app).await;
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    assert_eq!(value(&samples, requests, &unmatched), 1.0);

    // A known path with a method it does not accept is unmatched too.
    let (status, _) = app
        .request(reqwest::Method::PATCH, "/v1/health", None, None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let samples = scrape(&app).await;
    let other = [
        ("route", "unmatched"),
        ("method", "OTHER"),
        ("status", "405"),
    ];
    assert_eq!(value(&samples, requests, &other), 1.0);
}

#[tokio::test]
async fn histograms_have_documented_buckets() {
    let workload = run_workload().await;
    let samples = scrape(&workload.app).await;
    for histogram in [
        "argus_webhooks_delivery_attempt_duration_seconds",
        "argus_webhooks_http_request_duration_seconds",
        "argus_webhooks_store_flush_duration_seconds",
    ] {
        let bucket_name = format!("{histogram}_bucket");
        let buckets: Vec<&Sample> = samples.iter().filter(|s| s.name == bucket_name).collect();
        assert!(!buckets.is_empty(), "{histogram} has no _bucket series");
        let bounds: BTreeSet<&str> = buckets
            .iter()
            .map(|s| s.labels.get("le").expect("a bucket has le").as_str())
            .collect();
        let expected: BTreeSet<&str> = BUCKETS.into_iter().collect();
        assert_eq!(bounds, expected, "{histogram} buckets");
        assert!(
            has_series(&samples, &format!("{histogram}_sum")),
            "{histogram}_sum"
        );
        assert!(
            has_series(&samples, &format!("{histogram}_count")),
            "{histogram}_count"
        );
    }

    // Buckets are cumulative and +Inf equals the count of attempts.
    let attempt = "argus_webhooks_delivery_attempt_duration_seconds";
    for (result, attempts) in [("2xx", 3.0), ("5xx", 6.0)] {
        let mut previous = 0.0;
        for le in BUCKETS {
            let count = value(
                &samples,
                &format!("{attempt}_bucket"),
                &[("result", result), ("le", le)],
            );
            assert!(
                count >= previous,
                "bucket {le} of {result} is below the one before"
            );
            previous = count;
        }
        assert_eq!(previous, attempts, "+Inf bucket of {result}");
        assert_eq!(
            value(&samples, &format!("{attempt}_count"), &[("result", result)]),
            attempts
        );
    }
}

#[tokio::test]
async fn labels_carry_no_ids_or_urls() {
    let workload = run_workload().await;
    let app = &workload.app;
    // Requests whose paths carry ids must be recorded under their templates.
    let sub_id = &workload.subscription_ids[0];
    let (status, _) = app
        .get(&format!("/v1/subscriptions/{sub_id}"), &workload.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let event_id = &workload.event_ids[0];
    let (status, _) = app
        .get(&format!("/v1/events/{event_id}"), &workload.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .get(
            &format!("/v1/subscriptions/{sub_id}/{ACCOUNT}"),
            &workload.token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let samples = scrape(app).await;
    let mut forbidden: Vec<String> = Vec::new();
    forbidden.extend(workload.subscription_ids.iter().cloned());
    forbidden.extend(workload.event_ids.iter().cloned());
    forbidden.extend(workload.secrets.iter().cloned());
    forbidden.extend(workload.receiver_urls.iter().cloned());
    forbidden.push(ACCOUNT.to_string());
    // The publisher's account id, "platform", is also a word of the ingest
    // route template, so only the subscribers' account is checked.
    forbidden.push("127.0.0.1".to_string());
    forbidden.push("://".to_string());
    forbidden.push(TEST_JWT_SECRET.to_string());

    let templates: BTreeSet<String> = argus_webhooks::api::route_table()
        .into_iter()
        .map(|(_, template)| template)
        .chain(["unmatched".to_string()])
        .collect();
    for sample in &samples {
        for (key, label) in &sample.labels {
            for needle in &forbidden {
                assert!(
                    !label.contains(needle.as_str()),
                    "{}{{{key}=\"{label}\"}} contains {needle:?}",
                    sample.name
                );
            }
            if key == "route" {
                assert!(
                    templates.contains(label),
                    "route label {label:?} is not a template"
                );
            }
        }
    }
    let get_sub = [
        ("route", "/v1/subscriptions/{subscriptionId}"),
        ("method", "GET"),
    ];
    assert_eq!(
        value(&samples, "argus_webhooks_http_requests_total", &get_sub),
        1.0
    );
    let get_event = [
        ("route", "/v1/events/{eventId}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    // wait_for_event_status polls this route too, so at least one request.
    assert!(value(&samples, "argus_webhooks_http_requests_total", &get_event) >= 1.0);
}

#[test]
fn parser_reads_labels_and_escapes() {
    let samples = parse_metrics(
        "# HELP x help\nx_total{a=\"1\",b=\"q\\\"uote\"} 3\ny 4.5\nz_bucket{le=\"+Inf\"} 7\n",
    );
    assert_eq!(samples.len(), 3);
    assert_eq!(samples[0].labels["b"], "q\"uote");
    assert_eq!(samples[0].value, 3.0);
    assert_eq!(samples[1].value, 4.5);
    assert_eq!(samples[2].labels["le"], "+Inf");
}
