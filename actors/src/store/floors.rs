//! The start of each subscription's queue. A subscription's queue is its
//! Pending entries in the `B` index, in event id order. Most of that index is
//! delivered history, so a first scan starts at the subscription's floor: an
//! event id at or below its oldest Pending event.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::model::{EventId, SubscriptionId};

#[derive(Default)]
pub(super) struct QueueFloors {
    inner: Mutex<Floors>,
}

#[derive(Default)]
struct Floors {
    /// Subscriptions without an entry have no Pending events.
    by_subscription: HashMap<SubscriptionId, Floor>,
    next_stamp: u64,
}

#[derive(Clone, Copy)]
struct Floor {
    id: EventId,
    /// Changes whenever an event of the subscription turns Pending, so a
    /// scan can tell whether its result is still the whole story.
    stamp: u64,
}

/// A floor as [`QueueFloors::read`] found it, for a later [`QueueFloors::raise`].
#[derive(Clone, Copy)]
pub(super) struct FloorRead {
    pub(super) id: Option<EventId>,
    stamp: Option<u64>,
}

impl QueueFloors {
    fn lock(&self) -> MutexGuard<'_, Floors> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes events that turn Pending and runs `write`, which stages or
    /// applies them, before any scan can read the floors again. A scan that
    /// read the floors earlier finds a new stamp and keeps the floor.
    pub(super) fn pending<T>(
        &self,
        events: impl IntoIterator<Item = (SubscriptionId, EventId)>,
        write: impl FnOnce() -> T,
    ) -> T {
        let mut floors = self.lock();
        for (subscription, id) in events {
            floors.next_stamp += 1;
            let stamp = floors.next_stamp;
            floors
                .by_subscription
                .entry(subscription)
                .and_modify(|floor| {
                    floor.id = floor.id.min(id);
                    floor.stamp = stamp;
                })
                .or_insert(Floor { id, stamp });
        }
        write()
    }

    pub(super) fn read(&self, subscription: SubscriptionId) -> FloorRead {
        let floor = self.lock().by_subscription.get(&subscription).copied();
        FloorRead {
            id: floor.map(|f| f.id),
            stamp: floor.map(|f| f.stamp),
        }
    }

    /// Moves the floor up to `first`, the oldest Pending event a scan from
    /// `seen` found, or removes it when the scan found none. Does nothing
    /// when an event turned Pending since `seen` was read.
    pub(super) fn raise(
        &self,
        subscription: SubscriptionId,
        seen: FloorRead,
        first: Option<EventId>,
    ) {
        let mut floors = self.lock();
        let current = floors.by_subscription.get(&subscription).map(|f| f.stamp);
        if current != seen.stamp {
            return;
        }
        match (first, seen.stamp) {
            (Some(id), Some(stamp)) => {
                floors
                    .by_subscription
                    .insert(subscription, Floor { id, stamp });
            }
            _ => {
                floors.by_subscription.remove(&subscription);
            }
        }
    }

    /// Subscriptions that may have Pending events.
    pub(super) fn subscriptions(&self) -> Vec<SubscriptionId> {
        self.lock().by_subscription.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<EventId> {
        let mut ids: Vec<EventId> = (0..n).map(|_| EventId::new()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn floors_keep_the_oldest_pending_event() {
        let floors = QueueFloors::default();
        let sub = SubscriptionId(uuid::Uuid::new_v4());
        let ids = ids(3);
        assert!(floors.read(sub).id.is_none());
        floors.pending([(sub, ids[1]), (sub, ids[2])], || ());
        assert_eq!(floors.read(sub).id, Some(ids[1]));
        floors.pending([(sub, ids[0])], || ());
        assert_eq!(floors.read(sub).id, Some(ids[0]));
    }

    #[test]
    fn raise_after_new_pending_event_does_nothing() {
        let floors = QueueFloors::default();
        let sub = SubscriptionId(uuid::Uuid::new_v4());
        let ids = ids(3);
        floors.pending([(sub, ids[0])], || ());
        let seen = floors.read(sub);
        floors.pending([(sub, ids[2])], || ());
        floors.raise(sub, seen, None);
        assert_eq!(floors.read(sub).id, Some(ids[0]));

        let seen = floors.read(sub);
        floors.raise(sub, seen, Some(ids[1]));
        assert_eq!(floors.read(sub).id, Some(ids[1]));
        let seen = floors.read(sub);
        floors.raise(sub, seen, None);
        assert!(floors.read(sub).id.is_none());
        assert!(floors.subscriptions().is_empty());
    }

    #[test]
    fn raise_from_no_floor_keeps_new_floor() {
        let floors = QueueFloors::default();
        let sub = SubscriptionId(uuid::Uuid::new_v4());
        let ids = ids(1);
        let seen = floors.read(sub);
        floors.pending([(sub, ids[0])], || ());
        floors.raise(sub, seen, None);
        assert_eq!(floors.read(sub).id, Some(ids[0]));
    }
}
