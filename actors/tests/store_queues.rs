//! Subscription queues on a real sled store. A queue is the subscription's
//! Pending entries in the event index; these tests check what an actor that
//! starts (or starts again) loads from it.

mod common;

use argus_webhooks_actors::model::SubscriptionId;
use argus_webhooks_actors::model::{AccountId, EventId, EventRecord, EventStatus, EventType};
use argus_webhooks_actors::store::{EventQuery, FORMAT_VERSION, QueueChange, Store};
use chrono::Utc;
use common::{config, open_raw, record, reopen};

fn events(account: &AccountId, sub: SubscriptionId, n: usize) -> Vec<EventRecord> {
    (0..n)
        .map(|_| record(account, sub, EventType::LeaseCreated))
        .collect()
}

fn ids(events: &[EventRecord]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

fn finish(store: &Store, event: &mut EventRecord, status: EventStatus) {
    let previous = event.status;
    event.status = status;
    store
        .put_event(event, previous, QueueChange::Finish)
        .unwrap();
}

/// Loads the whole queue the way an actor does: a first window, then
/// windows after the last id loaded.
fn whole_queue(store: &Store, sub: SubscriptionId, window: usize) -> Vec<EventId> {
    let mut out = store.queue_window(sub, None, window).unwrap();
    while let Some(last) = out.last().copied() {
        let next = store.queue_window(sub, Some(last), window).unwrap();
        if next.is_empty() {
            break;
        }
        out.extend(next);
    }
    out
}

#[tokio::test]
async fn queue_holds_pending_events_in_order_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let other = SubscriptionId(uuid::Uuid::new_v4());
    let mut mine = events(&account, sub, 80);
    let theirs = events(&account, other, 5);
    {
        let store = Store::open(&config(dir.path())).unwrap();
        // Groups under 64 records are staged, larger ones applied at once.
        store.write_ingest(&[], &mine[..10]).unwrap();
        store.write_ingest(&[], &theirs).unwrap();
        store.write_ingest(&[], &mine[10..]).unwrap();
        assert_eq!(whole_queue(&store, sub, 7), ids(&mine));

        // Delivered, failed and retrying events leave the queue.
        for event in mine.iter_mut().take(12) {
            finish(&store, event, EventStatus::Delivered);
        }
        finish(&store, &mut mine[20], EventStatus::Failed);
        let due = Utc::now() + chrono::Duration::hours(1);
        mine[21].status = EventStatus::Retrying;
        store
            .put_event(&mine[21], EventStatus::Pending, QueueChange::Retry(due))
            .unwrap();
        let expected: Vec<EventId> = mine
            .iter()
            .filter(|e| e.status == EventStatus::Pending)
            .map(|e| e.id)
            .collect();
        assert_eq!(expected.len(), 66);
        assert_eq!(whole_queue(&store, sub, 5), expected);
        assert_eq!(whole_queue(&store, other, 5), ids(&theirs));
        assert_eq!(store.unfinished_count(), 67 + 5);
        store.flush().await.unwrap();
    }
    let store = reopen(dir.path()).await;
    let expected: Vec<EventId> = mine
        .iter()
        .filter(|e| e.status == EventStatus::Pending)
        .map(|e| e.id)
        .collect();
    assert_eq!(whole_queue(&store, sub, 5), expected);
    assert_eq!(store.unfinished_count(), 67 + 5);
    let with_work = store.subscriptions_with_work().unwrap();
    assert!(with_work.contains(&sub));
    assert!(with_work.contains(&other));
    assert_eq!(store.retry_entries(sub).unwrap().len(), 1);
}

#[tokio::test]
async fn manual_retry_below_floor_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let store = Store::open(&config(dir.path())).unwrap();
    let mut mine = events(&account, sub, 6);
    store.write_ingest(&[], &mine).unwrap();
    for event in mine.iter_mut().take(4) {
        finish(&store, event, EventStatus::Delivered);
    }
    // A first load moves the floor up to the fifth event.
    assert_eq!(store.queue_window(sub, None, 10).unwrap(), ids(&mine[4..]));
    for event in mine.iter_mut().skip(4) {
        finish(&store, event, EventStatus::Delivered);
    }
    assert!(store.queue_window(sub, None, 10).unwrap().is_empty());
    assert!(!store.subscriptions_with_work().unwrap().contains(&sub));

    // A manual retry of the first event puts it back below the old floor.
    mine[0].status = EventStatus::Pending;
    store
        .put_event(&mine[0], EventStatus::Delivered, QueueChange::Enqueue)
        .unwrap();
    assert!(store.subscriptions_with_work().unwrap().contains(&sub));
    assert_eq!(store.queue_window(sub, None, 10).unwrap(), vec![mine[0].id]);
    assert_eq!(
        store
            .fail_unfinished(sub, "the subscription was deleted")
            .unwrap(),
        1
    );
    assert!(store.queue_window(sub, None, 10).unwrap().is_empty());
    assert_eq!(store.unfinished_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_keeps_events_ingested_during_loads() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let store = Store::open(&config(dir.path())).unwrap();
    let writer = {
        let (store, account) = (store.clone(), account.clone());
        tokio::task::spawn_blocking(move || {
            let mut still_pending = Vec::new();
            for i in 0..3_000 {
                let mut event = record(&account, sub, EventType::LeaseCreated);
                store
                    .write_ingest(&[], std::slice::from_ref(&event))
                    .unwrap();
                // Deliver most events at once, so the queue is often empty
                // and first loads remove the floor while events arrive.
                if i % 10 == 9 {
                    still_pending.push(event.id);
                } else {
                    finish(&store, &mut event, EventStatus::Delivered);
                }
            }
            still_pending
        })
    };
    let loader = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            for _ in 0..3_000 {
                store.queue_window(sub, None, 1).unwrap();
            }
        })
    };
    let still_pending = writer.await.unwrap();
    loader.await.unwrap();
    assert_eq!(whole_queue(&store, sub, 64), still_pending);
}

#[tokio::test]
async fn format_1_store_upgrades_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let mut mine = events(&account, sub, 7);
    for (i, event) in mine.iter_mut().enumerate() {
        event.payload = format!(r#"{{"n":{i},"note":"\"quoted\""}}"#);
        if i < 2 {
            event.status = EventStatus::Delivered;
        }
    }
    // Format 1: JSON records under the event id, an index by subscription
    // under `B`, the account index, and a `Q` entry per Pending event.
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        db.insert(b"Mformat_version", &b"1"[..]).unwrap();
        for event in &mine {
            let mut json = serde_json::to_value(event).unwrap();
            json["payload"] = serde_json::Value::String(event.payload.clone());
            let codes = [event.status.code(), event.event_type.code()];
            db.insert(
                key(b'E', &[event.id.as_bytes()]),
                serde_json::to_vec(&json).unwrap(),
            )
            .unwrap();
            db.insert(
                key(b'B', &[sub.as_bytes(), event.id.as_bytes()]),
                &codes[..],
            )
            .unwrap();
            let mut account_key = b"Aacme-capital\0".to_vec();
            account_key.extend_from_slice(event.id.as_bytes());
            let mut account_value = codes.to_vec();
            account_value.extend_from_slice(sub.as_bytes());
            db.insert(account_key, account_value).unwrap();
            if event.status == EventStatus::Pending {
                db.insert(key(b'Q', &[sub.as_bytes(), event.id.as_bytes()]), &[][..])
                    .unwrap();
            }
        }
        db.flush().unwrap();
    }

    let store = Store::open(&config(dir.path())).unwrap();
    assert_eq!(whole_queue(&store, sub, 2), ids(&mine[2..]));
    assert_eq!(store.unfinished_count(), 5);
    for event in &mine {
        let found = store.find_event(&account, event.id).unwrap();
        assert_eq!(found.as_ref(), Some(event));
    }
    let mut delivered = EventQuery {
        account: account.clone(),
        subscription_id: Some(sub),
        event_type: None,
        status: Some(EventStatus::Delivered),
        from: None,
        to: None,
        page: 1,
        page_size: 10,
    };
    let page = store.list_events(&delivered).unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.items.len(), 2);
    delivered.subscription_id = None;
    assert_eq!(store.list_events(&delivered).unwrap().items.len(), 2);
    drop(store);

    let db = open_raw(dir.path()).await;
    assert_eq!(
        db.scan_prefix(b"Q").count(),
        0,
        "format 1 queue entries remain"
    );
    assert_eq!(
        db.scan_prefix(b"B").count(),
        0,
        "format 1 index entries remain"
    );
    let event_keys: Vec<usize> = db
        .scan_prefix(b"E")
        .keys()
        .map(|k| k.unwrap().len())
        .collect();
    assert_eq!(event_keys, vec![33; 7]);
    assert_eq!(
        db.get(b"Mformat_version").unwrap().as_deref(),
        Some(FORMAT_VERSION.to_string().as_bytes())
    );
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = vec![prefix];
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

#[tokio::test]
async fn queue_skips_corrupt_record() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let mine = events(&account, sub, 4);
    {
        let store = Store::open(&config(dir.path())).unwrap();
        store.write_ingest(&[], &mine).unwrap();
        store.flush().await.unwrap();
    }
    let db = open_raw(dir.path()).await;
    db.insert(
        key(b'E', &[sub.as_bytes(), mine[1].id.as_bytes()]),
        &b"{not a record"[..],
    )
    .unwrap();
    db.flush().unwrap();
    drop(db);

    let store = reopen(dir.path()).await;
    let expected = vec![mine[0].id, mine[2].id, mine[3].id];
    assert_eq!(whole_queue(&store, sub, 2), expected);
}

#[tokio::test]
async fn queue_stops_before_held_copies() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let store = Store::open(&config(dir.path())).unwrap();
    let mine = events(&account, sub, 4);
    store.write_ingest(&[], &mine[..2]).unwrap();
    // The last two belong to an ingest whose flush has not ended yet.
    let held_copies = vec![(sub, ids(&mine[2..]))];
    store.hold_copies(&held_copies);
    store.write_ingest(&[], &mine[2..]).unwrap();

    assert_eq!(
        store.queue_window(sub, None, 10).unwrap(),
        ids(&mine[..2]),
        "a first load passed a held copy"
    );
    assert!(store.has_held_copies(sub));
    assert_eq!(
        store.queue_window(sub, Some(mine[1].id), 10).unwrap(),
        Vec::<EventId>::new(),
        "a refill passed a held copy"
    );

    store.release_copies(&held_copies);
    assert!(!store.has_held_copies(sub));
    assert_eq!(
        store.queue_window(sub, Some(mine[1].id), 10).unwrap(),
        ids(&mine[2..])
    );
    assert_eq!(whole_queue(&store, sub, 3), ids(&mine));
}

#[tokio::test]
async fn first_load_keeps_floor_of_held_copy() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let store = Store::open(&config(dir.path())).unwrap();
    let mine = events(&account, sub, 1);
    let held_copies = vec![(sub, ids(&mine))];
    store.hold_copies(&held_copies);
    store.write_ingest(&[], &mine).unwrap();
    assert!(store.queue_window(sub, None, 10).unwrap().is_empty());

    // The empty first load must not drop the floor below the held copy.
    store.release_copies(&held_copies);
    assert_eq!(store.queue_window(sub, None, 10).unwrap(), ids(&mine));
}

/// Failing a disabled subscription's queue leaves the events created after
/// the cutoff, which a quick resume may already have queued again.
#[tokio::test]
async fn fail_unfinished_spares_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let store = Store::open(&config(dir.path())).unwrap();
    let earlier = events(&account, sub, 3);
    store.write_ingest(&[], &earlier).unwrap();
    let cutoff = EventId::new();
    let later = events(&account, sub, 2);
    store.write_ingest(&[], &later).unwrap();

    let failed = store
        .fail_unfinished_before(sub, "the subscription was disabled", Some(cutoff))
        .unwrap();

    assert_eq!(failed, 3);
    assert_eq!(store.queue_window(sub, None, 10).unwrap(), ids(&later));
    for event in &earlier {
        let stored = store.get_event(sub, event.id).unwrap().unwrap();
        assert_eq!(stored.status, EventStatus::Failed);
    }
}
