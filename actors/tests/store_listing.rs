//! Event listings on a real sled store: totals from the in-memory counts must
//! equal what a scan finds, also after the store is reopened.

mod common;

use argus_webhooks_actors::model::{
    AccountId, EventRecord, EventStatus, EventType, SubscriptionId,
};
use argus_webhooks_actors::store::{EventQuery, IngestRecord, QueueChange, Store};
use chrono::Utc;
use common::{config, record, reopen};

fn query(account: &AccountId) -> EventQuery {
    EventQuery {
        account: account.clone(),
        subscription_id: None,
        event_type: None,
        status: None,
        from: None,
        to: None,
        page: 1,
        page_size: 10,
    }
}

#[tokio::test]
async fn totals_match_scans_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let other = AccountId::parse("harbor-reit").unwrap();
    let sub_a = SubscriptionId(uuid::Uuid::new_v4());
    let sub_b = SubscriptionId(uuid::Uuid::new_v4());
    let mut events = Vec::new();
    {
        let store = Store::open(&config(dir.path())).unwrap();
        for i in 0..30 {
            let event_type = if i % 3 == 0 {
                EventType::LeaseCreated
            } else {
                EventType::PropertyUpdated
            };
            let sub = if i % 2 == 0 { sub_a } else { sub_b };
            events.push(record(&account, sub, event_type));
        }
        events.push(record(
            &other,
            SubscriptionId(uuid::Uuid::new_v4()),
            EventType::LeaseCreated,
        ));
        let accepted: Vec<IngestRecord> = Vec::new();
        store.write_ingest(&accepted, &events).unwrap();
        for event in events.iter_mut().take(7) {
            event.status = EventStatus::Delivered;
            store
                .put_event(event, EventStatus::Pending, QueueChange::Finish)
                .unwrap();
        }
        store.flush().await.unwrap();
        check(&store, &account, sub_a);
    }
    let store = reopen(dir.path()).await;
    check(&store, &account, sub_a);
    assert_eq!(store.unfinished_count(), 24);
}

fn check(store: &Store, account: &AccountId, sub_a: SubscriptionId) {
    let all = store.list_events(&query(account)).unwrap();
    assert_eq!(all.total, 30);
    assert_eq!(all.items.len(), 10);
    assert!(
        all.items.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );

    let mut delivered = query(account);
    delivered.status = Some(EventStatus::Delivered);
    assert_eq!(store.list_events(&delivered).unwrap().total, 7);

    let mut leases = query(account);
    leases.event_type = Some(EventType::LeaseCreated);
    leases.page_size = 100;
    let page = store.list_events(&leases).unwrap();
    assert_eq!(page.total, 10);
    assert_eq!(page.items.len(), 10);

    let mut by_sub = query(account);
    by_sub.subscription_id = Some(sub_a);
    by_sub.page = 2;
    let page = store.list_events(&by_sub).unwrap();
    assert_eq!(page.total, 15);
    assert_eq!(page.items.len(), 5);

    let mut beyond = query(account);
    beyond.page = 4;
    let page = store.list_events(&beyond).unwrap();
    assert_eq!(page.total, 30);
    assert!(page.items.is_empty());

    let mut ranged = query(account);
    ranged.from = Some(Utc::now() - chrono::Duration::hours(1));
    ranged.status = Some(EventStatus::Pending);
    assert_eq!(store.list_events(&ranged).unwrap().total, 23);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fails_count_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::parse("acme-capital").unwrap();
    let sub = SubscriptionId(uuid::Uuid::new_v4());
    let store = Store::open(&config(dir.path())).unwrap();
    let events: Vec<EventRecord> = (0..2_000)
        .map(|_| record(&account, sub, EventType::LeaseCreated))
        .collect();
    for chunk in events.chunks(10) {
        store.write_ingest(&[], chunk).unwrap();
    }
    store.flush().await.unwrap();

    // A disable and a delete may both fail the same subscription's events.
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.fail_unfinished(sub, "disabled").unwrap())
        })
        .collect();
    let mut changed = 0;
    for run in runs {
        changed += run.await.unwrap();
    }
    assert_eq!(changed, 2_000, "each event was failed by exactly one run");

    let total = |status| {
        let mut q = query(&account);
        q.status = status;
        store.list_events(&q).unwrap().total
    };
    assert_eq!(total(Some(EventStatus::Failed)), 2_000);
    assert_eq!(total(Some(EventStatus::Pending)), 0);
    assert_eq!(total(None), 2_000);
    assert_eq!(store.unfinished_count(), 0);
}
