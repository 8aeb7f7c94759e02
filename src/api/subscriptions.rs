//! Handlers of `/v1/subscriptions…`.

use std::time::Duration;

use argus_webhooks_actors::FieldError;
use argus_webhooks_actors::model::{SubscriptionId, SubscriptionStatus};
use warp::http::StatusCode;
use warp::reply::Response;

use super::body::{parse_json_object, query_pairs, require_json};
use super::dto::{
    RotateInput, SubscriptionInput, SubscriptionList, SubscriptionView, TestResultView,
    parse_event_type, timestamp,
};
use super::{AppState, Request, json};
use crate::auth::Principal;
use crate::problem::ApiError;

/// Maximum grace period, in seconds (7 days), for which a rotation keeps the old secret.
const MAX_GRACE_SECONDS: i64 = 7 * 86_400;
const DEFAULT_GRACE_SECONDS: i64 = 86_400;

/// Parses a UUID path or query parameter, naming it on failure.
pub fn parse_uuid(raw: &str, field: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::field(field, not_a_uuid(raw)))
}

/// Parses a UUID path parameter. A malformed id names no resource, so it
/// returns 404 like an unknown id, with the field and the reason attached.
pub fn parse_path_id(raw: &str, field: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| ApiError::MalformedId(FieldError::new(field, not_a_uuid(raw))))
}

fn subscription_id(request: &Request) -> Result<SubscriptionId, ApiError> {
    parse_path_id(&request.params[0], "subscriptionId").map(SubscriptionId)
}

/// Returns the message for `raw` where a UUID is expected.
pub fn not_a_uuid(raw: &str) -> String {
    format!("must be a UUID; got '{}'", truncate(raw))
}

/// Shortens a value echoed in an error message.
pub fn truncate(raw: &str) -> String {
    if raw.chars().count() > 64 {
        format!("{}…", raw.chars().take(64).collect::<String>())
    } else {
        raw.to_string()
    }
}

pub async fn list(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let mut status = None;
    let mut event_type = None;
    for (name, value) in query_pairs(&request.query) {
        match name.as_str() {
            "status" => {
                status = Some(
                    value
                        .parse::<SubscriptionStatus>()
                        .map_err(|m| ApiError::field("status", m))?,
                );
            }
            "eventType" => {
                event_type =
                    Some(parse_event_type(&value).map_err(|m| ApiError::field("eventType", m))?);
            }
            _ => {}
        }
    }
    let subs = state
        .engine
        .list_subscriptions(&who.account, status, event_type)?;
    let data = subs
        .iter()
        .map(|s| SubscriptionView::new(s, false))
        .collect();
    Ok(json(StatusCode::OK, &SubscriptionList { data }))
}

pub async fn create(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    require_json(&request.headers)?;
    let input: SubscriptionInput = parse_json_object(&request.body)?;
    let read_only = input.read_only_fields();
    if !read_only.is_empty() {
        let errors = read_only
            .into_iter()
            .map(|field| {
                FieldError::new(field, "is set by the service and cannot be sent on create")
            })
            .collect();
        return Err(ApiError::Validation(errors));
    }
    let (spec, secret) =
        input.into_spec(state.settings.delivery.allow_http, &state.settings.limits)?;
    let sub = state
        .engine
        .create_subscription(who.account.clone(), spec, secret)
        .await?;
    let mut response = json(StatusCode::CREATED, &SubscriptionView::new(&sub, true));
    let location = format!("/v1/subscriptions/{}", sub.id);
    if let Ok(value) = warp::http::HeaderValue::from_str(&location) {
        response.headers_mut().insert("location", value);
    }
    Ok(response)
}

pub async fn get(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let id = subscription_id(request)?;
    let sub = state.engine.get_subscription(&who.account, id)?;
    Ok(json(StatusCode::OK, &SubscriptionView::new(&sub, false)))
}

pub async fn update(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let id = subscription_id(request)?;
    require_json(&request.headers)?;
    let input: SubscriptionInput = parse_json_object(&request.body)?;
    if input.secret.is_some() {
        return Err(ApiError::field(
            "secret",
            "cannot be changed by an update; use POST /v1/subscriptions/{subscriptionId}/rotate-secret",
        ));
    }
    let (spec, _) = input.into_spec(state.settings.delivery.allow_http, &state.settings.limits)?;
    let sub = state
        .engine
        .update_subscription(&who.account, id, spec)
        .await?;
    Ok(json(StatusCode::OK, &SubscriptionView::new(&sub, false)))
}

pub async fn delete(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let id = subscription_id(request)?;
    state.engine.delete_subscription(&who.account, id).await?;
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

pub async fn pause(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let id = subscription_id(request)?;
    let sub = state.engine.pause_subscription(&who.account, id).await?;
    Ok(json(StatusCode::OK, &SubscriptionView::new(&sub, false)))
}

pub async fn resume(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let id = subscription_id(request)?;
    let sub = state.engine.resume_subscription(&who.account, id).await?;
    Ok(json(StatusCode::OK, &SubscriptionView::new(&sub, false)))
}

pub async fn test(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let id = subscription_id(request)?;
    let result = state.engine.test_subscription(&who.account, id).await?;
    Ok(json(StatusCode::OK, &TestResultView::from(result)))
}

pub async fn rotate_secret(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let id = subscription_id(request)?;
    let grace_seconds = if request.body.iter().all(|b| b.is_ascii_whitespace()) {
        DEFAULT_GRACE_SECONDS
    } else {
        require_json(&request.headers)?;
        let input: RotateInput = parse_json_object(&request.body)?;
        match input.grace_period_seconds {
            None => DEFAULT_GRACE_SECONDS,
            Some(seconds) if (0..=MAX_GRACE_SECONDS).contains(&seconds) => seconds,
            Some(seconds) => {
                return Err(ApiError::field(
                    "gracePeriodSeconds",
                    format!(
                        "must be an integer from 0 to {MAX_GRACE_SECONDS} (7 days); got {seconds}"
                    ),
                ));
            }
        }
    };
    let sub = state
        .engine
        .rotate_secret(&who.account, id, Duration::from_secs(grace_seconds as u64))
        .await?;
    let mut view = SubscriptionView::new(&sub, true);
    view.previous_secret_expires_at = sub
        .previous_secret
        .as_ref()
        .map(|p| timestamp(&p.expires_at));
    Ok(json(StatusCode::OK, &view))
}
