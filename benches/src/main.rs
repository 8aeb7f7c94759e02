//! Benchmarks of the argus-webhooks release binary. Each scenario starts the
//! service with a temporary data dir, drives load through the public API to
//! receivers on loopback, and prints one Markdown table with the median, min
//! and max over several runs. Each figure is also shown as a ratio to the
//! ceiling of its run: a plain reqwest client posting to the same receiver.

mod clock;
mod load;
mod receiver;
mod report;
mod scenarios;
mod service;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, ValueEnum};

use report::{Ceiling, Table};

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Scenario {
    Ceiling,
    Throughput,
    Ingest,
    Latency,
    Scale,
    Backlog,
    Queries,
    Recovery,
    Isolation,
    All,
}

/// Benchmarks argus-webhooks against the loopback ceiling of this machine.
/// Build the service first with `cargo build --release`.
#[derive(Parser, Clone, Debug)]
pub struct Args {
    pub scenario: Scenario,
    /// Runs per scenario; the table shows median, min and max over them.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Service binary [default: target/release/argus-webhooks of this workspace].
    #[arg(long)]
    pub service_bin: Option<PathBuf>,
    /// Concurrent requests of the ceiling, and attempts in flight the service may
    /// use in the throughput scenarios (split evenly over the fan-out).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Requests of the ceiling's throughput measurement.
    #[arg(long, default_value_t = 20_000)]
    pub ceiling_requests: u64,
    /// Deliveries per throughput measurement (events × fan-out).
    #[arg(long, default_value_t = 30_000)]
    pub deliveries: u64,
    /// Events of the single-event ingest measurement (64 clients).
    #[arg(long, default_value_t = 20_000)]
    pub ingest_events: u64,
    /// Events of the batch ingest measurement.
    #[arg(long, default_value_t = 60_000)]
    pub batch_events: u64,
    /// Concurrent clients of the batch ingest measurement.
    #[arg(long, default_value_t = 4)]
    pub batch_clients: usize,
    /// Events per request of the batch ingest measurement (the service accepts at most 500).
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Events per second of the latency measurements.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Seconds of the latency measurement, after 1 s of warm-up.
    #[arg(long, default_value_t = 10)]
    pub latency_seconds: u64,
    /// Idle subscriptions of the scale scenario.
    #[arg(long, default_value_t = 100_000)]
    pub subscriptions: u64,
    /// Seconds the scale scenario may spend creating subscriptions; it reports how many it created.
    #[arg(long, default_value_t = 180)]
    pub create_seconds: u64,
    /// Queued events of the backlog scenario.
    #[arg(long, default_value_t = 200_000)]
    pub backlog_events: u64,
    /// Stored events of the queries scenario.
    #[arg(long, default_value_t = 100_000)]
    pub query_events: u64,
    /// Requests per query kind of the queries scenario.
    #[arg(long, default_value_t = 200)]
    pub queries: u64,
    /// Pending events of the recovery scenario.
    #[arg(long, default_value_t = 100_000)]
    pub recovery_events: u64,
    /// Subscriptions with hanging endpoints in the isolation scenario.
    #[arg(long, default_value_t = 20)]
    pub hanging: u64,
    /// Events per second of the isolation scenario.
    #[arg(long, default_value_t = 200)]
    pub isolation_rate: u64,
    /// Seconds of the isolation measurement, after 1 s of warm-up.
    #[arg(long, default_value_t = 10)]
    pub isolation_seconds: u64,
    /// Maximum time of any one load loop, in seconds.
    #[arg(long, default_value_t = 180)]
    pub time_limit: u64,
}

impl Args {
    pub fn limit(&self) -> Duration {
        Duration::from_secs(self.time_limit)
    }
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut args = Args::parse();
    let binary = args.service_bin.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/argus-webhooks")
    });
    if !binary.is_file() {
        bail!(
            "the service binary {} is missing; build it first with `cargo build --release` (or pass --service-bin)",
            binary.display()
        );
    }
    args.service_bin = Some(binary);
    clock::now_ns();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let scenarios = match args.scenario {
        Scenario::All => vec![
            Scenario::Ceiling,
            Scenario::Throughput,
            Scenario::Ingest,
            Scenario::Latency,
            Scenario::Scale,
            Scenario::Backlog,
            Scenario::Queries,
            Scenario::Recovery,
            Scenario::Isolation,
        ],
        one => vec![one],
    };
    for scenario in scenarios {
        let mut table = Table::default();
        for run in 1..=args.runs {
            eprintln!("{scenario:?}: run {run} of {}", args.runs);
            let receiver = receiver::Receiver::start().await?;
            let ceiling = measure_ceiling(&args, &receiver).await?;
            let samples = scenarios::run(scenario, &args, &receiver, &ceiling).await?;
            table.push(ceiling, samples);
        }
        println!("{}", table.render(&format!("{scenario:?}").to_lowercase()));
    }
    Ok(())
}

/// The ceiling of this run: plain reqwest throughput at `--concurrency`, then
/// latency at `--rate` for 2 s, both to `receiver`.
async fn measure_ceiling(args: &Args, receiver: &receiver::Receiver) -> anyhow::Result<Ceiling> {
    let done = load::ceiling_rate(
        receiver,
        args.concurrency,
        args.ceiling_requests,
        args.limit(),
    )
    .await?;
    let mut latencies = load::ceiling_latency(receiver, args.rate, Duration::from_secs(2)).await?;
    Ok(Ceiling {
        rate: done.rate(),
        p50_ms: report::quantile_ms(&mut latencies, 0.5),
        p99_ms: report::quantile_ms(&mut latencies, 0.99),
    })
}
