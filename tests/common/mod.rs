//! Shared integration-test harness: runs the real `argus-webhooks` binary on
//! 127.0.0.1 with an OS-assigned port and a temporary data dir, and real HTTP
//! receivers on loopback whose responses each test scripts.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

/// The HS256 secret every test service is configured with.
pub const TEST_JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const BIN: &str = env!("CARGO_BIN_EXE_argus-webhooks");

/// Installs the rustls crypto provider once per test binary.
pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Polls `condition` every 20 ms until it is true or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Builds the configuration of a test service: sections of `key = literal` pairs.
#[derive(Clone)]
pub struct AppConfig {
    sections: BTreeMap<String, BTreeMap<String, String>>,
    /// Extra TOML appended verbatim (sub-tables such as `[delivery.dns_overrides]`).
    pub extra: String,
    pub env: Vec<(String, String)>,
}

impl Default for AppConfig {
    fn default() -> Self {
        let mut config = AppConfig {
            sections: BTreeMap::new(),
            extra: String::new(),
            env: Vec::new(),
        };
        config
            .set("auth", "hs256_secret", &format!("{TEST_JWT_SECRET:?}"))
            .set("delivery", "allow_http", "true")
            .set("delivery", "ssrf_exempt", r#"["127.0.0.1/32"]"#)
            // Deliveries may reach loopback only, and no DNS query leaves the machine.
            .set(
                "delivery",
                "allowed_networks",
                r#"["127.0.0.0/8", "::1/128"]"#,
            )
            .set("delivery", "static_dns_only", "true")
            .set("delivery", "time_scale", "0.01")
            .set("delivery", "connect_timeout_seconds", "2")
            .set("delivery", "total_timeout_seconds", "5")
            .set("server", "shutdown_grace_seconds", "5")
            .set(
                "log",
                "filter",
                "\"info,argus_webhooks=debug,argus_webhooks_actors=debug\"",
            );
        config
    }
}

impl AppConfig {
    /// Sets `key = literal` in `[section]`; the literal is TOML (quote strings).
    pub fn set(&mut self, section: &str, key: &str, literal: &str) -> &mut Self {
        self.sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), literal.to_string());
        self
    }

    fn render(&self, data_dir: &Path) -> String {
        let mut sections = self.sections.clone();
        sections
            .entry("store".into())
            .or_default()
            .entry("data_dir".into())
            .or_insert_with(|| format!("{:?}", data_dir.display().to_string()));
        let mut text = String::new();
        for (section, pairs) in &sections {
            text.push_str(&format!("[{section}]\n"));
            for (key, value) in pairs {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        text.push_str(&self.extra);
        text
    }
}

/// A fault file for `store.fault_file`: store writes fail while it exists.
pub struct StoreFault {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl StoreFault {
    /// Creates a folder for the fault file and points `config` at it. Writes
    /// work until [`StoreFault::start`].
    pub fn configure(config: &mut AppConfig) -> StoreFault {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("fail-writes");
        config.set(
            "store",
            "fault_file",
            &format!("{:?}", path.display().to_string()),
        );
        StoreFault { path, _dir: dir }
    }

    /// Makes store writes fail.
    pub fn start(&self) {
        std::fs::write(&self.path, "writes fail while this file exists").unwrap();
    }

    /// Lets store writes work again.
    pub fn stop(&self) {
        std::fs::remove_file(&self.path).unwrap();
    }
}

/// A running service process.
pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    pub client: reqwest::Client,
    child: Option<Child>,
    config: AppConfig,
    _temp: Option<tempfile::TempDir>,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(AppConfig::default()).await
    }

    pub async fn start_with(config: AppConfig) -> TestApp {
        init();
        let temp = tempfile::tempdir().expect("a temp dir");
        let dir = temp.path().to_path_buf();
        let mut app = TestApp {
            base: String::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
            data_dir: dir.join("data"),
            config_path: dir.join("config.toml"),
            log_path: dir.join("service.log"),
            dir,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            child: None,
            config,
            _temp: Some(temp),
        };
        app.launch().await;
        app
    }

    /// Starts the binary and waits for its `listening on` line.
    async fn launch(&mut self) {
        std::fs::write(&self.config_path, self.config.render(&self.data_dir)).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (key, value) in &self.config.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the service binary starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = sender.send(line);
            }
            for _ in lines {}
        });
        let line =
            tokio::task::spawn_blocking(move || receiver.recv_timeout(Duration::from_secs(30)))
                .await
                .unwrap()
                .unwrap_or_else(|_| {
                    panic!(
                        "the service did not start; log:\n{}",
                        std::fs::read_to_string(&self.log_path).unwrap_or_default()
                    )
                });
        let address = line
            .trim()
            .strip_prefix("listening on http://")
            .expect("the first stdout line names the address");
        self.addr = address.parse().unwrap();
        self.base = format!("http://{address}");
        self.child = Some(child);
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the service is running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        child.wait().unwrap()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit. Returns `None`
    /// when the process is still running then; it is killed on drop.
    pub async fn terminate_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("the service is running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the process (if running) and starts it again on the same data
    /// dir. Returns when the killed process had exited.
    pub async fn restart(&mut self) -> Instant {
        self.kill();
        let exited = Instant::now();
        self.launch().await;
        exited
    }

    pub fn config_mut(&mut self) -> &mut AppConfig {
        &mut self.config
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Returns a token for `account` with no scope.
    pub fn token(&self, account: &str) -> String {
        make_token(json!({"account_id": account, "exp": now() + 3600}))
    }

    /// Returns a token that may publish platform events.
    pub fn publisher_token(&self) -> String {
        make_token(
            json!({"account_id": "platform", "scope": "webhooks:publish", "exp": now() + 3600}),
        )
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the service responds");
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (StatusCode::from_u16(status.as_u16()).unwrap(), value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn post_empty(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(token), None)
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::PUT, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// Creates a subscription and returns its JSON (with the secret); panics unless 201.
    pub async fn create_subscription(
        &self,
        token: &str,
        url: &str,
        event_types: &[&str],
        retry: Option<Value>,
    ) -> Value {
        let mut body = json!({"url": url, "eventTypes": event_types});
        if let Some(retry) = retry {
            body["retryPolicy"] = retry;
        }
        let (status, value) = self.post("/v1/subscriptions", token, &body).await;
        assert_eq!(status, StatusCode::CREATED, "create failed: {value}");
        value
    }

    /// Publishes one platform event and returns the ingest result; panics unless 202 or 200.
    pub async fn publish(&self, event: &Value) -> Value {
        let (status, value) = self
            .post("/v1/platform/events", &self.publisher_token(), event)
            .await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "publish failed: {status} {value}"
        );
        value
    }

    pub async fn event(&self, token: &str, id: &str) -> Value {
        let (status, value) = self.get(&format!("/v1/events/{id}"), token).await;
        assert_eq!(status, StatusCode::OK, "get event failed: {value}");
        value
    }

    /// Waits until the event has `status`; returns the event.
    pub async fn wait_for_event_status(
        &self,
        token: &str,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let event = self.event(token, id).await;
            if event["status"] == status {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "event {id} did not reach {status}; last: {event}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs claims with the test HS256 secret.
pub fn make_token(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Builds a platform event for `account` of `event_type` with a fresh id.
pub fn platform_event(account: &str, event_type: &str) -> Value {
    let resource = event_type.split('.').next().unwrap();
    json!({
        "id": uuid::Uuid::new_v4(),
        "eventType": event_type,
        "accountId": account,
        "resourceType": resource,
        "resourceId": uuid::Uuid::new_v4(),
        "timestamp": "2026-11-01T09:30:00Z",
        "data": {"name": "Harbour Point", "sequence": 1}
    })
}

// --- receivers -----------------------------------------------------------

/// Response a receiver sends to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            body: String::new(),
            headers: Vec::new(),
        }
    }

    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.into();
        self
    }
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Default)]
struct ReceiverState {
    requests: Vec<Received>,
    verifications: Vec<Received>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
    /// When false, verification requests get the scripted responses like any other.
    answer_verification: bool,
}

/// An HTTP receiver on loopback. It responds to verification challenges
/// itself (unless `script_verification` was called) and responds to
/// deliveries from a script, then with the default reply (200 unless set).
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(bind: SocketAddr) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            answer_verification: true,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .expect("the receiver binds");
        let addr = listener.local_addr().unwrap();
        let shared = state.clone();
        let route = warp::any()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |path: warp::path::FullPath, headers: HeaderMap, body: Bytes| {
                    let state = shared.clone();
                    async move { answer(state, path.as_str().to_string(), headers, body).await }
                },
            );
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Receiver {
            url: format!("http://{addr}/hooks"),
            addr,
            state,
        }
    }

    /// Queues replies for the next deliveries, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// Sets the reply used once the script is empty.
    pub fn set_default(&self, reply: Reply) {
        self.state.lock().unwrap().default = Some(reply);
    }

    /// Makes verification requests follow the script like deliveries.
    pub fn script_verification(&self) {
        self.state.lock().unwrap().answer_verification = false;
    }

    /// Makes the receiver answer verification challenges itself again.
    pub fn answer_verification(&self) {
        self.state.lock().unwrap().answer_verification = true;
    }

    /// Deliveries received (verification requests excluded).
    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn verifications(&self) -> Vec<Received> {
        self.state.lock().unwrap().verifications.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    /// Waits until at least `n` deliveries arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let reached = wait_until(timeout, || async { self.count() >= n }).await;
        let requests = self.requests();
        assert!(reached, "expected {n} deliveries, got {}", requests.len());
        requests
    }
}

async fn answer(
    state: Arc<Mutex<ReceiverState>>,
    path: String,
    headers: HeaderMap,
    body: Bytes,
) -> warp::reply::Response {
    let received = Received {
        path,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.clone(),
        at: Instant::now(),
    };
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = {
        let mut state = state.lock().unwrap();
        if json["type"] == "webhook.verification" && state.answer_verification {
            state.verifications.push(received);
            let challenge = json["challenge"].as_str().unwrap_or("").to_string();
            return warp::reply::json(&json!({"challenge": challenge})).into_response_helper();
        }
        if json["type"] == "webhook.verification" {
            state.verifications.push(received);
        } else {
            state.requests.push(received);
        }
        let default = state.default.clone().unwrap_or_else(Reply::ok);
        state.script.pop_front().unwrap_or(default)
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = warp::reply::Response::new(reply.body.into());
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            warp::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

trait IntoResponseHelper {
    fn into_response_helper(self) -> warp::reply::Response;
}

impl<T: warp::Reply> IntoResponseHelper for T {
    fn into_response_helper(self) -> warp::reply::Response {
        self.into_response()
    }
}

/// Verifies a delivered request with the independent `standardwebhooks` crate.
pub fn verify_standard(secret: &str, request: &Received) -> bool {
    let webhook = standardwebhooks::Webhook::new(secret).expect("a valid whsec_ secret");
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, request.header(name).parse().unwrap());
    }
    webhook.verify(&request.body, &headers).is_ok()
}
