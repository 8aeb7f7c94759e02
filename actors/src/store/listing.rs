//! Event listings: filters, pagination and the total count of matches.

use std::ops::Range;

use super::keys::*;
use super::*;
use crate::counts::{MAX_MILLIS, split_range};

impl Store {
    /// Lists an account's events, newest first, with the total count of matches.
    pub fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage> {
        // The index scan below reads sled, so staged status changes go first.
        self.apply_staged()?;
        let empty = EventPage {
            items: Vec::new(),
            total: 0,
        };
        // `from` and `to` are inclusive, at millisecond resolution.
        let start = query
            .from
            .map_or(0, |t| t.timestamp_millis().clamp(0, MAX_MILLIS));
        let end = query.to.map_or(MAX_MILLIS, |t| {
            t.timestamp_millis().saturating_add(1).clamp(0, MAX_MILLIS)
        });
        if start >= end {
            return Ok(empty);
        }
        let prefix = match query.subscription_id {
            Some(sub) => key1(BY_SUBSCRIPTION, sub.as_bytes()),
            None => account_prefix(BY_ACCOUNT, &query.account),
        };
        let total = self.count_matches(query, &prefix, start..end)?;
        // Changes staged while the total was read count in it, so the scan
        // must see them too.
        self.apply_staged()?;
        let skip = (query.page.saturating_sub(1) as u64).saturating_mul(query.page_size as u64);

        // With the total known, the scan stops once the page is full or every
        // match has been seen.
        let mut page_ids = Vec::new();
        let mut seen = 0u64;
        let range = time_key(&prefix, start)..time_key(&prefix, end);
        for entry in self.inner.db.range(range).rev() {
            if skip >= total || seen >= total || page_ids.len() >= query.page_size as usize {
                break;
            }
            let (key, value) = self.track(entry.map_err(StoreError::from))?;
            if !index_matches(&value, query.status, query.event_type)? {
                continue;
            }
            if seen >= skip {
                page_ids.push(EventId::from_slice(&key[key.len() - 16..]).unwrap_or_default());
            }
            seen += 1;
        }

        let mut items = Vec::with_capacity(page_ids.len());
        for id in page_ids {
            if let Some(event) = self.get_event(id)? {
                // The subscription index has no account in its key, so check it here.
                if event.account_id != query.account {
                    return Ok(empty);
                }
                // The record may be newer than the index entry that matched.
                let still_matches = query.status.is_none_or(|s| s == event.status)
                    && query.event_type.is_none_or(|t| t == event.event_type);
                if still_matches {
                    items.push(event);
                }
            }
        }
        Ok(EventPage { items, total })
    }

    /// Counts the events under `prefix` that match the query and were created
    /// in `millis`. Without a date range the in-memory totals give the count.
    /// With one, the in-memory time buckets wholly inside the range give most
    /// of it, and only the parts of the two edge buckets are scanned.
    fn count_matches(
        &self,
        query: &EventQuery,
        prefix: &[u8],
        millis: Range<i64>,
    ) -> StoreResult<u64> {
        let counts = &self.inner.counts;
        let (account, subscription) = (&query.account, query.subscription_id);
        if query.from.is_none() && query.to.is_none() {
            return Ok(counts.total(account, subscription, query.status, query.event_type));
        }
        let split = split_range(millis);
        let mut total = counts.total_in_buckets(
            account,
            subscription,
            query.status,
            query.event_type,
            split.units,
        );
        for edge in split.edges {
            total += self.count_index(prefix, edge, query.status, query.event_type)?;
        }
        Ok(total)
    }

    /// Counts the index entries under `prefix` created in `millis` that have
    /// the given status and type.
    fn count_index(
        &self,
        prefix: &[u8],
        millis: Range<i64>,
        status: Option<EventStatus>,
        event_type: Option<EventType>,
    ) -> StoreResult<u64> {
        if millis.is_empty() {
            return Ok(0);
        }
        let mut count = 0;
        let range = time_key(prefix, millis.start)..time_key(prefix, millis.end);
        for entry in self.inner.db.range(range) {
            let (_, value) = self.track(entry.map_err(StoreError::from))?;
            if index_matches(&value, status, event_type)? {
                count += 1;
            }
        }
        Ok(count)
    }
}

/// Checks the `[status, type]` value of an index entry against the filters.
fn index_matches(
    value: &[u8],
    status: Option<EventStatus>,
    event_type: Option<EventType>,
) -> StoreResult<bool> {
    let [status_code, type_code, ..] = *value else {
        return Err(StoreError::Corrupt("event index entry".into()));
    };
    Ok(status.is_none_or(|s| s.code() == status_code)
        && event_type.is_none_or(|t| t.code() == type_code))
}
