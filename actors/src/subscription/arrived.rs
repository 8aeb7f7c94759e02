//! Records of new events that the router hands to their subscription actor
//! with the arrival message, so a first attempt reads nothing from the store.
//!
//! sled 0.34 makes every read wait while a batch is applied, and the router
//! applies each large ingest as one batch. A subscription actor that read each
//! event before its first attempt stalled for the rest of that batch, about
//! 4 ms each time, and with it the runtime thread it ran on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{EventId, EventRecord};

/// Maximum bytes of arrived records that all subscription actors together
/// keep. Records past it are read from the store when their turn comes.
pub const ARRIVED_BYTES_LIMIT: usize = 64 * 1024 * 1024;

/// Arrived records of one subscription actor, by event id.
#[derive(Default)]
pub(super) struct ArrivedRecords {
    records: HashMap<EventId, EventRecord>,
}

impl ArrivedRecords {
    /// Keeps `record` unless the records of all actors, counted in `total`,
    /// would pass [`ARRIVED_BYTES_LIMIT`].
    pub(super) fn keep(&mut self, record: EventRecord, total: &AtomicUsize) {
        let size = footprint(&record);
        if total.fetch_add(size, Ordering::Relaxed) + size > ARRIVED_BYTES_LIMIT {
            total.fetch_sub(size, Ordering::Relaxed);
            return;
        }
        if let Some(replaced) = self.records.insert(record.id, record) {
            total.fetch_sub(footprint(&replaced), Ordering::Relaxed);
        }
    }

    /// Removes and returns the record of `id`.
    pub(super) fn take(&mut self, id: EventId, total: &AtomicUsize) -> Option<EventRecord> {
        let record = self.records.remove(&id)?;
        total.fetch_sub(footprint(&record), Ordering::Relaxed);
        Some(record)
    }

    /// Drops every record, for a subscription that stops sending or an actor
    /// that stops.
    pub(super) fn clear(&mut self, total: &AtomicUsize) {
        let bytes: usize = self.records.values().map(footprint).sum();
        total.fetch_sub(bytes, Ordering::Relaxed);
        self.records.clear();
    }

    pub(super) fn len(&self) -> usize {
        self.records.len()
    }
}

/// Estimates the memory a kept record takes: the record, its map slot and
/// its heap text.
fn footprint(record: &EventRecord) -> usize {
    std::mem::size_of::<EventRecord>()
        + std::mem::size_of::<EventId>()
        + record.payload.len()
        + record.account_id.as_str().len()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::{AccountId, EventType, PlatformEventId, SubscriptionId};

    fn record(payload_len: usize) -> EventRecord {
        EventRecord::pending_copy(
            (EventId::new(), SubscriptionId(uuid::Uuid::new_v4())),
            AccountId::parse("acme-capital").unwrap(),
            EventType::LeaseCreated,
            PlatformEventId(uuid::Uuid::new_v4()),
            "x".repeat(payload_len),
            false,
            Utc::now(),
        )
    }

    #[test]
    fn keeps_within_the_shared_limit() {
        let total = AtomicUsize::new(0);
        let mut arrived = ArrivedRecords::default();
        let first = record(1024);
        let id = first.id;
        arrived.keep(first, &total);
        assert_eq!(arrived.len(), 1);
        let kept_bytes = total.load(Ordering::Relaxed);
        assert!(kept_bytes > 1024);

        // Another actor's records fill the budget: nothing more is kept.
        total.fetch_add(ARRIVED_BYTES_LIMIT, Ordering::Relaxed);
        arrived.keep(record(1024), &total);
        assert_eq!(arrived.len(), 1);
        total.fetch_sub(ARRIVED_BYTES_LIMIT, Ordering::Relaxed);
        assert_eq!(total.load(Ordering::Relaxed), kept_bytes);

        assert_eq!(arrived.take(id, &total).map(|r| r.id), Some(id));
        assert_eq!(total.load(Ordering::Relaxed), 0);
        assert!(arrived.take(id, &total).is_none());
    }

    #[test]
    fn clear_releases_every_byte() {
        let total = AtomicUsize::new(0);
        let mut arrived = ArrivedRecords::default();
        for _ in 0..3 {
            arrived.keep(record(100), &total);
        }
        assert_eq!(arrived.len(), 3);
        arrived.clear(&total);
        assert_eq!(arrived.len(), 0);
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }
}
