//! State shared by every actor: the store, the delivery client, settings and
//! live counters.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::delivery::DeliveryClient;
use crate::model::SubscriptionStatus;
use crate::store::Store;

/// Engine settings that are not the store's or the delivery client's.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Multiplies every delivery delay (retry schedule, `Retry-After`,
    /// recovery spread). 1.0 in production; tests shrink it.
    pub time_scale: f64,
    /// Attempts in flight per subscription; 1 keeps strict order.
    pub max_in_flight_per_subscription: usize,
    /// Queued event ids a subscription actor keeps in memory; the rest stay on disk.
    pub queue_window: usize,
    /// Events in a row that end Failed before a subscription is disabled; 0 never disables.
    pub disable_after_failed_events: u32,
    /// Gap between retries that fell due while the service was down.
    pub recovery_spread: Duration,
    /// Idle time after which a subscription actor with no work stops.
    pub idle_actor_timeout: Duration,
    /// Restarts allowed per subscription actor within `restart_window`.
    pub restart_budget: u32,
    pub restart_window: Duration,
    pub max_subscriptions_per_account: usize,
    /// Delivered and Failed events older than this are pruned.
    pub retention: Duration,
    pub retention_interval: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            max_in_flight_per_subscription: 1,
            queue_window: 256,
            disable_after_failed_events: 100,
            recovery_spread: Duration::from_millis(50),
            idle_actor_timeout: Duration::from_secs(300),
            restart_budget: 5,
            restart_window: Duration::from_secs(60),
            max_subscriptions_per_account: 100,
            retention: Duration::from_secs(30 * 86_400),
            retention_interval: Duration::from_secs(3600),
        }
    }
}

pub struct Context {
    pub store: Store,
    pub client: DeliveryClient,
    pub settings: EngineSettings,
    /// Set on shutdown: actors start no new attempt.
    pub draining: AtomicBool,
    pub in_flight: AtomicI64,
    pub live_actors: AtomicI64,
    /// Bytes of the records that subscription actors keep from arrival
    /// messages (see `subscription::arrived`).
    pub arrived_bytes: AtomicUsize,
    subscriptions_by_status: [AtomicI64; 3],
    attempt_stats: Mutex<AttemptStats>,
}

impl Context {
    pub fn new(store: Store, client: DeliveryClient, settings: EngineSettings) -> Self {
        Self {
            store,
            client,
            settings,
            draining: AtomicBool::new(false),
            in_flight: AtomicI64::new(0),
            live_actors: AtomicI64::new(0),
            arrived_bytes: AtomicUsize::new(0),
            subscriptions_by_status: Default::default(),
            attempt_stats: Mutex::new(AttemptStats::default()),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Records a subscription's status change; `None` means created or deleted.
    pub fn status_changed(&self, old: Option<SubscriptionStatus>, new: Option<SubscriptionStatus>) {
        if let Some(old) = old {
            self.subscriptions_by_status[old as usize].fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(new) = new {
            self.subscriptions_by_status[new as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn subscriptions_with_status(&self, status: SubscriptionStatus) -> i64 {
        self.subscriptions_by_status[status as usize].load(Ordering::Relaxed)
    }

    pub fn record_attempt(&self, success: bool) {
        let mut stats = self.attempt_stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.record(Instant::now(), success);
    }

    /// Percentage of failed attempts over the last hour, 0 when there were none.
    pub fn recent_error_rate(&self) -> f64 {
        let mut stats = self.attempt_stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.error_rate(Instant::now())
    }
}

/// Attempt counts in one-minute buckets over the last hour.
#[derive(Default)]
struct AttemptStats {
    /// (bucket start, attempts, failures), oldest first.
    buckets: VecDeque<(Instant, u64, u64)>,
}

const BUCKET: Duration = Duration::from_secs(60);
const WINDOW: Duration = Duration::from_secs(3600);

impl AttemptStats {
    fn record(&mut self, now: Instant, success: bool) {
        self.expire(now);
        let needs_bucket = match self.buckets.back() {
            Some((start, _, _)) => now.duration_since(*start) >= BUCKET,
            None => true,
        };
        if needs_bucket {
            self.buckets.push_back((now, 0, 0));
        }
        let bucket = self.buckets.back_mut().expect("a bucket was just ensured");
        bucket.1 += 1;
        if !success {
            bucket.2 += 1;
        }
    }

    fn error_rate(&mut self, now: Instant) -> f64 {
        self.expire(now);
        let (attempts, failures) = self
            .buckets
            .iter()
            .fold((0, 0), |(a, f), (_, attempts, failures)| {
                (a + attempts, f + failures)
            });
        if attempts == 0 {
            0.0
        } else {
            failures as f64 * 100.0 / attempts as f64
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((start, _, _)) = self.buckets.front() {
            if now.duration_since(*start) > WINDOW {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }
}
