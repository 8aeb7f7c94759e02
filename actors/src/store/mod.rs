//! The sled store. Everything lives in one sled tree under one-byte key
//! prefixes, so that each change that touches a record and its index entries
//! is a single atomic `Batch`:
//!
//! | prefix | key after the prefix           | value                          |
//! |--------|--------------------------------|--------------------------------|
//! | `M`    | name                           | metadata (format version)      |
//! | `S`    | subscription id                | subscription JSON              |
//! | `C`    | account id, 0x00, subscription id | empty: the account's subscriptions |
//! | `E`    | subscription id, event id      | event record (`encode_event`)  |
//! | `A`    | account id, 0x00, event id     | [status, type], subscription id|
//! | `R`    | subscription id, event id      | next attempt, ms since epoch   |
//! | `I`    | platform event id              | ingest result (`encode_ingest`) |
//! | `U`    | platform event id              | [type], account id: copies that may not be durable yet |
//!
//! Event ids are UUID v7, so events and the account index are in creation
//! order within each subscription and account. A subscription's queue is
//! its Pending events, and `floors` keeps where each queue starts.
//! A platform event with more than one copy keeps its payload once, in its
//! ingest record, and the copies leave it out. Such an ingest record stays
//! until none of its copies is stored. Its copies are deferred writes (see
//! `staging`): the flush that the ingest waits for writes the ingest record
//! and a `U` entry, and the copies follow with the `U` entry's removal. A
//! start restores the copies of every `U` entry left, from its ingest record.
//! Formats 1 and 2 kept event records under the event id alone, with an
//! index by subscription under `B`, and format 1 also kept the queue under
//! `Q`. Opening such a store moves it to this layout. Format 3 had no shared
//! payloads, and format 4 no `U` entries; both read as they are.
//! Subscription writes and large ingests are applied to sled's memory at
//! once. [`Store::flush`] makes every write durable, and concurrent callers
//! share one flush (group commit).
//! [`Store::flush_soon`] requests a flush without waiting for it. Such
//! requests are gathered for [`LAZY_FLUSH_DELAY`] and share one flush.
//! Event writes are staged in memory and applied to sled as one batch before
//! each flush. The `staging` module explains why.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::counts::EventCounts;
use crate::model::{
    AccountId, EventId, EventRecord, EventStatus, EventType, PlatformEventId, SubscriptionId,
};

mod events;
mod floors;
mod held;
mod keys;
mod listing;
mod staging;
mod subscriptions;

use floors::QueueFloors;
use held::HeldCopies;
use keys::*;
use staging::Staging;

/// How long the flusher gathers [`Store::flush_soon`] requests before it
/// flushes, unless a caller of [`Store::flush`] is waiting. Bounds how much
/// recorded delivery progress a crash can lose: those attempts are sent again.
pub const LAZY_FLUSH_DELAY: Duration = Duration::from_millis(10);

/// How long after a flush that left deferred writes out (see `staging`) the
/// flusher flushes them, unless a caller waits for a flush first. The
/// deliveries that the flush released start in the meantime, so the writes
/// do not compete with them for the cores.
const DEFERRED_IDLE_DELAY: Duration = Duration::from_millis(1);

/// Version of the on-disk layout described above.
pub const FORMAT_VERSION: u32 = 5;

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
    /// sled's page cache, in bytes. NOTE: sled 0.34 keeps more than this
    /// resident. In tests, a paused backlog grew the process by about
    /// 0.3 KiB per queued event.
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
    #[serde(serialize_with = "crate::model::stored_time::serialize")]
    pub accepted_at: DateTime<Utc>,
    /// The payload that the event's copies share (see
    /// [`EventRecord::shared_payload`]), kept after the record's JSON.
    /// Reading a record for a repeat leaves it out.
    #[serde(skip)]
    pub payload: Option<String>,
}

/// A platform event whose copies share its payload and are staged after
/// its ingest record (see [`Store::write_ingest_with_deferred`]).
#[derive(Clone, Debug)]
pub struct DeferredCopies {
    pub event_id: PlatformEventId,
    pub account_id: AccountId,
    pub event_type: EventType,
}

/// Change to the delivery queues that comes with an event write.
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
    db: sled::Db,
    flush_requests: mpsc::UnboundedSender<FlushRequest>,
    /// A [`Store::flush_soon`] request is waiting for the flusher.
    flush_soon_pending: Arc<AtomicBool>,
    /// Result of the last read or write.
    healthy: Arc<AtomicBool>,
    /// True from a failed write until the next write succeeds, so a read
    /// that works does not hide writes that fail.
    unfinished: AtomicI64,
    counts: EventCounts,
    queue_floors: QueueFloors,
    held: HeldCopies,
    staging: Arc<Staging>,
    /// Held while an event's change is staged and counted, so the counts
    /// move from the status the event really had.
    event_writes: Mutex<()>,
    fault_file: Option<PathBuf>,
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Writes staged since the last flush still reach sled's log.
        if let Err(error) = self.staging.apply(&self.db) {
            tracing::error!(%error, "cannot apply the staged writes when closing the store");
        }
    }
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
        events::restore_deferred_copies(&db)?;

        let (flush_requests, receiver) = mpsc::unbounded_channel();
        let store = Store {
            inner: Arc::new(Inner {
                db: db.clone(),
                flush_requests,
                flush_soon_pending: Arc::new(AtomicBool::new(false)),
                healthy: Arc::new(AtomicBool::new(true)),
                unfinished: AtomicI64::new(0),
                counts: EventCounts::default(),
                queue_floors: QueueFloors::default(),
                held: HeldCopies::default(),
                staging: Arc::new(Staging::default()),
                event_writes: Mutex::new(()),
                fault_file: config.fault_file.clone(),
                _lock: lock,
            }),
        };
        store.load_counts()?;
        let log_file = dir.join("sled").join("db");
        tokio::spawn(run_flusher(Flusher {
            db,
            staging: store.inner.staging.clone(),
            requests: receiver,
            fsync_path: config.fsync.then_some(log_file),
            fsync_file: None,
            soon_pending: store.inner.flush_soon_pending.clone(),
            healthy: store.inner.healthy.clone(),
        }));
        Ok(store)
    }

    /// False after a failed read, write or flush. It turns true again only
    /// after a successful flush, because sled accepts writes in memory even
    /// when the disk is full.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// Keeps new copies out of queue scans until [`Store::release_copies`],
    /// for an ingest whose flush has not ended. Call it before writing them.
    pub fn hold_copies(&self, copies: &[(SubscriptionId, Vec<EventId>)]) {
        self.inner.held.hold(copies);
    }

    /// Lets queue scans find copies that [`Store::hold_copies`] kept out.
    pub fn release_copies(&self, copies: &[(SubscriptionId, Vec<EventId>)]) {
        self.inner.held.release(copies);
    }

    /// Returns true while a copy of `subscription` is held, so that a queue
    /// window may have stopped before it.
    pub fn has_held_copies(&self, subscription: SubscriptionId) -> bool {
        self.inner.held.first(subscription).is_some()
    }

    /// Returns true while deferred writes (see `staging`) wait to be applied.
    pub fn has_deferred_writes(&self) -> bool {
        self.inner.staging.has_deferred()
    }

    /// Events that are Pending or Retrying.
    pub fn unfinished_count(&self) -> u64 {
        self.inner.unfinished.load(Ordering::Relaxed).max(0) as u64
    }

    /// Waits until every write made before the call is on disk, except
    /// deferred writes, which a start can make again (see `staging`).
    /// Concurrent callers share one flush. A successful flush marks the
    /// store healthy.
    pub async fn flush(&self) -> StoreResult<()> {
        self.flush_with(false).await
    }

    /// Waits until every write made before the call is on disk, deferred
    /// writes included, as a shutdown does.
    pub async fn flush_all(&self) -> StoreResult<()> {
        self.flush_with(true).await
    }

    async fn flush_with(&self, with_deferred: bool) -> StoreResult<()> {
        self.check_fault()?;
        let (sender, receiver) = oneshot::channel();
        self.inner
            .flush_requests
            .send(FlushRequest::Wait(sender, with_deferred))
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

    /// Requests a flush within [`LAZY_FLUSH_DELAY`] without waiting for it.
    /// Any number of calls before the flusher starts share one request.
    pub fn flush_soon(&self) {
        if !self.inner.flush_soon_pending.swap(true, Ordering::AcqRel) {
            let _ = self.inner.flush_requests.send(FlushRequest::Soon);
        }
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
}

impl Store {
    /// Reads `key`, staged writes first.
    fn read(&self, key: &[u8]) -> StoreResult<Option<sled::IVec>> {
        match self.inner.staging.get(key) {
            Some(value) => Ok(value),
            None => self.track(self.inner.db.get(key).map_err(StoreError::from)),
        }
    }

    /// Stages `writes` and requests the flush that applies them.
    fn stage(&self, writes: staging::Writes) {
        self.inner.staging.stage(writes);
        self.flush_soon();
    }

    /// Applies the staged writes now, for range scans that must see them.
    /// Also waits for a group that the flusher is applying.
    fn apply_staged(&self) -> StoreResult<()> {
        self.track(
            self.inner
                .staging
                .apply(&self.inner.db)
                .map_err(StoreError::from),
        )
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
            Err(error) => record_error(&self.inner.healthy, error, "store operation failed"),
        }
        result
    }
}

/// Marks the store unhealthy, counts the error and logs it with `message`.
fn record_error(healthy: &AtomicBool, error: &StoreError, message: &str) {
    healthy.store(false, Ordering::Relaxed);
    metrics::counter!("argus_webhooks_store_errors_total").increment(1);
    tracing::error!(%error, "{message}");
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialise")
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// First byte of an event record as [`encode_event`] writes it: with the
/// payload, or without it when the payload is shared. Records of store
/// format 2 start with 1 and have no status and type bytes, and those of
/// format 1 are plain JSON and start with `{`.
const EVENT_FRAME: u8 = 2;
const SHARED_PAYLOAD_EVENT_FRAME: u8 = 3;
const FORMAT_2_EVENT_FRAME: u8 = 1;

/// First byte of an ingest record that keeps a shared payload. Other ingest
/// records are plain JSON and start with `{`.
const INGEST_FRAME: u8 = 1;

/// Encodes an event record as its frame marker, the status and type codes,
/// the length of the JSON of every field but the payload (4 bytes, big
/// endian), that JSON, and then the payload as it is sent, unless the payload
/// is shared. Scans filter on the two codes without decoding. The payload is
/// most of the record: kept out of the JSON, it is neither escaped on each
/// write nor unescaped on each read.
fn encode_event(event: &EventRecord) -> Vec<u8> {
    let (marker, payload) = if event.shared_payload {
        (SHARED_PAYLOAD_EVENT_FRAME, "")
    } else {
        (EVENT_FRAME, event.payload.as_str())
    };
    frame(
        &[marker, event.status.code(), event.event_type.code()],
        &encode(event),
        payload.as_bytes(),
    )
}

/// Returns `marker`, the length of `head` (4 bytes, big endian), `head` and
/// `tail`.
fn frame(marker: &[u8], head: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(marker.len() + 4 + head.len() + tail.len());
    out.extend_from_slice(marker);
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(tail);
    out
}

/// Splits what follows the marker of a [`frame`] into the head and the tail.
fn unframe<'a>(framed: &'a [u8], record_kind: &str) -> StoreResult<(&'a [u8], &'a [u8])> {
    let corrupt = || StoreError::Corrupt(format!("{record_kind} frame"));
    let (length, rest) = framed.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let length = u32::from_be_bytes(*length) as usize;
    if rest.len() < length {
        return Err(corrupt());
    }
    Ok(rest.split_at(length))
}

/// Returns the status and type codes of an event record that
/// [`encode_event`] wrote.
fn event_codes(bytes: &[u8]) -> StoreResult<(u8, u8)> {
    match *bytes {
        [
            EVENT_FRAME | SHARED_PAYLOAD_EVENT_FRAME,
            status,
            event_type,
            ..,
        ] => Ok((status, event_type)),
        _ => Err(StoreError::Corrupt("event record frame".into())),
    }
}

/// Decodes an event record. A record whose payload is shared comes back
/// without it, and `Store::load_event` reads it.
fn decode_event(bytes: &[u8]) -> StoreResult<EventRecord> {
    let (framed, shared) = match bytes {
        [EVENT_FRAME, _, _, rest @ ..] => (rest, false),
        [SHARED_PAYLOAD_EVENT_FRAME, _, _, rest @ ..] => (rest, true),
        [FORMAT_2_EVENT_FRAME, rest @ ..] => (rest, false),
        _ => return decode(bytes),
    };
    let (head, payload) = unframe(framed, "event record")?;
    let mut event: EventRecord = decode(head)?;
    event.shared_payload = shared;
    if shared {
        if !payload.is_empty() {
            return Err(StoreError::Corrupt(
                "event record frame: a shared payload follows it".into(),
            ));
        }
    } else {
        event.payload = payload_text(payload)?;
    }
    Ok(event)
}

fn payload_text(bytes: &[u8]) -> StoreResult<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Corrupt("event payload is not UTF-8".into()))
}

/// Encodes an ingest record as JSON or, when it keeps a shared payload, as
/// [`INGEST_FRAME`] with the JSON and then the payload.
fn encode_ingest(record: &IngestRecord) -> Vec<u8> {
    match &record.payload {
        Some(payload) => frame(&[INGEST_FRAME], &encode(record), payload.as_bytes()),
        None => encode(record),
    }
}

/// Decodes an ingest record, leaving out its payload.
fn decode_ingest(bytes: &[u8]) -> StoreResult<IngestRecord> {
    match bytes {
        [INGEST_FRAME, rest @ ..] => decode(unframe(rest, "ingest record")?.0),
        _ => decode(bytes),
    }
}

/// Returns the shared payload that an ingest record keeps, if any.
fn ingest_payload(bytes: &[u8]) -> StoreResult<Option<&[u8]>> {
    match bytes {
        [INGEST_FRAME, rest @ ..] => Ok(Some(unframe(rest, "ingest record")?.1)),
        _ => Ok(None),
    }
}

/// Formats a store key for logs and errors, escaped as a Rust byte string:
/// printable ASCII as is, other bytes as `\xNN`.
fn printable_key(key: &[u8]) -> String {
    key.escape_ascii().to_string()
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
        Some(value) if value.as_ref() == b"1" || value.as_ref() == b"2" => {
            upgrade_events(db, dir)?;
            db.insert(key, FORMAT_VERSION.to_string().as_bytes())?;
            db.flush()?;
        }
        Some(value) if value.as_ref() == b"3" || value.as_ref() == b"4" => {
            // Format 4 added shared payloads and format 5 the `U` entries of
            // copies to make; each reads the stores before it as they are.
            // The new version keeps older builds from opening it: they
            // would deliver records with a shared payload empty, or lose
            // the copies that a `U` entry stands for.
            db.insert(key, FORMAT_VERSION.to_string().as_bytes())?;
            db.flush()?;
            tracing::info!(dir = %dir.display(), moved = 0, removed = 0, "store upgraded to format {FORMAT_VERSION}");
        }
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

/// Moves a store of format 1 or 2 to the current layout. Each event record
/// moves from under its id to under its subscription and id, in the current
/// frame. The index by subscription and the format 1 queue entries, both
/// implied by the records, are removed. Each step is one sled batch of up
/// to 1,000 records and the format version changes last, so an upgrade cut
/// short by a crash goes on at the next start.
fn upgrade_events(db: &sled::Db, dir: &Path) -> StoreResult<()> {
    const STEP: usize = 1_000;
    let mut moved = 0u64;
    // Each step reads on from the last record it moved, so moved records,
    // which sort among the others, are passed over once each.
    let mut from = vec![EVENT];
    loop {
        let mut batch = sled::Batch::default();
        let mut count = 0;
        for entry in db.range(from.clone()..) {
            let (key, value) = entry?;
            if key.first() != Some(&EVENT) {
                break;
            }
            if key.len() == EVENT_KEY_LEN {
                continue;
            }
            let event = decode_event(&value).map_err(|error| {
                StoreError::Corrupt(format!(
                    "{error}, in the event record under key {}; remove that key to finish the upgrade",
                    printable_key(&key)
                ))
            })?;
            batch.insert(
                event_key(event.subscription_id, event.id),
                encode_event(&event),
            );
            batch.remove(key.clone());
            from = key.to_vec();
            from.push(0);
            count += 1;
            if count >= STEP {
                break;
            }
        }
        if count == 0 {
            break;
        }
        db.apply_batch(batch)?;
        moved += count as u64;
    }
    let mut removed = 0u64;
    for prefix in [OLD_BY_SUBSCRIPTION, OLD_QUEUE] {
        let mut batch = sled::Batch::default();
        for key in db.scan_prefix([prefix]).keys() {
            batch.remove(key?);
            removed += 1;
        }
        db.apply_batch(batch)?;
    }
    tracing::info!(dir = %dir.display(), moved, removed, "store upgraded to format {FORMAT_VERSION}");
    Ok(())
}

enum FlushRequest {
    /// A caller waits for the result. The flag requests a flush that
    /// includes the deferred writes.
    Wait(oneshot::Sender<StoreResult<()>>, bool),
    /// No caller waits for the result (see [`Store::flush_soon`]).
    Soon,
}

struct Flusher {
    db: sled::Db,
    staging: Arc<Staging>,
    requests: mpsc::UnboundedReceiver<FlushRequest>,
    /// sled's log file, fsynced after each flush when `store.fsync` is on.
    fsync_path: Option<PathBuf>,
    /// Kept open between flushes; opened again after a failed fsync.
    fsync_file: Option<Arc<File>>,
    soon_pending: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
}

async fn run_flusher(mut flusher: Flusher) {
    // When a flush first left deferred writes staged, while they still are.
    let mut deferred_since: Option<Instant> = None;
    let mut flushed_at = Instant::now();
    loop {
        let mut waiters = Vec::new();
        let mut deferred_requested = false;
        // When the first lazy request of this flush came.
        let mut lazy_since: Option<Instant> = None;
        // Wait for a caller, for the end of the lazy delay, or, while
        // deferred writes wait, for a moment after the last flush, so the
        // deliveries it released start first.
        loop {
            let deferred_due = deferred_since
                .map(|since| (flushed_at + DEFERRED_IDLE_DELAY).min(since + LAZY_FLUSH_DELAY));
            let lazy_due = lazy_since.map(|since| since + LAZY_FLUSH_DELAY);
            let request = match deferred_due.into_iter().chain(lazy_due).min() {
                Some(due) => tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => break,
                    next = flusher.requests.recv() => next,
                },
                None => flusher.requests.recv().await,
            };
            // None: the store was dropped, which applies what is staged.
            let Some(request) = request else { return };
            if gather(request, &mut waiters, &mut deferred_requested) {
                break;
            }
            lazy_since.get_or_insert_with(Instant::now);
        }
        while let Ok(request) = flusher.requests.try_recv() {
            gather(request, &mut waiters, &mut deferred_requested);
        }
        // Requests made from here on need the next flush.
        flusher.soon_pending.store(false, Ordering::Release);
        // Callers wait for a flush without the deferred writes, unless one
        // of them requests them or they have waited long enough.
        let overdue = deferred_since.is_some_and(|since| since.elapsed() >= LAZY_FLUSH_DELAY);
        let with_deferred = waiters.is_empty() || deferred_requested || overdue;
        let result = flusher.flush(with_deferred).await;
        flushed_at = Instant::now();
        if let Err(error) = &result
            && waiters.is_empty()
        {
            // No caller receives this error, so record it here.
            record_error(&flusher.healthy, error, "store flush failed");
        }
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
        deferred_since = if with_deferred || !flusher.staging.has_deferred() {
            None
        } else {
            deferred_since.or(Some(flushed_at))
        };
    }
}

/// Adds the caller of a `Wait` request to `waiters`, and returns whether
/// `request` was one.
fn gather(
    request: FlushRequest,
    waiters: &mut Vec<oneshot::Sender<StoreResult<()>>>,
    deferred_requested: &mut bool,
) -> bool {
    match request {
        FlushRequest::Wait(sender, with_deferred) => {
            waiters.push(sender);
            *deferred_requested |= with_deferred;
            true
        }
        FlushRequest::Soon => false,
    }
}

impl Flusher {
    async fn flush(&mut self, with_deferred: bool) -> StoreResult<()> {
        let started = Instant::now();
        if self.fsync_file.is_none()
            && let Some(path) = &self.fsync_path
        {
            let file = File::open(path)
                .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
            self.fsync_file = Some(Arc::new(file));
        }
        let db = self.db.clone();
        let staging = self.staging.clone();
        let file = self.fsync_file.clone();
        let path = self.fsync_path.clone();
        let result = tokio::task::spawn_blocking(move || {
            flush_once(&db, &staging, with_deferred, file.as_deref(), path)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Io(format!("flush task failed: {e}"))));
        if result.is_err() {
            self.fsync_file = None;
        }
        metrics::histogram!("argus_webhooks_store_flush_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        result
    }
}

fn flush_once(
    db: &sled::Db,
    staging: &Staging,
    with_deferred: bool,
    file: Option<&File>,
    path: Option<PathBuf>,
) -> StoreResult<()> {
    if with_deferred {
        staging.apply(db)?;
    } else {
        staging.apply_without_deferred(db)?;
    }
    db.flush()?;
    if let (Some(file), Some(path)) = (file, path) {
        file.sync_data()
            .map_err(|e| StoreError::Io(format!("fsync of {} failed: {e}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeliveryAttempt, EventType, PlatformEventId};

    fn event() -> EventRecord {
        let id = EventId::new();
        EventRecord {
            id,
            subscription_id: SubscriptionId(uuid::Uuid::new_v4()),
            account_id: AccountId::parse("acme-capital").unwrap(),
            event_type: EventType::LeaseCreated,
            platform_event_id: PlatformEventId(uuid::Uuid::new_v4()),
            status: EventStatus::Retrying,
            payload: r#"{"data":{"note":"caf\u00e9 \"quoted\" é","n":12345678901234567890}}"#
                .into(),
            shared_payload: false,
            attempts: vec![DeliveryAttempt {
                attempt_number: 1,
                timestamp: Utc::now(),
                response_code: Some(503),
                response_time_ms: 12,
                success: false,
                error_message: Some("HTTP 503".into()),
                response_body: Some("busy".into()),
            }],
            round_attempts: 1,
            next_attempt_at: Some(Utc::now()),
            status_reason: Some("HTTP 503".into()),
            created_at: id.created_at(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn framed_events_round_trip() {
        let event = event();
        let bytes = encode_event(&event);
        assert_eq!(bytes[0], EVENT_FRAME);
        assert_eq!(
            event_codes(&bytes).unwrap(),
            (event.status.code(), event.event_type.code())
        );
        assert!(
            bytes.ends_with(event.payload.as_bytes()),
            "payload stored as sent"
        );
        assert_eq!(decode_event(&bytes).unwrap(), event);
    }

    #[test]
    fn format_1_json_events_still_decode() {
        let event = event();
        let mut json = serde_json::to_value(&event).unwrap();
        json["payload"] = serde_json::Value::String(event.payload.clone());
        let bytes = serde_json::to_vec(&json).unwrap();
        assert_eq!(decode_event(&bytes).unwrap(), event);
    }

    #[test]
    fn format_2_frames_still_decode() {
        let event = event();
        let head = serde_json::to_vec(&event).unwrap();
        let mut bytes = vec![FORMAT_2_EVENT_FRAME];
        bytes.extend_from_slice(&(head.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&head);
        bytes.extend_from_slice(event.payload.as_bytes());
        assert_eq!(decode_event(&bytes).unwrap(), event);
    }

    #[test]
    fn broken_frames_are_corrupt_not_panics() {
        let bytes = encode_event(&event());
        for cut in [1, 3, 5, 20] {
            assert!(matches!(
                decode_event(&bytes[..cut]),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert!(matches!(decode_event(&bad), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn shared_payload_frame_omits_payload() {
        let mut event = event();
        event.shared_payload = true;
        let bytes = encode_event(&event);
        assert_eq!(bytes[0], SHARED_PAYLOAD_EVENT_FRAME);
        assert_eq!(
            event_codes(&bytes).unwrap(),
            (event.status.code(), event.event_type.code())
        );
        assert!(
            !bytes.ends_with(event.payload.as_bytes()),
            "a shared payload is not stored with the copy"
        );
        let decoded = decode_event(&bytes).unwrap();
        assert!(decoded.shared_payload);
        assert_eq!(decoded.payload, "");
        assert_eq!(
            decoded,
            EventRecord {
                payload: String::new(),
                ..event
            }
        );

        let mut extra = bytes.clone();
        extra.extend_from_slice(b"{}");
        assert!(matches!(decode_event(&extra), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn ingest_frame_keeps_payload() {
        let event = event();
        let mut record = IngestRecord {
            event_id: event.platform_event_id,
            deliveries: vec![(event.id, event.subscription_id)],
            accepted_at: Utc::now(),
            payload: None,
        };
        let plain = encode_ingest(&record);
        assert_eq!(plain.first(), Some(&b'{'), "without a payload, plain JSON");
        assert_eq!(ingest_payload(&plain).unwrap(), None);
        assert_eq!(decode_ingest(&plain).unwrap().deliveries, record.deliveries);

        record.payload = Some(event.payload.clone());
        let framed = encode_ingest(&record);
        assert_eq!(framed[0], INGEST_FRAME);
        assert_eq!(
            ingest_payload(&framed).unwrap(),
            Some(event.payload.as_bytes())
        );
        let decoded = decode_ingest(&framed).unwrap();
        assert_eq!(decoded.deliveries, record.deliveries);
        assert_eq!(decoded.payload, None, "a repeat does not read the payload");
        for cut in [1, 3, 6] {
            assert!(matches!(
                decode_ingest(&framed[..cut]),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
