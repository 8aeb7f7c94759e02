//! Logging and metrics setup.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Histogram buckets in seconds, for HTTP latencies from 1 ms to 30 s.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
];

/// Installs the tracing subscriber, writing to stderr. `format` is "text" or "json".
pub fn init_logging(format: &str, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes when stderr goes to a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
}

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    describe_metrics();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    let _ = HANDLE.set(handle.clone());
    Ok(handle)
}

/// Registers help texts and creates the series that should exist from the
/// start, so dashboards and alerts see zeros instead of missing data.
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "argus_webhooks_events_ingested_total",
        "Platform events newly accepted by ingest."
    );
    describe_counter!(
        "argus_webhooks_ingest_duplicates_total",
        "Platform events ingested again with a known id; nothing was created."
    );
    describe_counter!(
        "argus_webhooks_events_created_total",
        "Per-subscription events created by fan-out."
    );
    describe_counter!(
        "argus_webhooks_deliveries_total",
        "Events that finished, by outcome (delivered or failed)."
    );
    describe_counter!(
        "argus_webhooks_delivery_attempts_total",
        "Delivery attempts by result class."
    );
    describe_histogram!(
        "argus_webhooks_delivery_attempt_duration_seconds",
        Unit::Seconds,
        "Duration of delivery attempts."
    );
    describe_counter!(
        "argus_webhooks_delivery_retries_scheduled_total",
        "Retries scheduled after failed attempts."
    );
    describe_gauge!(
        "argus_webhooks_deliveries_in_flight",
        "Delivery attempts in flight."
    );
    describe_gauge!(
        "argus_webhooks_queue_depth",
        "Events that are Pending or Retrying."
    );
    describe_gauge!("argus_webhooks_subscriptions", "Subscriptions by status.");
    describe_gauge!(
        "argus_webhooks_subscription_actors",
        "Live subscription actors."
    );
    describe_counter!(
        "argus_webhooks_subscriptions_disabled_total",
        "Subscriptions disabled by the service, by reason."
    );
    describe_counter!(
        "argus_webhooks_actor_restarts_total",
        "Subscription actors restarted after a failure."
    );
    describe_counter!(
        "argus_webhooks_http_requests_total",
        "HTTP API requests by route template, method and status."
    );
    describe_histogram!(
        "argus_webhooks_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP API request duration."
    );
    describe_histogram!(
        "argus_webhooks_store_flush_duration_seconds",
        Unit::Seconds,
        "Duration of group-commit flushes."
    );
    describe_counter!(
        "argus_webhooks_store_errors_total",
        "Failed store reads and writes."
    );
    describe_gauge!(
        "argus_webhooks_uptime_seconds",
        Unit::Seconds,
        "Seconds since the service started."
    );
    describe_gauge!(
        "argus_webhooks_build_info",
        "Always 1; the version label names the build."
    );

    metrics::gauge!("argus_webhooks_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("argus_webhooks_deliveries_in_flight").set(0.0);
    for reason in ["gone", "consecutive_failures"] {
        metrics::counter!("argus_webhooks_subscriptions_disabled_total", "reason" => reason)
            .absolute(0);
    }
    metrics::counter!("argus_webhooks_actor_restarts_total").absolute(0);
    metrics::counter!("argus_webhooks_store_errors_total").absolute(0);
    metrics::counter!("argus_webhooks_ingest_duplicates_total").absolute(0);
    metrics::counter!("argus_webhooks_delivery_retries_scheduled_total").absolute(0);
}
