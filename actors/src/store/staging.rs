//! Event writes staged in memory and applied to sled in groups.
//!
//! sled 0.34 writes and syncs its current IO buffer twice for every
//! `apply_batch`, because `pin_log` seals the buffer before and after it
//! reserves the batch. A batch per recorded attempt therefore cost two
//! synchronous disk writes and blocked the actor that made it. Event writes are therefore staged
//! here and applied as one batch by the flusher, which runs within
//! [`super::LAZY_FLUSH_DELAY`] of a write and before every flush a caller
//! waits for. Point reads look here before they look in sled, so a reader
//! sees every staged write at once; range scans see them once applied.
//!
//! Deferred writes are those that a start can make again from a durable
//! record, such as the copies of an ingested event (see `U` in the store's
//! key layout). The flush that callers wait for leaves them out, so it
//! applies fewer keys, and the flusher applies them in a flush of their own
//! once no request has come for a moment.
//! Deferred writes are applied together with every write staged before
//! them, and a key staged both ways has its newer value in `deferred`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sled::IVec;

type Map = HashMap<Vec<u8>, Option<IVec>>;

/// The writes of one change, applied together: an insert has a value, a
/// removal has none.
#[derive(Default)]
pub(super) struct Writes(Vec<(Vec<u8>, Option<IVec>)>);

impl Writes {
    pub(super) fn insert(&mut self, key: Vec<u8>, value: impl Into<IVec>) {
        self.0.push((key, Some(value.into())));
    }

    pub(super) fn remove(&mut self, key: Vec<u8>) {
        self.0.push((key, None));
    }

    pub(super) fn into_batch(self) -> sled::Batch {
        to_batch(self.0.iter().map(|(key, value)| (key, value)))
    }
}

/// Builds a sled batch of inserts and removals.
fn to_batch<'a>(writes: impl Iterator<Item = (&'a Vec<u8>, &'a Option<IVec>)>) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (key, value) in writes {
        match value {
            Some(value) => batch.insert(key.as_slice(), value.clone()),
            None => batch.remove(key.as_slice()),
        }
    }
    batch
}

#[derive(Default)]
pub(super) struct Staging {
    state: Mutex<State>,
    /// Held while a group is applied, so groups reach sled in staging order.
    applying_order: Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Staged and not yet handed to sled; the newest write of each key.
    current: Map,
    /// Deferred writes not yet handed to sled. A key here and in `current`
    /// has its newer value here.
    deferred: Map,
    /// The group being applied; readers still look here until sled has it.
    applying: Option<Arc<Map>>,
    /// The group being applied has deferred writes.
    applying_deferred: bool,
}

impl Staging {
    pub(super) fn stage(&self, writes: Writes) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stage(writes);
    }

    /// Stages `writes` as deferred writes.
    pub(super) fn stage_deferred(&self, writes: Writes) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (key, value) in writes.0 {
            state.deferred.insert(key, value);
        }
    }

    pub(super) fn has_deferred(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !state.deferred.is_empty()
    }

    /// Returns the staged value of `key`: `Some(None)` when its removal is
    /// staged, `None` when nothing is staged for it.
    pub(super) fn get(&self, key: &[u8]) -> Option<Option<IVec>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = state.deferred.get(key).or_else(|| state.current.get(key)) {
            return Some(value.clone());
        }
        state.applying.as_ref()?.get(key).cloned()
    }

    /// Applies every staged write, deferred ones included, to `db` in one
    /// batch. After a failure the writes stay staged, below any newer write
    /// of the same key.
    pub(super) fn apply(&self, db: &sled::Db) -> sled::Result<()> {
        self.apply_group(db, true)
    }

    /// Makes every deferred write staged before the call reach sled, so a
    /// range scan after it reads them. Applies the staged writes, as
    /// [`Self::apply`] does, when deferred ones are among them. Otherwise
    /// waits for a group with deferred writes that is being applied.
    pub(super) fn apply_if_deferred(&self, db: &sled::Db) -> sled::Result<()> {
        let (staged, applying) = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (!state.deferred.is_empty(), state.applying_deferred)
        };
        if staged {
            return self.apply(db);
        }
        if applying {
            // Released once that group is in sled.
            drop(
                self.applying_order
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
        }
        Ok(())
    }

    /// Applies the staged writes but the deferred ones, as [`Self::apply`]
    /// does.
    pub(super) fn apply_without_deferred(&self, db: &sled::Db) -> sled::Result<()> {
        self.apply_group(db, false)
    }

    fn apply_group(&self, db: &sled::Db, with_deferred: bool) -> sled::Result<()> {
        let _order = self
            .applying_order
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let group = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut group = std::mem::take(&mut state.current);
            if with_deferred {
                // Deferred values are the newer ones.
                state.applying_deferred = !state.deferred.is_empty();
                group.extend(std::mem::take(&mut state.deferred));
            }
            if group.is_empty() {
                return Ok(());
            }
            let group = Arc::new(group);
            state.applying = Some(group.clone());
            group
        };
        let result = db.apply_batch(to_batch(group.iter()));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.applying = None;
        state.applying_deferred = false;
        if result.is_err() {
            state.put_back(&group);
        }
        result
    }
}

impl State {
    /// Stages the writes of a group that failed to apply again, below any
    /// newer write of the same key. They go back into `current` even where
    /// `deferred` has the key, since the deferred value is newer and lands
    /// after them.
    fn put_back(&mut self, group: &Map) {
        for (key, value) in group {
            self.current
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
    }

    fn stage(&mut self, writes: Writes) {
        for (key, value) in writes.0 {
            // This write is newer than a deferred one of the same key.
            self.deferred.remove(&key);
            self.current.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(pairs: &[(&[u8], Option<&[u8]>)]) -> Writes {
        let mut writes = Writes::default();
        for (key, value) in pairs {
            match value {
                Some(value) => writes.insert(key.to_vec(), *value),
                None => writes.remove(key.to_vec()),
            }
        }
        writes
    }

    #[test]
    fn reads_see_staged_writes_before_and_after_apply() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.insert(b"gone", &b"old"[..]).unwrap();
        let staging = Staging::default();
        staging.stage(writes(&[(b"a", Some(b"1")), (b"gone", None)]));
        staging.stage(writes(&[(b"a", Some(b"2"))]));
        assert_eq!(staging.get(b"a"), Some(Some(IVec::from(&b"2"[..]))));
        assert_eq!(staging.get(b"gone"), Some(None));
        assert_eq!(staging.get(b"other"), None);
        assert_eq!(db.get(b"a").unwrap(), None, "nothing reached sled yet");

        staging.apply(&db).unwrap();
        assert_eq!(staging.get(b"a"), None, "nothing is staged after the apply");
        assert_eq!(db.get(b"a").unwrap(), Some(IVec::from(&b"2"[..])));
        assert_eq!(db.get(b"gone").unwrap(), None);
        staging.apply(&db).unwrap();
    }

    #[test]
    fn deferred_writes_wait_for_a_full_apply() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let staging = Staging::default();
        staging.stage(writes(&[(b"ingest", Some(b"i")), (b"marker", Some(b"m"))]));
        staging.stage_deferred(writes(&[(b"copy", Some(b"c")), (b"marker", None)]));
        assert_eq!(staging.get(b"copy"), Some(Some(IVec::from(&b"c"[..]))));
        assert_eq!(staging.get(b"marker"), Some(None), "the newer write wins");
        assert!(staging.has_deferred());

        staging.apply_without_deferred(&db).unwrap();
        assert_eq!(db.get(b"ingest").unwrap(), Some(IVec::from(&b"i"[..])));
        assert_eq!(
            db.get(b"marker").unwrap(),
            Some(IVec::from(&b"m"[..])),
            "the marker is applied with the record it stands for"
        );
        assert_eq!(db.get(b"copy").unwrap(), None, "deferred writes wait");
        assert_eq!(staging.get(b"copy"), Some(Some(IVec::from(&b"c"[..]))));
        assert_eq!(staging.get(b"marker"), Some(None));

        staging.apply(&db).unwrap();
        assert!(!staging.has_deferred());
        assert_eq!(db.get(b"copy").unwrap(), Some(IVec::from(&b"c"[..])));
        assert_eq!(db.get(b"marker").unwrap(), None);
    }

    #[test]
    fn full_apply_keeps_the_newer_of_both_writes() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let staging = Staging::default();
        staging.stage(writes(&[(b"marker", Some(b"m"))]));
        staging.stage_deferred(writes(&[(b"marker", None), (b"copy", Some(b"pending"))]));
        // A later change of a deferred key replaces the deferred write.
        staging.stage(writes(&[(b"copy", Some(b"delivered"))]));
        assert_eq!(
            staging.get(b"copy"),
            Some(Some(IVec::from(&b"delivered"[..])))
        );
        staging.apply(&db).unwrap();
        assert_eq!(db.get(b"marker").unwrap(), None);
        assert_eq!(
            db.get(b"copy").unwrap(),
            Some(IVec::from(&b"delivered"[..]))
        );
    }

    #[test]
    fn changed_deferred_key_goes_with_the_next_flush() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let staging = Staging::default();
        staging.stage_deferred(writes(&[(b"copy", Some(b"pending"))]));
        staging.stage(writes(&[(b"copy", Some(b"delivered"))]));
        assert!(!staging.has_deferred());
        staging.apply_without_deferred(&db).unwrap();
        assert_eq!(
            db.get(b"copy").unwrap(),
            Some(IVec::from(&b"delivered"[..]))
        );
        staging.apply(&db).unwrap();
        assert_eq!(
            db.get(b"copy").unwrap(),
            Some(IVec::from(&b"delivered"[..])),
            "the older deferred write is gone"
        );
    }

    #[test]
    fn failed_group_keeps_marker_below_deferred_removal() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let staging = Staging::default();
        staging.stage(writes(&[(b"ingest", Some(b"i")), (b"marker", Some(b"m"))]));
        // The group is taken for an apply that fails after the deferred
        // removal of the marker was staged.
        let group = std::mem::take(&mut staging.state.lock().unwrap().current);
        staging.stage_deferred(writes(&[(b"copy", Some(b"c")), (b"marker", None)]));
        staging.state.lock().unwrap().put_back(&group);

        staging.apply_without_deferred(&db).unwrap();
        assert_eq!(db.get(b"ingest").unwrap(), Some(IVec::from(&b"i"[..])));
        assert_eq!(
            db.get(b"marker").unwrap(),
            Some(IVec::from(&b"m"[..])),
            "the marker must reach sled with its ingest record"
        );
        staging.apply(&db).unwrap();
        assert_eq!(db.get(b"marker").unwrap(), None);
        assert_eq!(db.get(b"copy").unwrap(), Some(IVec::from(&b"c"[..])));
    }
}
