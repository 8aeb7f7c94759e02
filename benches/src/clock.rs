//! The benchmark clock: monotonic nanoseconds since the first call, shared by
//! load generators and receivers in this process, so a latency is a
//! difference of two readings of the same clock.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
