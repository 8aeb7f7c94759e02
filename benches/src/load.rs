//! Load generators: payload bodies, the plain-reqwest ceiling, ingest drivers
//! (single events with N clients, batches) and a fixed-rate sender. Every loop
//! stops at its count or its deadline, whichever comes first.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::clock;
use crate::receiver::Receiver;
use crate::service::{ACCOUNT, Service};

/// Size of the delivered payload (`Event.payload`) that every scenario and the ceiling send.
pub const PAYLOAD_BYTES: usize = 1024;
pub const EVENT_TYPE: &str = "property.updated";

/// Builds platform event bodies whose delivered payload is `PAYLOAD_BYTES` long.
#[derive(Clone)]
pub struct Events {
    filler: Arc<str>,
}

impl Default for Events {
    fn default() -> Self {
        // The delivered payload adds eventId, timestamp (with microseconds) and
        // the other fields to `data`; measure that overhead on a sample.
        let sample = json!({
            "eventId": uuid::Uuid::now_v7(),
            "eventType": EVENT_TYPE,
            "timestamp": "2026-12-04T21:00:00.123456Z",
            "resourceType": "property",
            "resourceId": uuid::Uuid::new_v4(),
            "data": {"sentNs": 1_000_000_000_000u64, "filler": ""},
        });
        let overhead = sample.to_string().len();
        Events {
            filler: "x".repeat(PAYLOAD_BYTES.saturating_sub(overhead)).into(),
        }
    }
}

impl Events {
    /// Builds one platform event of `event_type`, stamped with the benchmark clock.
    pub fn value(&self, event_type: &str) -> serde_json::Value {
        json!({
            "eventType": event_type,
            "accountId": ACCOUNT,
            "resourceType": event_type.split('.').next().unwrap_or("property"),
            "resourceId": uuid::Uuid::new_v4(),
            "data": {"sentNs": clock::now_ns(), "filler": &*self.filler},
        })
    }

    pub fn single(&self, event_type: &str) -> String {
        self.value(event_type).to_string()
    }

    pub fn batch(&self, event_type: &str, count: usize) -> String {
        serde_json::Value::Array((0..count).map(|_| self.value(event_type)).collect()).to_string()
    }

    /// Builds a body shaped like a delivered payload, for the ceiling.
    fn payload(&self) -> String {
        json!({
            "eventId": uuid::Uuid::now_v7(),
            "eventType": EVENT_TYPE,
            "timestamp": "2026-12-04T21:00:00.123456Z",
            "resourceType": "property",
            "resourceId": uuid::Uuid::new_v4(),
            "data": {"sentNs": clock::now_ns(), "filler": &*self.filler},
        })
        .to_string()
    }
}

/// Outcome of a bounded load loop.
pub struct Done {
    pub count: u64,
    pub elapsed: Duration,
}

impl Done {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `workers` loops that each call `work` until `total` calls started or
/// `limit` passed. `work` gets the call's index and returns how many items it handled.
pub async fn run_workers<F, Fut>(
    workers: usize,
    total: u64,
    limit: Duration,
    work: F,
) -> anyhow::Result<Done>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send,
{
    let started = Instant::now();
    let deadline = started + limit;
    let issued = Arc::new(AtomicU64::new(0));
    let handled = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (issued, handled, work) = (issued.clone(), handled.clone(), work.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let index = issued.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                handled.fetch_add(work(index).await?, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(Done {
        count: handled.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// Posts `total` delivery-shaped 1 KiB requests with delivery-style headers
/// straight to `receiver` from `concurrency` clients: the loopback ceiling.
pub async fn ceiling_rate(
    receiver: &Receiver,
    concurrency: usize,
    total: u64,
    limit: Duration,
) -> anyhow::Result<Done> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = receiver.url("ceiling");
    let events = Events::default();
    let signature = format!("v1,{}", "A".repeat(44));
    run_workers(concurrency, total, limit, move |_| {
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .header("user-agent", "argus-webhooks/0.1.0")
            .header("x-argus-event-type", EVENT_TYPE)
            .header("webhook-id", uuid::Uuid::now_v7().to_string())
            .header("webhook-timestamp", "1796418000")
            .header("webhook-signature", &signature)
            .body(events.payload());
        async move {
            let response = request.send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "the receiver answered {}",
                response.status()
            );
            response.bytes().await?;
            Ok(1)
        }
    })
    .await
}

/// Measures the ceiling's latency: plain reqwest posts at `rate` per second
/// for `duration`. Each latency is arrival at the receiver minus send time.
pub async fn ceiling_latency(
    receiver: &Receiver,
    rate: u64,
    duration: Duration,
) -> anyhow::Result<Vec<u64>> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = receiver.url("ceiling");
    let events = Events::default();
    receiver.record_latency(true);
    fixed_rate(rate, duration, move || {
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(events.payload());
        async move {
            request.send().await?.bytes().await?;
            Ok(())
        }
    })
    .await?;
    receiver.record_latency(false);
    Ok(receiver.take_latencies())
}

/// Starts `send` `rate` times per second for `duration`, each in its own task,
/// and waits up to 30 s past the end for the sends to finish.
pub async fn fixed_rate<F, Fut>(rate: u64, duration: Duration, send: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        interval.tick().await;
        tasks.spawn(send());
    }
    let finished = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        anyhow::Ok(())
    })
    .await;
    finished.map_err(|_| anyhow::anyhow!("sends still running 30 s after the fixed-rate phase"))?
}

/// Ingests `total` single events from `clients` concurrent clients.
pub async fn ingest_singles(
    service: &Arc<Service>,
    events: &Events,
    clients: usize,
    total: u64,
    limit: Duration,
) -> anyhow::Result<Done> {
    let (service, events) = (service.clone(), events.clone());
    run_workers(clients, total, limit, move |_| {
        let (service, body) = (service.clone(), events.single(EVENT_TYPE));
        async move {
            service.ingest(body).await?;
            Ok(1)
        }
    })
    .await
}

/// Ingests `total` events (rounded up to whole batches) of `event_type` in batches of `size` from `clients` clients.
pub async fn ingest_batches(
    service: &Arc<Service>,
    events: &Events,
    event_type: &'static str,
    size: usize,
    clients: usize,
    total: u64,
    limit: Duration,
) -> anyhow::Result<Done> {
    let (service, events) = (service.clone(), events.clone());
    let batches = total.div_ceil(size as u64);
    run_workers(clients, batches, limit, move |_| {
        let (service, body) = (service.clone(), events.batch(event_type, size));
        async move {
            service.ingest_batch(body, size).await?;
            Ok(size as u64)
        }
    })
    .await
}

/// Waits until `receiver` counted `target` deliveries or `limit` passed;
/// returns the count reached and the time since `since`.
pub async fn wait_deliveries(
    receiver: &Receiver,
    target: u64,
    since: Instant,
    limit: Duration,
) -> Done {
    let deadline = Instant::now() + limit;
    while receiver.deliveries() < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Done {
        count: receiver.deliveries(),
        elapsed: since.elapsed(),
    }
}
