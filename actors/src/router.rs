//! The router turns each platform event into one stored event per matching
//! subscription that is not Disabled, and notifies those subscriptions once the
//! batch is durable. It de-duplicates by platform event id, so a repeated
//! ingest returns the original result and creates nothing.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, oneshot};

use crate::context::Context;
use crate::error::EngineError;
use crate::model::{
    AccountId, EventId, EventRecord, EventType, EventTypeSet, PlatformEvent, PlatformEventId,
    Subscription, SubscriptionId, SubscriptionStatus,
};
use crate::store::{DeferredCopies, IngestRecord};
use crate::subscription::SubscriptionMsg;
use crate::supervisor::SupervisorMsg;

/// The result of ingesting one platform event.
#[derive(Clone, Debug)]
pub struct IngestOutcome {
    pub event_id: PlatformEventId,
    /// (event id, subscription id) of each copy created.
    pub deliveries: Vec<(EventId, SubscriptionId)>,
    /// True when the id was accepted before; nothing new was created.
    pub duplicate: bool,
}

pub type IngestReply = oneshot::Sender<Vec<Result<IngestOutcome, EngineError>>>;

pub enum RouterMsg {
    Ingest(Vec<PlatformEvent>, IngestReply),
    /// A subscription was created or changed.
    Upsert(Box<Subscription>),
    Remove(SubscriptionId),
    /// Replies once the router has handled every message sent before this
    /// one, so the caller knows which ingests were written before a change.
    Barrier(oneshot::Sender<()>),
}

#[derive(Clone, Copy)]
struct Route {
    id: SubscriptionId,
    types: EventTypeSet,
    status: SubscriptionStatus,
}

pub struct Router;

pub struct RouterArgs {
    pub ctx: Arc<Context>,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub subscriptions: Vec<Subscription>,
}

pub struct RouterState {
    ctx: Arc<Context>,
    routes: HashMap<AccountId, Vec<Route>>,
    accounts: HashMap<SubscriptionId, AccountId>,
    commits: mpsc::UnboundedSender<Commit>,
}

/// A written batch waiting for its flush, then for its notifications and reply.
struct Commit {
    outcomes: Vec<Result<IngestOutcome, EngineError>>,
    reply: IngestReply,
    notify: Vec<(SubscriptionId, Vec<EventId>)>,
    /// The records written with the batch, with their payloads, by
    /// subscription, which its actor uses instead of reading them back.
    /// Deferred copies are not among them.
    records: HashMap<SubscriptionId, Vec<EventRecord>>,
    /// Fires once the router has staged the batch's deferred copies, which
    /// it builds after sending the commit.
    staged: Option<oneshot::Receiver<()>>,
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (commits, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_commits(args.ctx.clone(), args.supervisor, receiver));
        let mut state = RouterState {
            ctx: args.ctx,
            routes: HashMap::new(),
            accounts: HashMap::new(),
            commits,
        };
        for sub in &args.subscriptions {
            state.upsert(sub);
        }
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RouterMsg::Ingest(events, reply) => state.ingest(events, reply),
            RouterMsg::Upsert(sub) => state.upsert(&sub),
            RouterMsg::Remove(id) => state.remove(id),
            RouterMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl RouterState {
    fn upsert(&mut self, sub: &Subscription) {
        self.remove(sub.id);
        self.routes
            .entry(sub.account_id.clone())
            .or_default()
            .push(Route {
                id: sub.id,
                types: sub.event_type_set(),
                status: sub.status,
            });
        self.accounts.insert(sub.id, sub.account_id.clone());
    }

    fn remove(&mut self, id: SubscriptionId) {
        if let Some(account) = self.accounts.remove(&id)
            && let Some(routes) = self.routes.get_mut(&account)
        {
            routes.retain(|route| route.id != id);
            if routes.is_empty() {
                self.routes.remove(&account);
            }
        }
    }

    fn ingest(&mut self, events: Vec<PlatformEvent>, reply: IngestReply) {
        let now = Utc::now();
        let mut outcomes: Vec<Result<IngestOutcome, EngineError>> =
            Vec::with_capacity(events.len());
        let mut accepted = Vec::new();
        let mut records = Vec::new();
        let mut shared: Vec<SharedCopies> = Vec::new();
        let mut seen_in_batch: HashMap<PlatformEventId, usize> = HashMap::new();
        let mut accepted_types = Vec::new();
        // True for each outcome that needs this batch's write: new items and
        // their repeats within the batch, but not events accepted earlier.
        let mut written = Vec::with_capacity(events.len());

        for event in events {
            if let Some(&index) = seen_in_batch.get(&event.id) {
                // A repeat shares the first item's fate, its error included.
                let outcome = outcomes[index].clone().map(|mut o| {
                    o.duplicate = true;
                    o
                });
                if outcome.is_ok() {
                    metrics::counter!("argus_webhooks_ingest_duplicates_total").increment(1);
                }
                outcomes.push(outcome);
                written.push(true);
                continue;
            }
            match self.ctx.store.ingest_record(event.id) {
                Ok(Some(previous)) => {
                    metrics::counter!("argus_webhooks_ingest_duplicates_total").increment(1);
                    outcomes.push(Ok(IngestOutcome {
                        event_id: previous.event_id,
                        deliveries: previous.deliveries,
                        duplicate: true,
                    }));
                    written.push(false);
                    continue;
                }
                Ok(None) => {}
                Err(error) => {
                    outcomes.push(Err(error.into()));
                    written.push(false);
                    continue;
                }
            }
            let payload = event.payload_json();
            let routes: Vec<&Route> = self
                .routes
                .get(&event.account_id)
                .into_iter()
                .flatten()
                .filter(|route| {
                    route.status != SubscriptionStatus::Disabled
                        && route.types.contains(event.event_type)
                })
                .collect();
            // With more than one copy, the ingest record keeps the payload
            // once and the copies leave it out.
            let shared_payload = routes.len() > 1;
            let deliveries: Vec<(EventId, SubscriptionId)> = routes
                .iter()
                .map(|route| (EventId::new(), route.id))
                .collect();
            if shared_payload {
                shared.push(SharedCopies {
                    event_id: event.id,
                    account_id: event.account_id.clone(),
                    event_type: event.event_type,
                    deliveries: deliveries.clone(),
                });
            } else {
                for &delivery in &deliveries {
                    records.push(EventRecord::pending_copy(
                        delivery,
                        event.account_id.clone(),
                        event.event_type,
                        event.id,
                        payload.clone(),
                        false,
                        now,
                    ));
                }
            }
            accepted.push(IngestRecord {
                event_id: event.id,
                deliveries: deliveries.clone(),
                accepted_at: now,
                payload: shared_payload.then_some(payload),
            });
            accepted_types.push(event.event_type);
            seen_in_batch.insert(event.id, outcomes.len());
            outcomes.push(Ok(IngestOutcome {
                event_id: event.id,
                deliveries,
                duplicate: false,
            }));
            written.push(true);
        }

        // A small group writes the shared copies after sending its commit, so
        // they are built while the flush of the ingest records runs.
        let copy_count = records.len() + shared.iter().map(|s| s.deliveries.len()).sum::<usize>();
        let defer = !shared.is_empty() && self.ctx.store.defers_copies(accepted.len() + copy_count);
        if !defer {
            for copies in shared.drain(..) {
                records.extend(copies.records(now));
            }
        }
        let deferred: Vec<DeferredCopies> = shared.iter().map(SharedCopies::entry).collect();
        let mut by_subscription: HashMap<SubscriptionId, Vec<EventId>> = HashMap::new();
        let shared_deliveries = shared.iter().flat_map(|s| s.deliveries.iter().copied());
        let written_deliveries = records.iter().map(|r| (r.id, r.subscription_id));
        for (id, subscription) in written_deliveries.chain(shared_deliveries) {
            by_subscription.entry(subscription).or_default().push(id);
        }
        for ids in by_subscription.values_mut() {
            // In queue order, since shared copies come after the others.
            ids.sort_unstable();
        }
        let mut notify: Vec<(SubscriptionId, Vec<EventId>)> = by_subscription.into_iter().collect();
        // Queue scans pass over the copies until their flush has ended.
        self.ctx.store.hold_copies(&notify);
        if !accepted.is_empty()
            && let Err(error) = self
                .ctx
                .store
                .write_ingest_with_deferred(&accepted, &records, &deferred)
        {
            // Nothing of this batch was written. Fail every item that needed the
            // write, and keep the events accepted earlier.
            fail_written(&mut outcomes, &written, &error.to_string());
            self.ctx.store.release_copies(&notify);
            notify.clear();
            records.clear();
            shared.clear();
        } else {
            for (event_type, count) in count_by_type(accepted_types) {
                metrics::counter!("argus_webhooks_events_ingested_total", "event_type" => event_type.as_str()).increment(count);
            }
        }

        let created = records.iter().map(|r| r.event_type);
        let mut created_counts = count_by_type(created);
        let records = records_by_subscription(records, &accepted);

        let (copies_staged, staged) = if shared.is_empty() {
            (None, None)
        } else {
            let (sender, receiver) = oneshot::channel();
            (Some(sender), Some(receiver))
        };
        let commit = Commit {
            outcomes,
            reply,
            notify,
            records,
            staged,
        };
        if let Err(mpsc::error::SendError(commit)) = self.commits.send(commit) {
            self.ctx.store.release_copies(&commit.notify);
            // One result per item, as callers match results to items by position.
            let results = commit
                .outcomes
                .iter()
                .map(|_| Err(EngineError::Internal("the commit task has stopped".into())))
                .collect();
            let _ = commit.reply.send(results);
        }

        let shared_records: Vec<EventRecord> = shared
            .iter()
            .flat_map(|copies| copies.records(now))
            .collect();
        if !shared_records.is_empty() {
            self.ctx.store.stage_deferred_copies(&shared_records);
        }
        if let Some(sender) = copies_staged {
            let _ = sender.send(());
        }
        created_counts.extend(count_by_type(shared_records.iter().map(|r| r.event_type)));
        for (event_type, count) in created_counts {
            metrics::counter!("argus_webhooks_events_created_total", "event_type" => event_type.as_str())
                .increment(count);
        }
    }
}

/// Groups the records of a written batch by subscription, giving copies that
/// share a payload the payload from their ingest record, so an actor can
/// send them as they are.
fn records_by_subscription(
    records: Vec<EventRecord>,
    accepted: &[IngestRecord],
) -> HashMap<SubscriptionId, Vec<EventRecord>> {
    let payloads: HashMap<PlatformEventId, &String> = accepted
        .iter()
        .filter_map(|ingest| Some((ingest.event_id, ingest.payload.as_ref()?)))
        .collect();
    let mut by_subscription: HashMap<SubscriptionId, Vec<EventRecord>> = HashMap::new();
    for mut record in records {
        if record.shared_payload {
            match payloads.get(&record.platform_event_id) {
                Some(payload) => record.payload = (*payload).clone(),
                // Read from the store instead.
                None => continue,
            }
        }
        by_subscription
            .entry(record.subscription_id)
            .or_default()
            .push(record);
    }
    by_subscription
}

/// Counts `types` by event type, so a batch updates each counter once
/// rather than once per event.
fn count_by_type(types: impl IntoIterator<Item = EventType>) -> Vec<(EventType, u64)> {
    let mut counts: Vec<(EventType, u64)> = Vec::new();
    for event_type in types {
        match counts.iter_mut().find(|(t, _)| *t == event_type) {
            Some((_, count)) => *count += 1,
            None => counts.push((event_type, 1)),
        }
    }
    counts
}

/// The copies of one platform event that share its payload.
struct SharedCopies {
    event_id: PlatformEventId,
    account_id: AccountId,
    event_type: EventType,
    deliveries: Vec<(EventId, SubscriptionId)>,
}

impl SharedCopies {
    fn records(&self, accepted_at: DateTime<Utc>) -> impl Iterator<Item = EventRecord> + '_ {
        EventRecord::shared_copies(
            &self.deliveries,
            &self.account_id,
            self.event_type,
            self.event_id,
            accepted_at,
        )
    }

    fn entry(&self) -> DeferredCopies {
        DeferredCopies {
            event_id: self.event_id,
            account_id: self.account_id.clone(),
            event_type: self.event_type,
        }
    }
}

/// Flushes written batches in groups, then notifies the subscriptions and
/// replies, in the order the batches were written.
async fn run_commits(
    ctx: Arc<Context>,
    supervisor: ActorRef<SupervisorMsg>,
    mut receiver: mpsc::UnboundedReceiver<Commit>,
) {
    while let Some(first) = receiver.recv().await {
        let mut group = vec![first];
        while let Ok(next) = receiver.try_recv() {
            group.push(next);
        }
        let flushed = ctx.store.flush().await;
        for mut commit in group {
            if let Some(staged) = commit.staged.take()
                && staged.await.is_err()
            {
                // The ingest records and their `U` entries are written, so
                // the next start restores the copies.
                tracing::error!(
                    "the router stopped before it staged the copies of an ingest; they are restored at the next start"
                );
            }
            if let Err(error) = &flushed {
                // Duplicates fail too: the original they repeat may be one of
                // the writes this flush did not make durable.
                for outcome in commit.outcomes.iter_mut() {
                    if outcome.is_ok() {
                        *outcome = Err(EngineError::Unavailable(error.to_string()));
                    }
                }
            }
            // Written events are delivered even if the flush failed: they are in
            // sled's memory, and a client that retries the ingest gets a duplicate.
            ctx.store.release_copies(&commit.notify);
            for (sub, ids) in commit.notify {
                let records = commit.records.remove(&sub).unwrap_or_default();
                let _ = supervisor.cast(SupervisorMsg::Forward(
                    sub,
                    SubscriptionMsg::EventsArrived(ids, records),
                ));
            }
            let _ = commit.reply.send(commit.outcomes);
        }
    }
}

/// Replaces each successful outcome that needed a failed write with
/// `Unavailable`, so no repeat within the batch reports a duplicate of an
/// event that was not stored.
fn fail_written(
    outcomes: &mut [Result<IngestOutcome, EngineError>],
    written: &[bool],
    message: &str,
) {
    for (outcome, needed_write) in outcomes.iter_mut().zip(written) {
        if *needed_write && outcome.is_ok() {
            *outcome = Err(EngineError::Unavailable(message.to_string()));
        }
    }
}
