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
use crate::delivery::{AttemptReport, SignedRequest, VerifyError};
use crate::error::EngineError;
use crate::model::{
    DeliveryAttempt, EventId, EventRecord, EventStatus, PreviousSecret, SigningSecret,
    Subscription, SubscriptionId, SubscriptionSpec, SubscriptionStatus,
};
use crate::retry::{next_delay, recovery_delay, retry_delay, scale};
use crate::router::RouterMsg;
use crate::store::QueueChange;
use crate::supervisor::SupervisorMsg;

pub type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// Wait before an attempt is started again when the store cannot read the
/// event or record the outcome, so a failing disk does not turn into a burst
/// of requests to the endpoint.
const STORE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// An attempt whose HTTP request is running.
#[derive(Clone, Copy)]
struct InFlight {
    attempt: u32,
    started_at: DateTime<Utc>,
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
    /// New events were stored for this subscription.
    EventsArrived(Vec<EventId>),
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
    /// Retries that are due, and manual retries, in arrival order.
    ready: VecDeque<EventId>,
    /// Scheduled retries: event → attempt number the timer will start.
    timers: HashMap<EventId, u32>,
    in_flight: HashMap<EventId, InFlight>,
    /// Forwarded messages received, for the idle-stop handshake.
    received: u64,
    last_activity: Instant,
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
            ready: VecDeque::new(),
            timers: HashMap::new(),
            in_flight: HashMap::new(),
            received: 0,
            last_activity: Instant::now(),
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
        state.last_activity = Instant::now();
        match message {
            SubscriptionMsg::EventsArrived(ids) => state.events_arrived(ids),
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
        self.backlog_in_store = ids.len() >= limit;
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
            let Some(event) = self.ctx.store.get_event(event_id)? else {
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

    fn events_arrived(&mut self, ids: Vec<EventId>) {
        if self.sub.status == SubscriptionStatus::Disabled {
            // Stored before the router learnt of the disable.
            let reason = self.sub.status_reason.clone().unwrap_or_default();
            self.spawn_fail_unfinished(format!("the subscription was disabled: {reason}"));
            return;
        }
        let limit = self.ctx.settings.queue_window.max(1);
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

    fn start_attempt(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        event_id: EventId,
        from_queue: bool,
    ) {
        let event = match self.ctx.store.get_event(event_id) {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot read the event; retrying in 1 s");
                self.schedule_retry(myself, event_id, 0, STORE_RETRY_DELAY);
                return;
            }
        };
        // A queue entry starts only a first attempt; a ready entry may also resume a retry.
        let startable = match event.status {
            EventStatus::Pending => true,
            EventStatus::Retrying => !from_queue,
            _ => false,
        };
        if !startable {
            return;
        }
        let attempt = event.attempts.len() as u32 + 1;
        let started_at = Utc::now();
        self.in_flight.insert(
            event_id,
            InFlight {
                attempt,
                started_at,
            },
        );
        self.ctx.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("argus_webhooks_deliveries_in_flight").increment(1.0);

        let ctx = self.ctx.clone();
        let url = self.sub.url.clone();
        let secrets = self.sub.signing_secrets(Utc::now());
        let myself = myself.clone();
        tokio::spawn(async move {
            let msg_id = event.id.to_string();
            let report = ctx
                .client
                .send(SignedRequest {
                    url: &url,
                    msg_id: &msg_id,
                    event_type: event.event_type.as_str(),
                    body: event.payload.as_bytes(),
                    secrets: &secrets,
                })
                .await;
            let finished = SubscriptionMsg::AttemptFinished {
                event_id,
                attempt,
                started_at,
                report,
            };
            // The actor is gone when the subscription was deleted; its events were failed then.
            let _ = myself.cast(finished);
        });
    }

    fn attempt_finished(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        event_id: EventId,
        attempt: u32,
        started_at: DateTime<Utc>,
        report: AttemptReport,
    ) {
        if self.in_flight.remove(&event_id).is_some() {
            self.ctx.in_flight.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("argus_webhooks_deliveries_in_flight").decrement(1.0);
        }
        record_attempt_metrics(&report);
        self.ctx.record_attempt(report.success());
        let mut event = match self.ctx.store.get_event(event_id) {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(error) => {
                // The attempt stays unrecorded; the event is still queued and is sent again.
                tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot record the attempt; the event will be sent again in 1 s");
                self.schedule_retry(myself, event_id, attempt, STORE_RETRY_DELAY);
                return;
            }
        };
        let previous = event.status;
        let now = Utc::now();
        event.attempts.push(DeliveryAttempt {
            attempt_number: attempt,
            timestamp: started_at,
            response_code: report.status,
            response_time_ms: report.duration.as_millis() as u64,
            success: report.success(),
            error_message: report.error.clone(),
            response_body: report.body.clone(),
        });
        event.round_attempts += 1;
        event.updated_at = now;
        event.next_attempt_at = None;

        let mut disable_reason = None;
        let mut retry_after = None;
        let change = if report.success() {
            event.status = EventStatus::Delivered;
            event.status_reason = None;
            self.note_event_outcome(true);
            QueueChange::Finish
        } else if report.status == Some(410) {
            event.status = EventStatus::Failed;
            event.status_reason = Some("the endpoint answered 410 Gone".into());
            disable_reason = Some(("gone", "the endpoint answered 410 Gone".to_string()));
            QueueChange::Finish
        } else if let Some(delay) = self.next_retry_delay(&event, &report) {
            let next_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            event.status = EventStatus::Retrying;
            event.next_attempt_at = Some(next_at);
            event.status_reason = report.error.clone();
            retry_after = Some(delay);
            QueueChange::Retry(next_at)
        } else {
            event.status = EventStatus::Failed;
            event.status_reason = Some(format!(
                "delivery failed after {} attempts: {}",
                event.round_attempts,
                report.error.as_deref().unwrap_or("no 2xx answer")
            ));
            if self.note_event_outcome(false) {
                let threshold = self.ctx.settings.disable_after_failed_events;
                disable_reason = Some((
                    "consecutive_failures",
                    format!("{threshold} events in a row failed after all their attempts"),
                ));
            }
            QueueChange::Finish
        };
        if let Err(error) = self.ctx.store.put_event(&event, previous, change) {
            tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot record the attempt; the event will be sent again in 1 s");
            self.schedule_retry(myself, event_id, attempt, STORE_RETRY_DELAY);
            return;
        }
        // Make the outcome durable soon, so a crash re-sends only attempts
        // that were in flight or had just finished. Concurrent flushes are shared.
        let store = self.ctx.store.clone();
        tokio::spawn(async move { store.flush().await });
        if let Some(delay) = retry_after {
            self.schedule_retry(myself, event_id, attempt + 1, delay);
            metrics::counter!("argus_webhooks_delivery_retries_scheduled_total").increment(1);
            tracing::info!(subscription_id = %self.sub.id, %event_id, attempt, delay_ms = delay.as_millis() as u64, error = report.error.as_deref().unwrap_or(""), "attempt failed; retry scheduled");
        }
        if event.status.is_finished() && !previous.is_finished() {
            metrics::counter!("argus_webhooks_deliveries_total", "event_type" => event.event_type.as_str(), "outcome" => if event.status == EventStatus::Delivered { "delivered" } else { "failed" }).increment(1);
            tracing::info!(subscription_id = %self.sub.id, %event_id, attempt, status = event.status.as_str(), response_code = report.status.unwrap_or(0), "delivery finished");
        }
        if let Some((label, reason)) = disable_reason {
            self.disable(label, reason);
        }
    }

    /// Records each attempt still in flight at shutdown as interrupted. The
    /// event keeps its queue entry or scheduled retry, so it is sent again
    /// with the same `webhook-id` after a restart. An interrupted attempt does
    /// not count against the retry policy, because the service, not the
    /// endpoint, cut it short.
    fn record_interrupted(&mut self) {
        for (event_id, in_flight) in std::mem::take(&mut self.in_flight) {
            self.ctx.in_flight.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("argus_webhooks_deliveries_in_flight").decrement(1.0);
            let mut event = match self.ctx.store.get_event(event_id) {
                Ok(Some(event)) if !event.status.is_finished() => event,
                Ok(_) => continue,
                Err(error) => {
                    tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot record the interrupted attempt");
                    continue;
                }
            };
            let now = Utc::now();
            let elapsed = (now - in_flight.started_at).num_milliseconds().max(0) as u64;
            event.attempts.push(DeliveryAttempt {
                attempt_number: in_flight.attempt,
                timestamp: in_flight.started_at,
                response_code: None,
                response_time_ms: elapsed,
                success: false,
                error_message: Some(
                    "interrupted: the service shut down before the endpoint answered; the event is sent again after restart".into(),
                ),
                response_body: None,
            });
            event.updated_at = now;
            let status = event.status;
            match self.ctx.store.put_event(&event, status, QueueChange::Keep) {
                Ok(()) => {
                    tracing::warn!(subscription_id = %self.sub.id, %event_id, attempt = in_flight.attempt, "attempt interrupted by shutdown; it is sent again after restart")
                }
                Err(error) => {
                    tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot record the interrupted attempt")
                }
            }
        }
    }

    /// Returns the delay before the next attempt, or `None` when the round's
    /// attempts are used up or the subscription is disabled.
    fn next_retry_delay(&self, event: &EventRecord, report: &AttemptReport) -> Option<Duration> {
        if self.sub.status == SubscriptionStatus::Disabled {
            return None;
        }
        let scheduled = retry_delay(&self.sub.retry_policy, event.round_attempts)?;
        Some(scale(
            next_delay(scheduled, report.retry_after),
            self.ctx.settings.time_scale,
        ))
    }

    /// Counts a finished event; returns true when the failure run reaches the
    /// disable threshold.
    fn note_event_outcome(&mut self, delivered: bool) -> bool {
        let before = self.sub.consecutive_failures;
        self.sub.consecutive_failures = if delivered { 0 } else { before + 1 };
        if before != self.sub.consecutive_failures
            && let Err(error) = self.ctx.store.put_subscription(&self.sub)
        {
            tracing::error!(subscription_id = %self.sub.id, %error, "cannot store the failure count");
        }
        let threshold = self.ctx.settings.disable_after_failed_events;
        !delivered && threshold > 0 && self.sub.consecutive_failures >= threshold
    }

    fn disable(&mut self, label: &'static str, reason: String) {
        if self.sub.status == SubscriptionStatus::Disabled {
            return;
        }
        let old = self.sub.status;
        self.sub.status = SubscriptionStatus::Disabled;
        self.sub.status_reason = Some(reason.clone());
        self.sub.updated_at = Utc::now();
        if let Err(error) = self.ctx.store.put_subscription(&self.sub) {
            tracing::error!(subscription_id = %self.sub.id, %error, "cannot store the disabled status");
        }
        self.ctx
            .status_changed(Some(old), Some(SubscriptionStatus::Disabled));
        let _ = self
            .router
            .cast(RouterMsg::Upsert(Box::new(self.sub.clone())));
        metrics::counter!("argus_webhooks_subscriptions_disabled_total", "reason" => label)
            .increment(1);
        tracing::warn!(subscription_id = %self.sub.id, reason = %reason, "subscription disabled");

        self.window.clear();
        self.ready.clear();
        self.timers.clear();
        self.backlog_in_store = false;
        self.spawn_fail_unfinished(format!("the subscription was disabled: {reason}"));
    }

    /// Marks the subscription's queued and retrying events Failed, off the actor's thread.
    fn spawn_fail_unfinished(&self, event_reason: String) {
        let store = self.ctx.store.clone();
        let id = self.sub.id;
        tokio::task::spawn_blocking(move || match store.fail_unfinished(id, &event_reason) {
            Ok(count) => {
                tracing::info!(subscription_id = %id, count, "queued events failed because the subscription was disabled")
            }
            Err(error) => {
                tracing::error!(subscription_id = %id, %error, "cannot fail the queued events of a disabled subscription")
            }
        });
    }

    /// Stores `candidate`, and only then makes it the actor's state, tells
    /// the router and replies once the change is on disk. When the store
    /// rejects the write, the actor keeps its previous state and the caller
    /// gets the error. Returns true when the change was stored.
    fn save_and_reply(&mut self, candidate: Subscription, reply: Reply<Subscription>) -> bool {
        if let Err(error) = self.ctx.store.put_subscription(&candidate) {
            let _ = reply.send(Err(error.into()));
            return false;
        }
        if candidate.status != self.sub.status {
            self.ctx
                .status_changed(Some(self.sub.status), Some(candidate.status));
        }
        self.sub = candidate;
        let _ = self
            .router
            .cast(RouterMsg::Upsert(Box::new(self.sub.clone())));
        let store = self.ctx.store.clone();
        let sub = self.sub.clone();
        tokio::spawn(async move {
            let result = store.flush().await.map(|_| sub).map_err(EngineError::from);
            let _ = reply.send(result);
        });
        true
    }

    fn pause(&mut self, reply: Reply<Subscription>) {
        match self.sub.status {
            SubscriptionStatus::Disabled => {
                let _ = reply.send(Err(EngineError::Conflict(
                    "the subscription is Disabled; resume it to re-verify the endpoint".into(),
                )));
            }
            SubscriptionStatus::Paused => {
                let _ = reply.send(Ok(self.sub.clone()));
            }
            SubscriptionStatus::Active => {
                let candidate = self.with_status(SubscriptionStatus::Paused);
                if self.save_and_reply(candidate, reply) {
                    tracing::info!(subscription_id = %self.sub.id, "subscription paused");
                }
            }
        }
    }

    fn resume(&mut self, myself: &ActorRef<SubscriptionMsg>, reply: Reply<Subscription>) {
        match self.sub.status {
            SubscriptionStatus::Active => {
                let _ = reply.send(Ok(self.sub.clone()));
            }
            SubscriptionStatus::Paused => {
                let candidate = self.with_status(SubscriptionStatus::Active);
                if self.save_and_reply(candidate, reply) {
                    tracing::info!(subscription_id = %self.sub.id, "subscription resumed");
                }
            }
            SubscriptionStatus::Disabled => {
                let client = self.ctx.client.clone();
                let url = self.sub.url.clone();
                let secrets = self.sub.signing_secrets(Utc::now());
                let myself = myself.clone();
                tokio::spawn(async move {
                    let result = client.verify_endpoint(&url, &secrets).await;
                    let _ = myself.cast(SubscriptionMsg::ResumeVerified(result, reply));
                });
            }
        }
    }

    fn resume_verified(&mut self, result: Result<(), VerifyError>, reply: Reply<Subscription>) {
        if let Err(error) = result {
            let _ = reply.send(Err(error.into()));
            return;
        }
        let mut candidate = self.sub.clone();
        let reactivated = candidate.status == SubscriptionStatus::Disabled;
        if reactivated {
            candidate = self.with_status(SubscriptionStatus::Active);
            candidate.consecutive_failures = 0;
        }
        if self.save_and_reply(candidate, reply) && reactivated {
            tracing::info!(subscription_id = %self.sub.id, "disabled subscription re-verified and resumed");
        }
    }

    /// Returns a copy of the subscription with `status` and no status reason.
    fn with_status(&self, status: SubscriptionStatus) -> Subscription {
        let mut candidate = self.sub.clone();
        candidate.status = status;
        candidate.status_reason = None;
        candidate.updated_at = Utc::now();
        candidate
    }

    fn update(&mut self, spec: SubscriptionSpec, reply: Reply<Subscription>) {
        let mut candidate = self.sub.clone();
        candidate.url = spec.url;
        candidate.event_types = spec.event_types;
        candidate.description = spec.description;
        candidate.retry_policy = spec.retry_policy;
        candidate.updated_at = Utc::now();
        if self.save_and_reply(candidate, reply) {
            tracing::info!(subscription_id = %self.sub.id, "subscription updated");
        }
    }

    fn rotate_secret(&mut self, grace: Duration, reply: Reply<Subscription>) {
        let now = Utc::now();
        let mut candidate = self.sub.clone();
        let old = std::mem::replace(&mut candidate.secret, SigningSecret::generate());
        candidate.previous_secret = Some(PreviousSecret {
            secret: old,
            expires_at: now + chrono::Duration::from_std(grace).unwrap_or_default(),
        });
        candidate.updated_at = now;
        if self.save_and_reply(candidate, reply) {
            tracing::info!(subscription_id = %self.sub.id, grace_seconds = grace.as_secs(), "secret rotated");
        }
    }

    fn test(&self, reply: Reply<TestResult>) {
        let client = self.ctx.client.clone();
        let url = self.sub.url.clone();
        let secrets = self.sub.signing_secrets(Utc::now());
        let sub_id = self.sub.id;
        tokio::spawn(async move {
            let event_id = uuid::Uuid::new_v4();
            let body = serde_json::json!({
                "eventId": event_id,
                "eventType": "webhook.test",
                "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "resourceType": "webhook",
                "resourceId": sub_id.0,
                "data": {"message": "Test event from argus-webhooks"},
            })
            .to_string();
            let msg_id = format!("test_{}", event_id.simple());
            let report = client
                .send(SignedRequest {
                    url: &url,
                    msg_id: &msg_id,
                    event_type: "webhook.test",
                    body: body.as_bytes(),
                    secrets: &secrets,
                })
                .await;
            let _ = reply.send(Ok(TestResult {
                success: report.success(),
                response_code: report.status,
                response_time_ms: report.duration.as_millis() as u64,
                error_message: report.error,
            }));
        });
    }

    fn manual_retry(&mut self, event_id: EventId, reply: Reply<EventRecord>) {
        let mut event = match self.ctx.store.get_event(event_id) {
            Ok(Some(event)) if event.subscription_id == self.sub.id => event,
            Ok(_) => {
                let _ = reply.send(Err(EngineError::NotFound("event")));
                return;
            }
            Err(error) => {
                let _ = reply.send(Err(error.into()));
                return;
            }
        };
        if !event.status.is_finished() || self.in_flight.contains_key(&event_id) {
            let _ = reply.send(Err(EngineError::Conflict(format!(
                "the event is {}; only Failed or Delivered events can be retried",
                event.status.as_str()
            ))));
            return;
        }
        if self.sub.status == SubscriptionStatus::Disabled {
            let _ = reply.send(Err(EngineError::Conflict(
                "the subscription is Disabled; resume it before retrying its events".into(),
            )));
            return;
        }
        let previous = event.status;
        event.status = EventStatus::Pending;
        event.round_attempts = 0;
        event.status_reason = None;
        event.next_attempt_at = None;
        event.updated_at = Utc::now();
        if let Err(error) = self
            .ctx
            .store
            .put_event(&event, previous, QueueChange::Enqueue)
        {
            let _ = reply.send(Err(error.into()));
            return;
        }
        tracing::info!(subscription_id = %self.sub.id, %event_id, "manual retry queued");
        self.ready.push_back(event_id);
        let store = self.ctx.store.clone();
        tokio::spawn(async move {
            let result = store
                .flush()
                .await
                .map(|_| event)
                .map_err(EngineError::from);
            let _ = reply.send(result);
        });
    }
}

fn record_attempt_metrics(report: &AttemptReport) {
    let result = report.class.label();
    metrics::counter!("argus_webhooks_delivery_attempts_total", "result" => result).increment(1);
    metrics::histogram!("argus_webhooks_delivery_attempt_duration_seconds", "result" => result)
        .record(report.duration.as_secs_f64());
}
