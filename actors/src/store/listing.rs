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
        // A subscription's events are read directly, an account's through
        // its index.
        let prefix = match query.subscription_id {
            Some(sub) => key1(EVENT, sub.as_bytes()),
            None => account_prefix(BY_ACCOUNT, &query.account),
        };
        let total = self.count_matches(query, &prefix, start..end)?;
        // Changes staged while the total was read count in it, so the scan
        // must see them too.
        self.apply_staged()?;
        let skip = (query.page.saturating_sub(1) as u64).saturating_mul(query.page_size as u64);

        // With the total known, the scan stops once the page is full or every
        // match has been seen.
        let mut page_keys = Vec::new();
        let mut seen = 0u64;
        let range = time_key(&prefix, start)..time_key(&prefix, end);
        for entry in self.inner.db.range(range).rev() {
            if skip >= total || seen >= total || page_keys.len() >= query.page_size as usize {
                break;
            }
            let (key, value) = self.track(entry.map_err(StoreError::from))?;
            if !index_matches(prefix[0], &value, query.status, query.event_type)? {
                continue;
            }
            if seen >= skip {
                page_keys.push(match query.subscription_id {
                    Some(_) => key.to_vec(),
                    None => event_key_from_index(&key, &value)?,
                });
            }
            seen += 1;
        }

        let mut items = Vec::with_capacity(page_keys.len());
        for key in page_keys {
            if let Some(value) = self.read(&key)?
                && let Some(event) = self.load_event(&key, &value)?
            {
                // Event keys have no account, so check it here.
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
            if index_matches(prefix[0], &value, status, event_type)? {
                count += 1;
            }
        }
        Ok(count)
    }
}

/// Checks an entry under the key prefix `kind` against the filters: an
/// event record under `E`, or the `[status, type]` value of an account index
/// entry under `A`.
fn index_matches(
    kind: u8,
    value: &[u8],
    status: Option<EventStatus>,
    event_type: Option<EventType>,
) -> StoreResult<bool> {
    let (status_code, type_code) = match (kind, value) {
        (EVENT, _) => event_codes(value)?,
        (_, [status_code, type_code, ..]) => (*status_code, *type_code),
        _ => return Err(StoreError::Corrupt("event index entry".into())),
    };
    Ok(status.is_none_or(|s| s.code() == status_code)
        && event_type.is_none_or(|t| t.code() == type_code))
}

/// Returns the event key that an account index entry points to.
fn event_key_from_index(key: &[u8], value: &[u8]) -> StoreResult<Vec<u8>> {
    let corrupt = || StoreError::Corrupt("event account index entry".into());
    let subscription = value
        .get(2..18)
        .and_then(SubscriptionId::from_slice)
        .ok_or_else(corrupt)?;
    let id = key
        .len()
        .checked_sub(16)
        .and_then(|start| EventId::from_slice(&key[start..]))
        .ok_or_else(corrupt)?;
    Ok(event_key(subscription, id))
}
