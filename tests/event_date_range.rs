//! Event listings filtered by a date range, against the real binary. The
//! service sums in-memory counts per time bucket and scans only the edges of
//! the range. These tests compare `pagination.totalItems` and the listed
//! items with a count made from each event's `createdAt`. The windows start
//! and end inside buckets, on bucket boundaries and between events, and are
//! checked again after a restart, a deletion and pruning change the counts.

mod common;
mod core_support;

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use warp::http::StatusCode;

use common::*;
use core_support::*;

const ACCOUNT: &str = "acme-capital";
/// The events must span at least this many milliseconds, so that windows
/// cover several of the service's 100 ms time buckets.
const MIN_SPAN_MILLIS: i64 = 450;
const MAX_PUBLISHES: usize = 1_500;
const PAGE_SIZE: usize = 100;

/// One stored event, as the unfiltered listing returns it.
#[derive(Clone, Debug, PartialEq)]
struct Stored {
    id: String,
    millis: i64,
    status: String,
    event_type: String,
    subscription: String,
}

/// A listing filter besides the date range: query text and the same test on
/// a stored event.
struct Filter {
    query: String,
    accepts: Box<dyn Fn(&Stored) -> bool>,
}

fn stamp(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/events?{query}"), token).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

/// Returns every event of the account through the unfiltered listing.
async fn all_events(app: &TestApp, token: &str) -> Vec<Stored> {
    let mut events = Vec::new();
    for page in 1.. {
        let body = list(app, token, &format!("page={page}&pageSize={PAGE_SIZE}")).await;
        let data = body["data"].as_array().unwrap();
        if data.is_empty() {
            break;
        }
        for item in data {
            let created = DateTime::parse_from_rfc3339(item["createdAt"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            events.push(Stored {
                id: item["id"].as_str().unwrap().to_string(),
                millis: created,
                status: item["status"].as_str().unwrap().to_string(),
                event_type: item["eventType"].as_str().unwrap().to_string(),
                subscription: item["subscriptionId"].as_str().unwrap().to_string(),
            });
        }
    }
    events
}

/// Lists every page of one window and filter and compares the totals and the
/// items, newest first, with the events that `createdAt` puts in the window.
async fn check_window(
    app: &TestApp,
    token: &str,
    events: &[Stored],
    window: (Option<i64>, Option<i64>),
    filter: &Filter,
) {
    let (from, to) = window;
    let mut expected: Vec<&Stored> = events
        .iter()
        .filter(|e| from.is_none_or(|f| e.millis >= f) && to.is_none_or(|t| e.millis <= t))
        .filter(|e| (filter.accepts)(e))
        .collect();
    // Hyphenated lowercase UUIDs sort like their bytes, so like UUID v7 time.
    expected.sort_by(|a, b| b.id.cmp(&a.id));
    let expected: Vec<&str> = expected.iter().map(|e| e.id.as_str()).collect();

    let mut params = Vec::new();
    if let Some(from) = from {
        params.push(format!("from={}", stamp(from)));
    }
    if let Some(to) = to {
        params.push(format!("to={}", stamp(to)));
    }
    if !filter.query.is_empty() {
        params.push(filter.query.clone());
    }
    let query = params.join("&");
    let pages = expected.len().div_ceil(PAGE_SIZE);
    let mut listed = Vec::new();
    // One page more than needed: the page beyond the last is empty.
    for page in 1..=pages + 1 {
        let page_query = format!("{query}&pageSize={PAGE_SIZE}&page={page}");
        let body = list(app, token, &page_query).await;
        assert_eq!(
            body["pagination"]["totalItems"],
            expected.len(),
            "{page_query}: totalItems"
        );
        let ids = ids(&body);
        if page > pages {
            assert!(ids.is_empty(), "{page_query}: page beyond the last");
        }
        listed.extend(ids);
    }
    assert_eq!(listed, expected, "{query}: items, newest first");

    // A small middle page starts inside the matches.
    if expected.len() >= 14 {
        let page_query = format!("{query}&pageSize=7&page=2");
        let body = list(app, token, &page_query).await;
        assert_eq!(ids(&body), expected[7..14], "{page_query}: second page");
    }
}

/// Windows around the events' times: edges inside buckets, on bucket
/// boundaries, one millisecond, open-ended, and empty ones.
fn windows(events: &[Stored]) -> Vec<(Option<i64>, Option<i64>)> {
    let first = events.iter().map(|e| e.millis).min().unwrap();
    let last = events.iter().map(|e| e.millis).max().unwrap();
    let middle = events[events.len() / 2].millis;
    let boundary = (first / 100 + 1) * 100;
    vec![
        (Some(first), Some(last)),
        (Some(first + 37), Some(last - 23)),
        (Some(first + 130), Some(first + 371)),
        (Some(boundary), Some(boundary + 199)),
        (Some(boundary - 1), Some(boundary + 100)),
        (Some(boundary - 3), Some(boundary + 3)),
        (Some(middle), Some(middle)),
        (Some(middle + 1), None),
        (None, Some(middle)),
        (None, None),
        (Some(last + 1), Some(last + 500)),
        (Some(first - 1_000), Some(first - 1)),
    ]
}

fn filters(paused: &str, active: &str) -> Vec<Filter> {
    let (paused, active) = (paused.to_string(), active.to_string());
    let paused_copy = paused.clone();
    let active_copy = active.clone();
    vec![
        Filter {
            query: String::new(),
            accepts: Box::new(|_| true),
        },
        Filter {
            query: "status=Pending".into(),
            accepts: Box::new(|e| e.status == "Pending"),
        },
        Filter {
            query: "status=Delivered".into(),
            accepts: Box::new(|e| e.status == "Delivered"),
        },
        Filter {
            query: "status=Failed".into(),
            accepts: Box::new(|e| e.status == "Failed"),
        },
        Filter {
            query: "eventType=tenant.created".into(),
            accepts: Box::new(|e| e.event_type == "tenant.created"),
        },
        Filter {
            query: "eventType=lease.created&status=Pending".into(),
            accepts: Box::new(|e| e.event_type == "lease.created" && e.status == "Pending"),
        },
        Filter {
            query: format!("subscriptionId={paused}"),
            accepts: Box::new(move |e| e.subscription == paused_copy),
        },
        Filter {
            query: format!("subscriptionId={active}&status=Delivered"),
            accepts: Box::new(move |e| e.subscription == active_copy && e.status == "Delivered"),
        },
        Filter {
            query: format!("subscriptionId={active}&eventType=property.created"),
            accepts: Box::new(move |e| {
                e.subscription == active && e.event_type == "property.created"
            }),
        },
    ]
}

/// Two subscriptions of the account, and the events published to them.
struct Setup {
    paused: String,
    active: String,
    /// Events created for the active subscription.
    active_events: usize,
}

/// Creates a paused subscription, whose events stay Pending, and an active
/// one, then publishes until the events span several buckets and waits until
/// the active subscription has delivered all of its events.
async fn publish_spanning(app: &TestApp, token: &str) -> Setup {
    let (_paused_receiver, paused) =
        subscribe(app, token, &["lease.created", "tenant.created"], None).await;
    let paused = id_of(&paused);
    let (status, body) = app
        .post_empty(&format!("/v1/subscriptions/{paused}/pause"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "pause: {body}");
    let (active_receiver, active) =
        subscribe(app, token, &["lease.created", "property.created"], None).await;
    let active = id_of(&active);

    let types = ["lease.created", "tenant.created", "property.created"];
    let started = Instant::now();
    let mut span = 0;
    let mut first_millis = None;
    let mut active_events = 0;
    for n in 0..MAX_PUBLISHES {
        let event_type = types[n % types.len()];
        let result = app.publish(&platform_event(ACCOUNT, event_type)).await;
        for event in result["events"].as_array().unwrap() {
            let id = uuid::Uuid::parse_str(event["id"].as_str().unwrap()).unwrap();
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            let millis = secs as i64 * 1000 + i64::from(nanos / 1_000_000);
            span = millis - *first_millis.get_or_insert(millis);
            if event["subscriptionId"] == active.as_str() {
                active_events += 1;
            }
        }
        if span >= MIN_SPAN_MILLIS {
            break;
        }
    }
    assert!(
        span >= MIN_SPAN_MILLIS,
        "{MAX_PUBLISHES} events in {:?} spanned only {span} ms",
        started.elapsed()
    );
    active_receiver
        .wait_for(active_events, Duration::from_secs(60))
        .await;
    let delivered_query = format!("subscriptionId={active}&status=Delivered");
    let recorded = wait_until(Duration::from_secs(30), || async {
        list(app, token, &delivered_query).await["pagination"]["totalItems"] == active_events
    })
    .await;
    assert!(
        recorded,
        "every delivery of the active subscription was recorded"
    );
    Setup {
        paused,
        active,
        active_events,
    }
}

/// Checks every window with every filter against `events`.
async fn check_all(app: &TestApp, token: &str, events: &[Stored], setup: &Setup) {
    let filters = filters(&setup.paused, &setup.active);
    for window in windows(events) {
        for filter in &filters {
            check_window(app, token, events, window, filter).await;
        }
    }
}

#[tokio::test]
async fn date_range_totals_match_created_at() {
    let mut app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let setup = publish_spanning(&app, &token).await;
    let events = all_events(&app, &token).await;
    assert!(events.iter().any(|e| e.status == "Pending"));
    assert_eq!(
        events.iter().filter(|e| e.status == "Delivered").count(),
        setup.active_events
    );
    check_all(&app, &token, &events, &setup).await;

    // A restart rebuilds the counts from the store.
    app.restart().await;
    let after_restart = all_events(&app, &token).await;
    assert_eq!(after_restart, events, "the restart changed no event");
    check_all(&app, &token, &events, &setup).await;

    // Deleting the paused subscription fails its Pending events.
    let (status, body) = app
        .delete(&format!("/v1/subscriptions/{}", setup.paused), &token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "delete: {body}");
    let failed = wait_until(Duration::from_secs(30), || async {
        list(&app, &token, "status=Pending").await["pagination"]["totalItems"] == 0
    })
    .await;
    assert!(failed, "the deleted subscription's events left Pending");
    let after_delete = all_events(&app, &token).await;
    assert_eq!(
        after_delete.len(),
        events.len(),
        "deletion keeps the events"
    );
    assert!(after_delete.iter().any(|e| e.status == "Failed"));
    check_all(&app, &token, &after_delete, &setup).await;
}

#[tokio::test]
async fn date_range_totals_follow_pruning() {
    let mut config = AppConfig::default();
    // 0.00001 days is 0.864 s, so Delivered events are soon pruned.
    config
        .set("retention", "days", "0.00001")
        .set("retention", "interval_seconds", "0.2");
    let app = TestApp::start_with(config).await;
    let token = app.token(ACCOUNT);
    let setup = publish_spanning(&app, &token).await;
    let pruned = wait_until(Duration::from_secs(30), || async {
        list(&app, &token, "status=Delivered").await["pagination"]["totalItems"] == 0
    })
    .await;
    assert!(pruned, "Delivered events were pruned");
    let events = all_events(&app, &token).await;
    assert!(!events.is_empty(), "Pending events stay");
    assert!(events.iter().all(|e| e.status == "Pending"));
    check_all(&app, &token, &events, &setup).await;
}

#[tokio::test]
async fn date_range_excludes_other_accounts() {
    let app = TestApp::start().await;
    let token = app.token(ACCOUNT);
    let other = app.token("harbor-reit");
    subscribe(&app, &token, &["lease.created"], None).await;
    subscribe(&app, &other, &["lease.created"], None).await;
    let mut times = Vec::new();
    for account in [ACCOUNT, "harbor-reit", ACCOUNT] {
        let result = app.publish(&platform_event(account, "lease.created")).await;
        let id = result["events"][0]["id"].as_str().unwrap().to_string();
        let event = app
            .event(if account == ACCOUNT { &token } else { &other }, &id)
            .await;
        times.push(
            DateTime::parse_from_rfc3339(event["createdAt"].as_str().unwrap())
                .unwrap()
                .timestamp_millis(),
        );
    }
    let query = format!(
        "from={}&to={}",
        stamp(times[0] - 1_000),
        stamp(times[2] + 1_000)
    );
    let body = list(&app, &token, &query).await;
    assert_eq!(body["pagination"]["totalItems"], 2, "{body}");
    assert_eq!(ids(&body).len(), 2);
    let body = list(&app, &other, &query).await;
    assert_eq!(body["pagination"]["totalItems"], 1, "{body}");
}
