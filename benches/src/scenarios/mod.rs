//! The scenarios. Each run starts its own service (fresh data dir) and returns
//! its samples; the caller has already measured the ceiling of the run.

mod flow;
mod state;

use std::sync::Arc;
use std::time::Duration;

use crate::receiver::Receiver;
use crate::report::{Ceiling, Sample};
use crate::service::{Service, Settings};
use crate::{Args, Scenario};

pub async fn run(
    scenario: Scenario,
    args: &Args,
    receiver: &Receiver,
    _ceiling: &Ceiling,
) -> anyhow::Result<Vec<Sample>> {
    match scenario {
        Scenario::Ceiling | Scenario::All => Ok(Vec::new()),
        Scenario::Throughput => flow::throughput(args, receiver).await,
        Scenario::Ingest => flow::ingest(args).await,
        Scenario::Latency => flow::latency(args, receiver).await,
        Scenario::Isolation => flow::isolation(args, receiver).await,
        Scenario::Scale => state::scale(args, receiver).await,
        Scenario::Backlog => state::backlog(args, receiver).await,
        Scenario::Queries => state::queries(args, receiver).await,
        Scenario::Recovery => state::recovery(args).await,
    }
}

/// Starts the service; the start blocks this worker thread until the service listens.
fn start(args: &Args, settings: Settings) -> anyhow::Result<Arc<Service>> {
    let binary = args.service_bin.clone().expect("main sets the binary");
    tokio::task::block_in_place(|| Service::start(&binary, &settings)).map(Arc::new)
}

/// Settings that let the service use `in_flight` attempts in total, split over `fan_out` subscriptions.
fn in_flight(in_flight: usize, fan_out: usize) -> Settings {
    vec![
        (
            "delivery",
            "max_in_flight_per_subscription",
            in_flight.div_ceil(fan_out).to_string(),
        ),
        ("delivery", "max_in_flight_total", in_flight.to_string()),
    ]
}

/// Creates `count` subscriptions to `event_type` at distinct paths `{prefix}/{i}` of `receiver`.
async fn subscribe(
    service: &Service,
    receiver: &Receiver,
    prefix: &str,
    event_type: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        ids.push(
            service
                .create_subscription(&receiver.url(&format!("{prefix}/{i}")), event_type)
                .await?,
        );
    }
    Ok(ids)
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}
