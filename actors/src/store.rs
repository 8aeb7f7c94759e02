//! The sled store. Everything lives in one sled tree under one-byte key
//! prefixes, so that each change that touches a record and its index entries
//! is a single atomic `Batch`:
//!
//! | prefix | key after the prefix           | value                          |
//! |--------|--------------------------------|--------------------------------|
//! | `M`    | name                           | metadata (format version)      |
//! | `S`    | subscription id                | subscription JSON              |
//! | `C`    | account id, 0x00, subscription id | empty: the account's subscriptions |
//! | `E`    | event id                       | event JSON                     |
//! | `B`    | subscription id, event id      | [status, type]                 |
//! | `A`    | account id, 0x00, event id     | [status, type], subscription id|
//! | `Q`    | subscription id, event id      | empty: waits for its first attempt |
//! | `R`    | subscription id, event id      | next attempt, ms since epoch   |
//! | `I`    | platform event id              | ingest result JSON             |
//!
//! Event ids are UUID v7, so every index lists events in creation order.
//! Writes are applied to sled's memory at once; [`Store::flush`] makes them
//! durable, and concurrent callers share one flush (group commit).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::counts::EventCounts;
use crate::model::{
    AccountId, EventId, EventRecord, EventStatus, EventType, PlatformEventId, Subscription,
    SubscriptionId,
};

/// Version of the on-disk layout described above.
pub const FORMAT_VERSION: u32 = 1;

const META: u8 = b'M';
const SUBSCRIPTION: u8 = b'S';
const BY_ACCOUNT_SUBSCRIPTION: u8 = b'C';
const EVENT: u8 = b'E';
const BY_SUBSCRIPTION: u8 = b'B';
const BY_ACCOUNT: u8 = b'A';
const QUEUE: u8 = b'Q';
const RETRY: u8 = b'R';
const INGESTED: u8 = b'I';

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the data dir {dir} is in use by another process (lock file {lock})")]
    Locked { dir: String, lock: String },
    #[error(
        "the data dir {dir} has store format version {found}; this build reads version {FORMAT_VERSION}"
    )]
    UnknownFormat { dir: String, found: String },
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("store writes are failing because the fault file {0} exists")]
    Injected(String),
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        StoreError::Io(error.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Settings of the store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// sled's page cache, in bytes.
    pub cache_capacity: u64,
    /// Follow each flush with an fsync of sled's log file; sled's own flush
    /// survives a process crash but not a power loss.
    pub fsync: bool,
    /// While a file exists at this path, every write fails. Used by tests to
    /// inject store failures; `None` in production.
    pub fault_file: Option<PathBuf>,
}

/// The result of one accepted platform event, kept for idempotent repeats.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestRecord {
    pub event_id: PlatformEventId,
    pub deliveries: Vec<(EventId, SubscriptionId)>,
    pub accepted_at: DateTime<Utc>,
}

/// How an event write changes the delivery queues.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QueueChange {
    /// Leave queue entries as they are.
    Keep,
    /// Put the event in the first-attempt queue.
    Enqueue,
    /// Schedule a retry at the given time and leave the first-attempt queue.
    Retry(DateTime<Utc>),
    /// Remove the event from both queues.
    Finish,
}

/// Filters of an event listing.
#[derive(Clone, Debug)]
pub struct EventQuery {
    pub account: AccountId,
    pub subscription_id: Option<SubscriptionId>,
    pub event_type: Option<EventType>,
    pub status: Option<EventStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
}

#[derive(Clone, Debug)]
pub struct EventPage {
    pub items: Vec<EventRecord>,
    pub total: u64,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    db: sled::Db,
    flush_requests: mpsc::UnboundedSender<oneshot::Sender<StoreResult<()>>>,
    /// Result of the last read or write.
    healthy: AtomicBool,
    /// True from a failed write until the next write succeeds, so a read
    /// that works does not hide writes that fail.
    unfinished: AtomicI64,
    counts: EventCounts,
    fault_file: Option<PathBuf>,
    _lock: File,
}

impl Store {
    /// Opens or creates the store, takes the data dir lock and checks the
    /// format version. Must be called inside a tokio runtime.
    pub fn open(config: &StoreConfig) -> StoreResult<Store> {
        let dir = &config.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let lock = lock_dir(dir)?;
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(config.cache_capacity)
            .open()?;
        check_format(&db, dir)?;

        let (flush_requests, receiver) = mpsc::unbounded_channel();
        let store = Store {
            inner: Arc::new(Inner {
                dir: dir.clone(),
                db: db.clone(),
                flush_requests,
                healthy: AtomicBool::new(true),
                unfinished: AtomicI64::new(0),
                counts: EventCounts::default(),
                fault_file: config.fault_file.clone(),
                _lock: lock,
            }),
        };
        let unfinished = store.count_prefix(QUEUE) + store.count_prefix(RETRY);
        store.load_counts()?;
        store
            .inner
            .unfinished
            .store(unfinished as i64, Ordering::Relaxed);
        let log_file = dir.join("sled").join("db");
        tokio::spawn(run_flusher(db, receiver, config.fsync.then_some(log_file)));
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// False after a failed read, write or flush. It turns true again only
    /// after a successful flush, because sled accepts writes in memory even
    /// when the disk is full.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// Events that are Pending or Retrying.
    pub fn unfinished_count(&self) -> u64 {
        self.inner.unfinished.load(Ordering::Relaxed).max(0) as u64
    }

    /// Waits until every write made before the call is on disk. Concurrent
    /// callers share one flush. A successful flush marks the store healthy.
    pub async fn flush(&self) -> StoreResult<()> {
        self.check_fault()?;
        let (sender, receiver) = oneshot::channel();
        self.inner
            .flush_requests
            .send(sender)
            .map_err(|_| StoreError::Io("the flusher has stopped".into()))?;
        let result = receiver
            .await
            .unwrap_or_else(|_| Err(StoreError::Io("the flusher has stopped".into())));
        let result = self.track(result);
        if result.is_ok() {
            self.inner.healthy.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Writes and flushes a probe record, so a store marked unhealthy is
    /// found healthy again once writes reach the disk (space returned, fault
    /// file removed) even when no request writes anything.
    pub async fn probe(&self) -> StoreResult<()> {
        self.check_fault()?;
        let stamp = Utc::now().timestamp_millis().to_be_bytes();
        let written = self
            .inner
            .db
            .insert(key1(META, b"health_probe"), &stamp[..])
            .map(|_| ())
            .map_err(StoreError::from);
        self.track(written)?;
        self.flush().await
    }

    // --- subscriptions ---------------------------------------------------

    pub fn load_subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        let mut out = Vec::new();
        for entry in self.inner.db.scan_prefix([SUBSCRIPTION]) {
            let (_, value) = self.track(entry.map_err(StoreError::from))?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    pub fn get_subscription(&self, id: SubscriptionId) -> StoreResult<Option<Subscription>> {
        let value = self.track(
            self.inner
                .db
                .get(key1(SUBSCRIPTION, id.as_bytes()))
                .map_err(StoreError::from),
        )?;
        value.map(|v| decode(&v)).transpose()
    }

    /// Returns the subscriptions of one account, oldest id first.
    pub fn account_subscriptions(&self, account: &AccountId) -> StoreResult<Vec<Subscription>> {
        let mut out = Vec::new();
        for entry in self
            .inner
            .db
            .scan_prefix(account_prefix(BY_ACCOUNT_SUBSCRIPTION, account))
        {
            let (key, _) = self.track(entry.map_err(StoreError::from))?;
            let id = SubscriptionId::from_slice(&key[key.len() - 16..])
                .ok_or_else(|| StoreError::Corrupt("subscription index key".into()))?;
            if let Some(sub) = self.get_subscription(id)? {
                out.push(sub);
            }
        }
        Ok(out)
    }

    pub fn put_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        self.check_fault()?;
        let mut batch = sled::Batch::default();
        batch.insert(
            key1(SUBSCRIPTION, subscription.id.as_bytes()),
            encode(subscription),
        );
        let mut index_key = account_prefix(BY_ACCOUNT_SUBSCRIPTION, &subscription.account_id);
        index_key.extend_from_slice(subscription.id.as_bytes());
        batch.insert(index_key, &[][..]);
        self.track(self.inner.db.apply_batch(batch).map_err(StoreError::from))
    }

    pub fn delete_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        self.check_fault()?;
        let mut batch = sled::Batch::default();
        batch.remove(key1(SUBSCRIPTION, subscription.id.as_bytes()));
        let mut index_key = account_prefix(BY_ACCOUNT_SUBSCRIPTION, &subscription.account_id);
        index_key.extend_from_slice(subscription.id.as_bytes());
        batch.remove(index_key);
        self.track(self.inner.db.apply_batch(batch).map_err(StoreError::from))
    }

    // --- ingest ----------------------------------------------------------

    pub fn ingest_record(&self, id: PlatformEventId) -> StoreResult<Option<IngestRecord>> {
        let value = self.track(
            self.inner
                .db
                .get(key1(INGESTED, id.as_bytes()))
                .map_err(StoreError::from),
        )?;
        value.map(|v| decode(&v)).transpose()
    }

    /// Writes accepted platform events and their per-subscription copies in
    /// one atomic batch.
    pub fn write_ingest(
        &self,
        accepted: &[IngestRecord],
        events: &[EventRecord],
    ) -> StoreResult<()> {
        self.check_fault()?;
        let mut batch = sled::Batch::default();
        for record in accepted {
            batch.insert(key1(INGESTED, record.event_id.as_bytes()), encode(record));
        }
        for event in events {
            put_event_entries(&mut batch, event);
            batch.insert(
                key2(QUEUE, event.subscription_id.as_bytes(), event.id.as_bytes()),
                &[][..],
            );
        }
        self.track(self.inner.db.apply_batch(batch).map_err(StoreError::from))?;
        self.inner
            .unfinished
            .fetch_add(events.len() as i64, Ordering::Relaxed);
        for event in events {
            self.inner.counts.add(
                &event.account_id,
                event.subscription_id,
                event.status,
                event.event_type,
                1,
            );
        }
        Ok(())
    }

    // --- events ----------------------------------------------------------

    pub fn get_event(&self, id: EventId) -> StoreResult<Option<EventRecord>> {
        let value = self.track(
            self.inner
                .db
                .get(key1(EVENT, id.as_bytes()))
                .map_err(StoreError::from),
        )?;
        value.map(|v| decode(&v)).transpose()
    }

    /// Writes an event with its index entries and queue change in one batch.
    /// `previous` is the status the event had before, to keep the count of
    /// unfinished events exact.
    pub fn put_event(
        &self,
        event: &EventRecord,
        previous: EventStatus,
        change: QueueChange,
    ) -> StoreResult<()> {
        self.check_fault()?;
        let mut batch = sled::Batch::default();
        put_event_entries(&mut batch, event);
        let queue_key = key2(QUEUE, event.subscription_id.as_bytes(), event.id.as_bytes());
        let retry_key = key2(RETRY, event.subscription_id.as_bytes(), event.id.as_bytes());
        match change {
            QueueChange::Keep => {}
            QueueChange::Enqueue => {
                batch.insert(queue_key, &[][..]);
                batch.remove(retry_key);
            }
            QueueChange::Retry(at) => {
                batch.remove(queue_key);
                batch.insert(retry_key, &at.timestamp_millis().to_be_bytes()[..]);
            }
            QueueChange::Finish => {
                batch.remove(queue_key);
                batch.remove(retry_key);
            }
        }
        self.track(self.inner.db.apply_batch(batch).map_err(StoreError::from))?;
        let delta = match (previous.is_finished(), event.status.is_finished()) {
            (false, true) => -1,
            (true, false) => 1,
            _ => 0,
        };
        self.inner.unfinished.fetch_add(delta, Ordering::Relaxed);
        self.inner.counts.change(
            &event.account_id,
            event.subscription_id,
            event.event_type,
            previous,
            event.status,
        );
        Ok(())
    }

    /// Returns up to `limit` queued events of a subscription, oldest first,
    /// starting after `after`.
    pub fn queue_window(
        &self,
        subscription: SubscriptionId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>> {
        let prefix = key1(QUEUE, subscription.as_bytes());
        let start = match after {
            Some(id) => {
                let mut key = key2(QUEUE, subscription.as_bytes(), id.as_bytes());
                key.push(0);
                key
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for entry in self.inner.db.range(start..) {
            let (key, _) = self.track(entry.map_err(StoreError::from))?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push(
                EventId::from_slice(&key[17..])
                    .ok_or_else(|| StoreError::Corrupt("queue key".into()))?,
            );
        }
        Ok(out)
    }

    /// Returns every scheduled retry of a subscription with its due time.
    pub fn retry_entries(
        &self,
        subscription: SubscriptionId,
    ) -> StoreResult<Vec<(EventId, DateTime<Utc>)>> {
        let mut out = Vec::new();
        for entry in self
            .inner
            .db
            .scan_prefix(key1(RETRY, subscription.as_bytes()))
        {
            let (key, value) = self.track(entry.map_err(StoreError::from))?;
            let id = EventId::from_slice(&key[17..])
                .ok_or_else(|| StoreError::Corrupt("retry key".into()))?;
            let millis = i64::from_be_bytes(
                value
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("retry time".into()))?,
            );
            out.push((
                id,
                DateTime::from_timestamp_millis(millis).unwrap_or_default(),
            ));
        }
        Ok(out)
    }

    /// True when the subscription has queued events or scheduled retries.
    pub fn has_work(&self, subscription: SubscriptionId) -> StoreResult<bool> {
        for prefix in [QUEUE, RETRY] {
            if let Some(entry) = self
                .inner
                .db
                .scan_prefix(key1(prefix, subscription.as_bytes()))
                .next()
            {
                self.track(entry.map_err(StoreError::from))?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Returns the ids of the subscriptions that have queued events or
    /// scheduled retries. Skips over each subscription's entries, so the cost
    /// grows with the number of subscriptions, not of events.
    pub fn subscriptions_with_work(&self) -> StoreResult<BTreeSet<SubscriptionId>> {
        let mut owners = BTreeSet::new();
        for prefix in [QUEUE, RETRY] {
            let mut start = vec![prefix];
            loop {
                let entry = self.inner.db.range(start.clone()..).next();
                let Some(entry) = entry else { break };
                let (key, _) = self.track(entry.map_err(StoreError::from))?;
                if key.first() != Some(&prefix) || key.len() < 17 {
                    break;
                }
                let id = SubscriptionId::from_slice(&key[1..17])
                    .ok_or_else(|| StoreError::Corrupt("queue key".into()))?;
                owners.insert(id);
                // The first key after every entry of this subscription.
                start = key1(prefix, id.as_bytes());
                start.extend_from_slice(&[0xff; 17]);
            }
        }
        Ok(owners)
    }

    /// Marks every queued or retrying event of a subscription Failed with
    /// `reason`, and returns how many it changed.
    pub fn fail_unfinished(&self, subscription: SubscriptionId, reason: &str) -> StoreResult<u64> {
        let mut ids: Vec<EventId> = Vec::new();
        for prefix in [QUEUE, RETRY] {
            for entry in self
                .inner
                .db
                .scan_prefix(key1(prefix, subscription.as_bytes()))
            {
                let (key, _) = self.track(entry.map_err(StoreError::from))?;
                if let Some(id) = EventId::from_slice(&key[17..]) {
                    ids.push(id);
                }
            }
        }
        let now = Utc::now();
        let mut changed = 0;
        for id in ids {
            let Some(mut event) = self.get_event(id)? else {
                continue;
            };
            let previous = event.status;
            if !previous.is_finished() {
                event.status = EventStatus::Failed;
                event.status_reason = Some(reason.to_string());
                event.next_attempt_at = None;
                event.updated_at = now;
                changed += 1;
            }
            self.put_event(&event, previous, QueueChange::Finish)?;
        }
        Ok(changed)
    }

    /// Lists an account's events, newest first, with the total count of matches.
    pub fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage> {
        let lower = query.from.map(|t| EventId::min_at(t.timestamp_millis()));
        let upper = query.to.map(|t| EventId::min_at(t.timestamp_millis() + 1));
        let prefix = match query.subscription_id {
            Some(sub) => key1(BY_SUBSCRIPTION, sub.as_bytes()),
            None => account_prefix(BY_ACCOUNT, &query.account),
        };
        let start = with_id(&prefix, lower.unwrap_or(EventId(uuid::Uuid::nil())));
        let end = match upper {
            Some(id) => with_id(&prefix, id),
            None => prefix_end(&prefix),
        };
        let skip = (query.page.saturating_sub(1) as u64).saturating_mul(query.page_size as u64);
        // Without a date range the counts give the total, and the scan stops
        // once the page is full; with one, the scan counts the matches.
        let known_total = (query.from.is_none() && query.to.is_none()).then(|| {
            self.inner.counts.total(
                &query.account,
                query.subscription_id,
                query.status,
                query.event_type,
            )
        });
        let mut total = 0u64;
        let mut page_ids = Vec::new();
        let beyond_last_page = known_total.is_some_and(|known| skip >= known);
        for entry in self.inner.db.range(start..end).rev() {
            if beyond_last_page
                || (known_total.is_some() && page_ids.len() >= query.page_size as usize)
            {
                break;
            }
            let (key, value) = self.track(entry.map_err(StoreError::from))?;
            if value.len() < 2 {
                return Err(StoreError::Corrupt("event index entry".into()));
            }
            let status = EventStatus::from_code(value[0]);
            let event_type = EventType::from_code(value[1]);
            if query.status.is_some() && status != query.status {
                continue;
            }
            if query.event_type.is_some() && event_type != query.event_type {
                continue;
            }
            if total >= skip && page_ids.len() < query.page_size as usize {
                page_ids.push(EventId::from_slice(&key[key.len() - 16..]).unwrap_or_default());
            }
            total += 1;
            if known_total.is_some_and(|known| total >= known) {
                break;
            }
        }
        let total = known_total.unwrap_or(total);
        let mut items = Vec::with_capacity(page_ids.len());
        for id in page_ids {
            if let Some(event) = self.get_event(id)? {
                // The subscription index has no account in its key, so check it here.
                if event.account_id == query.account {
                    items.push(event);
                } else {
                    return Ok(EventPage {
                        items: Vec::new(),
                        total: 0,
                    });
                }
            }
        }
        Ok(EventPage { items, total })
    }

    /// Removes Delivered and Failed events created before `before`, with their
    /// index entries, at most `limit` per call. Returns how many it removed.
    pub fn prune_finished(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        self.check_fault()?;
        let end = key1(EVENT, EventId::min_at(before.timestamp_millis()).as_bytes());
        let mut candidates = Vec::new();
        for entry in self.inner.db.range(vec![EVENT]..end) {
            let (key, value) = self.track(entry.map_err(StoreError::from))?;
            let event: EventRecord = decode(&value)?;
            if event.status.is_finished() {
                candidates.push(key);
                if candidates.len() >= limit {
                    break;
                }
            }
        }
        let mut removed = 0;
        for chunk in candidates.chunks(256) {
            let pruned = self.track(self.remove_finished(chunk))?;
            removed += pruned.len();
            for event in pruned {
                self.inner.counts.add(
                    &event.account_id,
                    event.subscription_id,
                    event.status,
                    event.event_type,
                    -1,
                );
            }
        }
        let mut batch = sled::Batch::default();
        let mut ingested = 0;
        for entry in self.inner.db.scan_prefix([INGESTED]) {
            let (key, value) = self.track(entry.map_err(StoreError::from))?;
            let record: IngestRecord = decode(&value)?;
            if record.accepted_at < before {
                batch.remove(key);
                ingested += 1;
                if ingested >= limit {
                    break;
                }
            }
        }
        self.track(self.inner.db.apply_batch(batch).map_err(StoreError::from))?;
        Ok(removed)
    }

    /// Rebuilds the event counts from the account index.
    fn load_counts(&self) -> StoreResult<()> {
        for entry in self.inner.db.scan_prefix([BY_ACCOUNT]) {
            let (key, value) = self.track(entry.map_err(StoreError::from))?;
            let corrupt = || StoreError::Corrupt("event account index entry".into());
            if key.len() < 1 + 1 + 16 || value.len() < 2 + 16 {
                return Err(corrupt());
            }
            let account_bytes = &key[1..key.len() - 17];
            let account = std::str::from_utf8(account_bytes)
                .ok()
                .and_then(|a| AccountId::parse(a).ok())
                .ok_or_else(corrupt)?;
            let status = EventStatus::from_code(value[0]).ok_or_else(corrupt)?;
            let event_type = EventType::from_code(value[1]).ok_or_else(corrupt)?;
            let subscription = SubscriptionId::from_slice(&value[2..18]).ok_or_else(corrupt)?;
            self.inner
                .counts
                .add(&account, subscription, status, event_type, 1);
        }
        Ok(())
    }

    /// Removes the events under `keys` that are still finished, with their
    /// index entries, in one transaction, and returns the removed events. The
    /// status is read again inside it, so an event that a manual retry queued
    /// again since the scan stays.
    fn remove_finished(&self, keys: &[sled::IVec]) -> StoreResult<Vec<EventRecord>> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let result: Result<Vec<EventRecord>, TransactionError<std::convert::Infallible>> =
            self.inner.db.transaction(|tx| {
                let mut removed = Vec::new();
                for key in keys {
                    let Some(value) = tx.get(key)? else { continue };
                    let Ok(event) = decode::<EventRecord>(&value) else {
                        continue;
                    };
                    if !event.status.is_finished() {
                        continue;
                    }
                    tx.remove(key.clone())?;
                    tx.remove(key2(
                        BY_SUBSCRIPTION,
                        event.subscription_id.as_bytes(),
                        event.id.as_bytes(),
                    ))?;
                    tx.remove(account_key(&event.account_id, event.id))?;
                    removed.push(event);
                }
                Ok::<Vec<EventRecord>, ConflictableTransactionError<std::convert::Infallible>>(
                    removed,
                )
            });
        result.map_err(|error| match error {
            TransactionError::Abort(never) => match never {},
            TransactionError::Storage(error) => StoreError::from(error),
        })
    }

    fn count_prefix(&self, prefix: u8) -> u64 {
        self.inner.db.scan_prefix([prefix]).keys().count() as u64
    }

    fn check_fault(&self) -> StoreResult<()> {
        if let Some(path) = &self.inner.fault_file
            && path.exists()
        {
            return self.track(Err(StoreError::Injected(path.display().to_string())));
        }
        Ok(())
    }

    fn track<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        match &result {
            Ok(_) => {}
            Err(error) => {
                self.inner.healthy.store(false, Ordering::Relaxed);
                metrics::counter!("argus_webhooks_store_errors_total").increment(1);
                tracing::error!(%error, "store operation failed");
            }
        }
        result
    }
}

fn put_event_entries(batch: &mut sled::Batch, event: &EventRecord) {
    let index_value = [event.status.code(), event.event_type.code()];
    batch.insert(key1(EVENT, event.id.as_bytes()), encode(event));
    batch.insert(
        key2(
            BY_SUBSCRIPTION,
            event.subscription_id.as_bytes(),
            event.id.as_bytes(),
        ),
        &index_value[..],
    );
    let mut account_value = index_value.to_vec();
    account_value.extend_from_slice(event.subscription_id.as_bytes());
    batch.insert(account_key(&event.account_id, event.id), account_value);
}

fn account_key(account: &AccountId, id: EventId) -> Vec<u8> {
    let mut key = account_prefix(BY_ACCOUNT, account);
    key.extend_from_slice(id.as_bytes());
    key
}

/// `prefix`, the account id and a 0x00 separator (account ids never contain 0x00).
fn account_prefix(prefix: u8, account: &AccountId) -> Vec<u8> {
    let mut key = vec![prefix];
    key.extend_from_slice(account.as_str().as_bytes());
    key.push(0);
    key
}

fn key1(prefix: u8, a: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + a.len());
    key.push(prefix);
    key.extend_from_slice(a);
    key
}

fn key2(prefix: u8, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut key = key1(prefix, a);
    key.extend_from_slice(b);
    key
}

fn with_id(prefix: &[u8], id: EventId) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.extend_from_slice(&[0xff; 17]);
    end
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialise")
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn lock_dir(dir: &Path) -> StoreResult<File> {
    use fs2::FileExt;
    let path = dir.join("LOCK");
    let file = File::create(&path)
        .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", path.display())))?;
    file.try_lock_exclusive().map_err(|_| StoreError::Locked {
        dir: dir.display().to_string(),
        lock: path.display().to_string(),
    })?;
    Ok(file)
}

fn check_format(db: &sled::Db, dir: &Path) -> StoreResult<()> {
    let key = key1(META, b"format_version");
    match db.get(&key)? {
        Some(value) => {
            let found = String::from_utf8_lossy(&value).to_string();
            if found != FORMAT_VERSION.to_string() {
                return Err(StoreError::UnknownFormat {
                    dir: dir.display().to_string(),
                    found,
                });
            }
        }
        None => {
            db.insert(key, FORMAT_VERSION.to_string().as_bytes())?;
            db.flush()?;
        }
    }
    Ok(())
}

async fn run_flusher(
    db: sled::Db,
    mut requests: mpsc::UnboundedReceiver<oneshot::Sender<StoreResult<()>>>,
    fsync_file: Option<PathBuf>,
) {
    while let Some(first) = requests.recv().await {
        let mut waiters = vec![first];
        while let Ok(next) = requests.try_recv() {
            waiters.push(next);
        }
        let db = db.clone();
        let fsync_file = fsync_file.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || flush_once(&db, fsync_file.as_deref()))
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(format!("flush task failed: {e}"))));
        metrics::histogram!("argus_webhooks_store_flush_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

fn flush_once(db: &sled::Db, fsync_file: Option<&Path>) -> StoreResult<()> {
    db.flush()?;
    if let Some(path) = fsync_file {
        let file = File::open(path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
        file.sync_data()
            .map_err(|e| StoreError::Io(format!("fsync of {} failed: {e}", path.display())))?;
    }
    Ok(())
}
