//! Supervision and start-up recovery, in process: an `Engine` on a temporary
//! sled dir delivers to loopback receivers, and a test makes a subscription
//! actor fail through `Engine::crash_subscription_actor`.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argus_webhooks_actors::context::Context;
use argus_webhooks_actors::delivery::DeliveryClient;
use argus_webhooks_actors::model::{
    AccountId, EndpointUrl, EventId, EventRecord, EventStatus, EventType, PlatformEvent,
    PlatformEventId, RetryPolicy, SigningSecret, Subscription, SubscriptionId, SubscriptionSpec,
    SubscriptionStatus,
};
use argus_webhooks_actors::ssrf::AddressPolicy;
use argus_webhooks_actors::store::{IngestRecord, Store};
use argus_webhooks_actors::subscription::SubscriptionMsg;
use argus_webhooks_actors::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use argus_webhooks_actors::{DeliveryConfig, Engine, EngineConfig, EngineSettings, StoreConfig};
use chrono::Utc;
use serde_json::{Value, json};
use warp::Filter;

const ACCOUNT: &str = "northgate-reit";

/// Log lines of every test in this binary, captured from the global subscriber.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info")
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// A loopback receiver that replies to verification challenges and records
/// each delivery's `webhook-id`, replying 200.
#[derive(Clone)]
struct Receiver {
    url: String,
    ids: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let ids = Arc::new(Mutex::new(Vec::new()));
        let shared = ids.clone();
        let route = warp::post()
            .and(warp::header::optional::<String>("webhook-id"))
            .and(warp::body::json::<Value>())
            .map(move |id: Option<String>, body: Value| {
                if body["type"] == "webhook.verification" {
                    return warp::reply::json(&json!({"challenge": body["challenge"]}));
                }
                shared.lock().unwrap().push(id.unwrap_or_default());
                warp::reply::json(&json!({}))
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Receiver {
            url: format!("http://{addr}/hooks"),
            ids,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }
}

fn engine_config(dir: &std::path::Path, settings: EngineSettings) -> EngineConfig {
    EngineConfig {
        store: StoreConfig {
            dir: dir.to_path_buf(),
            cache_capacity: 16 * 1024 * 1024,
            fsync: false,
            fault_file: None,
        },
        delivery: DeliveryConfig {
            policy: AddressPolicy::new(vec!["127.0.0.1/32".parse().unwrap()]),
            ..DeliveryConfig::default()
        },
        settings: EngineSettings {
            time_scale: 0.01,
            ..settings
        },
    }
}

fn spec(url: &str) -> SubscriptionSpec {
    SubscriptionSpec {
        url: EndpointUrl::parse(url, true).unwrap(),
        event_types: vec![EventType::LeaseCreated],
        description: None,
        retry_policy: RetryPolicy::default(),
    }
}

fn lease_event() -> PlatformEvent {
    PlatformEvent {
        id: PlatformEventId(uuid::Uuid::new_v4()),
        event_type: EventType::LeaseCreated,
        account_id: AccountId::parse(ACCOUNT).unwrap(),
        resource_type: "lease".into(),
        resource_id: uuid::Uuid::new_v4(),
        timestamp: Utc::now(),
        data: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
    }
}

/// Publishes one lease event and returns its event id per subscription.
async fn publish(engine: &Engine) -> HashMap<SubscriptionId, String> {
    let outcome = engine.ingest(vec![lease_event()]).await.remove(0).unwrap();
    outcome
        .deliveries
        .into_iter()
        .map(|(event, sub)| (sub, event.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_actor_restarts_from_store() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let settings = EngineSettings {
        restart_budget: 2,
        restart_window: Duration::from_secs(2),
        ..EngineSettings::default()
    };
    let engine = Engine::start(engine_config(dir.path(), settings))
        .await
        .unwrap();
    let account = AccountId::parse(ACCOUNT).unwrap();
    let crashing = Receiver::start().await;
    let steady = Receiver::start().await;
    let crash_sub = engine
        .create_subscription(account.clone(), spec(&crashing.url), None)
        .await
        .unwrap();
    let steady_sub = engine
        .create_subscription(account.clone(), spec(&steady.url), None)
        .await
        .unwrap();

    // Queue events while paused, so the restarted actor must find them in the store.
    engine
        .pause_subscription(&account, crash_sub.id)
        .await
        .unwrap();
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.push(publish(&engine).await[&crash_sub.id].clone());
    }
    engine.crash_subscription_actor(crash_sub.id);
    let logged = wait_until(Duration::from_secs(10), || {
        log_text().lines().any(|line| {
            line.contains("ERROR")
                && line.contains("subscription actor failed")
                && line.contains(&crash_sub.id.to_string())
        })
    })
    .await;
    assert!(
        logged,
        "no error line with the subscription id:\n{}",
        log_text()
    );

    // The other subscription keeps delivering while the actor restarts.
    let during = publish(&engine).await;
    let steady_id = during[&steady_sub.id].clone();
    let delivered = wait_until(Duration::from_secs(10), || {
        steady.ids().contains(&steady_id)
    })
    .await;
    assert!(delivered, "the steady subscription stopped delivering");

    let after = engine.get_subscription(&account, crash_sub.id).unwrap();
    assert_eq!(
        after.status,
        SubscriptionStatus::Paused,
        "the restart lost the pause"
    );
    engine
        .resume_subscription(&account, crash_sub.id)
        .await
        .unwrap();
    queued.push(during[&crash_sub.id].clone());
    let all = wait_until(Duration::from_secs(10), || {
        crashing.ids().len() >= queued.len()
    })
    .await;
    assert!(
        all,
        "the restarted actor delivered {:?} of {queued:?}",
        crashing.ids()
    );
    assert_eq!(
        crashing.ids(),
        queued,
        "the restarted actor lost the queue order"
    );
    assert!(engine.health().engine_running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_budget_delays_restart() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let settings = EngineSettings {
        restart_budget: 1,
        restart_window: Duration::from_secs(2),
        ..EngineSettings::default()
    };
    let engine = Engine::start(engine_config(dir.path(), settings))
        .await
        .unwrap();
    let account = AccountId::parse(ACCOUNT).unwrap();
    let receiver = Receiver::start().await;
    let sub = engine
        .create_subscription(account.clone(), spec(&receiver.url), None)
        .await
        .unwrap();
    let sub_id = sub.id.to_string();
    let budget_line = |text: &str| {
        text.lines()
            .any(|line| line.contains("restart budget used up") && line.contains(&sub_id))
    };

    engine.crash_subscription_actor(sub.id);
    let first = wait_until(Duration::from_secs(10), || {
        log_text()
            .lines()
            .any(|line| line.contains("subscription actor failed") && line.contains(&sub_id))
    })
    .await;
    assert!(first);
    let ids = publish(&engine).await;
    let event = ids[&sub.id].clone();
    assert!(wait_until(Duration::from_secs(10), || receiver.ids().contains(&event)).await);

    engine.crash_subscription_actor(sub.id);
    assert!(
        wait_until(Duration::from_secs(10), || budget_line(&log_text())).await,
        "the second crash within the window did not use up the budget:\n{}",
        log_text()
    );
    // Work that arrives meanwhile waits in the store until the window has passed.
    let ids = publish(&engine).await;
    let event = ids[&sub.id].clone();
    let early = wait_until(Duration::from_millis(500), || {
        receiver.ids().contains(&event)
    })
    .await;
    assert!(
        !early,
        "the actor was restarted before the restart window passed"
    );
    assert!(
        wait_until(Duration::from_secs(15), || receiver.ids().contains(&event)).await,
        "the actor did not come back after the restart window"
    );
}

/// Returns an Active subscription to lease events, for tests that write it
/// to the store themselves instead of creating it through the engine.
fn stored_subscription() -> Subscription {
    let now = Utc::now();
    Subscription {
        id: SubscriptionId(uuid::Uuid::new_v4()),
        account_id: AccountId::parse(ACCOUNT).unwrap(),
        url: EndpointUrl::parse("http://127.0.0.1:9/hooks", true).unwrap(),
        event_types: vec![EventType::LeaseCreated],
        description: None,
        retry_policy: RetryPolicy::default(),
        status: SubscriptionStatus::Active,
        status_reason: None,
        secret: SigningSecret::generate(),
        previous_secret: None,
        consecutive_failures: 0,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_subscription_events_fail_at_start() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let config = engine_config(dir.path(), EngineSettings::default());
    let now = Utc::now();
    let sub = stored_subscription();
    let platform = lease_event();
    let id = EventId::new();
    // The state a kill leaves between storing a delete and failing the
    // subscription's queued events.
    {
        let store = Store::open(&config.store).unwrap();
        store.put_subscription(&sub).unwrap();
        let record = EventRecord {
            id,
            subscription_id: sub.id,
            account_id: sub.account_id.clone(),
            event_type: platform.event_type,
            platform_event_id: platform.id,
            status: EventStatus::Pending,
            payload: platform.payload_json(),
            shared_payload: false,
            attempts: Vec::new(),
            round_attempts: 0,
            next_attempt_at: None,
            status_reason: None,
            created_at: id.created_at(),
            updated_at: now,
        };
        let accepted = IngestRecord {
            event_id: platform.id,
            deliveries: vec![(id, sub.id)],
            accepted_at: now,
            payload: None,
        };
        store.write_ingest(&[accepted], &[record]).unwrap();
        store.delete_subscription(&sub).unwrap();
        store.flush().await.unwrap();
    }

    // sled's own file lock is released once the store's flusher task notices the store was dropped.
    let deadline = Instant::now() + Duration::from_secs(10);
    let engine = loop {
        match Engine::start(config.clone()).await {
            Ok(engine) => break engine,
            Err(error) if Instant::now() < deadline && error.to_string().contains("lock") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("the engine did not start: {error}"),
        }
    };
    let event = engine.get_event(&sub.account_id, id).unwrap();
    assert_eq!(
        event.status,
        EventStatus::Failed,
        "the orphaned event stayed {:?}",
        event.status
    );
    assert_eq!(
        event.status_reason.as_deref(),
        Some("the subscription was deleted")
    );
    assert_eq!(engine.health().queue_depth, 0);
}

/// Returns the supervisor's subscription actors: its children but the router.
async fn subscription_actors(
    supervisor: &ractor::ActorRef<SupervisorMsg>,
) -> Vec<ractor::ActorCell> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    supervisor.cast(SupervisorMsg::GetRouter(sender)).unwrap();
    let router = receiver.await.unwrap().get_id();
    supervisor
        .get_children()
        .into_iter()
        .filter(|child| child.get_id() != router)
        .collect()
}

/// Waits until the supervisor has exactly one subscription actor other than
/// `old` and returns it.
async fn new_subscription_actor(
    supervisor: &ractor::ActorRef<SupervisorMsg>,
    old: Option<ractor::ActorId>,
) -> ractor::ActorCell {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let actors: Vec<_> = subscription_actors(supervisor)
            .await
            .into_iter()
            .filter(|actor| Some(actor.get_id()) != old)
            .collect();
        if let [actor] = actors.as_slice() {
            return actor.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no single new subscription actor: {} found",
            actors.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An idle actor's request to stop can reach the supervisor after that actor
/// was replaced. The request names the actor that sent it, so it cannot stop
/// the replacement even when the message counts match.
#[tokio::test]
async fn stale_idle_stop_leaves_replacement_running() {
    let dir = tempfile::tempdir().unwrap();
    let config = engine_config(dir.path(), EngineSettings::default());
    let store = Store::open(&config.store).unwrap();
    let sub = stored_subscription();
    store.put_subscription(&sub).unwrap();
    let client = DeliveryClient::new(config.delivery).unwrap();
    let ctx = Arc::new(Context::new(store, client, config.settings));
    let (supervisor, _) = ractor::Actor::spawn(None, Supervisor, SupervisorArgs { ctx })
        .await
        .unwrap();
    let arrived = || {
        SupervisorMsg::Forward(
            sub.id,
            SubscriptionMsg::EventsArrived(Vec::new(), Vec::new()),
        )
    };

    // The first actor handles one forwarded message, then stops as idle.
    supervisor.cast(arrived()).unwrap();
    let first = new_subscription_actor(&supervisor, None).await;
    supervisor
        .cast(SupervisorMsg::IdleStop {
            id: sub.id,
            actor: first.get_id(),
            received: 1,
        })
        .unwrap();
    // Work arrives again: a replacement starts and gets one message too.
    supervisor.cast(arrived()).unwrap();
    let second = new_subscription_actor(&supervisor, Some(first.get_id())).await;

    // The first actor's request, late, matches the replacement's count.
    supervisor
        .cast(SupervisorMsg::IdleStop {
            id: sub.id,
            actor: first.get_id(),
            received: 1,
        })
        .unwrap();
    // Had it stopped the replacement, this would start a third actor.
    supervisor.cast(arrived()).unwrap();
    let running: Vec<_> = subscription_actors(&supervisor)
        .await
        .iter()
        .filter(|actor| actor.get_status() == ractor::ActorStatus::Running)
        .map(|actor| actor.get_id())
        .collect();
    assert_eq!(
        running,
        vec![second.get_id()],
        "the late request stopped the replacement"
    );
    supervisor.stop(None);
}

/// An arrival message can reach a subscription's actor after the actor it was
/// sent to failed and was replaced, when the failed actor had already sent
/// the event. The replacement must not send it again from the message's
/// record, whose status is still Pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_arrival_after_restart_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = engine_config(dir.path(), EngineSettings::default());
    let store = Store::open(&config.store).unwrap();
    let receiver = Receiver::start().await;
    let sub = Subscription {
        url: EndpointUrl::parse(&receiver.url, true).unwrap(),
        ..stored_subscription()
    };
    store.put_subscription(&sub).unwrap();
    let copy_of = |status: EventStatus| EventRecord {
        status,
        ..EventRecord::pending_copy(
            (EventId::new(), sub.id),
            sub.account_id.clone(),
            EventType::LeaseCreated,
            PlatformEventId(uuid::Uuid::new_v4()),
            "{}".into(),
            false,
            Utc::now(),
        )
    };
    // Delivered by the actor that failed: the store has the outcome.
    let sent = copy_of(EventStatus::Delivered);
    store
        .write_ingest(&[], std::slice::from_ref(&sent))
        .unwrap();
    let client = DeliveryClient::new(config.delivery).unwrap();
    let ctx = Arc::new(Context::new(store.clone(), client, config.settings));
    let (supervisor, _) = ractor::Actor::spawn(None, Supervisor, SupervisorArgs { ctx })
        .await
        .unwrap();

    let late = EventRecord {
        status: EventStatus::Pending,
        ..sent.clone()
    };
    let arrived = |record: EventRecord| {
        SupervisorMsg::Forward(
            sub.id,
            SubscriptionMsg::EventsArrived(vec![record.id], vec![record]),
        )
    };
    supervisor.cast(arrived(late)).unwrap();
    new_subscription_actor(&supervisor, None).await;
    // A new event afterwards is sent; the late one, older, would go first.
    let fresh = copy_of(EventStatus::Pending);
    store
        .write_ingest(&[], std::slice::from_ref(&fresh))
        .unwrap();
    supervisor.cast(arrived(fresh.clone())).unwrap();

    assert!(
        wait_until(Duration::from_secs(10), || !receiver.ids().is_empty()).await,
        "the new event was not sent"
    );
    assert_eq!(receiver.ids(), vec![fresh.id.to_string()]);
    supervisor.stop(None);
}
