//! Copies of ingested events whose flush is still running. Queue scans stop
//! before them, so no actor sends a copy of an ingest that a crash could
//! still lose unanswered, and the commit task releases them after the flush,
//! just before it notifies their actors.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::model::{EventId, SubscriptionId};

#[derive(Default)]
pub(super) struct HeldCopies {
    by_subscription: Mutex<HashMap<SubscriptionId, BTreeSet<EventId>>>,
}

impl HeldCopies {
    fn lock(&self) -> MutexGuard<'_, HashMap<SubscriptionId, BTreeSet<EventId>>> {
        self.by_subscription
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn hold(&self, copies: &[(SubscriptionId, Vec<EventId>)]) {
        let mut held = self.lock();
        for (subscription, ids) in copies {
            held.entry(*subscription)
                .or_default()
                .extend(ids.iter().copied());
        }
    }

    pub(super) fn release(&self, copies: &[(SubscriptionId, Vec<EventId>)]) {
        let mut held = self.lock();
        for (subscription, ids) in copies {
            if let Some(set) = held.get_mut(subscription) {
                for id in ids {
                    set.remove(id);
                }
                if set.is_empty() {
                    held.remove(subscription);
                }
            }
        }
    }

    /// Returns the oldest held copy of `subscription`.
    pub(super) fn first(&self, subscription: SubscriptionId) -> Option<EventId> {
        self.lock()
            .get(&subscription)
            .and_then(|set| set.first().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_clears_held_copies() {
        let held = HeldCopies::default();
        let subscription = SubscriptionId(uuid::Uuid::new_v4());
        let (older, newer) = (EventId::new(), EventId::new());
        held.hold(&[(subscription, vec![newer, older])]);
        assert_eq!(held.first(subscription), Some(older));

        held.release(&[(subscription, vec![older])]);
        assert_eq!(held.first(subscription), Some(newer));
        held.release(&[(subscription, vec![newer])]);
        assert_eq!(held.first(subscription), None);
        assert!(held.lock().is_empty(), "an empty set stays behind");
    }
}
