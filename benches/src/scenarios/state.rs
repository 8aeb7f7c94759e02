//! Scenarios of stored state: many idle subscriptions, a large paused backlog,
//! queries over many stored events, and recovery of pending events after a crash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{SecondsFormat, Utc};

use super::{in_flight, secs, start};
use crate::load::{self, EVENT_TYPE, Events};
use crate::receiver::Receiver;
use crate::report::{Sample, Target, Versus, quantile_ms};
use crate::service::Service;
use crate::{Args, clock};

const BATCH: usize = 500;
/// Idle time after which the scale scenario's service stops a subscription actor, in seconds.
const SCALE_IDLE_SECONDS: u64 = 2;
/// Subscriptions per account in the scale scenario: the default `limits.max_subscriptions_per_account`.
const SUBSCRIPTIONS_PER_ACCOUNT: u64 = 100;

/// Idle subscriptions: memory per subscription beyond the empty process, and start-up time.
pub async fn scale(args: &Args, receiver: &Receiver) -> anyhow::Result<Vec<Sample>> {
    let settings = vec![(
        "engine",
        "idle_actor_timeout_seconds",
        SCALE_IDLE_SECONDS.to_string(),
    )];
    let service = start(args, settings)?;
    service
        .call(reqwest::Method::GET, "/v1/subscriptions", None)
        .await?;
    let empty_kib = service.rss_kib()?;

    let creator = service.clone();
    let urls = receiver.clone();
    let created = load::run_workers(
        16,
        args.subscriptions,
        Duration::from_secs(args.create_seconds),
        move |index| {
            let (service, url) = (creator.clone(), urls.url(&format!("scale/{index}")));
            let account = format!("scale-{}", index / SUBSCRIPTIONS_PER_ACCOUNT);
            async move {
                service
                    .create_subscription_of(&account, &url, EVENT_TYPE)
                    .await?;
                Ok(1)
            }
        },
    )
    .await?;
    if created.count < args.subscriptions {
        eprintln!(
            "warning: created {} of {} subscriptions within {} s",
            created.count, args.subscriptions, args.create_seconds
        );
    }
    let live_created = wait_for_idle_actors(&service).await?;
    let created_kib = service.rss_kib()?;

    let mut service = Arc::into_inner(service).context("no other owner of the service remains")?;
    service.terminate()?;
    let started = Instant::now();
    let listening = tokio::task::block_in_place(|| service.launch())?;
    let deadline = started + Duration::from_secs(60);
    while service
        .call(reqwest::Method::GET, "/v1/health", None)
        .await
        .map(|(s, _)| s)
        .ok()
        != Some(200)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let serving = started.elapsed();
    let service = Arc::new(service);
    let live_restarted = wait_for_idle_actors(&service).await?;
    let restarted_kib = service.rss_kib()?;

    let per_sub = |kib: u64| (kib.saturating_sub(empty_kib)) as f64 / created.count.max(1) as f64;
    Ok(vec![
        Sample::new(
            "subscriptions created",
            "count",
            created.count as f64,
            Versus::Nothing,
            Target::None,
        ),
        Sample::new(
            "create rate (each verifies its endpoint)",
            "1/s",
            created.rate(),
            Versus::Nothing,
            Target::None,
        ),
        Sample::new(
            "live actors when measured, after creating them",
            "count",
            live_created,
            Versus::Nothing,
            Target::None,
        ),
        Sample::new(
            "live actors when measured, after a restart",
            "count",
            live_restarted,
            Versus::Nothing,
            Target::None,
        ),
        Sample::new(
            "RSS of the empty process",
            "MiB",
            empty_kib as f64 / 1024.0,
            Versus::Nothing,
            Target::None,
        ),
        Sample::new(
            "RSS per idle subscription, after creating them",
            "KiB",
            per_sub(created_kib),
            Versus::Nothing,
            Target::AtMost(2.0),
        ),
        Sample::new(
            "RSS per idle subscription, after a restart",
            "KiB",
            per_sub(restarted_kib),
            Versus::Nothing,
            Target::AtMost(2.0),
        ),
        Sample::new(
            "start-up to listening",
            "s",
            secs(listening),
            Versus::Nothing,
            Target::None,
        ),
        Sample::new(
            "start-up to serving (first health 200)",
            "s",
            secs(serving),
            Versus::Nothing,
            Target::AtMost(5.0),
        ),
    ])
}

/// Waits up to 30 s until the service reports no live subscription actors;
/// returns the number still live.
async fn wait_for_idle_actors(service: &Service) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let live = service
            .metric("argus_webhooks_subscription_actors")
            .await?
            .unwrap_or(f64::NAN);
        if live == 0.0 {
            return Ok(live);
        }
        if Instant::now() >= deadline {
            eprintln!("warning: {live} subscription actors still live 30 s after the last request");
            return Ok(live);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Measures a paused subscription with `--backlog-events` queued: memory, then the resume rate.
pub async fn backlog(args: &Args, receiver: &Receiver) -> anyhow::Result<Vec<Sample>> {
    let events = Events::default();
    let service = start(args, in_flight(args.concurrency, 1))?;
    let id = service
        .create_subscription(&receiver.url("backlog"), EVENT_TYPE)
        .await?;
    service.pause(&id).await?;
    let ingested = load::ingest_batches(
        &service,
        &events,
        EVENT_TYPE,
        BATCH,
        2,
        args.backlog_events,
        args.limit(),
    )
    .await?;
    let rss_kib = service.rss_kib()?;

    let before = receiver.deliveries();
    let started = Instant::now();
    service.resume(&id).await?;
    let done =
        load::wait_deliveries(receiver, before + ingested.count, started, args.limit()).await;
    let delivered = done.count - before;
    if delivered < ingested.count {
        eprintln!(
            "warning: {delivered} of {} queued events delivered within the time limit",
            ingested.count
        );
    }
    Ok(vec![
        Sample::new(
            "events queued",
            "count",
            ingested.count as f64,
            Versus::Nothing,
            Target::None,
        ),
        Sample::new(
            "ingest rate while paused (batches of 500)",
            "events/s",
            ingested.rate(),
            Versus::Rate,
            Target::None,
        ),
        Sample::new(
            "RSS with the backlog queued",
            "MiB",
            rss_kib as f64 / 1024.0,
            Versus::Nothing,
            Target::AtMost(256.0),
        ),
        Sample::new(
            "resume rate",
            "deliveries/s",
            delivered as f64 / done.elapsed.as_secs_f64(),
            Versus::Rate,
            Target::RatioAtLeast(0.5),
        ),
    ])
}

/// `GET /v1/events` latency with `--query-events` stored: half Pending in a
/// paused subscription, half Delivered by an active one.
pub async fn queries(args: &Args, receiver: &Receiver) -> anyhow::Result<Vec<Sample>> {
    const OTHER_TYPE: &str = "lease.updated";
    let events = Events::default();
    let service = start(args, in_flight(args.concurrency, 1))?;
    let paused = service
        .create_subscription(&receiver.url("queries/paused"), EVENT_TYPE)
        .await?;
    service.pause(&paused).await?;
    service
        .create_subscription(&receiver.url("queries/active"), OTHER_TYPE)
        .await?;

    let before = receiver.deliveries();
    let first = Utc::now();
    let half = args.query_events / 2;
    let (a, b) = tokio::join!(
        load::ingest_batches(&service, &events, EVENT_TYPE, BATCH, 1, half, args.limit()),
        load::ingest_batches(&service, &events, OTHER_TYPE, BATCH, 1, half, args.limit()),
    );
    let last = Utc::now();
    let delivered_target = before + b?.count;
    let stored = a?.count + (delivered_target - before);
    load::wait_deliveries(receiver, delivered_target, Instant::now(), args.limit()).await;

    let span = last - first;
    let from = (first + span / 4).to_rfc3339_opts(SecondsFormat::Millis, true);
    let to = (first + span * 3 / 4).to_rfc3339_opts(SecondsFormat::Millis, true);
    let kinds = [
        ("by subscription", format!("subscriptionId={paused}")),
        ("by status Delivered", "status=Delivered".to_string()),
        (
            "by date range (middle half)",
            format!("from={from}&to={to}"),
        ),
    ];
    let mut samples = vec![Sample::new(
        "events stored",
        "count",
        stored as f64,
        Versus::Nothing,
        Target::None,
    )];
    for (name, query) in kinds {
        let mut latencies = Vec::new();
        let mut total_items = 0;
        for _ in 0..args.queries {
            let path = format!(
                "/v1/events?{}&pageSize=25",
                query.replace(':', "%3A").replace('+', "%2B")
            );
            let sent = clock::now_ns();
            let (status, body) = service.call(reqwest::Method::GET, &path, None).await?;
            latencies.push(clock::now_ns() - sent);
            anyhow::ensure!(status == 200, "GET {path} returned {status}: {body}");
            total_items = body["pagination"]["totalItems"]
                .as_u64()
                .context("pagination.totalItems is missing")?;
        }
        samples.push(Sample::new(
            format!("{name}: totalItems"),
            "count",
            total_items as f64,
            Versus::Nothing,
            Target::None,
        ));
        samples.push(Sample::new(
            format!("{name}: p50"),
            "ms",
            quantile_ms(&mut latencies, 0.5),
            Versus::P50,
            Target::None,
        ));
        samples.push(Sample::new(
            format!("{name}: p99"),
            "ms",
            quantile_ms(&mut latencies, 0.99),
            Versus::P99,
            Target::AtMost(20.0),
        ));
    }
    Ok(samples)
}

/// `--recovery-events` Pending events, SIGKILL, restart: time from spawn to the first delivery.
pub async fn recovery(args: &Args) -> anyhow::Result<Vec<Sample>> {
    let events = Events::default();
    let endpoint = Receiver::start().await?;
    endpoint.set_hang(true);
    let service = start(args, Vec::new())?;
    service
        .create_subscription(&endpoint.url("recovery"), EVENT_TYPE)
        .await?;
    let ingested = load::ingest_batches(
        &service,
        &events,
        EVENT_TYPE,
        BATCH,
        2,
        args.recovery_events,
        args.limit(),
    )
    .await?;
    // The first attempt hangs at the endpoint, so every other event stays Pending.
    load::wait_deliveries(&endpoint, 1, Instant::now(), Duration::from_secs(30)).await;

    let mut service = Arc::into_inner(service).context("no other owner of the service remains")?;
    service.kill();
    endpoint.set_hang(false);
    endpoint.reset_first_arrival();
    let spawned = clock::now_ns();
    let listening = tokio::task::block_in_place(|| service.launch())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while endpoint.first_arrival_ns().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let first = endpoint
        .first_arrival_ns()
        .context("no delivery within 60 s of the restart")?;
    Ok(vec![
        Sample::new(
            "events pending at the crash",
            "count",
            ingested.count as f64,
            Versus::Nothing,
            Target::None,
        ),
        Sample::new(
            "restart to listening",
            "s",
            secs(listening),
            Versus::Nothing,
            Target::None,
        ),
        Sample::new(
            "restart to first delivery",
            "s",
            (first - spawned) as f64 / 1e9,
            Versus::Nothing,
            Target::AtMost(2.0),
        ),
    ])
}
