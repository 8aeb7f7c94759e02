//! The key layout described in the module documentation of `store`.

use super::encode_event;
use super::staging::Writes;
use crate::counts::MAX_MILLIS;
use crate::model::{AccountId, EventId, EventRecord, EventType, SubscriptionId};

pub(super) const META: u8 = b'M';
pub(super) const SUBSCRIPTION: u8 = b'S';
pub(super) const BY_ACCOUNT_SUBSCRIPTION: u8 = b'C';
pub(super) const EVENT: u8 = b'E';
pub(super) const BY_ACCOUNT: u8 = b'A';
pub(super) const RETRY: u8 = b'R';
pub(super) const INGESTED: u8 = b'I';
pub(super) const COPIES_TO_MAKE: u8 = b'U';
/// The first-attempt queue of format 1, removed when such a store opens.
pub(super) const OLD_QUEUE: u8 = b'Q';
/// The index by subscription of formats 1 and 2, removed when such a store
/// opens: event keys start with the subscription id since format 3.
pub(super) const OLD_BY_SUBSCRIPTION: u8 = b'B';

/// Length of an event key: the prefix, the subscription id and the event id.
pub(super) const EVENT_KEY_LEN: usize = 1 + 16 + 16;

pub(super) fn event_key(subscription: SubscriptionId, id: EventId) -> Vec<u8> {
    key2(EVENT, subscription.as_bytes(), id.as_bytes())
}

pub(super) fn put_event_entries(batch: &mut Writes, event: &EventRecord) {
    batch.insert(
        event_key(event.subscription_id, event.id),
        encode_event(event),
    );
    let mut account_value = vec![event.status.code(), event.event_type.code()];
    account_value.extend_from_slice(event.subscription_id.as_bytes());
    batch.insert(account_key(&event.account_id, event.id), account_value);
}

/// Returns the value of a `COPIES_TO_MAKE` entry: what a copy of the
/// platform event needs beyond its ingest record, the type code and the
/// account id.
pub(super) fn copies_to_make_value(event_type: EventType, account: &AccountId) -> Vec<u8> {
    let mut value = vec![event_type.code()];
    value.extend_from_slice(account.as_str().as_bytes());
    value
}

pub(super) fn account_key(account: &AccountId, id: EventId) -> Vec<u8> {
    let mut key = account_prefix(BY_ACCOUNT, account);
    key.extend_from_slice(id.as_bytes());
    key
}

/// `prefix`, the account id and a 0x00 separator (account ids never contain 0x00).
pub(super) fn account_prefix(prefix: u8, account: &AccountId) -> Vec<u8> {
    let mut key = vec![prefix];
    key.extend_from_slice(account.as_str().as_bytes());
    key.push(0);
    key
}

pub(super) fn key1(prefix: u8, a: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + a.len());
    key.push(prefix);
    key.extend_from_slice(a);
    key
}

pub(super) fn key2(prefix: u8, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut key = key1(prefix, a);
    key.extend_from_slice(b);
    key
}

pub(super) fn with_id(prefix: &[u8], id: EventId) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

/// Returns the first key under `prefix` of an event created at `millis` or
/// later, where `MAX_MILLIS` and beyond give the end of the prefix.
pub(super) fn time_key(prefix: &[u8], millis: i64) -> Vec<u8> {
    if millis >= MAX_MILLIS {
        return prefix_end(prefix);
    }
    with_id(prefix, EventId::min_at(millis))
}

/// Returns the first key after every key that starts with `prefix`.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.extend_from_slice(&[0xff; 17]);
    end
}
