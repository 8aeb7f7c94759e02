//! Payloads shared by the copies of one platform event, on a real sled
//! store: the ingest record keeps the payload once, every read of a copy
//! returns it, and pruning keeps it while any copy is stored.

mod common;

use argus_webhooks_actors::model::{
    AccountId, EventRecord, EventStatus, EventType, PlatformEventId, SubscriptionId,
};
use argus_webhooks_actors::store::{
    EventQuery, FORMAT_VERSION, IngestRecord, QueueChange, Store, StoreError,
};
use chrono::{Duration, Utc};
use common::{config, open_raw, record, reopen};

const PAYLOAD: &str = r#"{"data":{"note":"shared \"once\" é","n":12345678901234567890}}"#;

/// Writes one platform event with a copy for each subscription in `subs`,
/// sharing its payload as the router does for more than one copy.
fn ingest_shared(
    store: &Store,
    account: &AccountId,
    subs: &[SubscriptionId],
) -> (IngestRecord, Vec<EventRecord>) {
    let platform = PlatformEventId(uuid::Uuid::new_v4());
    let copies: Vec<EventRecord> = subs
        .iter()
        .map(|sub| EventRecord {
            platform_event_id: platform,
            payload: String::new(),
            shared_payload: true,
            ..record(account, *sub, EventType::LeaseCreated)
        })
        .collect();
    let accepted = IngestRecord {
        event_id: platform,
        deliveries: copies.iter().map(|c| (c.id, c.subscription_id)).collect(),
        accepted_at: Utc::now(),
        payload: Some(PAYLOAD.to_string()),
    };
    store
        .write_ingest(std::slice::from_ref(&accepted), &copies)
        .unwrap();
    (accepted, copies)
}

fn finish(store: &Store, event: &EventRecord, status: EventStatus) {
    let mut event = store
        .get_event(event.subscription_id, event.id)
        .unwrap()
        .expect("the copy is stored");
    let previous = event.status;
    event.status = status;
    store
        .put_event(&event, previous, QueueChange::Finish)
        .unwrap();
}

fn subs(n: usize) -> Vec<SubscriptionId> {
    (0..n)
        .map(|_| SubscriptionId(uuid::Uuid::new_v4()))
        .collect()
}

#[tokio::test]
async fn shared_payload_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let subs = subs(3);
    let store = Store::open(&config(dir.path())).unwrap();
    let (accepted, copies) = ingest_shared(&store, &account, &subs);
    store.flush().await.unwrap();

    for copy in &copies {
        let read = store
            .get_event(copy.subscription_id, copy.id)
            .unwrap()
            .unwrap();
        assert_eq!(
            read.payload, PAYLOAD,
            "a staged or stored copy has the payload"
        );
        assert!(read.shared_payload);
        let found = store.find_event(&account, copy.id).unwrap().unwrap();
        assert_eq!(found.payload, PAYLOAD);
    }
    let query = EventQuery {
        account: account.clone(),
        subscription_id: None,
        event_type: None,
        status: None,
        from: None,
        to: None,
        page: 1,
        page_size: 10,
    };
    let page = store.list_events(&query).unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.items.iter().all(|e| e.payload == PAYLOAD));
    let repeat = store.ingest_record(accepted.event_id).unwrap().unwrap();
    assert_eq!(repeat.deliveries, accepted.deliveries);

    // A recorded outcome rewrites the copy, still without the payload.
    finish(&store, &copies[0], EventStatus::Delivered);
    let delivered = store
        .get_event(copies[0].subscription_id, copies[0].id)
        .unwrap()
        .unwrap();
    assert_eq!(delivered.status, EventStatus::Delivered);
    assert_eq!(delivered.payload, PAYLOAD);
    store.flush().await.unwrap();
    drop(store);

    let db = open_raw(dir.path()).await;
    let holds_payload = |value: &[u8]| {
        value
            .windows(PAYLOAD.len())
            .any(|w| w == PAYLOAD.as_bytes())
    };
    let copies_with_payload = db
        .scan_prefix(b"E")
        .values()
        .filter(|v| holds_payload(v.as_ref().unwrap()))
        .count();
    assert_eq!(copies_with_payload, 0, "a copy keeps its own payload");
    let ingest_with_payload = db
        .scan_prefix(b"I")
        .values()
        .filter(|v| holds_payload(v.as_ref().unwrap()))
        .count();
    assert_eq!(
        ingest_with_payload, 1,
        "the ingest record keeps the payload once"
    );
}

#[tokio::test]
async fn shared_payload_kept_until_last_copy_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let subs = subs(2);
    let store = Store::open(&config(dir.path())).unwrap();
    let (accepted, copies) = ingest_shared(&store, &account, &subs);
    // An ingest record without a shared payload goes by age alone.
    let single = record(&account, subs[0], EventType::LeaseCreated);
    let alone = IngestRecord {
        event_id: single.platform_event_id,
        deliveries: vec![(single.id, single.subscription_id)],
        accepted_at: Utc::now(),
        payload: None,
    };
    store
        .write_ingest(std::slice::from_ref(&alone), std::slice::from_ref(&single))
        .unwrap();
    store.flush().await.unwrap();
    let later = Utc::now() + Duration::days(1);

    finish(&store, &copies[0], EventStatus::Delivered);
    assert_eq!(store.prune_finished(later, 1_000).unwrap(), 1);
    assert!(
        store
            .get_event(copies[0].subscription_id, copies[0].id)
            .unwrap()
            .is_none()
    );
    assert!(
        store.ingest_record(accepted.event_id).unwrap().is_some(),
        "the ingest record went while a copy still reads its payload"
    );
    let pending = store
        .get_event(copies[1].subscription_id, copies[1].id)
        .unwrap()
        .unwrap();
    assert_eq!(pending.payload, PAYLOAD);
    assert!(store.ingest_record(alone.event_id).unwrap().is_none());
    assert!(
        store
            .get_event(single.subscription_id, single.id)
            .unwrap()
            .is_some(),
        "a Pending event was pruned"
    );

    finish(&store, &copies[1], EventStatus::Failed);
    assert_eq!(store.prune_finished(later, 1_000).unwrap(), 1);
    assert!(
        store.ingest_record(accepted.event_id).unwrap().is_none(),
        "the ingest record stayed after its last copy was pruned"
    );
}

#[tokio::test]
async fn missing_shared_payload_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let subs = subs(2);
    let copies = {
        let store = Store::open(&config(dir.path())).unwrap();
        let (_, copies) = ingest_shared(&store, &account, &subs);
        store.flush().await.unwrap();
        copies
    };
    let db = open_raw(dir.path()).await;
    for key in db.scan_prefix(b"I").keys() {
        db.remove(key.unwrap()).unwrap();
    }
    db.flush().unwrap();
    drop(db);

    let store = reopen(dir.path()).await;
    let read = store.get_event(copies[0].subscription_id, copies[0].id);
    match read {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("payload"), "{message}");
            assert!(message.contains(&copies[0].id.to_string()), "{message}");
        }
        other => panic!("expected a corrupt record error, got {other:?}"),
    }
}

#[tokio::test]
async fn format_3_store_opens_as_format_4() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let mut event = record(&account, sub, EventType::LeaseCreated);
    event.payload = PAYLOAD.to_string();
    {
        let store = Store::open(&config(dir.path())).unwrap();
        store
            .write_ingest(&[], std::slice::from_ref(&event))
            .unwrap();
        store.flush().await.unwrap();
    }
    let db = open_raw(dir.path()).await;
    db.insert(b"Mformat_version", &b"3"[..]).unwrap();
    db.flush().unwrap();
    drop(db);

    let store = reopen(dir.path()).await;
    let read = store.get_event(sub, event.id).unwrap().unwrap();
    assert_eq!(read, event);
    drop(store);
    let db = open_raw(dir.path()).await;
    assert_eq!(
        db.get(b"Mformat_version").unwrap().as_deref(),
        Some(FORMAT_VERSION.to_string().as_bytes())
    );
}
