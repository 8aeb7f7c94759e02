//! Scenarios of moving events: delivery throughput, durable ingest, end-to-end
//! latency and isolation from hanging endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{in_flight, start, subscribe};
use crate::Args;
use crate::load::{self, EVENT_TYPE, Events};
use crate::receiver::Receiver;
use crate::report::{Sample, Target, Versus, quantile_ms};
use crate::service::{Service, machine_cpu_ticks, process_cpu_seconds};

/// Batch size of the steady-ingest and pre-load phases.
const BATCH: usize = 500;

/// Fan-out 1 and 10: a paused backlog released by resume, then steady batch ingest.
pub async fn throughput(args: &Args, receiver: &Receiver) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let events = Events::default();
    for fan_out in [1usize, 10] {
        let service = start(args, in_flight(args.concurrency, fan_out))?;
        let ids = subscribe(
            &service,
            receiver,
            &format!("fan-out-{fan_out}"),
            EVENT_TYPE,
            fan_out,
        )
        .await?;
        for id in &ids {
            service.pause(id).await?;
        }
        let count = args.deliveries / fan_out as u64;
        let deliveries = count * fan_out as u64;
        load::ingest_batches(&service, &events, EVENT_TYPE, BATCH, 2, count, args.limit()).await?;

        let before = receiver.deliveries();
        let started = Instant::now();
        for id in &ids {
            service.resume(id).await?;
        }
        let done =
            load::wait_deliveries(receiver, before + deliveries, started, args.limit()).await;
        let rate = report_rate(done.count - before, deliveries, done.elapsed, "resume");
        samples.push(Sample::new(
            format!("fan-out {fan_out}: resume of a paused backlog"),
            "deliveries/s",
            rate,
            Versus::Rate,
            Target::RatioAtLeast(0.5),
        ));

        let before = receiver.deliveries();
        let cpu = CpuUse::start(&service)?;
        let started = Instant::now();
        load::ingest_batches(&service, &events, EVENT_TYPE, BATCH, 2, count, args.limit()).await?;
        let done =
            load::wait_deliveries(receiver, before + deliveries, started, args.limit()).await;
        let rate = report_rate(
            done.count - before,
            deliveries,
            done.elapsed,
            "steady ingest",
        );
        samples.push(Sample::new(
            format!("fan-out {fan_out}: steady batch ingest"),
            "deliveries/s",
            rate,
            Versus::Rate,
            Target::RatioAtLeast(0.5),
        ));
        samples.extend(cpu.samples(
            &service,
            &format!("fan-out {fan_out}: steady batch ingest"),
            done.count - before,
        )?);
    }
    Ok(samples)
}

/// CPU time spent during a phase: by the service, by this benchmark
/// process (load, receivers) and by the whole machine.
struct CpuUse {
    service: f64,
    bench: f64,
    machine: (u64, u64),
}

impl CpuUse {
    fn start(service: &Service) -> anyhow::Result<CpuUse> {
        Ok(CpuUse {
            service: service.cpu_seconds()?,
            bench: process_cpu_seconds("/proc/self/stat")?,
            machine: machine_cpu_ticks()?,
        })
    }

    /// Figures for `phase`, which handled `deliveries`: service and
    /// benchmark CPU time per delivery, and how busy the machine's cores
    /// were.
    fn samples(
        &self,
        service: &Service,
        phase: &str,
        deliveries: u64,
    ) -> anyhow::Result<Vec<Sample>> {
        let per_delivery = |seconds: f64| seconds * 1e6 / deliveries.max(1) as f64;
        let service_cpu = per_delivery(service.cpu_seconds()? - self.service);
        let bench_cpu = per_delivery(process_cpu_seconds("/proc/self/stat")? - self.bench);
        let (busy, total) = machine_cpu_ticks()?;
        let busy_share = (busy - self.machine.0) as f64 / (total - self.machine.1).max(1) as f64;
        Ok(vec![
            Sample::new(
                format!("{phase}: service CPU per delivery"),
                "µs",
                service_cpu,
                Versus::Nothing,
                Target::None,
            ),
            Sample::new(
                format!("{phase}: benchmark CPU per delivery (load and receivers)"),
                "µs",
                bench_cpu,
                Versus::Nothing,
                Target::None,
            ),
            Sample::new(
                format!("{phase}: machine CPU busy"),
                "%",
                busy_share * 100.0,
                Versus::Nothing,
                Target::None,
            ),
        ])
    }
}

/// Deliveries per second; warns when the time limit cut the phase short.
fn report_rate(delivered: u64, expected: u64, elapsed: Duration, phase: &str) -> f64 {
    if delivered < expected {
        eprintln!(
            "warning: {phase}: {delivered} of {expected} deliveries arrived within the time limit"
        );
    }
    delivered as f64 / elapsed.as_secs_f64()
}

/// Durable ingest into one paused subscription: 64 single-event clients, then
/// batches, each with the store's flush count and mean flush time.
pub async fn ingest(args: &Args) -> anyhow::Result<Vec<Sample>> {
    let events = Events::default();
    let sink = Receiver::start().await?;
    let service = start(args, Vec::new())?;
    let id = service
        .create_subscription(&sink.url("ingest"), EVENT_TYPE)
        .await?;
    service.pause(&id).await?;

    let flushes = FlushStats::read(&service).await?;
    let single =
        load::ingest_singles(&service, &events, 64, args.ingest_events, args.limit()).await?;
    let single_flushes = FlushStats::read(&service).await?.since(&flushes);
    let batch = load::ingest_batches(
        &service,
        &events,
        EVENT_TYPE,
        args.batch_size,
        args.batch_clients,
        args.batch_events,
        args.limit(),
    )
    .await?;
    let batch_flushes = FlushStats::read(&service)
        .await?
        .since(&single_flushes.total);

    let mut samples = vec![Sample::new(
        "single events, 64 clients",
        "events/s",
        single.rate(),
        Versus::Rate,
        Target::AtLeast(10_000.0),
    )];
    samples.extend(single_flushes.samples("single events", single.count));
    samples.push(Sample::new(
        format!(
            "batches of {}, {} clients",
            args.batch_size, args.batch_clients
        ),
        "events/s",
        batch.rate(),
        Versus::Rate,
        Target::AtLeast(30_000.0),
    ));
    samples.extend(batch_flushes.samples("batches", batch.count));
    Ok(samples)
}

/// Count and total seconds of the store's group-commit flushes, from `/metrics`.
#[derive(Clone, Copy, Default)]
struct FlushStats {
    count: f64,
    seconds: f64,
}

/// Flushes of one phase, with the running totals at its end.
struct FlushDelta {
    delta: FlushStats,
    total: FlushStats,
}

impl FlushStats {
    async fn read(service: &Service) -> anyhow::Result<FlushStats> {
        let metric = "argus_webhooks_store_flush_duration_seconds";
        Ok(FlushStats {
            count: service
                .metric(&format!("{metric}_count"))
                .await?
                .unwrap_or(0.0),
            seconds: service
                .metric(&format!("{metric}_sum"))
                .await?
                .unwrap_or(0.0),
        })
    }

    fn since(self, earlier: &FlushStats) -> FlushDelta {
        FlushDelta {
            delta: FlushStats {
                count: self.count - earlier.count,
                seconds: self.seconds - earlier.seconds,
            },
            total: self,
        }
    }
}

impl FlushDelta {
    fn samples(&self, phase: &str, events: u64) -> Vec<Sample> {
        let FlushStats { count, seconds } = self.delta;
        vec![
            Sample::new(
                format!("{phase}: events per store flush"),
                "count",
                events as f64 / count.max(1.0),
                Versus::Nothing,
                Target::None,
            ),
            Sample::new(
                format!("{phase}: mean store flush (sled flush + fsync)"),
                "ms",
                seconds * 1e3 / count.max(1.0),
                Versus::Nothing,
                Target::None,
            ),
        ]
    }
}

/// Ingest-to-arrival latency at a fixed rate of single events.
pub async fn latency(args: &Args, receiver: &Receiver) -> anyhow::Result<Vec<Sample>> {
    let service = start(args, in_flight(args.concurrency, 1))?;
    service
        .create_subscription(&receiver.url("latency"), EVENT_TYPE)
        .await?;
    let (p50, p99) = measure_latency(&service, receiver, args.rate, args.latency_seconds).await?;
    Ok(vec![
        Sample::new(
            format!("latency p50 at {}/s", args.rate),
            "ms",
            p50,
            Versus::P50,
            Target::AtMost(2.0),
        ),
        Sample::new(
            format!("latency p99 at {}/s", args.rate),
            "ms",
            p99,
            Versus::P99,
            Target::AtMost(10.0),
        ),
    ])
}

/// Sends single events at `rate` per second for 1 s of warm-up and `seconds`
/// measured; returns p50 and p99 in ms of arrival at `receiver` minus send time.
async fn measure_latency(
    service: &Arc<Service>,
    receiver: &Receiver,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<(f64, f64)> {
    let events = Events::default();
    let send = {
        let service = service.clone();
        move || {
            let (service, body) = (service.clone(), events.single(EVENT_TYPE));
            async move { service.ingest(body).await }
        }
    };
    load::fixed_rate(rate, Duration::from_secs(1), send.clone()).await?;
    let before = receiver.deliveries();
    receiver.record_latency(true);
    load::fixed_rate(rate, Duration::from_secs(seconds), send).await?;
    let expected = before + rate * seconds;
    let done =
        load::wait_deliveries(receiver, expected, Instant::now(), Duration::from_secs(60)).await;
    receiver.record_latency(false);
    let mut latencies = receiver.take_latencies();
    if done.count < expected {
        eprintln!(
            "warning: {} of {} measured deliveries arrived; the rest count as missing, not as latency",
            done.count - before,
            expected - before
        );
    }
    Ok((
        quantile_ms(&mut latencies, 0.5),
        quantile_ms(&mut latencies, 0.99),
    ))
}

/// A healthy subscription's latency alone, then beside `--hanging` subscriptions
/// whose endpoint never responds (each attempt ends at the service's timeout).
pub async fn isolation(args: &Args, receiver: &Receiver) -> anyhow::Result<Vec<Sample>> {
    let settings = || {
        vec![(
            "delivery",
            "max_in_flight_per_subscription",
            "4".to_string(),
        )]
    };
    let alone = start(args, settings())?;
    alone
        .create_subscription(&receiver.url("healthy"), EVENT_TYPE)
        .await?;
    let (alone_p50, alone_p99) = measure_latency(
        &alone,
        receiver,
        args.isolation_rate,
        args.isolation_seconds,
    )
    .await?;
    drop(alone);

    let hanging = Receiver::start().await?;
    hanging.set_hang(true);
    let shared = start(args, settings())?;
    subscribe(
        &shared,
        &hanging,
        "hanging",
        EVENT_TYPE,
        args.hanging as usize,
    )
    .await?;
    shared
        .create_subscription(&receiver.url("healthy"), EVENT_TYPE)
        .await?;
    let (shared_p50, shared_p99) = measure_latency(
        &shared,
        receiver,
        args.isolation_rate,
        args.isolation_seconds,
    )
    .await?;
    drop(shared);

    // Control: as many subscriptions to the same event type whose endpoints
    // respond at once. It has the same fan-out as the hanging run, so the two
    // differ only in whether the other endpoints hang.
    let responsive = Receiver::start().await?;
    let control = start(args, settings())?;
    subscribe(
        &control,
        &responsive,
        "responsive",
        EVENT_TYPE,
        args.hanging as usize,
    )
    .await?;
    control
        .create_subscription(&receiver.url("healthy"), EVENT_TYPE)
        .await?;
    let (control_p50, control_p99) = measure_latency(
        &control,
        receiver,
        args.isolation_rate,
        args.isolation_seconds,
    )
    .await?;
    let rate = args.isolation_rate;
    let n = args.hanging;
    Ok(vec![
        Sample::new(
            format!("alone: p50 at {rate}/s"),
            "ms",
            alone_p50,
            Versus::P50,
            Target::None,
        ),
        Sample::new(
            format!("alone: p99 at {rate}/s"),
            "ms",
            alone_p99,
            Versus::P99,
            Target::None,
        ),
        Sample::new(
            format!("beside {n} hanging: p50 at {rate}/s"),
            "ms",
            shared_p50,
            Versus::P50,
            Target::None,
        ),
        Sample::new(
            format!("beside {n} hanging: p99 at {rate}/s"),
            "ms",
            shared_p99,
            Versus::P99,
            Target::None,
        ),
        Sample::new(
            "p99 beside hanging / p99 alone",
            "ratio",
            shared_p99 / alone_p99,
            Versus::Nothing,
            Target::AtMost(1.5),
        ),
        Sample::new(
            format!("control, beside {n} responsive: p50 at {rate}/s"),
            "ms",
            control_p50,
            Versus::P50,
            Target::None,
        ),
        Sample::new(
            format!("control, beside {n} responsive: p99 at {rate}/s"),
            "ms",
            control_p99,
            Versus::P99,
            Target::None,
        ),
        Sample::new(
            "p99 beside hanging / p99 beside responsive",
            "ratio",
            shared_p99 / control_p99,
            Versus::Nothing,
            Target::None,
        ),
    ])
}
