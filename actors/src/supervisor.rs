//! The supervisor owns the registry of subscription actors. Every message for
//! a subscription passes through it, so it can start an actor when work
//! arrives, stop an idle one without losing a message, and restart one that
//! failed from the state in the store.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

use crate::context::Context;
use crate::error::EngineError;
use crate::model::{Subscription, SubscriptionId, SubscriptionStatus};
use crate::router::{Router, RouterArgs, RouterMsg};
use crate::subscription::{Reply, SubscriptionActor, SubscriptionArgs, SubscriptionMsg};

pub enum SupervisorMsg {
    /// Delivers a message to a subscription's actor, starting it if needed.
    Forward(SubscriptionId, SubscriptionMsg),
    Create(Subscription, Reply<Subscription>),
    Delete(SubscriptionId, Reply<()>),
    /// Sent by an idle actor that requests to stop. `received` counts the forwarded messages it handled.
    IdleStop {
        id: SubscriptionId,
        /// The actor that asked, so a request left over from an actor that
        /// already stopped cannot stop its replacement.
        actor: ActorId,
        received: u64,
    },
    /// A restart that waited for the budget to refill.
    RestartDue(SubscriptionId),
    /// Returns the router, for the engine's ingest path.
    GetRouter(oneshot::Sender<ActorRef<RouterMsg>>),
    /// Stops every subscription actor, for shutdown.
    StopChildren(oneshot::Sender<()>),
}

pub struct Supervisor;

/// Maximum wait for a deleted subscription's actor to reply to the requests
/// already in its mailbox. Its handlers do no I/O other than store writes, so
/// this is only reached when the store stalls.
const DRAIN_ON_DELETE: Duration = Duration::from_secs(5);

pub struct SupervisorArgs {
    pub ctx: Arc<Context>,
}

struct Child {
    actor: ActorRef<SubscriptionMsg>,
    forwarded: u64,
}

pub struct SupervisorState {
    ctx: Arc<Context>,
    router: ActorRef<RouterMsg>,
    children: HashMap<SubscriptionId, Child>,
    by_actor: HashMap<ActorId, SubscriptionId>,
    restarts: HashMap<SubscriptionId, VecDeque<Instant>>,
    /// Subscriptions whose actor used up its restart budget; nothing starts
    /// them before their `RestartDue`.
    suspended: HashSet<SubscriptionId>,
    stopping: bool,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let subscriptions = args.ctx.store.load_subscriptions()?;
        for sub in &subscriptions {
            args.ctx.status_changed(None, Some(sub.status));
        }
        let (router, _) = Actor::spawn_linked(
            None,
            Router,
            RouterArgs {
                ctx: args.ctx.clone(),
                supervisor: myself.clone(),
                subscriptions: subscriptions.clone(),
            },
            myself.get_cell(),
        )
        .await?;
        let mut state = SupervisorState {
            ctx: args.ctx,
            router,
            children: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: HashMap::new(),
            suspended: HashSet::new(),
            stopping: false,
        };
        let mut started = 0;
        for id in state.ctx.store.subscriptions_with_work()? {
            let sub = subscriptions.iter().find(|sub| sub.id == id);
            // A kill between storing a delete or a disable and failing the
            // subscription's events leaves them queued; finish that here.
            let reason = match sub {
                None => "the subscription was deleted".to_string(),
                Some(sub) if sub.status == SubscriptionStatus::Disabled => format!(
                    "the subscription was disabled: {}",
                    sub.status_reason.as_deref().unwrap_or("")
                ),
                Some(_) => {
                    state.start_child(&myself, id).await?;
                    started += 1;
                    continue;
                }
            };
            let count = state.ctx.store.fail_unfinished(id, &reason)?;
            tracing::info!(subscription_id = %id, count, reason, "queued events failed at start");
        }
        tracing::info!(
            subscriptions = subscriptions.len(),
            actors_started = started,
            "supervisor started"
        );
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Forward(id, msg) => state.forward(&myself, id, msg).await,
            SupervisorMsg::Create(sub, reply) => state.create(sub, reply),
            SupervisorMsg::Delete(id, reply) => state.delete(id, reply).await,
            SupervisorMsg::IdleStop {
                id,
                actor,
                received,
            } => {
                if let Some(child) = state.children.get(&id)
                    && child.actor.get_id() == actor
                    && child.forwarded == received
                {
                    let child = state.children.remove(&id).expect("checked above");
                    state.by_actor.remove(&child.actor.get_id());
                    child.actor.stop(Some("idle".into()));
                    tracing::debug!(subscription_id = %id, "idle subscription actor stopped");
                }
            }
            SupervisorMsg::RestartDue(id) => {
                state.suspended.remove(&id);
                if !state.children.contains_key(&id)
                    && state.ctx.store.get_subscription(id)?.is_some()
                {
                    state.start_child(&myself, id).await?;
                }
            }
            SupervisorMsg::GetRouter(reply) => {
                let _ = reply.send(state.router.clone());
            }
            SupervisorMsg::StopChildren(reply) => {
                state.stopping = true;
                state.by_actor.clear();
                // Wait for each actor, so the attempts it records as
                // interrupted are written before the final flush.
                for (id, child) in state.children.drain() {
                    let stopped = child
                        .actor
                        .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5)))
                        .await;
                    if let Err(error) = stopped {
                        tracing::warn!(subscription_id = %id, %error, "subscription actor did not stop in 5 s");
                    }
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                state.child_failed(&myself, cell, error.to_string()).await
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if cell.get_id() == state.router.get_id() && !state.stopping {
                    return Err("the router stopped".into());
                }
                if let Some(id) = state.by_actor.remove(&cell.get_id()) {
                    state.children.remove(&id);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl SupervisorState {
    async fn start_child(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: SubscriptionId,
    ) -> Result<(), ActorProcessingErr> {
        let (actor, _) = Actor::spawn_linked(
            None,
            SubscriptionActor,
            SubscriptionArgs {
                id,
                ctx: self.ctx.clone(),
                router: self.router.clone(),
                supervisor: myself.clone(),
            },
            myself.get_cell(),
        )
        .await?;
        self.by_actor.insert(actor.get_id(), id);
        self.children.insert(
            id,
            Child {
                actor,
                forwarded: 0,
            },
        );
        Ok(())
    }

    async fn forward(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: SubscriptionId,
        msg: SubscriptionMsg,
    ) {
        if self.stopping {
            reject(
                msg,
                EngineError::Unavailable("the service is shutting down".into()),
            );
            return;
        }
        if self.suspended.contains(&id) {
            // Events stay queued in the store and are loaded at the restart.
            return reject(
                msg,
                EngineError::Unavailable(
                    "the subscription's actor failed repeatedly and is waiting to restart".into(),
                ),
            );
        }
        if !self.children.contains_key(&id) {
            match self.ctx.store.get_subscription(id) {
                Ok(Some(_)) => {}
                Ok(None) => return reject(msg, EngineError::NotFound("subscription")),
                Err(error) => return reject(msg, error.into()),
            }
            if let Err(error) = self.start_child(myself, id).await {
                tracing::error!(subscription_id = %id, %error, "cannot start the subscription actor");
                return reject(
                    msg,
                    EngineError::Internal("cannot start the subscription actor".into()),
                );
            }
        }
        let child = self.children.get_mut(&id).expect("started above");
        child.forwarded += 1;
        if let Err(error) = child.actor.cast(msg) {
            tracing::warn!(subscription_id = %id, %error, "subscription actor did not take a message");
        }
    }

    fn create(&mut self, sub: Subscription, reply: Reply<Subscription>) {
        match check_create(&self.ctx, &sub) {
            Ok(()) => {}
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        }
        if let Err(error) = self.ctx.store.put_subscription(&sub) {
            let _ = reply.send(Err(error.into()));
            return;
        }
        self.ctx.status_changed(None, Some(sub.status));
        // The actor starts when work arrives; an idle subscription costs no actor.
        let _ = self.router.cast(RouterMsg::Upsert(Box::new(sub.clone())));
        tracing::info!(subscription_id = %sub.id, account_id = %sub.account_id, "subscription created");
        let store = self.ctx.store.clone();
        tokio::spawn(async move {
            let result = store.flush().await.map(|_| sub).map_err(EngineError::from);
            let _ = reply.send(result);
        });
    }

    async fn delete(&mut self, id: SubscriptionId, reply: Reply<()>) {
        let sub = match self.ctx.store.get_subscription(id) {
            Ok(Some(sub)) => sub,
            Ok(None) => {
                let _ = reply.send(Err(EngineError::NotFound("subscription")));
                return;
            }
            Err(error) => {
                let _ = reply.send(Err(error.into()));
                return;
            }
        };
        if let Some(child) = self.children.remove(&id) {
            self.by_actor.remove(&child.actor.get_id());
            // `stop` takes priority over the mailbox, so requests already
            // forwarded (a pause, a rotation) would lose their replies.
            // Draining replies to them first, and waiting keeps their writes
            // from landing after the delete.
            let drained = child.actor.drain_and_wait(Some(DRAIN_ON_DELETE)).await;
            if let Err(error) = drained {
                tracing::warn!(subscription_id = %id, %error, "subscription actor did not drain in time; stopping it");
                child.actor.stop(Some("deleted".into()));
            }
        }
        // Requests drained above may have changed the status (a pause, a
        // disable), and the status gauge must lose the current one.
        let sub = match self.ctx.store.get_subscription(id) {
            Ok(Some(current)) => current,
            _ => sub,
        };
        if let Err(error) = self.ctx.store.delete_subscription(&sub) {
            let _ = reply.send(Err(error.into()));
            return;
        }
        self.ctx.status_changed(Some(sub.status), None);
        let _ = self.router.cast(RouterMsg::Remove(id));
        let (barrier, router_caught_up) = oneshot::channel();
        let _ = self.router.cast(RouterMsg::Barrier(barrier));
        tracing::info!(subscription_id = %id, "subscription deleted");
        let store = self.ctx.store.clone();
        tokio::spawn(async move {
            // Ingests queued at the router before Remove still write events for
            // this subscription, so fail its events only after those writes.
            // An error means the router stopped, and then it writes nothing more.
            let _ = router_caught_up.await;
            let failed = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    store.fail_unfinished(id, "the subscription was deleted")
                })
                .await
            };
            match failed {
                Ok(Ok(count)) if count > 0 => {
                    tracing::info!(subscription_id = %id, count, "unfinished events failed because the subscription was deleted")
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::error!(subscription_id = %id, %error, "cannot fail the events of a deleted subscription")
                }
                Err(error) => {
                    tracing::error!(subscription_id = %id, %error, "the task failing a deleted subscription's events panicked")
                }
            }
            let _ = reply.send(store.flush().await.map_err(EngineError::from));
        });
    }

    async fn child_failed(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        cell: ActorCell,
        error: String,
    ) {
        if cell.get_id() == self.router.get_id() {
            tracing::error!(%error, "the router failed; restarting it");
            match self.ctx.store.load_subscriptions() {
                Ok(subscriptions) => {
                    match Actor::spawn_linked(
                        None,
                        Router,
                        RouterArgs {
                            ctx: self.ctx.clone(),
                            supervisor: myself.clone(),
                            subscriptions,
                        },
                        myself.get_cell(),
                    )
                    .await
                    {
                        Ok((router, _)) => self.router = router,
                        Err(error) => tracing::error!(%error, "cannot restart the router"),
                    }
                }
                Err(error) => tracing::error!(%error, "cannot reload subscriptions for the router"),
            }
            return;
        }
        let Some(id) = self.by_actor.remove(&cell.get_id()) else {
            return;
        };
        self.children.remove(&id);
        metrics::counter!("argus_webhooks_actor_restarts_total").increment(1);
        tracing::error!(subscription_id = %id, %error, "subscription actor failed; restarting it from the store");
        let now = Instant::now();
        let window = self.ctx.settings.restart_window;
        let history = self.restarts.entry(id).or_default();
        while history
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            history.pop_front();
        }
        if history.len() as u32 >= self.ctx.settings.restart_budget {
            tracing::error!(subscription_id = %id, budget = self.ctx.settings.restart_budget, window_seconds = window.as_secs_f64(), "restart budget used up; the actor restarts when the window has passed");
            self.suspended.insert(id);
            myself.send_after(window, move || SupervisorMsg::RestartDue(id));
            return;
        }
        history.push_back(now);
        if let Err(error) = self.start_child(myself, id).await {
            tracing::error!(subscription_id = %id, %error, "cannot restart the subscription actor; retrying after the restart window");
            myself.send_after(Duration::from_secs(1).max(window / 10), move || {
                SupervisorMsg::RestartDue(id)
            });
        }
    }
}

/// Enforces the per-account limit and the rule that two subscriptions of an
/// account may not share a URL and an event type.
pub(crate) fn check_create(ctx: &Context, sub: &Subscription) -> Result<(), EngineError> {
    let same_account = ctx.store.account_subscriptions(&sub.account_id)?;
    if same_account.len() >= ctx.settings.max_subscriptions_per_account {
        return Err(EngineError::LimitReached(format!(
            "the account has {} subscriptions, the maximum",
            ctx.settings.max_subscriptions_per_account
        )));
    }
    check_conflict(sub, same_account.iter())
}

pub(crate) fn check_conflict<'a>(
    sub: &Subscription,
    others: impl Iterator<Item = &'a Subscription>,
) -> Result<(), EngineError> {
    let types = sub.event_type_set();
    for other in others {
        if other.id != sub.id
            && other.account_id == sub.account_id
            && other.url.normalized() == sub.url.normalized()
            && other.event_type_set().intersects(types)
        {
            return Err(EngineError::Conflict(format!(
                "subscription {} already delivers a requested event type to this URL",
                other.id
            )));
        }
    }
    Ok(())
}

/// Replies to a message's caller with `error` when the message cannot be delivered.
fn reject(msg: SubscriptionMsg, error: EngineError) {
    match msg {
        SubscriptionMsg::Pause(reply)
        | SubscriptionMsg::Resume(reply)
        | SubscriptionMsg::Update(_, reply)
        | SubscriptionMsg::RotateSecret(_, reply) => {
            let _ = reply.send(Err(error));
        }
        SubscriptionMsg::Test(reply) => {
            let _ = reply.send(Err(error));
        }
        SubscriptionMsg::Retry(_, reply) => {
            let _ = reply.send(Err(error));
        }
        _ => {}
    }
}
