//! Exact event counts by status and type, per account and per subscription,
//! kept in memory beside the store so that event listings know their total
//! without scanning. Rebuilt from the account index when the store opens and
//! changed by the same store functions that write events.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::{AccountId, EventStatus, EventType, SubscriptionId};

/// Counts indexed by `[status code][type code]`.
type Table = [[u64; 16]; 4];

#[derive(Default)]
pub struct EventCounts {
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    accounts: HashMap<AccountId, Box<Table>>,
    subscriptions: HashMap<SubscriptionId, Box<Table>>,
}

impl EventCounts {
    /// Adds `delta` events of `status` and `event_type` to both owners.
    pub fn add(
        &self,
        account: &AccountId,
        subscription: SubscriptionId,
        status: EventStatus,
        event_type: EventType,
        delta: i64,
    ) {
        let mut tables = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (s, t) = (status.code() as usize, event_type.code() as usize);
        let account_table = match tables.accounts.get_mut(account) {
            Some(table) => table,
            None => tables.accounts.entry(account.clone()).or_default(),
        };
        account_table[s][t] = account_table[s][t].saturating_add_signed(delta);
        let sub_table = tables.subscriptions.entry(subscription).or_default();
        sub_table[s][t] = sub_table[s][t].saturating_add_signed(delta);
    }

    /// Moves one event from one status to another.
    pub fn change(
        &self,
        account: &AccountId,
        subscription: SubscriptionId,
        event_type: EventType,
        from: EventStatus,
        to: EventStatus,
    ) {
        if from != to {
            self.add(account, subscription, from, event_type, -1);
            self.add(account, subscription, to, event_type, 1);
        }
    }

    /// Counts the matching events of an account, or of one of its
    /// subscriptions when `subscription` is given.
    pub fn total(
        &self,
        account: &AccountId,
        subscription: Option<SubscriptionId>,
        status: Option<EventStatus>,
        event_type: Option<EventType>,
    ) -> u64 {
        let tables = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let table = match subscription {
            Some(id) => tables.subscriptions.get(&id),
            None => tables.accounts.get(account),
        };
        let Some(table) = table else {
            return 0;
        };
        let statuses = status.map_or(0..4, |s| s.code() as usize..s.code() as usize + 1);
        let types = event_type.map_or(0..16, |t| t.code() as usize..t.code() as usize + 1);
        statuses
            .flat_map(|s| types.clone().map(move |t| (s, t)))
            .map(|(s, t)| table[s][t])
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_follow_changes() {
        let counts = EventCounts::default();
        let account = AccountId::parse("acme").unwrap();
        let sub = SubscriptionId(uuid::Uuid::new_v4());
        counts.add(
            &account,
            sub,
            EventStatus::Pending,
            EventType::LeaseCreated,
            3,
        );
        counts.change(
            &account,
            sub,
            EventType::LeaseCreated,
            EventStatus::Pending,
            EventStatus::Delivered,
        );
        assert_eq!(counts.total(&account, None, None, None), 3);
        assert_eq!(
            counts.total(&account, Some(sub), Some(EventStatus::Pending), None),
            2
        );
        assert_eq!(
            counts.total(
                &account,
                None,
                Some(EventStatus::Delivered),
                Some(EventType::LeaseCreated)
            ),
            1
        );
        assert_eq!(
            counts.total(&account, None, None, Some(EventType::TenantCreated)),
            0
        );
        let other = SubscriptionId(uuid::Uuid::new_v4());
        assert_eq!(counts.total(&account, Some(other), None, None), 0);
    }
}
