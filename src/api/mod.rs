//! The HTTP API. One warp filter takes every request and hands it to
//! [`dispatch`], which matches the route table below. Owning the table keeps
//! 404 and 405 exact, gives every request a route template for metrics, and
//! lets each route choose its body limit before the body is read.

mod body;
mod dto;
mod events;
mod fields;
mod ops;
mod platform;
mod subscriptions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use metrics_exporter_prometheus::PrometheusHandle;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use argus_webhooks_actors::Engine;

use crate::auth::{Authenticator, Principal};
use crate::config::Settings;
use crate::problem::ApiError;

/// Everything a handler can reach.
pub struct AppState {
    pub engine: Engine,
    pub auth: Authenticator,
    pub settings: Settings,
    pub metrics: PrometheusHandle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RouteId {
    ListSubscriptions,
    CreateSubscription,
    GetSubscription,
    UpdateSubscription,
    DeleteSubscription,
    PauseSubscription,
    ResumeSubscription,
    TestSubscription,
    RotateSecret,
    ListEvents,
    GetEvent,
    RetryEvent,
    Ingest,
    IngestBatch,
    Health,
    OpenApi,
    Metrics,
}

/// Method, path template and route. `{name}` matches one path segment.
const ROUTES: &[(Method, &str, RouteId)] = &[
    (Method::GET, "/v1/subscriptions", RouteId::ListSubscriptions),
    (
        Method::POST,
        "/v1/subscriptions",
        RouteId::CreateSubscription,
    ),
    (
        Method::GET,
        "/v1/subscriptions/{subscriptionId}",
        RouteId::GetSubscription,
    ),
    (
        Method::PUT,
        "/v1/subscriptions/{subscriptionId}",
        RouteId::UpdateSubscription,
    ),
    (
        Method::DELETE,
        "/v1/subscriptions/{subscriptionId}",
        RouteId::DeleteSubscription,
    ),
    (
        Method::POST,
        "/v1/subscriptions/{subscriptionId}/pause",
        RouteId::PauseSubscription,
    ),
    (
        Method::POST,
        "/v1/subscriptions/{subscriptionId}/resume",
        RouteId::ResumeSubscription,
    ),
    (
        Method::POST,
        "/v1/subscriptions/{subscriptionId}/test",
        RouteId::TestSubscription,
    ),
    (
        Method::POST,
        "/v1/subscriptions/{subscriptionId}/rotate-secret",
        RouteId::RotateSecret,
    ),
    (Method::GET, "/v1/events", RouteId::ListEvents),
    (Method::GET, "/v1/events/{eventId}", RouteId::GetEvent),
    (
        Method::POST,
        "/v1/events/{eventId}/retry",
        RouteId::RetryEvent,
    ),
    (Method::POST, "/v1/platform/events", RouteId::Ingest),
    (
        Method::POST,
        "/v1/platform/events/batch",
        RouteId::IngestBatch,
    ),
    (Method::GET, "/v1/health", RouteId::Health),
    (Method::GET, "/v1/openapi.json", RouteId::OpenApi),
    (Method::GET, "/metrics", RouteId::Metrics),
];

/// Returns the served routes as (method, template), for the OpenAPI coverage test.
pub fn route_table() -> Vec<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, t, _)| (m.to_string(), t.to_string()))
        .collect()
}

/// A request after routing, as handlers see it.
pub struct Request {
    pub params: Vec<String>,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// Builds the warp filter that serves the whole API.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body| {
                let state = state.clone();
                let body = box_body(body);
                async move {
                    serve(
                        state,
                        method,
                        path.as_str().to_string(),
                        query,
                        headers,
                        body,
                    )
                    .await
                }
            },
        )
}

fn box_body<S, B>(stream: S) -> BodyStream
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: bytes::Buf,
{
    Box::pin(StreamExt::map(stream, |chunk| {
        chunk.map(|mut buf| buf.copy_to_bytes(buf.remaining()))
    }))
}

async fn serve(
    state: Arc<AppState>,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    mut body: BodyStream,
) -> Response {
    let started = Instant::now();
    let matched = match_route(&method, &path);
    let template = match &matched {
        Ok((_, template, _)) => *template,
        Err(_) => "unmatched",
    };
    // Such a client sends the body only once it is asked to continue, which
    // hyper does when the body is first read.
    let awaits_continue = headers
        .get("expect")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let outcome =
        std::panic::AssertUnwindSafe(handle(state.clone(), matched, query, headers, &mut body))
            .catch_unwind()
            .await;
    let response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            // A client may still be sending the body of a rejected request,
            // so it is read to the end before the response goes out. A client
            // that awaits 100 Continue sends nothing until the body is read.
            let sending = match error {
                ApiError::RequestTimeout(_) => false,
                ApiError::PayloadTooLarge(_) => true,
                _ => !awaits_continue,
            };
            if sending {
                body::discard(&mut body, body_deadline(&state)).await;
            }
            error.into_response()
        }
        Err(_) => {
            ApiError::Internal(format!("a handler panicked on {method} {template}")).into_response()
        }
    };
    record_request(&method, template, response.status(), started.elapsed());
    response
}

fn record_request(method: &Method, template: &'static str, status: StatusCode, elapsed: Duration) {
    let method_label = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    };
    metrics::counter!("argus_webhooks_http_requests_total", "route" => template, "method" => method_label, "status" => status.as_u16().to_string()).increment(1);
    metrics::histogram!("argus_webhooks_http_request_duration_seconds", "route" => template, "method" => method_label)
        .record(elapsed.as_secs_f64());
    tracing::debug!(method = %method, route = template, status = status.as_u16(), duration_ms = elapsed.as_secs_f64() * 1000.0, "request served");
}

type Matched = Result<(RouteId, &'static str, Vec<String>), ApiError>;

fn match_route(method: &Method, path: &str) -> Matched {
    let mut allowed = Vec::new();
    for (route_method, template, id) in ROUTES {
        if let Some(params) = match_template(template, path) {
            // HEAD runs the GET route; hyper sends the head without the body.
            let head_of_get = method == Method::HEAD && route_method == Method::GET;
            if route_method == method || head_of_get {
                return Ok((*id, template, params));
            }
            allowed.push(route_method.as_str());
            if route_method == Method::GET {
                allowed.push(Method::HEAD.as_str());
            }
        }
    }
    if allowed.is_empty() {
        Err(ApiError::NotFound("route".into()))
    } else {
        Err(ApiError::MethodNotAllowed(allowed))
    }
}

fn match_template(template: &str, path: &str) -> Option<Vec<String>> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut template_parts = template.split('/');
    let mut path_parts = path.split('/');
    let mut params = Vec::new();
    loop {
        match (template_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(t), Some(p)) if t.starts_with('{') => {
                if p.is_empty() {
                    return None;
                }
                let decoded = percent_decode(p);
                params.push(decoded);
            }
            (Some(t), Some(p)) if t == p => {}
            _ => return None,
        }
    }
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn handle(
    state: Arc<AppState>,
    matched: Matched,
    query: String,
    headers: HeaderMap,
    body: &mut BodyStream,
) -> Result<Response, ApiError> {
    let (route, _, params) = matched?;
    let public = matches!(route, RouteId::Health | RouteId::OpenApi | RouteId::Metrics);
    let principal = if public {
        None
    } else {
        let mut values = headers.get_all("authorization").iter();
        let header = values.next().map(|v| v.to_str().unwrap_or(""));
        if values.next().is_some() {
            // Two tokens could name two accounts, so neither is trusted.
            return Err(ApiError::InvalidToken(
                "the request has more than one Authorization header; send exactly one".into(),
            ));
        }
        Some(state.auth.authenticate(header)?)
    };
    let limit = match route {
        RouteId::IngestBatch => state.settings.server.max_batch_body_bytes,
        _ => state.settings.server.max_body_bytes,
    };
    let body = body::read_limited(body, limit, body_deadline(&state)).await?;
    let request = Request {
        params,
        query,
        headers,
        body,
    };
    let who = || {
        principal
            .clone()
            .expect("authenticated routes have a principal")
    };
    let state = &state;
    match route {
        RouteId::ListSubscriptions => subscriptions::list(state, &who(), &request).await,
        RouteId::CreateSubscription => subscriptions::create(state, &who(), &request).await,
        RouteId::GetSubscription => subscriptions::get(state, &who(), &request).await,
        RouteId::UpdateSubscription => subscriptions::update(state, &who(), &request).await,
        RouteId::DeleteSubscription => subscriptions::delete(state, &who(), &request).await,
        RouteId::PauseSubscription => subscriptions::pause(state, &who(), &request).await,
        RouteId::ResumeSubscription => subscriptions::resume(state, &who(), &request).await,
        RouteId::TestSubscription => subscriptions::test(state, &who(), &request).await,
        RouteId::RotateSecret => subscriptions::rotate_secret(state, &who(), &request).await,
        RouteId::ListEvents => events::list(state, &who(), &request).await,
        RouteId::GetEvent => events::get(state, &who(), &request).await,
        RouteId::RetryEvent => events::retry(state, &who(), &request).await,
        RouteId::Ingest => platform::ingest(state, &who(), &request).await,
        RouteId::IngestBatch => platform::ingest_batch(state, &who(), &request).await,
        RouteId::Health => ops::health(state).await,
        RouteId::OpenApi => ops::openapi(),
        RouteId::Metrics => ops::metrics(state),
    }
}

/// Time a client gets to send a request body.
fn body_deadline(state: &AppState) -> Duration {
    Duration::from_secs_f64(state.settings.server.body_read_timeout_seconds)
}

/// Requires the principal to hold `scope`.
pub fn require_scope(principal: &Principal, scope: &str) -> Result<(), ApiError> {
    if principal.has_scope(scope) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "This operation needs a token whose scope contains '{scope}'."
        )))
    }
}

/// Renders a JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("responses always serialise");
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        warp::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_templates_and_methods() {
        let (id, _, params) = match_route(&Method::GET, "/v1/subscriptions/abc").unwrap();
        assert_eq!(id, RouteId::GetSubscription);
        assert_eq!(params, vec!["abc".to_string()]);
        assert!(matches!(
            match_route(&Method::PATCH, "/v1/subscriptions/abc"),
            Err(ApiError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            match_route(&Method::GET, "/v1/nothing"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            match_route(&Method::GET, "/v1/subscriptions//pause"),
            Err(ApiError::NotFound(_))
        ));
        assert_eq!(
            match_route(&Method::GET, "/v1/events/").unwrap().0,
            RouteId::ListEvents
        );
    }
}
