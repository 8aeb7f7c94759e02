//! Payloads shared by the copies of one platform event, on a real sled
//! store: the ingest record keeps the payload once, every read of a copy
//! returns it, and pruning keeps it while any copy is stored.

mod common;

use argus_webhooks_actors::model::{
    AccountId, EndpointUrl, EventRecord, EventStatus, EventType, PlatformEvent, PlatformEventId,
    RetryPolicy, SubscriptionId, SubscriptionSpec,
};
use argus_webhooks_actors::ssrf::AddressPolicy;
use argus_webhooks_actors::store::{
    DeferredCopies, EventQuery, FORMAT_VERSION, IngestRecord, QueueChange, Store, StoreError,
};
use argus_webhooks_actors::{DeliveryConfig, Engine, EngineConfig, EngineSettings};
use chrono::{Duration, Utc};
use common::{config, open_raw, record, reopen};
use serde_json::{Value, json};
use warp::Filter;

const PAYLOAD: &str = r#"{"data":{"note":"shared \"once\" é","n":12345678901234567890}}"#;

/// Writes one platform event with a copy for each subscription in `subs`,
/// sharing its payload and deferring the copies as the router does for
/// more than one copy.
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
    let deferred = DeferredCopies {
        event_id: platform,
        account_id: account.clone(),
        event_type: EventType::LeaseCreated,
    };
    store
        .write_ingest_with_deferred(std::slice::from_ref(&accepted), &[], &[deferred])
        .unwrap();
    store.stage_deferred_copies(&copies);
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
    for copy in &copies {
        let staged = store
            .get_event(copy.subscription_id, copy.id)
            .unwrap()
            .unwrap();
        assert_eq!(staged.payload, PAYLOAD, "a staged copy has the payload");
    }
    store.flush().await.unwrap();

    for copy in &copies {
        let read = store
            .get_event(copy.subscription_id, copy.id)
            .unwrap()
            .unwrap();
        assert_eq!(read.payload, PAYLOAD, "a stored copy has the payload");
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
    assert_eq!(
        db.scan_prefix(b"U").count(),
        0,
        "an entry of copies to make outlived its copies"
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

/// Stores two copies of one platform event in `dir` that share a payload,
/// then removes the ingest record that keeps it, as a damaged store would.
async fn copies_without_ingest_record(dir: &std::path::Path) -> Vec<EventRecord> {
    let account = AccountId::parse("acme-capital").unwrap();
    let copies = {
        let store = Store::open(&config(dir)).unwrap();
        let (_, copies) = ingest_shared(&store, &account, &subs(2));
        store.flush().await.unwrap();
        copies
    };
    let db = open_raw(dir).await;
    for key in db.scan_prefix(b"I").keys() {
        db.remove(key.unwrap()).unwrap();
    }
    db.flush().unwrap();
    copies
}

#[tokio::test]
async fn missing_shared_payload_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let copies = copies_without_ingest_record(dir.path()).await;

    let store = reopen(dir.path()).await;
    let without = store
        .get_event_without_payload(copies[0].subscription_id, copies[0].id)
        .unwrap()
        .expect("the copy itself is readable");
    assert_eq!(without.payload, "");
    assert!(without.shared_payload);
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
async fn older_formats_open_as_current() {
    for older in ["3", "4"] {
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
        db.insert(b"Mformat_version", older.as_bytes()).unwrap();
        db.flush().unwrap();
        drop(db);

        let store = reopen(dir.path()).await;
        let read = store.get_event(sub, event.id).unwrap().unwrap();
        assert_eq!(read, event, "format {older}");
        drop(store);
        let db = open_raw(dir.path()).await;
        assert_eq!(
            db.get(b"Mformat_version").unwrap().as_deref(),
            Some(FORMAT_VERSION.to_string().as_bytes()),
            "format {older}"
        );
    }
}

/// Removes the record and the account index entry of `copy`.
fn remove_copy(db: &sled::Db, copy: &EventRecord) {
    let mut key = b"E".to_vec();
    key.extend_from_slice(copy.subscription_id.as_bytes());
    key.extend_from_slice(copy.id.as_bytes());
    db.remove(key).unwrap().expect("the copy was stored");
    let index: Vec<_> = db
        .scan_prefix(b"A")
        .keys()
        .map(|key| key.unwrap())
        .filter(|key| key.ends_with(copy.id.as_bytes()))
        .collect();
    assert_eq!(index.len(), 1);
    db.remove(&index[0]).unwrap();
}

fn copies_to_make_key(platform: PlatformEventId) -> Vec<u8> {
    let mut key = b"U".to_vec();
    key.extend_from_slice(platform.as_bytes());
    key
}

#[tokio::test]
async fn start_restores_unwritten_copies() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let (accepted, copies) = {
        let store = Store::open(&config(dir.path())).unwrap();
        let written = ingest_shared(&store, &account, &subs(3));
        finish(&store, &written.1[0], EventStatus::Delivered);
        store.flush().await.unwrap();
        written
    };
    // As if the process stopped after the flush of the ingest record and
    // before its copies reached the disk, except the first, which its
    // subscription had already changed.
    let db = open_raw(dir.path()).await;
    remove_copy(&db, &copies[1]);
    remove_copy(&db, &copies[2]);
    let mut value = vec![EventType::LeaseCreated.code()];
    value.extend_from_slice(account.as_str().as_bytes());
    db.insert(copies_to_make_key(accepted.event_id), value)
        .unwrap();
    // An entry that names no ingest record is kept for an operator.
    let unknown = PlatformEventId(uuid::Uuid::new_v4());
    db.insert(copies_to_make_key(unknown), &b"\x01acme-capital"[..])
        .unwrap();
    db.flush().unwrap();
    drop(db);

    let store = reopen(dir.path()).await;
    let changed_copy = store
        .get_event(copies[0].subscription_id, copies[0].id)
        .unwrap()
        .unwrap();
    assert_eq!(
        changed_copy.status,
        EventStatus::Delivered,
        "a stored copy changed"
    );
    for copy in &copies[1..] {
        let restored = store
            .get_event(copy.subscription_id, copy.id)
            .unwrap()
            .expect("the copy was restored");
        assert_eq!(restored.status, EventStatus::Pending);
        assert_eq!(restored.payload, PAYLOAD);
        assert_eq!(restored.platform_event_id, accepted.event_id);
        assert_eq!(restored.account_id, account);
        assert_eq!(restored.event_type, EventType::LeaseCreated);
        assert_eq!(restored.created_at, copy.created_at);
        let found = store.find_event(&account, copy.id).unwrap().unwrap();
        assert_eq!(found.id, copy.id, "the account index has the copy");
        let queue = store.queue_window(copy.subscription_id, None, 10).unwrap();
        assert_eq!(queue, vec![copy.id], "the copy is not queued");
    }
    let query = EventQuery {
        account: account.clone(),
        subscription_id: None,
        event_type: None,
        status: Some(EventStatus::Pending),
        from: None,
        to: None,
        page: 1,
        page_size: 10,
    };
    assert_eq!(store.list_events(&query).unwrap().total, 2);
    drop(store);

    let db = open_raw(dir.path()).await;
    let left: Vec<_> = db.scan_prefix(b"U").keys().map(|k| k.unwrap()).collect();
    assert_eq!(
        left,
        vec![sled::IVec::from(copies_to_make_key(unknown))],
        "only the entry that names no ingest record stays"
    );
}

#[tokio::test]
async fn missing_shared_payload_does_not_stop_failing() {
    let dir = tempfile::tempdir().unwrap();
    let copies = copies_without_ingest_record(dir.path()).await;

    // A deleted subscription's events are failed without their payload.
    let store = reopen(dir.path()).await;
    let failed = store
        .fail_unfinished(copies[0].subscription_id, "the subscription was deleted")
        .unwrap();
    assert_eq!(failed, 1);
    let copy = store
        .get_event_without_payload(copies[0].subscription_id, copies[0].id)
        .unwrap()
        .unwrap();
    assert_eq!(copy.status, EventStatus::Failed);
}

#[tokio::test]
async fn pruned_copy_is_not_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let subs = subs(2);
    let store = Store::open(&config(dir.path())).unwrap();
    let (accepted, copies) = ingest_shared(&store, &account, &subs);
    finish(&store, &copies[0], EventStatus::Delivered);
    finish(&store, &copies[1], EventStatus::Delivered);
    // A manual retry read the copy just before pruning removed it.
    let stale = store
        .get_event(copies[0].subscription_id, copies[0].id)
        .unwrap()
        .unwrap();
    let later = Utc::now() + Duration::days(1);
    assert_eq!(store.prune_finished(later, 1_000).unwrap(), 2);
    assert!(store.ingest_record(accepted.event_id).unwrap().is_none());

    let mut retried = stale.clone();
    retried.status = EventStatus::Pending;
    let written = store
        .put_event(&retried, EventStatus::Delivered, QueueChange::Enqueue)
        .unwrap();
    assert!(!written, "a pruned copy was written back");
    let read = store
        .get_event(copies[0].subscription_id, copies[0].id)
        .unwrap();
    assert!(read.is_none(), "{read:?}");
}

#[tokio::test]
async fn corrupt_ingest_record_does_not_stop_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let subs = subs(2);
    let accepted = {
        let store = Store::open(&config(dir.path())).unwrap();
        let (accepted, copies) = ingest_shared(&store, &account, &subs);
        for copy in &copies {
            finish(&store, copy, EventStatus::Delivered);
        }
        store.flush().await.unwrap();
        accepted
    };
    let db = open_raw(dir.path()).await;
    db.insert(b"Inot-a-platform-event", &b"{broken"[..])
        .unwrap();
    db.flush().unwrap();
    drop(db);

    let store = reopen(dir.path()).await;
    let later = Utc::now() + Duration::days(1);
    assert_eq!(store.prune_finished(later, 1_000).unwrap(), 2);
    assert!(
        store.ingest_record(accepted.event_id).unwrap().is_none(),
        "pruning stopped at the corrupt ingest record"
    );
}

/// Starts a loopback endpoint that replies to verification challenges, and
/// to deliveries with 200.
async fn endpoint() -> String {
    let route = warp::post()
        .and(warp::body::json::<Value>())
        .map(|body: Value| warp::reply::json(&json!({"challenge": body["challenge"]})));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    format!("http://{addr}/hooks")
}

fn lease_event(account: &str, marker: &str) -> PlatformEvent {
    let data = format!(r#"{{"marker":"{marker}"}}"#);
    PlatformEvent {
        id: PlatformEventId(uuid::Uuid::new_v4()),
        event_type: EventType::LeaseCreated,
        account_id: AccountId::parse(account).unwrap(),
        resource_type: "lease".into(),
        resource_id: uuid::Uuid::new_v4(),
        timestamp: Utc::now(),
        data: serde_json::value::RawValue::from_string(data).unwrap(),
    }
}

/// Publishes an event to two subscriptions of one account and one to the
/// only subscription of another, through an engine on `dir`.
async fn fan_out_two_events(dir: &std::path::Path) {
    let engine = Engine::start(EngineConfig {
        store: config(dir),
        delivery: DeliveryConfig {
            policy: AddressPolicy::new(vec!["127.0.0.1/32".parse().unwrap()]),
            ..DeliveryConfig::default()
        },
        settings: EngineSettings::default(),
    })
    .await
    .unwrap();
    let url = endpoint().await;
    for (n, account) in ["acme-capital", "acme-capital", "solo-capital"]
        .into_iter()
        .enumerate()
    {
        let spec = SubscriptionSpec {
            url: EndpointUrl::parse(&format!("{url}/{n}"), true).unwrap(),
            event_types: vec![EventType::LeaseCreated],
            description: None,
            retry_policy: RetryPolicy::default(),
        };
        engine
            .create_subscription(AccountId::parse(account).unwrap(), spec, None)
            .await
            .unwrap();
    }
    let results = engine
        .ingest(vec![
            lease_event("acme-capital", "fanned-out-marker"),
            lease_event("solo-capital", "alone-marker"),
        ])
        .await;
    assert_eq!(results[0].as_ref().unwrap().deliveries.len(), 2);
    assert_eq!(results[1].as_ref().unwrap().deliveries.len(), 1);
    engine.shutdown(std::time::Duration::from_secs(5)).await;
}

#[test]
fn router_shares_payload_of_fanned_out_event() {
    let dir = tempfile::tempdir().unwrap();
    // The engine's tasks keep the store open until their runtime is dropped.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(fan_out_two_events(dir.path()));
    drop(runtime);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(open_raw(dir.path()));
    let count = |prefix: &[u8], marker: &str| {
        db.scan_prefix(prefix)
            .values()
            .filter(|value| {
                let value = value.as_ref().unwrap();
                value.windows(marker.len()).any(|w| w == marker.as_bytes())
            })
            .count()
    };
    assert_eq!(
        count(b"E", "fanned-out-marker"),
        0,
        "a copy keeps a shared payload"
    );
    assert_eq!(
        count(b"I", "fanned-out-marker"),
        1,
        "the ingest record keeps it once"
    );
    assert_eq!(
        count(b"E", "alone-marker"),
        1,
        "a copy alone keeps its payload"
    );
    assert_eq!(
        count(b"I", "alone-marker"),
        0,
        "an unshared payload is in the ingest record"
    );
}

#[tokio::test]
async fn queue_refill_sees_deferred_copies() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let subs = subs(2);
    let store = Store::open(&config(dir.path())).unwrap();
    let first = record(&account, subs[0], EventType::LeaseCreated);
    store
        .write_ingest(&[], std::slice::from_ref(&first))
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(
        store.queue_window(subs[0], None, 10).unwrap(),
        vec![first.id]
    );

    // The copies stay deferred writes until a flush applies them. An actor
    // that refills its window after `first` must find its copy anyway.
    let (_, copies) = ingest_shared(&store, &account, &subs);
    assert_eq!(
        store.queue_window(subs[0], Some(first.id), 10).unwrap(),
        vec![copies[0].id]
    );
    assert_eq!(
        store.queue_window(subs[1], None, 10).unwrap(),
        vec![copies[1].id]
    );
}

/// Polls `condition` every 5 ms for up to 5 s.
async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    condition()
}

#[tokio::test]
async fn deferred_copies_flushed_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let store = Store::open(&config(dir.path())).unwrap();
    ingest_shared(&store, &account, &subs(3));
    store.flush().await.unwrap();
    assert!(
        eventually(|| !store.has_deferred_writes()).await,
        "deferred copies stayed staged with no request after the flush"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_copies_flushed_under_steady_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let store = Store::open(&config(dir.path())).unwrap();
    ingest_shared(&store, &account, &subs(3));
    // Four callers that keep waiting for flushes leave the flusher no idle
    // moment, so the deferred copies go once they are overdue.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store.flush().await.unwrap();
                }
            })
        })
        .collect();
    let flushed = eventually(|| !store.has_deferred_writes()).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    assert!(
        flushed,
        "deferred copies stayed staged while callers kept flushing"
    );
}
