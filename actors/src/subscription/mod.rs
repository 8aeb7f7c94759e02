//! One actor per subscription. It owns the subscription's status, the
//! in-memory window of its first-attempt queue (the rest stays on disk), the
//! attempts in flight and the retry timers. HTTP requests run in spawned
//! tasks and come back as messages, so a hanging endpoint never delays
//! pause, resume, delete or another subscription.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::context::Context;
use crate::delivery::{AttemptReport, VerifyError};
use crate::error::EngineError;
use crate::model::{
    EndpointUrl, EventId, EventRecord, Subscription, SubscriptionId, SubscriptionSpec,
    SubscriptionStatus,
};
use crate::retry::{recovery_delay, scale};
use crate::router::RouterMsg;
use crate::supervisor::SupervisorMsg;

mod arrived;
mod attempts;
mod commands;

use arrived::ArrivedRecords;

pub type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// Wait before an attempt is started again when the store cannot read the
/// event or record the outcome, so a failing disk does not turn into a burst
/// of requests to the endpoint.
const STORE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// An attempt whose HTTP request is running.
struct InFlight {
    attempt: u32,
    started_at: DateTime<Utc>,
    /// The record as read when the attempt started, so recording the
    /// outcome needs no second read and decode. `None` when something else
    /// may have changed the record since (the subscription was disabled).
    record: Option<Box<EventRecord>>,
}

/// Result of a synchronous test delivery.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub success: bool,
    pub response_code: Option<u16>,
    pub response_time_ms: u64,
    pub error_message: Option<String>,
}

pub enum SubscriptionMsg {
    /// New events were stored for this subscription, oldest first, with the
    /// records of those the router still had in memory.
    EventsArrived(Vec<EventId>, Vec<EventRecord>),
    Pause(Reply<Subscription>),
    Resume(Reply<Subscription>),
    Update(SubscriptionSpec, Reply<Subscription>),
    RotateSecret(Duration, Reply<Subscription>),
    Test(Reply<TestResult>),
    Retry(EventId, Reply<EventRecord>),
    /// Makes the actor fail, so tests can exercise supervision.
    Crash,
    // Messages the actor sends itself.
    AttemptFinished {
        event_id: EventId,
        attempt: u32,
        started_at: DateTime<Utc>,
        report: AttemptReport,
    },
    RetryDue {
        event_id: EventId,
        attempt: u32,
    },
    ResumeVerified(Result<(), VerifyError>, Reply<Subscription>),
    IdleCheck,
    /// Starts attempts again after a failed store read.
    Wake,
}

impl SubscriptionMsg {
    /// True for messages that arrive through the supervisor; the supervisor
    /// counts them to know when an idle actor may stop without losing one.
    fn is_forwarded(&self) -> bool {
        !matches!(
            self,
            Self::AttemptFinished { .. }
                | Self::RetryDue { .. }
                | Self::ResumeVerified(..)
                | Self::IdleCheck
                | Self::Wake
        )
    }
}

pub struct SubscriptionActor;

pub struct SubscriptionArgs {
    pub id: SubscriptionId,
    pub ctx: Arc<Context>,
    pub router: ActorRef<RouterMsg>,
    pub supervisor: ActorRef<SupervisorMsg>,
}

pub struct SubscriptionState {
    sub: Subscription,
    ctx: Arc<Context>,
    router: ActorRef<RouterMsg>,
    supervisor: ActorRef<SupervisorMsg>,
    /// Queued first attempts held in memory, oldest first.
    window: BTreeSet<EventId>,
    /// Newest queue entry loaded from the store.
    cursor: Option<EventId>,
    /// The store's queue has entries newer than `cursor` not yet in `window`.
    backlog_in_store: bool,
    /// An id created as this actor started. Events created before it may
    /// have been started by an earlier actor of the subscription, one that
    /// failed while their arrival message was still on its way.
    started_after: EventId,
    /// Records of queued events from arrival messages, so their first
    /// attempts read nothing from the store.
    arrived: ArrivedRecords,
    /// Retries that are due, and manual retries, in arrival order.
    ready: VecDeque<EventId>,
    /// Scheduled retries: event → attempt number the timer will start.
    timers: HashMap<EventId, u32>,
    in_flight: HashMap<EventId, InFlight>,
    /// Forwarded messages received, for the idle-stop handshake.
    received: u64,
    /// Endpoint verifications running for a resume; their result comes back
    /// to this actor, so it must not stop before then.
    verifying: u32,
    last_activity: Instant,
    /// The endpoint URL parsed, with the text it came from, so attempts
    /// parse it again only after the URL changed.
    parsed_url: Option<(EndpointUrl, Arc<url::Url>)>,
}

impl Actor for SubscriptionActor {
    type Msg = SubscriptionMsg;
    type State = SubscriptionState;
    type Arguments = SubscriptionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let sub = args
            .ctx
            .store
            .get_subscription(args.id)?
            .ok_or_else(|| format!("subscription {} is not in the store", args.id))?;
        // Counted here and released in `Drop`, which also runs when the actor
        // fails; ractor calls `post_stop` only after a clean stop.
        args.ctx.live_actors.fetch_add(1, Ordering::Relaxed);
        let mut state = SubscriptionState {
            sub,
            ctx: args.ctx.clone(),
            router: args.router,
            supervisor: args.supervisor,
            window: BTreeSet::new(),
            cursor: None,
            backlog_in_store: true,
            // Ids from `EventId::new` are ordered by creation within the process.
            started_after: EventId::new(),
            arrived: ArrivedRecords::default(),
            ready: VecDeque::new(),
            timers: HashMap::new(),
            in_flight: HashMap::new(),
            received: 0,
            verifying: 0,
            last_activity: Instant::now(),
            parsed_url: None,
        };
        state.refill_window()?;
        state.load_retries(&myself)?;
        tracing::debug!(subscription_id = %args.id, queued = state.window.len(), retries = state.timers.len(), "subscription actor started");
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.pump(&myself);
        state.schedule_idle_check(&myself);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.ctx.is_draining() {
            state.record_interrupted();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if message.is_forwarded() {
            state.received += 1;
        }
        // The actor's own timers are not activity, or an idle actor would never stop.
        if !matches!(message, SubscriptionMsg::IdleCheck | SubscriptionMsg::Wake) {
            state.last_activity = Instant::now();
        }
        match message {
            SubscriptionMsg::EventsArrived(ids, records) => state.events_arrived(ids, records),
            SubscriptionMsg::Pause(reply) => state.pause(reply),
            SubscriptionMsg::Resume(reply) => state.resume(&myself, reply),
            SubscriptionMsg::ResumeVerified(result, reply) => state.resume_verified(result, reply),
            SubscriptionMsg::Update(spec, reply) => state.update(spec, reply),
            SubscriptionMsg::RotateSecret(grace, reply) => state.rotate_secret(grace, reply),
            SubscriptionMsg::Test(reply) => state.test(reply),
            SubscriptionMsg::Retry(id, reply) => state.manual_retry(id, reply),
            SubscriptionMsg::Crash => {
                return Err(format!("crash requested for subscription {}", state.sub.id).into());
            }
            SubscriptionMsg::AttemptFinished {
                event_id,
                attempt,
                started_at,
                report,
            } => state.attempt_finished(&myself, event_id, attempt, started_at, report),
            SubscriptionMsg::RetryDue { event_id, attempt } => {
                if state.timers.get(&event_id) == Some(&attempt) {
                    state.timers.remove(&event_id);
                    state.ready.push_back(event_id);
                }
            }
            SubscriptionMsg::IdleCheck => {
                state.idle_check(&myself);
                return Ok(());
            }
            SubscriptionMsg::Wake => {}
        }
        state.pump(&myself);
        Ok(())
    }
}

impl Drop for SubscriptionState {
    fn drop(&mut self) {
        self.ctx.live_actors.fetch_sub(1, Ordering::Relaxed);
        self.arrived.clear(&self.ctx.arrived_bytes);
        let in_flight = self.in_flight.len();
        if in_flight > 0 {
            // Their outcomes can no longer be recorded; the events stay queued
            // in the store and are sent again by the next actor.
            self.ctx
                .in_flight
                .fetch_sub(in_flight as i64, Ordering::Relaxed);
            metrics::gauge!("argus_webhooks_deliveries_in_flight").decrement(in_flight as f64);
        }
    }
}

impl SubscriptionState {
    fn is_idle(&self) -> bool {
        self.window.is_empty()
            && !self.backlog_in_store
            && self.ready.is_empty()
            && self.timers.is_empty()
            && self.in_flight.is_empty()
            && self.verifying == 0
    }

    fn schedule_idle_check(&self, myself: &ActorRef<SubscriptionMsg>) {
        myself.send_after(self.ctx.settings.idle_actor_timeout, || {
            SubscriptionMsg::IdleCheck
        });
    }

    fn idle_check(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.is_idle() && self.last_activity.elapsed() >= self.ctx.settings.idle_actor_timeout {
            let _ = self.supervisor.cast(SupervisorMsg::IdleStop {
                id: self.sub.id,
                actor: myself.get_id(),
                received: self.received,
            });
        }
        self.schedule_idle_check(myself);
    }

    fn refill_window(&mut self) -> Result<(), crate::store::StoreError> {
        let limit = self.ctx.settings.queue_window.max(1);
        let ids = self
            .ctx
            .store
            .queue_window(self.sub.id, self.cursor, limit)?;
        // A window that stopped before a held copy has more to load once
        // the copy is released, which its arrival message reports.
        self.backlog_in_store = ids.len() >= limit || self.ctx.store.has_held_copies(self.sub.id);
        if let Some(last) = ids.last() {
            self.cursor = Some(*last);
        }
        self.window.extend(ids);
        Ok(())
    }

    /// Schedules stored retries. Those that fell due while the service was
    /// down are spread out by the recovery step instead of sent at once.
    fn load_retries(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
    ) -> Result<(), crate::store::StoreError> {
        let now = Utc::now();
        let mut overdue = 0;
        for (event_id, due) in self.ctx.store.retry_entries(self.sub.id)? {
            let Some(event) = self
                .ctx
                .store
                .get_event_without_payload(self.sub.id, event_id)?
            else {
                continue;
            };
            let attempt = event.attempts.len() as u32 + 1;
            let delay = match (due - now).to_std() {
                Ok(wait) => wait,
                Err(_) => {
                    overdue += 1;
                    scale(
                        recovery_delay(overdue - 1, self.ctx.settings.recovery_spread),
                        // Floored at 0.02 so overdue retries stay spread at the small time scales of tests.
                        self.ctx.settings.time_scale.clamp(0.02, 1.0),
                    )
                }
            };
            self.schedule_retry(myself, event_id, attempt, delay);
        }
        Ok(())
    }

    fn schedule_retry(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        event_id: EventId,
        attempt: u32,
        delay: Duration,
    ) {
        self.timers.insert(event_id, attempt);
        myself.send_after(delay, move || SubscriptionMsg::RetryDue {
            event_id,
            attempt,
        });
    }

    fn events_arrived(&mut self, ids: Vec<EventId>, records: Vec<EventRecord>) {
        if self.sub.status == SubscriptionStatus::Disabled {
            // Stored before the router learnt of the disable.
            let reason = self.sub.status_reason.clone().unwrap_or_default();
            self.spawn_fail_unfinished(format!("the subscription was disabled: {reason}"));
            return;
        }
        // Only events that no actor can have started keep their records: one
        // at or below the cursor came from the store, and one created before
        // this actor started may have been sent by the actor it replaced.
        // Their first attempts may have started or ended since. A paused
        // subscription may keep its queue for long, so its records stay in
        // the store only.
        if self.sub.status == SubscriptionStatus::Active {
            let floor = self
                .cursor
                .map_or(self.started_after, |cursor| cursor.max(self.started_after));
            for record in records {
                if record.id > floor {
                    self.arrived.keep(record, &self.ctx.arrived_bytes);
                }
            }
        }
        // Ids whose records are in memory may pass the window's limit, which
        // bounds the ids loaded from the store. Loading them back would scan
        // the store, which waits while the router applies an ingest batch.
        let limit = self.ctx.settings.queue_window.max(1) + self.arrived.len();
        for id in ids {
            let newer_than_cursor = self.cursor.is_none_or(|cursor| id > cursor);
            if !newer_than_cursor {
                // Already loaded, or older than the cursor after a restart race.
                self.window.insert(id);
            } else if !self.backlog_in_store && self.window.len() < limit {
                self.window.insert(id);
                self.cursor = Some(id);
            } else {
                self.backlog_in_store = true;
            }
        }
    }

    /// Starts attempts while the subscription is active and below its limit.
    fn pump(&mut self, myself: &ActorRef<SubscriptionMsg>) {
        if self.sub.status != SubscriptionStatus::Active || self.ctx.is_draining() {
            return;
        }
        while self.in_flight.len() < self.ctx.settings.max_in_flight_per_subscription.max(1) {
            let (id, from_queue) = if let Some(id) = self.ready.pop_front() {
                (id, false)
            } else {
                if self.window.is_empty()
                    && self.backlog_in_store
                    && let Err(error) = self.refill_window()
                {
                    tracing::error!(subscription_id = %self.sub.id, %error, "cannot load the queue; retrying in 1 s");
                    myself.send_after(STORE_RETRY_DELAY, || SubscriptionMsg::Wake);
                    return;
                }
                match self.window.pop_first() {
                    Some(id) => (id, true),
                    None => return,
                }
            };
            if self.in_flight.contains_key(&id) {
                continue;
            }
            self.start_attempt(myself, id, from_queue);
        }
    }
}
