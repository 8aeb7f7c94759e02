//! The engine's public handle, which the service crate calls. Each mutation
//! becomes an actor message and waits for the actor's reply. Reads query the
//! store directly, because every actor persists a change before it replies.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;

use crate::context::{Context, EngineSettings};
use crate::delivery::{DeliveryClient, DeliveryConfig};
use crate::error::EngineError;
use crate::model::{
    AccountId, EventId, EventRecord, EventType, PlatformEvent, SigningSecret, Subscription,
    SubscriptionId, SubscriptionSpec, SubscriptionStatus,
};
use crate::router::{IngestOutcome, RouterMsg};
use crate::store::{EventPage, EventQuery, Store, StoreConfig};
use crate::subscription::{SubscriptionMsg, TestResult};
use crate::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg, check_conflict};

/// Everything the engine needs to start.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub store: StoreConfig,
    pub delivery: DeliveryConfig,
    pub settings: EngineSettings,
}

/// Live figures for the health endpoint.
#[derive(Clone, Debug)]
pub struct HealthReport {
    pub store_healthy: bool,
    pub engine_running: bool,
    pub queue_depth: u64,
    pub recent_error_rate: f64,
    pub uptime: Duration,
}

/// Handle to the running engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    ctx: Arc<Context>,
    supervisor: ActorRef<SupervisorMsg>,
    router: ActorRef<RouterMsg>,
    started: Instant,
}

impl Engine {
    /// Opens the store, starts the actors and the retention pruner.
    pub async fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        let store =
            Store::open(&config.store).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        let client = DeliveryClient::new(config.delivery).map_err(EngineError::Internal)?;
        let ctx = Arc::new(Context::new(store, client, config.settings));
        let (supervisor, _) = Actor::spawn(None, Supervisor, SupervisorArgs { ctx: ctx.clone() })
            .await
            .map_err(|e| EngineError::Internal(format!("cannot start the supervisor: {e}")))?;
        let (sender, receiver) = oneshot::channel();
        supervisor
            .cast(SupervisorMsg::GetRouter(sender))
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let router = receiver
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        tokio::spawn(run_pruner(ctx.clone()));
        tokio::spawn(run_store_probe(ctx.clone()));
        Ok(Engine {
            ctx,
            supervisor,
            router,
            started: Instant::now(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.ctx.store
    }

    // --- subscriptions ---------------------------------------------------

    /// Verifies the endpoint, then stores and starts a new subscription. The
    /// returned subscription carries the secret, which is shown only here.
    pub async fn create_subscription(
        &self,
        account: AccountId,
        spec: SubscriptionSpec,
        secret: Option<SigningSecret>,
    ) -> Result<Subscription, EngineError> {
        let now = Utc::now();
        let sub = Subscription {
            id: SubscriptionId(uuid::Uuid::new_v4()),
            account_id: account,
            url: spec.url,
            event_types: spec.event_types,
            description: spec.description,
            retry_policy: spec.retry_policy,
            status: SubscriptionStatus::Active,
            status_reason: None,
            secret: secret.unwrap_or_else(SigningSecret::generate),
            previous_secret: None,
            consecutive_failures: 0,
            created_at: now,
            updated_at: now,
        };
        // Fail fast on a conflict before contacting the endpoint; the
        // supervisor checks again when it stores the subscription.
        crate::supervisor::check_create(&self.ctx, &sub)?;
        self.verify(&sub.url, std::slice::from_ref(&sub.secret))
            .await?;
        self.ask_supervisor(|reply| SupervisorMsg::Create(sub, reply))
            .await
    }

    pub fn list_subscriptions(
        &self,
        account: &AccountId,
        status: Option<SubscriptionStatus>,
        event_type: Option<EventType>,
    ) -> Result<Vec<Subscription>, EngineError> {
        let mut subs: Vec<_> = self
            .ctx
            .store
            .account_subscriptions(account)?
            .into_iter()
            .filter(|s| status.is_none_or(|st| s.status == st))
            .filter(|s| event_type.is_none_or(|t| s.event_types.contains(&t)))
            .collect();
        subs.sort_by_key(|s| (s.created_at, s.id));
        Ok(subs)
    }

    /// Returns the subscription if it belongs to `account`; another account's
    /// subscription is reported as not found.
    pub fn get_subscription(
        &self,
        account: &AccountId,
        id: SubscriptionId,
    ) -> Result<Subscription, EngineError> {
        match self.ctx.store.get_subscription(id)? {
            Some(sub) if &sub.account_id == account => Ok(sub),
            _ => Err(EngineError::NotFound("subscription")),
        }
    }

    /// Replaces a subscription's settings, re-verifying the endpoint when the URL changes.
    pub async fn update_subscription(
        &self,
        account: &AccountId,
        id: SubscriptionId,
        spec: SubscriptionSpec,
    ) -> Result<Subscription, EngineError> {
        let current = self.get_subscription(account, id)?;
        let mut candidate = current.clone();
        candidate.url = spec.url.clone();
        candidate.event_types = spec.event_types.clone();
        let others = self.ctx.store.account_subscriptions(account)?;
        check_conflict(&candidate, others.iter())?;
        if current.url.normalized() != spec.url.normalized() {
            // During a rotation's grace period the endpoint may still know
            // only the previous secret, so the challenge carries both.
            self.verify(&spec.url, &current.signing_secrets(Utc::now()))
                .await?;
        }
        self.ask_actor(id, |reply| SubscriptionMsg::Update(spec, reply))
            .await
    }

    pub async fn delete_subscription(
        &self,
        account: &AccountId,
        id: SubscriptionId,
    ) -> Result<(), EngineError> {
        self.get_subscription(account, id)?;
        self.ask_supervisor(|reply| SupervisorMsg::Delete(id, reply))
            .await
    }

    pub async fn pause_subscription(
        &self,
        account: &AccountId,
        id: SubscriptionId,
    ) -> Result<Subscription, EngineError> {
        self.get_subscription(account, id)?;
        self.ask_actor(id, SubscriptionMsg::Pause).await
    }

    pub async fn resume_subscription(
        &self,
        account: &AccountId,
        id: SubscriptionId,
    ) -> Result<Subscription, EngineError> {
        self.get_subscription(account, id)?;
        self.ask_actor(id, SubscriptionMsg::Resume).await
    }

    pub async fn test_subscription(
        &self,
        account: &AccountId,
        id: SubscriptionId,
    ) -> Result<TestResult, EngineError> {
        self.get_subscription(account, id)?;
        self.ask_actor(id, SubscriptionMsg::Test).await
    }

    /// Replaces the secret; the old one keeps signing for `grace`.
    pub async fn rotate_secret(
        &self,
        account: &AccountId,
        id: SubscriptionId,
        grace: Duration,
    ) -> Result<Subscription, EngineError> {
        self.get_subscription(account, id)?;
        self.ask_actor(id, |reply| SubscriptionMsg::RotateSecret(grace, reply))
            .await
    }

    /// Makes a subscription's actor fail, to exercise supervision in tests.
    pub fn crash_subscription_actor(&self, id: SubscriptionId) {
        let _ = self
            .supervisor
            .cast(SupervisorMsg::Forward(id, SubscriptionMsg::Crash));
    }

    // --- events ----------------------------------------------------------

    pub fn list_events(&self, query: &EventQuery) -> Result<EventPage, EngineError> {
        if let Some(sub_id) = query.subscription_id
            && !self.subscription_events_visible(&query.account, sub_id)?
        {
            return Ok(EventPage {
                items: Vec::new(),
                total: 0,
            });
        }
        Ok(self.ctx.store.list_events(query)?)
    }

    pub fn get_event(&self, account: &AccountId, id: EventId) -> Result<EventRecord, EngineError> {
        match self.ctx.store.find_event(account, id)? {
            Some(event) if &event.account_id == account => Ok(event),
            _ => Err(EngineError::NotFound("event")),
        }
    }

    /// Queues a Failed or Delivered event for another round of attempts.
    pub async fn retry_event(
        &self,
        account: &AccountId,
        id: EventId,
    ) -> Result<EventRecord, EngineError> {
        let event = self.get_event(account, id)?;
        if !event.status.is_finished() {
            return Err(EngineError::Conflict(format!(
                "the event is {}; only Failed or Delivered events can be retried",
                event.status.as_str()
            )));
        }
        if self
            .ctx
            .store
            .get_subscription(event.subscription_id)?
            .is_none()
        {
            return Err(subscription_deleted());
        }
        self.ask_actor(event.subscription_id, |reply| {
            SubscriptionMsg::Retry(id, reply)
        })
        .await
        .map_err(|error| match error {
            EngineError::NotFound("subscription") => subscription_deleted(),
            other => other,
        })
    }

    /// Stores and fans out platform events; one result per input, in order.
    pub async fn ingest(
        &self,
        events: Vec<PlatformEvent>,
    ) -> Vec<Result<IngestOutcome, EngineError>> {
        let count = events.len();
        let (sender, receiver) = oneshot::channel();
        if self.router.cast(RouterMsg::Ingest(events, sender)).is_err() {
            return (0..count)
                .map(|_| Err(EngineError::Internal("the router is not running".into())))
                .collect();
        }
        receiver.await.unwrap_or_else(|_| {
            (0..count)
                .map(|_| {
                    Err(EngineError::Internal(
                        "the router stopped before it replied".into(),
                    ))
                })
                .collect()
        })
    }

    // --- operations ------------------------------------------------------

    pub fn health(&self) -> HealthReport {
        // An actor is still `Starting` until its `post_start` has run, which
        // can be after the server has responded to its first request.
        let alive = |status| {
            matches!(
                status,
                ractor::ActorStatus::Starting | ractor::ActorStatus::Running
            )
        };
        let engine_running = alive(self.supervisor.get_status()) && alive(self.router.get_status());
        HealthReport {
            store_healthy: self.ctx.store.is_healthy(),
            engine_running,
            queue_depth: self.ctx.store.unfinished_count(),
            recent_error_rate: self.ctx.recent_error_rate(),
            uptime: self.started.elapsed(),
        }
    }

    /// Sets the gauges that are read from live state.
    pub fn update_gauges(&self) {
        metrics::gauge!("argus_webhooks_queue_depth").set(self.ctx.store.unfinished_count() as f64);
        metrics::gauge!("argus_webhooks_subscription_actors")
            .set(self.ctx.live_actors.load(Ordering::Relaxed) as f64);
        for status in SubscriptionStatus::ALL {
            metrics::gauge!("argus_webhooks_subscriptions", "status" => status.as_str())
                .set(self.ctx.subscriptions_with_status(status) as f64);
        }
        metrics::gauge!("argus_webhooks_uptime_seconds").set(self.started.elapsed().as_secs_f64());
    }

    /// Stops starting attempts, waits up to `grace` for those in flight, stops
    /// the actors and flushes the store. Attempts still in flight after the
    /// grace period are not recorded; their events stay queued and are sent
    /// again after a restart.
    pub async fn shutdown(&self, grace: Duration) {
        self.ctx.draining.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + grace;
        loop {
            let in_flight = self.ctx.in_flight.load(Ordering::Relaxed);
            if in_flight <= 0 {
                tracing::info!("every attempt in flight has finished");
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    in_flight,
                    "grace period over; unfinished attempts are sent again after restart"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (sender, receiver) = oneshot::channel();
        if self
            .supervisor
            .cast(SupervisorMsg::StopChildren(sender))
            .is_ok()
        {
            let _ = receiver.await;
            tracing::info!("subscription actors stopped");
        }
        match self.ctx.store.flush_all().await {
            Ok(()) => tracing::info!("store flushed"),
            Err(error) => tracing::error!(%error, "final store flush failed"),
        }
        self.supervisor.stop(Some("shutdown".into()));
    }

    async fn verify(
        &self,
        url: &crate::model::EndpointUrl,
        secrets: &[SigningSecret],
    ) -> Result<(), EngineError> {
        self.ctx
            .client
            .verify_endpoint(url, secrets)
            .await
            .map_err(EngineError::from)
    }

    fn subscription_events_visible(
        &self,
        account: &AccountId,
        id: SubscriptionId,
    ) -> Result<bool, EngineError> {
        if let Some(sub) = self.ctx.store.get_subscription(id)? {
            return Ok(&sub.account_id == account);
        }
        // A deleted subscription's history stays visible to its account.
        let probe = EventQuery {
            account: account.clone(),
            subscription_id: Some(id),
            event_type: None,
            status: None,
            from: None,
            to: None,
            page: 1,
            page_size: 1,
        };
        Ok(!self.ctx.store.list_events(&probe)?.items.is_empty())
    }

    async fn ask_supervisor<T>(
        &self,
        build: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> SupervisorMsg,
    ) -> Result<T, EngineError> {
        let (sender, receiver) = oneshot::channel();
        self.supervisor
            .cast(build(sender))
            .map_err(|_| EngineError::Unavailable("the engine is not running".into()))?;
        receiver
            .await
            .map_err(|_| EngineError::Internal("the engine dropped the request".into()))?
    }

    async fn ask_actor<T>(
        &self,
        id: SubscriptionId,
        build: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> SubscriptionMsg,
    ) -> Result<T, EngineError> {
        let (sender, receiver) = oneshot::channel();
        self.supervisor
            .cast(SupervisorMsg::Forward(id, build(sender)))
            .map_err(|_| EngineError::Unavailable("the engine is not running".into()))?;
        match receiver.await {
            Ok(result) => result,
            // The actor stopped without replying. A delete that raced this
            // request is the expected cause, and then the request is for a
            // subscription that no longer exists. Otherwise the actor crashed,
            // and the supervisor restarts it, or the service is shutting down.
            // Either way the client is asked to retry (503 with Retry-After).
            Err(_) => match self.ctx.store.get_subscription(id)? {
                None => Err(EngineError::NotFound("subscription")),
                Some(_) => {
                    tracing::warn!(subscription_id = %id, "the subscription actor stopped before it replied");
                    Err(EngineError::Unavailable(
                        "the subscription actor stopped before it replied; retry the request"
                            .into(),
                    ))
                }
            },
        }
    }
}

/// Returns the error for a retry whose event's subscription was deleted.
fn subscription_deleted() -> EngineError {
    EngineError::Conflict("the event's subscription was deleted; it cannot be retried".into())
}

/// Probes an unhealthy store every second with a small write and flush, so
/// health turns Healthy again once the disk accepts writes, even when no
/// request writes anything.
async fn run_store_probe(ctx: Arc<Context>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        if !ctx.store.is_healthy() && ctx.store.probe().await.is_ok() {
            tracing::info!("the store accepts writes again");
        }
    }
}

/// Removes finished events past the retention period, in bounded batches.
async fn run_pruner(ctx: Arc<Context>) {
    let mut interval = tokio::time::interval(
        ctx.settings
            .retention_interval
            .max(Duration::from_millis(100)),
    );
    loop {
        interval.tick().await;
        // A retention too long to subtract from now keeps every event.
        let Some(cutoff) = chrono::Duration::from_std(ctx.settings.retention)
            .ok()
            .and_then(|retention| Utc::now().checked_sub_signed(retention))
        else {
            continue;
        };
        loop {
            let store = ctx.store.clone();
            let pruned =
                tokio::task::spawn_blocking(move || store.prune_finished(cutoff, 10_000)).await;
            match pruned {
                Ok(Ok(count)) => {
                    if count > 0 {
                        tracing::info!(count, "pruned events past retention");
                    }
                    if count < 10_000 {
                        break;
                    }
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "pruning failed");
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, "the pruning task panicked");
                    break;
                }
            }
        }
    }
}
