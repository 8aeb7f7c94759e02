//! Loopback webhook receivers: a keep-alive HTTP/1.1 server that returns 200
//! as fast as it can, answers verification challenges, counts deliveries and,
//! when asked, records each delivery's latency from the send time that the
//! benchmark embedded in the payload.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::clock;

/// Maximum time a hanging receiver keeps a delivery before it responds.
const HANG_LIMIT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Counters {
    deliveries: AtomicU64,
    /// Nanoseconds on the benchmark clock of the first delivery; 0 until one arrives.
    first_arrival_ns: AtomicU64,
    /// Makes deliveries wait `HANG_LIMIT` (or until the client disconnects) before responding.
    hang: AtomicBool,
    /// Latencies in nanoseconds, recorded only when `record_latency` is set.
    latencies: Mutex<Vec<u64>>,
    record_latency: AtomicBool,
}

/// A running receiver; its task ends with the benchmark process.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let counters = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(counters.clone(), request));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Receiver { addr, counters })
    }

    /// Builds the URL of endpoint `path` on this receiver; distinct paths give distinct subscription URLs.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub fn deliveries(&self) -> u64 {
        self.counters.deliveries.load(Ordering::Relaxed)
    }

    /// Benchmark-clock time of the first delivery, if one arrived.
    pub fn first_arrival_ns(&self) -> Option<u64> {
        match self.counters.first_arrival_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(ns),
        }
    }

    /// Forgets the first arrival, so the next delivery sets it again.
    pub fn reset_first_arrival(&self) {
        self.counters.first_arrival_ns.store(0, Ordering::Relaxed);
    }

    pub fn set_hang(&self, hang: bool) {
        self.counters.hang.store(hang, Ordering::Relaxed);
    }

    /// Starts (clearing earlier ones) or stops recording latencies.
    pub fn record_latency(&self, on: bool) {
        if on {
            self.counters.latencies.lock().unwrap().clear();
        }
        self.counters.record_latency.store(on, Ordering::Relaxed);
    }

    /// Takes the recorded latencies, in nanoseconds.
    pub fn take_latencies(&self) -> Vec<u64> {
        std::mem::take(&mut *self.counters.latencies.lock().unwrap())
    }
}

async fn answer(
    counters: Arc<Counters>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let now = clock::now_ns();
    if find(&body, b"\"webhook.verification\"").is_some() {
        let challenge = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["challenge"].as_str().map(str::to_string))
            .unwrap_or_default();
        let reply = serde_json::json!({ "challenge": challenge }).to_string();
        return Ok(Response::new(Full::new(Bytes::from(reply))));
    }
    counters.deliveries.fetch_add(1, Ordering::Relaxed);
    let _ =
        counters
            .first_arrival_ns
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    if counters.record_latency.load(Ordering::Relaxed)
        && let Some(sent) = sent_ns(&body)
    {
        counters
            .latencies
            .lock()
            .unwrap()
            .push(now.saturating_sub(sent));
    }
    if counters.hang.load(Ordering::Relaxed) {
        tokio::time::sleep(HANG_LIMIT).await;
    }
    Ok(Response::new(Full::new(Bytes::new())))
}

/// Reads the `"sentNs":<digits>` field that the load generator writes into `data`.
fn sent_ns(body: &[u8]) -> Option<u64> {
    let key = b"\"sentNs\":";
    let start = find(body, key)? + key.len();
    let digits: Vec<u8> = body[start..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
