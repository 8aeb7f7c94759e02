//! Exact event counts by status and type, per account and per subscription,
//! kept in memory beside the store so that event listings know their total
//! without scanning. Besides the totals, each owner keeps counts per time
//! bucket of the events' creation time, and per coarse bucket of many
//! buckets, so a date-range total sums buckets instead of walking the index.
//! Rebuilt from the account index when the store opens and changed by the
//! same store functions that write events.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Mutex;

use crate::model::{AccountId, EventId, EventStatus, EventType, SubscriptionId};

/// Width of a time bucket, in milliseconds. A date-range total sums the
/// buckets wholly inside the range and scans the index only over the parts
/// of the two edge buckets. Wider buckets make those scans longer: at
/// 30,000 ingested events per second, a 100 ms bucket holds up to 3,000
/// events of one owner. Narrower buckets give more entries to sum when events
/// are sparse, up to one entry per event.
pub const BUCKET_MILLIS: i64 = 100;

/// Buckets per coarse bucket: 10 minutes. A range sums coarse buckets in its
/// middle and buckets only in the partial coarse buckets at its two ends.
/// With sparse events, one bucket entry per event, summing 1,000,000 bucket
/// entries took about 20 ms in a release build on a busy 2-core machine. Coarse buckets
/// bound the entries summed to those of 20 minutes plus one per 10 minutes
/// of the range, for each event type present.
const BUCKETS_PER_COARSE: i64 = 6_000;

/// End of the millisecond range that an event id can hold: UUID v7 keeps the
/// creation time in 48 bits.
pub const MAX_MILLIS: i64 = 1 << 48;

/// Per-status counts of one (bucket, type code) pair. A coarse bucket of 10
/// minutes would reach `u32::MAX` only above 7,000,000 events per second.
type StatusCounts = [u32; 4];

/// Counts by (bucket, type code). Only pairs that hold events have an entry.
type BucketMap = BTreeMap<(i64, u8), StatusCounts>;

#[derive(Default)]
pub struct EventCounts {
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    accounts: HashMap<AccountId, Box<Owner>>,
    subscriptions: HashMap<SubscriptionId, Box<Owner>>,
}

/// The counts of one account or one subscription.
#[derive(Default)]
struct Owner {
    /// Totals indexed by `[status code][type code]`.
    totals: [[u64; 16]; 4],
    /// Counts by (time bucket, type code), at most one entry per event.
    /// NOTE: an entry costs an estimated 50 bytes (B-tree nodes of 16-byte
    /// keys and values), so sparse events, one per bucket, add about 100
    /// bytes each across their account and subscription.
    buckets: BucketMap,
    /// Counts by (coarse bucket, type code): the sums of `buckets`.
    coarse: BucketMap,
}

/// A range split into the units of some width wholly inside it and the parts
/// of the range before and after them.
#[derive(Debug, PartialEq)]
pub struct RangeSplit {
    /// Indexes of the whole units: unit `i` covers `i * width..(i + 1) * width`.
    pub units: Range<i64>,
    /// Parts of the range that the units do not cover; either may be empty.
    pub edges: [Range<i64>; 2],
}

/// Splits the millisecond range `millis` (end exclusive) into whole time
/// buckets and edges.
pub fn split_range(millis: Range<i64>) -> RangeSplit {
    split_by(millis, BUCKET_MILLIS)
}

/// Splits `range` (end exclusive) into whole units of `width` and edges. When
/// no unit fits wholly inside, the first edge is the whole range.
fn split_by(range: Range<i64>, width: i64) -> RangeSplit {
    let first = range.start.div_euclid(width) + i64::from(range.start.rem_euclid(width) != 0);
    let end = range.end.div_euclid(width);
    if first >= end {
        return RangeSplit {
            units: first..first,
            edges: [range, 0..0],
        };
    }
    RangeSplit {
        units: first..end,
        edges: [range.start..first * width, end * width..range.end],
    }
}

/// Sums the counts of `map` in the keys `range`, with the filters applied.
fn sum_counts(
    map: &BucketMap,
    range: Range<i64>,
    status: Option<EventStatus>,
    type_code: Option<u8>,
) -> u64 {
    if range.is_empty() {
        return 0;
    }
    map.range((range.start, 0)..(range.end, 0))
        .filter(|((_, t), _)| type_code.is_none_or(|code| code == *t))
        .map(|(_, counts)| match status {
            Some(s) => u64::from(counts[s.code() as usize]),
            None => counts.iter().copied().map(u64::from).sum(),
        })
        .sum()
}

/// Adds `delta` to one status count of `map` and removes entries that reach zero.
fn add_to_map(map: &mut BucketMap, key: (i64, u8), status: usize, delta: i32) {
    let counts = map.entry(key).or_default();
    counts[status] = counts[status].saturating_add_signed(delta);
    if *counts == StatusCounts::default() {
        map.remove(&key);
    }
}

/// Returns the time bucket of an event: its creation time, read from the
/// first 48 bits of the id as the store's index keys order it.
fn bucket_of(id: EventId) -> i64 {
    let mut millis = [0u8; 8];
    millis[2..].copy_from_slice(&id.as_bytes()[..6]);
    i64::from_be_bytes(millis).div_euclid(BUCKET_MILLIS)
}

impl Owner {
    fn add(&mut self, bucket: i64, status: usize, event_type: usize, delta: i64) {
        let total = &mut self.totals[status][event_type];
        *total = total.saturating_add_signed(delta);
        let delta = delta.clamp(i32::MIN.into(), i32::MAX.into()) as i32;
        let type_code = event_type as u8;
        add_to_map(&mut self.buckets, (bucket, type_code), status, delta);
        let coarse = bucket.div_euclid(BUCKETS_PER_COARSE);
        add_to_map(&mut self.coarse, (coarse, type_code), status, delta);
    }

    /// Sums the buckets in `buckets`: coarse buckets where whole ones fit.
    fn sum(&self, buckets: Range<i64>, status: Option<EventStatus>, type_code: Option<u8>) -> u64 {
        let split = split_by(buckets, BUCKETS_PER_COARSE);
        let [before, after] = split.edges;
        sum_counts(&self.buckets, before, status, type_code)
            + sum_counts(&self.coarse, split.units, status, type_code)
            + sum_counts(&self.buckets, after, status, type_code)
    }
}

impl EventCounts {
    /// Adds `delta` events of `status` and `event_type`, created at the time
    /// in `id`, to both owners.
    pub fn add(
        &self,
        account: &AccountId,
        subscription: SubscriptionId,
        id: EventId,
        status: EventStatus,
        event_type: EventType,
        delta: i64,
    ) {
        let mut tables = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = bucket_of(id);
        let (s, t) = (status.code() as usize, event_type.code() as usize);
        let account_owner = match tables.accounts.get_mut(account) {
            Some(owner) => owner,
            None => tables.accounts.entry(account.clone()).or_default(),
        };
        account_owner.add(bucket, s, t, delta);
        let subscription_owner = tables.subscriptions.entry(subscription).or_default();
        subscription_owner.add(bucket, s, t, delta);
    }

    /// Moves one event from one status to another.
    pub fn change(
        &self,
        account: &AccountId,
        subscription: SubscriptionId,
        id: EventId,
        event_type: EventType,
        from: EventStatus,
        to: EventStatus,
    ) {
        if from != to {
            self.add(account, subscription, id, from, event_type, -1);
            self.add(account, subscription, id, to, event_type, 1);
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
        let Some(owner) = tables.owner(account, subscription) else {
            return 0;
        };
        let statuses = status.map_or(0..4, |s| s.code() as usize..s.code() as usize + 1);
        let types = event_type.map_or(0..16, |t| t.code() as usize..t.code() as usize + 1);
        statuses
            .flat_map(|s| types.clone().map(move |t| (s, t)))
            .map(|(s, t)| owner.totals[s][t])
            .sum()
    }

    /// Counts the matching events created in the time `buckets`, like
    /// [`EventCounts::total`]. The cost grows with the number of buckets and
    /// coarse buckets summed that hold events, not with the number of events.
    pub fn total_in_buckets(
        &self,
        account: &AccountId,
        subscription: Option<SubscriptionId>,
        status: Option<EventStatus>,
        event_type: Option<EventType>,
        buckets: Range<i64>,
    ) -> u64 {
        if buckets.is_empty() {
            return 0;
        }
        let tables = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(owner) = tables.owner(account, subscription) else {
            return 0;
        };
        owner.sum(buckets, status, event_type.map(EventType::code))
    }
}

impl Tables {
    fn owner(&self, account: &AccountId, subscription: Option<SubscriptionId>) -> Option<&Owner> {
        match subscription {
            Some(id) => self.subscriptions.get(&id),
            None => self.accounts.get(account),
        }
        .map(|owner| &**owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        AccountId::parse("acme").unwrap()
    }

    /// Returns an id created at `millis` with `tail` in its last byte.
    fn id_at(millis: i64, tail: u8) -> EventId {
        let mut bytes = *EventId::min_at(millis).as_bytes();
        bytes[15] = tail;
        EventId(uuid::Uuid::from_bytes(bytes))
    }

    #[test]
    fn totals_follow_changes() {
        let counts = EventCounts::default();
        let account = account();
        let sub = SubscriptionId(uuid::Uuid::new_v4());
        let id = EventId::new();
        counts.add(
            &account,
            sub,
            id,
            EventStatus::Pending,
            EventType::LeaseCreated,
            3,
        );
        counts.change(
            &account,
            sub,
            id,
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

    #[test]
    fn split_range_cases() {
        let cases = [
            (0..1000, 0..10, [0..0, 1000..1000]),
            (150..420, 2..4, [150..200, 400..420]),
            (100..200, 1..2, [100..100, 200..200]),
            (130..170, 2..2, [130..170, 0..0]),
            (150..250, 2..2, [150..250, 0..0]),
            (199..201, 2..2, [199..201, 0..0]),
            (300..300, 3..3, [300..300, 0..0]),
        ];
        for (millis, buckets, edges) in cases {
            assert_eq!(
                split_range(millis.clone()),
                RangeSplit {
                    units: buckets,
                    edges
                },
                "{millis:?}"
            );
        }
    }

    /// Adds the events, then checks every range from 0 to 1,100 ms in 10 ms
    /// steps: the buckets plus a count of the edges equal a count of all.
    #[test]
    fn range_sums_match_scan() {
        let counts = EventCounts::default();
        let account = account();
        let sub = SubscriptionId(uuid::Uuid::new_v4());
        let events = [
            (0, EventStatus::Pending, EventType::LeaseCreated),
            (50, EventStatus::Pending, EventType::LeaseCreated),
            (99, EventStatus::Delivered, EventType::LeaseCreated),
            (100, EventStatus::Pending, EventType::TenantCreated),
            (120, EventStatus::Failed, EventType::LeaseCreated),
            (199, EventStatus::Pending, EventType::LeaseCreated),
            (200, EventStatus::Retrying, EventType::TenantCreated),
            (350, EventStatus::Pending, EventType::LeaseCreated),
            (351, EventStatus::Pending, EventType::LeaseCreated),
            (999, EventStatus::Delivered, EventType::TenantCreated),
            (1000, EventStatus::Pending, EventType::LeaseCreated),
        ];
        for (n, (millis, status, event_type)) in events.iter().enumerate() {
            counts.add(
                &account,
                sub,
                id_at(*millis, n as u8),
                *status,
                *event_type,
                1,
            );
        }
        let filters = [
            (None, None),
            (Some(EventStatus::Pending), None),
            (None, Some(EventType::TenantCreated)),
            (Some(EventStatus::Pending), Some(EventType::LeaseCreated)),
        ];
        for (status, event_type) in filters {
            let matches = |m: &(i64, EventStatus, EventType), range: &Range<i64>| {
                range.contains(&m.0)
                    && status.is_none_or(|s| s == m.1)
                    && event_type.is_none_or(|t| t == m.2)
            };
            for start in (0..1100).step_by(10) {
                for end in (start..1110).step_by(10) {
                    let millis = start..end;
                    let split = split_range(millis.clone());
                    let scanned = split
                        .edges
                        .iter()
                        .map(|edge| events.iter().filter(|e| matches(e, edge)).count() as u64)
                        .sum::<u64>();
                    let expected = events.iter().filter(|e| matches(e, &millis)).count() as u64;
                    for owner in [None, Some(sub)] {
                        let summed = counts.total_in_buckets(
                            &account,
                            owner,
                            status,
                            event_type,
                            split.units.clone(),
                        );
                        assert_eq!(
                            summed + scanned,
                            expected,
                            "{millis:?} {status:?} {event_type:?} {owner:?}"
                        );
                    }
                }
            }
        }
    }

    /// Sums bucket ranges that start and end inside, on and beside coarse
    /// bucket boundaries, and compares them with a count of the events.
    #[test]
    fn coarse_sums_match_buckets() {
        let counts = EventCounts::default();
        let account = account();
        let sub = SubscriptionId(uuid::Uuid::new_v4());
        let coarse = BUCKETS_PER_COARSE;
        let buckets = [
            0,
            1,
            coarse - 1,
            coarse,
            coarse + 1,
            2 * coarse - 1,
            2 * coarse,
            3 * coarse - 1,
            5 * coarse,
            5 * coarse + 1,
            10 * coarse - 1,
        ];

        let statuses = [EventStatus::Pending, EventStatus::Delivered];
        let types = [
            EventType::LeaseCreated,
            EventType::TenantCreated,
            EventType::LeaseCreated,
        ];
        let events: Vec<_> = buckets
            .iter()
            .enumerate()
            .map(|(n, bucket)| (*bucket, statuses[n % 2], types[n % 3]))
            .collect();
        for (n, (bucket, status, event_type)) in events.iter().enumerate() {
            let id = id_at(bucket * BUCKET_MILLIS + 7, n as u8);
            counts.add(&account, sub, id, *status, *event_type, 1);
        }

        let points = [
            0,
            1,
            2,
            coarse - 1,
            coarse,
            coarse + 1,
            2 * coarse,
            2 * coarse + 1,
            3 * coarse - 1,
            3 * coarse,
            5 * coarse,
            5 * coarse + 2,
            10 * coarse,
            10 * coarse + 1,
        ];

        let filters = [
            (None, None),
            (Some(EventStatus::Delivered), None),
            (None, Some(EventType::TenantCreated)),
            (Some(EventStatus::Pending), Some(EventType::LeaseCreated)),
        ];
        for (status, event_type) in filters {
            for start in points {
                for end in points.into_iter().filter(|end| *end >= start) {
                    let expected = events
                        .iter()
                        .filter(|(bucket, s, t)| {
                            (start..end).contains(bucket)
                                && status.is_none_or(|status| status == *s)
                                && event_type.is_none_or(|event_type| event_type == *t)
                        })
                        .count() as u64;
                    for owner in [None, Some(sub)] {
                        let summed = counts.total_in_buckets(
                            &account,
                            owner,
                            status,
                            event_type,
                            start..end,
                        );
                        assert_eq!(
                            summed, expected,
                            "{start}..{end} {status:?} {event_type:?} {owner:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn buckets_follow_status_changes() {
        let counts = EventCounts::default();
        let account = account();
        let sub = SubscriptionId(uuid::Uuid::new_v4());
        let id = id_at(1_250, 1);
        counts.add(
            &account,
            sub,
            id,
            EventStatus::Pending,
            EventType::LeaseCreated,
            1,
        );
        counts.change(
            &account,
            sub,
            id,
            EventType::LeaseCreated,
            EventStatus::Pending,
            EventStatus::Retrying,
        );
        let bucket = 1_250 / BUCKET_MILLIS;
        let in_bucket =
            |status| counts.total_in_buckets(&account, Some(sub), status, None, bucket..bucket + 1);
        assert_eq!(in_bucket(Some(EventStatus::Pending)), 0);
        assert_eq!(in_bucket(Some(EventStatus::Retrying)), 1);
        assert_eq!(in_bucket(None), 1);
        let neighbours = counts.total_in_buckets(&account, None, None, None, 0..bucket);
        assert_eq!(neighbours, 0, "buckets before the event");
    }

    #[test]
    fn pruning_removes_bucket_entries() {
        let counts = EventCounts::default();
        let account = account();
        let sub = SubscriptionId(uuid::Uuid::new_v4());
        let ids = [id_at(10, 1), id_at(20, 2), id_at(5_000, 3)];
        for id in ids {
            counts.add(
                &account,
                sub,
                id,
                EventStatus::Delivered,
                EventType::LeaseCreated,
                1,
            );
        }

        let all = 0..MAX_MILLIS / BUCKET_MILLIS;
        assert_eq!(
            counts.total_in_buckets(&account, None, None, None, all.clone()),
            3
        );
        for id in &ids[..2] {
            counts.add(
                &account,
                sub,
                *id,
                EventStatus::Delivered,
                EventType::LeaseCreated,
                -1,
            );
        }

        assert_eq!(
            counts.total_in_buckets(&account, None, None, None, all.clone()),
            1
        );
        assert_eq!(
            counts.total_in_buckets(&account, Some(sub), None, None, 0..1),
            0
        );
        let tables = counts.inner.lock().unwrap();
        for owner in [&tables.accounts[&account], &tables.subscriptions[&sub]] {
            let keys: Vec<_> = owner.buckets.keys().copied().collect();
            assert_eq!(
                keys,
                vec![(50, EventType::LeaseCreated.code())],
                "emptied buckets are removed"
            );
            let coarse: Vec<_> = owner.coarse.keys().copied().collect();
            assert_eq!(coarse, vec![(0, EventType::LeaseCreated.code())]);
        }
        drop(tables);

        counts.add(
            &account,
            sub,
            ids[2],
            EventStatus::Delivered,
            EventType::LeaseCreated,
            -1,
        );
        let tables = counts.inner.lock().unwrap();
        for owner in [&tables.accounts[&account], &tables.subscriptions[&sub]] {
            assert!(owner.buckets.is_empty(), "no bucket entry remains");
            assert!(owner.coarse.is_empty(), "no coarse bucket entry remains");
        }
    }
}
