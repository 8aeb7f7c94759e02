//! Ingest records, events with their indexes and queues, listings and pruning.

use std::collections::BTreeSet;

use super::keys::*;
use super::*;

/// Ingest groups of at least this many records are applied to sled at
/// once instead of staged.
const DIRECT_WRITE_RECORDS: usize = 64;

impl Store {
    // --- ingest ----------------------------------------------------------

    pub fn ingest_record(&self, id: PlatformEventId) -> StoreResult<Option<IngestRecord>> {
        let value = self.read(&key1(INGESTED, id.as_bytes()))?;
        value.map(|v| decode_ingest(&v)).transpose()
    }

    /// Stages accepted platform events and their per-subscription copies as
    /// one atomic group; a flush makes them durable.
    pub fn write_ingest(
        &self,
        accepted: &[IngestRecord],
        events: &[EventRecord],
    ) -> StoreResult<()> {
        self.write_ingest_with_deferred(accepted, events, &[])
    }

    /// True when an ingest group of `records` ingest records and copies is
    /// staged, so its shared copies may be deferred writes. Larger groups
    /// are applied to sled at once.
    pub fn defers_copies(&self, records: usize) -> bool {
        records < DIRECT_WRITE_RECORDS
    }

    /// Writes an ingest group as [`Store::write_ingest`] does, for a group
    /// whose `deferred` platform events have copies that share the payload
    /// and follow, as deferred writes, through
    /// [`Store::stage_deferred_copies`]. Each such event gets a `U` entry
    /// with its ingest record, so a start restores any copy that did not
    /// reach the disk. With 21 copies this takes 42 of 44 keys off the flush
    /// that the ingest waits for.
    pub fn write_ingest_with_deferred(
        &self,
        accepted: &[IngestRecord],
        events: &[EventRecord],
        deferred: &[DeferredCopies],
    ) -> StoreResult<()> {
        self.check_fault()?;
        let records = accepted.len() + events.len();
        let direct = !self.defers_copies(records);
        if direct && !deferred.is_empty() {
            return Err(StoreError::Io(format!(
                "an ingest group of {records} records cannot defer copies"
            )));
        }
        let mut batch = staging::Writes::default();
        for record in accepted {
            batch.insert(
                key1(INGESTED, record.event_id.as_bytes()),
                encode_ingest(record),
            );
        }
        for copies in deferred {
            batch.insert(
                key1(COPIES_TO_MAKE, copies.event_id.as_bytes()),
                copies_to_make_value(copies.event_type, &copies.account_id),
            );
        }
        for event in events {
            put_event_entries(&mut batch, event);
        }
        self.add_new_events(events, || {
            if direct {
                // A large group costs more to insert than sled's two buffer
                // writes, so the caller applies it and the flusher stays free.
                // Smaller groups staged before it go first, so queues keep the
                // order of ingest.
                self.apply_staged()?;
                self.track(
                    self.inner
                        .db
                        .apply_batch(batch.into_batch())
                        .map_err(StoreError::from),
                )
            } else {
                self.inner.staging.stage(batch);
                Ok(())
            }
        })
    }

    /// Stages the copies of platform events that
    /// [`Store::write_ingest_with_deferred`] wrote as deferred, with the
    /// removal of their `U` entries. The flusher applies them after the
    /// flush that the ingest waits for, within [`LAZY_FLUSH_DELAY`].
    pub fn stage_deferred_copies(&self, copies: &[EventRecord]) {
        let mut writes = staging::Writes::default();
        let mut entries = BTreeSet::new();
        for copy in copies {
            put_event_entries(&mut writes, copy);
            if entries.insert(copy.platform_event_id) {
                writes.remove(key1(COPIES_TO_MAKE, copy.platform_event_id.as_bytes()));
            }
        }
        // Staging in memory cannot fail, so neither can this.
        let _ = self.add_new_events(copies, || {
            self.inner.staging.stage_deferred(writes);
            Ok(())
        });
        // The flush of their ingest records may have ended before they were
        // staged, so the flusher would not know of them yet.
        self.flush_soon();
    }

    /// Runs `write`, which stores new `events`, with their Pending ones in
    /// the queue floors, and once it succeeds counts the events.
    fn add_new_events(
        &self,
        events: &[EventRecord],
        write: impl FnOnce() -> StoreResult<()>,
    ) -> StoreResult<()> {
        let pending = events
            .iter()
            .filter(|event| event.status == EventStatus::Pending)
            .map(|event| (event.subscription_id, event.id));
        self.inner.queue_floors.pending(pending, write)?;
        self.inner
            .unfinished
            .fetch_add(events.len() as i64, Ordering::Relaxed);
        for event in events {
            self.inner.counts.add(
                &event.account_id,
                event.subscription_id,
                event.id,
                event.status,
                event.event_type,
                1,
            );
        }
        Ok(())
    }

    // --- events ----------------------------------------------------------

    /// Returns an event with its payload.
    pub fn get_event(
        &self,
        subscription: SubscriptionId,
        id: EventId,
    ) -> StoreResult<Option<EventRecord>> {
        let key = event_key(subscription, id);
        match self.read(&key)? {
            Some(value) => self.load_event(&key, &value),
            None => Ok(None),
        }
    }

    /// Returns an event whose payload, when shared, is left empty, for
    /// callers that change its status or history and send nothing, so they
    /// keep working when the ingest record that keeps the payload is damaged.
    pub fn get_event_without_payload(
        &self,
        subscription: SubscriptionId,
        id: EventId,
    ) -> StoreResult<Option<EventRecord>> {
        let value = self.read(&event_key(subscription, id))?;
        value.map(|v| decode_event(&v)).transpose()
    }

    /// Decodes the event record `bytes`, stored under `key`, with its
    /// payload. Returns `None` when pruning removed the record while its
    /// shared payload was read, since pruning removes the last copy before
    /// the ingest record.
    pub(super) fn load_event(&self, key: &[u8], bytes: &[u8]) -> StoreResult<Option<EventRecord>> {
        let mut event = decode_event(bytes)?;
        if !event.shared_payload {
            return Ok(Some(event));
        }
        let ingest_key = key1(INGESTED, event.platform_event_id.as_bytes());
        let payload = match self.read(&ingest_key)? {
            Some(record) => ingest_payload(&record)?.map(payload_text).transpose()?,
            None => None,
        };
        match payload {
            Some(payload) => {
                event.payload = payload;
                Ok(Some(event))
            }
            None if self.read(key)?.is_none() => Ok(None),
            None => {
                metrics::counter!("argus_webhooks_store_errors_total").increment(1);
                Err(StoreError::Corrupt(format!(
                    "the payload of event {} is missing: the ingest record of platform event {} is missing or keeps no payload",
                    event.id, event.platform_event_id
                )))
            }
        }
    }

    /// Returns an account's event by id alone, through the account index.
    pub fn find_event(&self, account: &AccountId, id: EventId) -> StoreResult<Option<EventRecord>> {
        let Some(entry) = self.read(&account_key(account, id))? else {
            return Ok(None);
        };
        let subscription = entry
            .get(2..18)
            .and_then(SubscriptionId::from_slice)
            .ok_or_else(|| StoreError::Corrupt("event account index entry".into()))?;
        self.get_event(subscription, id)
    }

    /// Stages an event with its index entries and queue change as one group,
    /// and requests a flush within [`LAZY_FLUSH_DELAY`]. The counts use the
    /// stored status, because another writer may have changed it since the
    /// caller read it. Returns false, and writes nothing, when the event is
    /// no longer stored: pruning removed it since it was read, and writing
    /// it again would bring back a copy whose shared payload may be gone.
    pub fn put_event(
        &self,
        event: &EventRecord,
        previous: EventStatus,
        change: QueueChange,
    ) -> StoreResult<bool> {
        let guard = self.lock_event_writes();
        let Some(stored) = self.read(&event_key(event.subscription_id, event.id))? else {
            return Ok(false);
        };
        let previous = event_codes(&stored)
            .ok()
            .and_then(|(status, _)| EventStatus::from_code(status))
            .unwrap_or(previous);
        self.put_event_locked(&guard, event, previous, change)?;
        Ok(true)
    }

    fn lock_event_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .event_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// [`Store::put_event`] for a caller whose `previous` comes from a record
    /// that no other writer can have changed since it was read, such as a
    /// subscription actor's cached record. Skips reading the stored status,
    /// which cost about a seventh of the delivery rate with 1,000,000 events.
    pub fn put_own_event(
        &self,
        event: &EventRecord,
        previous: EventStatus,
        change: QueueChange,
    ) -> StoreResult<()> {
        let guard = self.lock_event_writes();
        self.put_event_locked(&guard, event, previous, change)
    }

    /// Stages the change for a caller that has locked `event_writes` and
    /// has read the stored status `previous`.
    fn put_event_locked(
        &self,
        _guard: &std::sync::MutexGuard<'_, ()>,
        event: &EventRecord,
        previous: EventStatus,
        change: QueueChange,
    ) -> StoreResult<()> {
        self.check_fault()?;
        let mut batch = staging::Writes::default();
        put_event_entries(&mut batch, event);
        // The queue is the subscription's Pending events, which
        // `put_event_entries` has written. Only a Retrying event has a
        // scheduled retry to remove: a delete of a missing key still costs
        // sled a descent of the tree.
        let retry_key = key2(RETRY, event.subscription_id.as_bytes(), event.id.as_bytes());
        match change {
            QueueChange::Keep => {}
            QueueChange::Enqueue => {
                batch.remove(retry_key);
            }
            QueueChange::Retry(at) => {
                batch.insert(retry_key, &at.timestamp_millis().to_be_bytes()[..]);
            }
            QueueChange::Finish if previous == EventStatus::Retrying => {
                batch.remove(retry_key);
            }
            QueueChange::Finish => {}
        }
        if event.status == EventStatus::Pending && previous != EventStatus::Pending {
            self.inner
                .queue_floors
                .pending([(event.subscription_id, event.id)], || self.stage(batch));
        } else {
            self.stage(batch);
        }
        let delta = match (previous.is_finished(), event.status.is_finished()) {
            (false, true) => -1,
            (true, false) => 1,
            _ => 0,
        };
        self.inner.unfinished.fetch_add(delta, Ordering::Relaxed);
        self.inner.counts.change(
            &event.account_id,
            event.subscription_id,
            event.id,
            event.event_type,
            previous,
            event.status,
        );
        Ok(())
    }

    /// Returns up to `limit` queued events of a subscription, oldest first,
    /// starting after `after`, or at the subscription's queue floor. The
    /// window ends before the oldest held copy (see `held`).
    pub fn queue_window(
        &self,
        subscription: SubscriptionId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>> {
        let Some(after) = after else {
            // A first load, as an actor starts. The floor is read before the
            // staged writes are applied, so the scan finds every event that
            // turned Pending before the read, such as a manual retry's.
            let seen = self.inner.queue_floors.read(subscription);
            self.apply_staged()?;
            let Some(floor) = seen.id else {
                return Ok(Vec::new());
            };
            let start = event_key(subscription, floor);
            let first_held = self.inner.held.first(subscription);
            let out = self.queued_from(subscription, start, limit, first_held)?;
            // A held copy is Pending too, so the floor stays at or below it.
            let first = match (out.first().copied(), first_held) {
                (Some(id), Some(held)) => Some(id.min(held)),
                (id, held) => id.or(held),
            };
            self.inner.queue_floors.raise(subscription, seen, first);
            return Ok(out);
        };
        // A copy that its actor has heard of may still be a deferred write.
        // Copies whose ingest flush is still running are held, and the scan
        // stops before them.
        let first_held = self.inner.held.first(subscription);
        self.track(
            self.inner
                .staging
                .apply_if_deferred(&self.inner.db)
                .map_err(StoreError::from),
        )?;
        let mut start = event_key(subscription, after);
        start.push(0);
        self.queued_from(subscription, start, limit, first_held)
    }

    /// Returns up to `limit` Pending events of a subscription from `start`,
    /// one of its event keys, and before `end` when given.
    fn queued_from(
        &self,
        subscription: SubscriptionId,
        start: Vec<u8>,
        limit: usize,
        end: Option<EventId>,
    ) -> StoreResult<Vec<EventId>> {
        let prefix = key1(EVENT, subscription.as_bytes());
        let pending = EventStatus::Pending.code();
        let mut out = Vec::new();
        let range = match end.map(|end| event_key(subscription, end)) {
            Some(end) if end <= start => return Ok(out),
            Some(end) => self.inner.db.range(start..end),
            None => self.inner.db.range(start..),
        };
        for entry in range {
            let (key, value) = self.track(entry.map_err(StoreError::from))?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let status = match event_codes(&value) {
                Ok((status, _)) => status,
                Err(error) => {
                    // One damaged record must not stop the rest of the queue.
                    let key = printable_key(&key);
                    metrics::counter!("argus_webhooks_store_errors_total").increment(1);
                    tracing::error!(subscription_id = %subscription, %key, %error, "skipping a corrupt event record in the queue");
                    continue;
                }
            };
            if status == pending {
                out.push(
                    EventId::from_slice(&key[17..])
                        .ok_or_else(|| StoreError::Corrupt("event key".into()))?,
                );
            }
        }
        Ok(out)
    }

    /// Returns every scheduled retry of a subscription with its due time.
    pub fn retry_entries(
        &self,
        subscription: SubscriptionId,
    ) -> StoreResult<Vec<(EventId, DateTime<Utc>)>> {
        // Retries scheduled just before an actor restarted may still be staged.
        self.apply_staged()?;
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

    /// Returns the ids of the subscriptions that may have queued events or
    /// have scheduled retries. Skips over each subscription's retries, so the
    /// cost grows with the number of subscriptions, not of events.
    pub fn subscriptions_with_work(&self) -> StoreResult<BTreeSet<SubscriptionId>> {
        let mut owners: BTreeSet<SubscriptionId> = self
            .inner
            .queue_floors
            .subscriptions()
            .into_iter()
            .collect();
        let mut start = vec![RETRY];
        loop {
            let entry = self.inner.db.range(start.clone()..).next();
            let Some(entry) = entry else { break };
            let (key, _) = self.track(entry.map_err(StoreError::from))?;
            if key.first() != Some(&RETRY) || key.len() < 17 {
                break;
            }
            let id = SubscriptionId::from_slice(&key[1..17])
                .ok_or_else(|| StoreError::Corrupt("retry key".into()))?;
            owners.insert(id);
            // The first key after every entry of this subscription.
            start = prefix_end(&key1(RETRY, id.as_bytes()));
        }
        Ok(owners)
    }

    /// Marks every queued or retrying event of a subscription Failed with
    /// `reason`, and returns how many it changed.
    pub fn fail_unfinished(&self, subscription: SubscriptionId, reason: &str) -> StoreResult<u64> {
        self.fail_unfinished_before(subscription, reason, None)
    }

    /// [`Store::fail_unfinished`] for the events created before `before`
    /// only, when given. A subscription that is disabled and quickly resumed
    /// may get new events while the scan still runs, and those must not fail.
    pub fn fail_unfinished_before(
        &self,
        subscription: SubscriptionId,
        reason: &str,
        before: Option<EventId>,
    ) -> StoreResult<u64> {
        let floor = self.inner.queue_floors.read(subscription).id;
        self.apply_staged()?;
        let mut ids: Vec<EventId> = match floor {
            Some(floor) => self.queued_from(
                subscription,
                event_key(subscription, floor),
                usize::MAX,
                None,
            )?,
            None => Vec::new(),
        };
        for entry in self
            .inner
            .db
            .scan_prefix(key1(RETRY, subscription.as_bytes()))
        {
            let (key, _) = self.track(entry.map_err(StoreError::from))?;
            if let Some(id) = EventId::from_slice(&key[17..]) {
                ids.push(id);
            }
        }
        if let Some(before) = before {
            ids.retain(|id| *id < before);
        }
        let now = Utc::now();
        let mut changed = 0;
        for id in ids {
            // Read and write under the lock, so a concurrent run or a
            // recorded attempt is seen and nothing is counted twice.
            let guard = self.lock_event_writes();
            let Some(mut event) = self.get_event_without_payload(subscription, id)? else {
                continue;
            };
            let previous = event.status;
            if !previous.is_finished() {
                event.status = EventStatus::Failed;
                event.status_reason = Some(reason.to_string());
                event.next_attempt_at = None;
                event.updated_at = now;
                changed += 1;
                metrics::counter!("argus_webhooks_deliveries_total", "event_type" => event.event_type.as_str(), "outcome" => "failed").increment(1);
            }
            self.put_event_locked(&guard, &event, previous, QueueChange::Finish)?;
        }
        Ok(changed)
    }

    /// Removes Delivered and Failed events created before `before`, with their
    /// index entries, at most `limit` per call. Returns how many it removed.
    pub fn prune_finished(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        self.check_fault()?;
        self.apply_staged()?;
        let cutoff = before.timestamp_millis();
        let mut candidates = Vec::new();
        // The account index is in event id order within each account, so
        // each account's part is read up to the cutoff, then the scan jumps
        // to the next account.
        let mut start = vec![BY_ACCOUNT];
        'accounts: while candidates.len() < limit {
            let Some(first) = self.inner.db.range(start.clone()..).next() else {
                break;
            };
            let (key, _) = self.track(first.map_err(StoreError::from))?;
            if key.first() != Some(&BY_ACCOUNT) || key.len() < 1 + 1 + 16 {
                break;
            }
            let prefix = key[..key.len() - 16].to_vec();
            for entry in self
                .inner
                .db
                .range(prefix.clone()..time_key(&prefix, cutoff))
            {
                let (key, value) = self.track(entry.map_err(StoreError::from))?;
                let finished = value
                    .first()
                    .copied()
                    .and_then(EventStatus::from_code)
                    .is_some_and(|s| s.is_finished());
                let subscription = value.get(2..18).and_then(SubscriptionId::from_slice);
                let id = EventId::from_slice(&key[key.len() - 16..]);
                if let (true, Some(subscription), Some(id)) = (finished, subscription, id) {
                    candidates.push(sled::IVec::from(event_key(subscription, id)));
                    if candidates.len() >= limit {
                        break 'accounts;
                    }
                }
            }
            start = prefix_end(&prefix);
        }
        let mut removed = 0;
        for chunk in candidates.chunks(256) {
            // Under the event write lock, so a writer that checked its event
            // is still stored cannot write it back after this removes it.
            let pruned = {
                let _guard = self.lock_event_writes();
                self.track(self.remove_finished(chunk))?
            };
            removed += pruned.len();
            for event in pruned {
                self.inner.counts.add(
                    &event.account_id,
                    event.subscription_id,
                    event.id,
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
            let record = match decode_ingest(&value) {
                Ok(record) => record,
                Err(error) => {
                    // One damaged record must not stop every pruning run.
                    let key = printable_key(&key);
                    metrics::counter!("argus_webhooks_store_errors_total").increment(1);
                    tracing::error!(%key, %error, "skipping a corrupt ingest record when pruning");
                    continue;
                }
            };
            if record.accepted_at >= before {
                continue;
            }
            // A shared payload stays while any copy that reads it is stored.
            if ingest_payload(&value)?.is_some() && self.any_copy_stored(&record)? {
                continue;
            }
            batch.remove(key);
            ingested += 1;
            if ingested >= limit {
                break;
            }
        }
        if ingested > 0 {
            self.track(self.inner.db.apply_batch(batch).map_err(StoreError::from))?;
        }
        Ok(removed)
    }

    /// True when any of the copies that an ingest record lists is stored.
    fn any_copy_stored(&self, record: &IngestRecord) -> StoreResult<bool> {
        for (id, subscription) in &record.deliveries {
            if self.read(&event_key(*subscription, *id))?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Loads the counts, the queue floors and the number of unfinished
    /// events from the `A` index.
    pub(super) fn load_counts(&self) -> StoreResult<()> {
        let mut unfinished = 0;
        let mut floors = Vec::new();
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
            let id = EventId::from_slice(&key[key.len() - 16..]).ok_or_else(corrupt)?;
            self.inner
                .counts
                .add(&account, subscription, id, status, event_type, 1);
            if !status.is_finished() {
                unfinished += 1;
            }
            if status == EventStatus::Pending {
                floors.push((subscription, id));
            }
        }
        // Within an account the index is in event id order, so each
        // subscription's floor is its first Pending event.
        self.inner.queue_floors.pending(floors, || ());
        self.inner.unfinished.store(unfinished, Ordering::Relaxed);
        Ok(())
    }

    /// Removes the events under `keys` that are still finished, with their
    /// index entries, in one transaction, and returns the removed events. The
    /// status is read again inside it, so an event that a manual retry queued
    /// again since the scan stays.
    pub(super) fn remove_finished(&self, keys: &[sled::IVec]) -> StoreResult<Vec<EventRecord>> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let result: Result<Vec<EventRecord>, TransactionError<std::convert::Infallible>> =
            self.inner.db.transaction(|tx| {
                let mut removed = Vec::new();
                for key in keys {
                    if self.inner.staging.get(key).is_some() {
                        // Changed since the scan, for example by a manual
                        // retry; a later pruning run looks at it again.
                        continue;
                    }
                    let Some(value) = tx.get(key)? else { continue };
                    let Ok(event) = decode_event(&value) else {
                        continue;
                    };
                    if !event.status.is_finished() {
                        continue;
                    }
                    tx.remove(key.clone())?;
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
}

/// Restores the copies of ingested events that deferred writes had not made
/// durable when the process stopped, from the ingest record that each `U`
/// entry names, and removes the entries. A copy that is stored stays as it
/// is, since its subscription may have changed it. An entry that cannot be
/// read is logged and kept. Returns how many copies it restored.
pub(super) fn restore_deferred_copies(db: &sled::Db) -> StoreResult<u64> {
    let mut batch = staging::Writes::default();
    let mut entries = 0u64;
    let mut restored = 0u64;
    for entry in db.scan_prefix([COPIES_TO_MAKE]) {
        let (key, value) = entry?;
        entries += 1;
        let copies = match deferred_copies(db, &key, &value) {
            Ok(copies) => copies,
            Err(error) => {
                metrics::counter!("argus_webhooks_store_errors_total").increment(1);
                tracing::error!(%error, key = %printable_key(&key), "cannot restore the copies of an ingested event; the entry is kept");
                continue;
            }
        };
        for copy in copies {
            if db.get(event_key(copy.subscription_id, copy.id))?.is_none() {
                put_event_entries(&mut batch, &copy);
                restored += 1;
            }
        }
        batch.remove(key.to_vec());
    }
    if entries > 0 {
        db.apply_batch(batch.into_batch())?;
        db.flush()?;
        tracing::info!(
            restored,
            "restored the event copies that were not durable at the last stop"
        );
    }
    Ok(restored)
}

/// Returns the Pending copies that the ingest record named by a `U` entry
/// lists.
fn deferred_copies(db: &sled::Db, key: &[u8], value: &[u8]) -> StoreResult<Vec<EventRecord>> {
    let corrupt = |what: &str| StoreError::Corrupt(what.to_string());
    let ingest = db
        .get(key1(INGESTED, &key[1..]))?
        .ok_or_else(|| corrupt("the ingest record is missing"))?;
    let record = decode_ingest(&ingest)?;
    if ingest_payload(&ingest)?.is_none() {
        return Err(corrupt("the ingest record keeps no payload"));
    }
    let (&code, account) = value
        .split_first()
        .ok_or_else(|| corrupt("the entry is empty"))?;
    let event_type =
        EventType::from_code(code).ok_or_else(|| corrupt("the entry has an unknown event type"))?;
    let account = std::str::from_utf8(account)
        .ok()
        .and_then(|account| AccountId::parse(account).ok())
        .ok_or_else(|| corrupt("the entry has no valid account id"))?;
    Ok(EventRecord::shared_copies(
        &record.deliveries,
        &account,
        event_type,
        record.event_id,
        record.accepted_at,
    )
    .collect())
}
