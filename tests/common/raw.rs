//! A loopback HTTP/1.1 receiver written on raw TCP, for behaviour a
//! framework server will not produce: bodies trickled byte by byte, invalid
//! UTF-8, requests that never get an answer, and connections closed after a
//! keep-alive response. It responds to verification challenges itself and counts
//! the requests in flight at once, overall and per path.
//! Include it next to `common` with `#[path = "common/raw.rs"] mod raw;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The receiver's response to one delivery.
#[derive(Clone, Debug)]
pub enum Action {
    /// Waits `delay`, then sends the status and body. With `close`, the
    /// connection is closed right after the response although the response
    /// announced keep-alive, as a server that drops idle connections does.
    Respond {
        status: u16,
        body: Vec<u8>,
        delay: Duration,
        close: bool,
    },
    /// Sends the head at once and the body one byte per `interval`.
    Trickle {
        status: u16,
        body: Vec<u8>,
        interval: Duration,
    },
    /// Sends the status with a `content-length` of `announced`, then only
    /// `body` (shorter), then closes the connection.
    Truncated {
        status: u16,
        announced: usize,
        body: Vec<u8>,
    },
    /// Reads the request and never responds.
    Hang,
    /// Reads the request and closes the connection without a response.
    Drop,
}

impl Action {
    pub fn status(status: u16) -> Action {
        Action::Respond {
            status,
            body: Vec::new(),
            delay: Duration::ZERO,
            close: false,
        }
    }

    pub fn body(status: u16, body: &[u8]) -> Action {
        Action::Respond {
            status,
            body: body.to_vec(),
            delay: Duration::ZERO,
            close: false,
        }
    }

    pub fn delayed(status: u16, delay: Duration) -> Action {
        Action::Respond {
            status,
            body: Vec::new(),
            delay,
            close: false,
        }
    }
}

/// One delivery the receiver read.
#[derive(Clone, Debug)]
pub struct RawRequest {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// Index of the TCP connection it arrived on, counted from 0.
    pub connection: usize,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

type Handler = Arc<dyn Fn(&RawRequest) -> Action + Send + Sync>;

#[derive(Default)]
struct Counters {
    requests: Vec<RawRequest>,
    connections: usize,
    in_flight: usize,
    max_in_flight: usize,
    in_flight_by_path: HashMap<String, usize>,
    max_in_flight_by_path: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct RawReceiver {
    pub addr: SocketAddr,
    /// Base URL without a path, such as `http://127.0.0.1:41234`.
    pub base: String,
    counters: Arc<Mutex<Counters>>,
}

impl RawReceiver {
    /// Starts a receiver on 127.0.0.1 whose responses to deliveries `handler` chooses.
    pub async fn start(
        handler: impl Fn(&RawRequest) -> Action + Send + Sync + 'static,
    ) -> RawReceiver {
        Self::start_on("127.0.0.1:0".parse().unwrap(), handler).await
    }

    pub async fn start_on(
        bind: SocketAddr,
        handler: impl Fn(&RawRequest) -> Action + Send + Sync + 'static,
    ) -> RawReceiver {
        let listener = TcpListener::bind(bind)
            .await
            .expect("the raw receiver binds");
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Mutex::new(Counters::default()));
        let handler: Handler = Arc::new(handler);
        let shared = counters.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = {
                    let mut counters = shared.lock().unwrap();
                    counters.connections += 1;
                    counters.connections - 1
                };
                tokio::spawn(serve(stream, connection, shared.clone(), handler.clone()));
            }
        });
        RawReceiver {
            addr,
            base: format!("http://{addr}"),
            counters,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn requests(&self) -> Vec<RawRequest> {
        self.counters.lock().unwrap().requests.clone()
    }

    pub fn count(&self) -> usize {
        self.counters.lock().unwrap().requests.len()
    }

    pub fn count_path(&self, path: &str) -> usize {
        self.counters
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    pub fn connections(&self) -> usize {
        self.counters.lock().unwrap().connections
    }

    /// Maximum number of deliveries in flight at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.counters.lock().unwrap().max_in_flight
    }

    pub fn max_in_flight_on(&self, path: &str) -> usize {
        self.counters
            .lock()
            .unwrap()
            .max_in_flight_by_path
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// Serves requests on one connection until the peer closes it or an action
/// closes it.
async fn serve(
    mut stream: TcpStream,
    connection: usize,
    counters: Arc<Mutex<Counters>>,
    handler: Handler,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer, connection).await else {
            return;
        };
        if let Some(challenge) = verification_challenge(&request.body) {
            // Closing after the response makes the first delivery open a new
            // connection, so it resolves the host name again.
            let body = serde_json::json!({ "challenge": challenge }).to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(format!("{head}{body}").as_bytes()).await;
            let _ = stream.shutdown().await;
            return;
        }
        let action = handler(&request);
        let path = request.path.clone();
        enter(&counters, request);
        let keep_open = perform(&mut stream, action).await;
        leave(&counters, &path);
        if !keep_open {
            return;
        }
    }
}

fn enter(counters: &Mutex<Counters>, request: RawRequest) {
    let mut counters = counters.lock().unwrap();
    counters.in_flight += 1;
    counters.max_in_flight = counters.max_in_flight.max(counters.in_flight);
    let on_path = counters
        .in_flight_by_path
        .entry(request.path.clone())
        .or_insert(0);
    *on_path += 1;
    let now = *on_path;
    let max = counters
        .max_in_flight_by_path
        .entry(request.path.clone())
        .or_insert(0);
    *max = (*max).max(now);
    counters.requests.push(request);
}

fn leave(counters: &Mutex<Counters>, path: &str) {
    let mut counters = counters.lock().unwrap();
    counters.in_flight -= 1;
    if let Some(on_path) = counters.in_flight_by_path.get_mut(path) {
        *on_path -= 1;
    }
}

/// Carries out an action; returns whether the connection stays open.
async fn perform(stream: &mut TcpStream, action: Action) -> bool {
    match action {
        Action::Respond {
            status,
            body,
            delay,
            close,
        } => {
            tokio::time::sleep(delay).await;
            let sent = write_response(stream, status, &body).await.is_ok();
            if close {
                let _ = stream.shutdown().await;
            }
            sent && !close
        }
        Action::Trickle {
            status,
            body,
            interval,
        } => {
            let head = format!(
                "HTTP/1.1 {status} Status\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            for byte in body {
                tokio::time::sleep(interval).await;
                if stream.write_all(&[byte]).await.is_err() {
                    return false;
                }
            }
            true
        }
        Action::Truncated {
            status,
            announced,
            body,
        } => {
            let head = format!("HTTP/1.1 {status} Status\r\ncontent-length: {announced}\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
            false
        }
        Action::Drop => {
            let _ = stream.shutdown().await;
            false
        }
        Action::Hang => {
            // Holds the connection until the client gives up and closes it.
            let mut sink = [0u8; 1024];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
            false
        }
    }
}

async fn write_response(stream: &mut TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} Status\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await
}

fn verification_challenge(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value["type"] != "webhook.verification" {
        return None;
    }
    value["challenge"].as_str().map(str::to_string)
}

/// Reads one request with a `content-length` body; `None` when the peer
/// closed the connection or sent something unreadable.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    connection: usize,
) -> Option<RawRequest> {
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break position;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(RawRequest {
        path,
        headers,
        body,
        at: Instant::now(),
        connection,
    })
}
