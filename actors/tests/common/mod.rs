//! Store setup shared by the store tests.

use argus_webhooks_actors::model::{
    AccountId, EventId, EventRecord, EventStatus, EventType, PlatformEventId, SubscriptionId,
};
use argus_webhooks_actors::store::{Store, StoreConfig};
use chrono::Utc;

pub fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        dir: dir.to_path_buf(),
        cache_capacity: 8 * 1024 * 1024,
        fsync: false,
        fault_file: None,
    }
}

pub fn record(account: &AccountId, sub: SubscriptionId, event_type: EventType) -> EventRecord {
    let id = EventId::new();
    EventRecord {
        id,
        subscription_id: sub,
        account_id: account.clone(),
        event_type,
        platform_event_id: PlatformEventId(uuid::Uuid::new_v4()),
        status: EventStatus::Pending,
        payload: "{}".into(),
        shared_payload: false,
        attempts: Vec::new(),
        round_attempts: 0,
        next_attempt_at: None,
        status_reason: None,
        created_at: id.created_at(),
        updated_at: Utc::now(),
    }
}

/// Opens the store in `dir` again once the previous handle is dropped. The
/// previous store's flusher task releases sled's lock once it notices the
/// store was dropped, so this polls until the open succeeds.
pub async fn reopen(dir: &std::path::Path) -> Store {
    poll_open(|| Store::open(&config(dir)).map_err(|e| e.to_string())).await
}

/// Opens the sled database under a store's dir once the store has let go,
/// for tests that write or check raw keys.
#[allow(dead_code)]
pub async fn open_raw(dir: &std::path::Path) -> sled::Db {
    poll_open(|| sled::open(dir.join("sled")).map_err(|e| e.to_string())).await
}

async fn poll_open<T>(mut open: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open() {
            Ok(opened) => return opened,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => panic!("the store did not open within 10 s: {error}"),
        }
    }
}
