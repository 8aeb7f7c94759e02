//! The HTTP client that sends signed requests to endpoints. It follows no
//! redirect, uses no proxy, checks every address it connects to against the
//! [`AddressPolicy`], and bounds each exchange by a connect and a total timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::model::{EndpointUrl, SigningSecret};
use crate::retry::parse_retry_after;
use crate::signing::signature_header;
use crate::ssrf::AddressPolicy;

/// Settings of the delivery client.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    pub connect_timeout: Duration,
    /// Bound on the whole exchange: connect, TLS, request and response body.
    pub total_timeout: Duration,
    /// Bytes of each response body kept in the attempt record.
    pub response_body_limit: usize,
    /// Attempts in flight across all subscriptions.
    pub max_in_flight_total: usize,
    pub policy: AddressPolicy,
    /// PEM certificates trusted beside the system roots.
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Fixed DNS answers by host name. Each lookup takes the next list and the
    /// last list repeats, so a test can return different addresses at validation and
    /// at connect time.
    pub dns_overrides: HashMap<String, Vec<Vec<IpAddr>>>,
    /// Resolve host names only from `dns_overrides` (and `localhost`), never
    /// through DNS, so fuzzing and tests cannot make the service query or
    /// reach another host.
    pub static_dns_only: bool,
    /// Whether plain `http` endpoints may be sent to. When false, attempts to a
    /// stored `http` subscription, created while it was allowed, are blocked.
    pub allow_http: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            response_body_limit: 4096,
            max_in_flight_total: 512,
            policy: AddressPolicy::default(),
            extra_root_certificates: Vec::new(),
            dns_overrides: HashMap::new(),
            static_dns_only: false,
            allow_http: true,
        }
    }
}

/// Result class of an attempt, used as the label of the attempts metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultClass {
    Success,
    Redirect,
    ClientError,
    ServerError,
    Timeout,
    ConnectError,
    Blocked,
    Error,
}

impl ResultClass {
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::Redirect => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::Timeout => "timeout",
            Self::ConnectError => "connect_error",
            Self::Blocked => "blocked",
            Self::Error => "error",
        }
    }
}

/// Observations of one attempt. A failed attempt is data, not an error.
#[derive(Clone, Debug)]
pub struct AttemptReport {
    pub class: ResultClass,
    pub status: Option<u16>,
    pub duration: Duration,
    pub error: Option<String>,
    pub body: Option<String>,
    /// The `Retry-After` of a 429 or 503 response.
    pub retry_after: Option<Duration>,
}

impl AttemptReport {
    pub fn success(&self) -> bool {
        self.class == ResultClass::Success
    }

    fn failure(class: ResultClass, started: Instant, error: String) -> Self {
        Self {
            class,
            status: None,
            duration: started.elapsed(),
            error: Some(error),
            body: None,
            retry_after: None,
        }
    }
}

/// The reason an endpoint failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The URL's host does not resolve, or it is or resolves to an address
    /// the SSRF guard blocks. No request was sent.
    InvalidAddress(String),
    /// The verification request failed or its response was wrong.
    Failed(String),
}

/// One signed request to send.
pub struct SignedRequest<'a> {
    pub url: &'a url::Url,
    pub msg_id: &'a str,
    pub event_type: &'a str,
    pub body: &'a [u8],
    pub secrets: &'a [SigningSecret],
}

#[derive(Debug, thiserror::Error)]
#[error("address {addr} of {host} is blocked: {reason}")]
struct BlockedAddress {
    host: String,
    addr: IpAddr,
    reason: &'static str,
}

/// Resolves host names and drops every address the policy blocks, so the
/// address checked is the address connected to.
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    overrides: Arc<DnsOverrides>,
}

#[derive(Default)]
struct DnsOverrides {
    answers: HashMap<String, Vec<Vec<IpAddr>>>,
    lookups: Mutex<HashMap<String, usize>>,
    static_only: bool,
}

impl DnsOverrides {
    fn next(&self, host: &str) -> Option<Vec<IpAddr>> {
        let answers = self.answers.get(host)?;
        let mut lookups = self.lookups.lock().unwrap_or_else(|e| e.into_inner());
        let count = lookups.entry(host.to_string()).or_insert(0);
        let answer = answers.get(*count).or_else(|| answers.last()).cloned();
        *count += 1;
        answer
    }
}

async fn lookup(overrides: &DnsOverrides, host: &str) -> Result<Vec<IpAddr>, String> {
    if let Some(answer) = overrides.next(host) {
        return Ok(answer);
    }
    if overrides.static_only {
        if host.eq_ignore_ascii_case("localhost") {
            return Ok(vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ]);
        }
        return Err(format!(
            "{host} is not in delivery.dns_overrides, and DNS lookups are off (delivery.static_dns_only)"
        ));
    }
    let addrs = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("DNS lookup of {host} failed: {e}"))?;
    Ok(addrs.map(|a| a.ip()).collect())
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let overrides = self.overrides.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = lookup(&overrides, &host).await?;
            let mut allowed = Vec::new();
            let mut first_blocked = None;
            for addr in addrs {
                match policy.check(addr) {
                    None => allowed.push(SocketAddr::new(addr, 0)),
                    Some(reason) => {
                        first_blocked.get_or_insert(BlockedAddress {
                            host: host.clone(),
                            addr,
                            reason,
                        });
                    }
                }
            }
            if allowed.is_empty() {
                let error: Box<dyn std::error::Error + Send + Sync> = match first_blocked {
                    Some(blocked) => Box::new(blocked),
                    None => format!("{host} has no address").into(),
                };
                return Err(error);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Sends signed requests. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryClient {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    overrides: Arc<DnsOverrides>,
    permits: Arc<Semaphore>,
    config: Arc<DeliveryConfig>,
    /// When each origin last responded on a connection it kept open, so a
    /// request that fails on a closed connection is sent again only when a
    /// pooled connection may have been reused.
    answered: Arc<Mutex<HashMap<String, Instant>>>,
}

/// Headers accepted in an endpoint's response. With hyper's default of 100,
/// a 2xx that proxies had given more headers counted as a failed attempt.
const MAX_RESPONSE_HEADERS: usize = 256;

/// How long an idle keep-alive connection stays in the pool. Below the 5 s
/// keep-alive of Node.js and uvicorn, so the service seldom reuses a
/// connection that the endpoint is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Origins remembered in [`DeliveryClient::answered`] before old entries are dropped.
const ANSWERED_ORIGINS: usize = 4096;

impl DeliveryClient {
    pub fn new(config: DeliveryConfig) -> Result<Self, String> {
        let policy = Arc::new(config.policy.clone());
        let overrides = Arc::new(DnsOverrides {
            answers: config.dns_overrides.clone(),
            lookups: Mutex::new(HashMap::new()),
            static_only: config.static_dns_only,
        });
        let user_agent = format!("argus-webhooks/{}", env!("CARGO_PKG_VERSION"));
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // The total timeout wraps the whole exchange in `send`, so every
            // overrun ends with the same message whatever stage it stalled in.
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // Every connection that an attempt used may wait in the pool for
            // the next one. A smaller bound closed connections that the next
            // attempts then opened again, so the service-wide limit bounds it.
            .pool_max_idle_per_host(config.max_in_flight_total.max(1))
            .http1_max_headers(MAX_RESPONSE_HEADERS)
            .user_agent(user_agent)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
                overrides: overrides.clone(),
            }));
        if !config.extra_root_certificates.is_empty() {
            let mut certs = Vec::new();
            for pem in &config.extra_root_certificates {
                certs.extend(
                    reqwest::Certificate::from_pem_bundle(pem)
                        .map_err(|e| format!("invalid extra root certificate: {e}"))?,
                );
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            policy,
            overrides,
            permits: Arc::new(Semaphore::new(config.max_in_flight_total.max(1))),
            config: Arc::new(config),
            answered: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// Checks that every address of the URL's host may be connected to, as
    /// the create and update requests require. Returns the reason otherwise.
    pub async fn check_url(&self, url: &EndpointUrl) -> Result<(), String> {
        let parsed = url.to_url();
        let addrs = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => vec![IpAddr::V4(v4)],
            Some(url::Host::Ipv6(v6)) => vec![IpAddr::V6(v6)],
            Some(url::Host::Domain(host)) => lookup(&self.overrides, host).await?,
            None => return Err("the URL has no host".into()),
        };
        if addrs.is_empty() {
            return Err("the host has no address".into());
        }
        for addr in addrs {
            if let Some(reason) = self.policy.check(addr) {
                return Err(format!(
                    "must not reach {addr} ({reason}); endpoints must be public addresses (for local testing, start the service with --dev or list the network in delivery.ssrf_exempt)"
                ));
            }
        }
        Ok(())
    }

    /// Sends one signed request and reports what happened. Waits for a slot
    /// of the service-wide limit first; the timeouts start after that.
    pub async fn send(&self, request: SignedRequest<'_>) -> AttemptReport {
        let _permit = self.permits.acquire().await;
        let started = Instant::now();
        if let Err(reason) = self.check_url_now(request.url) {
            return AttemptReport::failure(ResultClass::Blocked, started, reason);
        }
        let timestamp = Utc::now().timestamp();
        let signature = signature_header(request.secrets, request.msg_id, timestamp, request.body);
        let origin = origin_of(request.url.as_str());
        // The status and Retry-After once the response head arrived, so a
        // body that then stalls past the total timeout keeps them.
        let head = Mutex::new(None);
        let exchange = async {
            let first = self.exchange(&request, timestamp, &signature, &head).await;
            match first {
                Err(error) if closed_before_response(&error) && self.may_reuse(origin) => {
                    // A pooled keep-alive connection that the server closed
                    // while it sat idle fails this way before a response head
                    // arrives. Sending once more opens a new connection. The
                    // webhook-id is unchanged, so an endpoint that did read the
                    // first request can drop the duplicate. An endpoint that
                    // closes new connections too gets no second copy, because
                    // then no connection of it may be reused.
                    tracing::debug!(msg_id = request.msg_id, %error, "connection closed before a response; sending once more");
                    let second = self.exchange(&request, timestamp, &signature, &head).await;
                    self.note_answer(origin, second.as_ref().is_ok_and(|a| a.reusable));
                    second
                }
                other => {
                    self.note_answer(origin, other.as_ref().is_ok_and(|a| a.reusable));
                    other
                }
            }
        };
        let outcome = tokio::time::timeout(self.config.total_timeout, exchange).await;
        match outcome {
            Err(_) => {
                let head = *head.lock().unwrap_or_else(|e| e.into_inner());
                let total = self.config.total_timeout.as_millis();
                match head {
                    Some((status, retry_after)) => answer_report(
                        status,
                        retry_after,
                        Vec::new(),
                        Some((
                            ResultClass::Timeout,
                            format!(
                                "the body timed out after {total} ms before it was complete (total timeout)"
                            ),
                        )),
                        started,
                    ),
                    None => AttemptReport::failure(
                        ResultClass::Timeout,
                        started,
                        format!(
                            "timed out after {total} ms without a complete response (total timeout)"
                        ),
                    ),
                }
            }
            Ok(Err(error)) => {
                let (class, message) = classify(&error);
                AttemptReport::failure(class, started, message)
            }
            Ok(Ok(answer)) => {
                let broken = answer.body_error.map(|error| {
                    let (class, message) = classify(&error);
                    (class, format!("the response body broke off: {message}"))
                });
                answer_report(
                    answer.status,
                    answer.retry_after,
                    answer.body,
                    broken,
                    started,
                )
            }
        }
    }

    /// Sends the request once and reads the status, `Retry-After` and the
    /// capped body.
    async fn exchange(
        &self,
        request: &SignedRequest<'_>,
        timestamp: i64,
        signature: &str,
        head: &Mutex<Option<(reqwest::StatusCode, Option<Duration>)>>,
    ) -> Result<Answer, reqwest::Error> {
        let response = self
            .http
            .post(request.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", request.msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("x-argus-event-type", request.event_type)
            .body(request.body.to_vec())
            .send()
            .await?;
        let status = response.status();
        let reusable = connection_reusable(&response);
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        *head.lock().unwrap_or_else(|e| e.into_inner()) = Some((status, retry_after));
        let (body, body_error) = read_capped(response, self.config.response_body_limit).await;
        Ok(Answer {
            status,
            retry_after,
            body,
            reusable: reusable && body_error.is_none(),
            body_error,
        })
    }

    /// True when `origin` responded on a connection it kept open within the
    /// pool's idle timeout, so the connection a request just used may have
    /// been a pooled one.
    fn may_reuse(&self, origin: &str) -> bool {
        let answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        answered
            .get(origin)
            .is_some_and(|at| at.elapsed() < POOL_IDLE_TIMEOUT)
    }

    /// Records whether `origin` responded to the last request and kept the
    /// connection open. Otherwise it left no connection to reuse.
    fn note_answer(&self, origin: &str, kept_open: bool) {
        let mut map = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        if !kept_open {
            map.remove(origin);
            return;
        }
        if let Some(at) = map.get_mut(origin) {
            *at = Instant::now();
            return;
        }
        if map.len() >= ANSWERED_ORIGINS {
            map.retain(|_, at| at.elapsed() < POOL_IDLE_TIMEOUT);
            if map.len() >= ANSWERED_ORIGINS {
                map.clear();
            }
        }
        map.insert(origin.to_string(), Instant::now());
    }

    /// Sends the verification challenge, signed with each of `secrets`, and
    /// checks the response: a 2xx whose body is the challenge itself, a JSON
    /// string equal to it, or a JSON object with that `challenge`.
    pub async fn verify_endpoint(
        &self,
        url: &EndpointUrl,
        secrets: &[SigningSecret],
    ) -> Result<(), VerifyError> {
        self.check_url(url)
            .await
            .map_err(VerifyError::InvalidAddress)?;
        let challenge = uuid::Uuid::new_v4().simple().to_string();
        let body = json!({"type": "webhook.verification", "challenge": challenge}).to_string();
        let msg_id = format!("verify_{}", uuid::Uuid::new_v4().simple());
        let report = self
            .send(SignedRequest {
                url: &url.to_url(),
                msg_id: &msg_id,
                event_type: "webhook.verification",
                body: body.as_bytes(),
                secrets,
            })
            .await;
        if report.class == ResultClass::Blocked {
            // The guard stopped the connection: a host name that resolved to a
            // blocked address this time, so the URL is at fault.
            let detail = report.error.unwrap_or_default();
            return Err(VerifyError::InvalidAddress(detail));
        }
        if !report.success() {
            let detail = report.error.unwrap_or_else(|| "no 2xx answer".into());
            return Err(VerifyError::Failed(format!(
                "the verification request failed: {detail}"
            )));
        }
        let answer = report.body.unwrap_or_default();
        if echoes_challenge(&answer, &challenge) {
            return Ok(());
        }
        Err(VerifyError::Failed(format!(
            "the endpoint responded with {} but its body is neither the challenge, nor a JSON string equal to it, nor a JSON object whose \"challenge\" equals it",
            report.status.unwrap_or_default()
        )))
    }

    /// Checks what the URL alone decides: the scheme, and a host written as
    /// an IP address. Host names are checked when they resolve.
    fn check_url_now(&self, url: &url::Url) -> Result<(), String> {
        if !self.config.allow_http && url.scheme() == "http" {
            return Err(
                "plain http endpoints are not allowed (delivery.allow_http is false); update the subscription to an https URL".into(),
            );
        }
        let addr = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        match self.policy.check(addr) {
            Some(reason) => Err(format!("address {addr} is blocked: {reason}")),
            None => Ok(()),
        }
    }
}

/// Reads up to `limit` bytes of the body. Returns what arrived, and the
/// error when the body broke off before its end or the limit.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= limit {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => return (body, Some(error)),
        }
    }
    (body, None)
}

/// A response head and its body.
struct Answer {
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
    /// The connection may go back to the pool: HTTP/1.1 or later without
    /// `connection: close`, or HTTP/1.0 with `connection: keep-alive`.
    reusable: bool,
    /// The error that broke the body off after the head arrived.
    body_error: Option<reqwest::Error>,
}

/// Builds the report of an attempt that received a response head. `broken`
/// gives the class and reason when the body then broke off or timed out: a
/// 2xx takes that class and fails, another status keeps its own class, so a
/// 410 still disables and a 503 keeps its `Retry-After`.
fn answer_report(
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
    broken: Option<(ResultClass, String)>,
    started: Instant,
) -> AttemptReport {
    let code = status.as_u16();
    let class = match code {
        200..=299 => ResultClass::Success,
        300..=399 => ResultClass::Redirect,
        400..=499 => ResultClass::ClientError,
        500..=599 => ResultClass::ServerError,
        // A 1xx that hyper returns as final, or a code past 599.
        _ => {
            return AttemptReport::failure(
                ResultClass::Error,
                started,
                format!(
                    "endpoint answered with status {code}, which is not a final HTTP status (200 to 599)"
                ),
            );
        }
    };
    let mut error = match class {
        ResultClass::Success => None,
        ResultClass::Redirect => Some(format!(
            "endpoint answered {status}; redirects are not followed"
        )),
        _ => Some(format!("endpoint answered {status}")),
    };
    let class = match broken {
        Some((broken_class, reason)) => {
            error = Some(match error {
                Some(error) => format!("{error}; {reason}"),
                None => format!("endpoint answered {status}, but {reason}"),
            });
            if class == ResultClass::Success {
                broken_class
            } else {
                class
            }
        }
        None => class,
    };
    let honours_retry_after = code == 429 || code == 503;
    AttemptReport {
        class,
        status: Some(code),
        duration: started.elapsed(),
        error,
        body: (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
        retry_after: retry_after.filter(|_| honours_retry_after),
    }
}

fn connection_reusable(response: &reqwest::Response) -> bool {
    let connection = response
        .headers()
        .get_all(reqwest::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    if response.version() <= reqwest::Version::HTTP_10 {
        connection.iter().any(|t| t == "keep-alive")
    } else {
        !connection.iter().any(|t| t == "close")
    }
}

/// Returns the scheme, host and port of an absolute URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// True when a verification response body returns `challenge` in one of the
/// accepted forms: the bare challenge, a JSON string equal to it (what
/// FastAPI's `return challenge` and Express's `res.json(challenge)` send),
/// or a JSON object whose `challenge` member equals it.
fn echoes_challenge(answer: &str, challenge: &str) -> bool {
    if answer.trim() == challenge {
        return true;
    }
    match serde_json::from_str::<serde_json::Value>(answer) {
        Ok(serde_json::Value::String(echoed)) => echoed == challenge,
        Ok(value) => value.get("challenge").and_then(|c| c.as_str()) == Some(challenge),
        Err(_) => false,
    }
}

/// True when the connection closed before a complete response head arrived,
/// as a pooled connection that the server closed while idle does.
fn closed_before_response(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(hyper_error) = current.downcast_ref::<hyper::Error>() {
            return hyper_error.is_incomplete_message();
        }
        source = current.source();
    }
    false
}

fn classify(error: &reqwest::Error) -> (ResultClass, String) {
    let mut message = String::new();
    let mut blocked = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.downcast_ref::<BlockedAddress>().is_some() {
            blocked = true;
        }
        let text = current.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        source = current.source();
    }
    let class = if blocked {
        ResultClass::Blocked
    } else if error.is_timeout() {
        ResultClass::Timeout
    } else if error.is_connect() {
        ResultClass::ConnectError
    } else {
        ResultClass::Error
    };
    // reqwest's own text names the URL; the attempt record has the URL already.
    let message = message.replace(
        &format!(
            " for url ({})",
            error.url().map(|u| u.as_str()).unwrap_or("")
        ),
        "",
    );
    (class, message)
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn origin_is_scheme_host_and_port() {
        for (url, origin) in [
            (
                "https://hooks.example.com/a/b?c=d",
                "https://hooks.example.com",
            ),
            ("http://127.0.0.1:8080/hooks", "http://127.0.0.1:8080"),
            ("https://[::1]:9443?x=1", "https://[::1]:9443"),
            ("https://example.com", "https://example.com"),
        ] {
            assert_eq!(origin_of(url), origin, "{url}");
        }
    }
}
