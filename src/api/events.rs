//! Handlers of `/v1/events…`.

use argus_webhooks_actors::EventQuery;
use argus_webhooks_actors::model::{EventId, EventStatus, SubscriptionId};
use chrono::{DateTime, Utc};
use warp::http::StatusCode;
use warp::reply::Response;

use super::body::query_pairs;
use super::dto::{EventList, EventView, Pagination, parse_event_type};
use super::subscriptions::{parse_path_id, parse_uuid, truncate};
use super::{AppState, Request, json};
use crate::auth::Principal;
use crate::problem::ApiError;

const MAX_PAGE: i64 = u32::MAX as i64;
const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: u32 = 25;

fn parse_int(raw: &str, field: &str, min: i64, max: i64) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(ApiError::field(
            field,
            format!(
                "must be an integer from {min} to {max}; got '{}'",
                truncate(raw)
            ),
        )),
    }
}

fn parse_time(raw: &str, field: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .or_else(|e| {
            // An unencoded '+' in a query string decodes to a space, so
            // "…T09:30:00 05:30" is read as the offset +05:30. The space can
            // stand for nothing else there, so this accepts no invalid time.
            match raw.len().checked_sub(6).and_then(|i| raw.split_at_checked(i)) {
                Some((time, offset)) if offset.starts_with(' ') => {
                    DateTime::parse_from_rfc3339(&format!("{time}+{}", &offset[1..]))
                }
                _ => Err(e),
            }
        })
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
        ApiError::field(
            field,
            format!(
                "must be an RFC 3339 date-time with an offset, such as 2026-11-01T09:30:00Z; got '{}'",
                truncate(raw)
            ),
        )
    })
}

fn parse_query(who: &Principal, query: &str) -> Result<EventQuery, ApiError> {
    let mut parsed = EventQuery {
        account: who.account.clone(),
        subscription_id: None,
        event_type: None,
        status: None,
        from: None,
        to: None,
        page: 1,
        page_size: DEFAULT_PAGE_SIZE,
    };
    let mut errors = Vec::new();
    for (name, value) in query_pairs(query) {
        let result = match name.as_str() {
            "subscriptionId" => parse_uuid(&value, "subscriptionId")
                .map(|id| parsed.subscription_id = Some(SubscriptionId(id))),
            "eventType" => parse_event_type(&value)
                .map(|t| parsed.event_type = Some(t))
                .map_err(|m| ApiError::field("eventType", m)),
            "status" => value
                .parse::<EventStatus>()
                .map(|s| parsed.status = Some(s))
                .map_err(|m| ApiError::field("status", m)),
            "from" => parse_time(&value, "from").map(|t| parsed.from = Some(t)),
            "to" => parse_time(&value, "to").map(|t| parsed.to = Some(t)),
            "page" => parse_int(&value, "page", 1, MAX_PAGE).map(|p| parsed.page = p as u32),
            "pageSize" => {
                parse_int(&value, "pageSize", 1, MAX_PAGE_SIZE).map(|p| parsed.page_size = p as u32)
            }
            _ => Ok(()),
        };
        if let Err(ApiError::Validation(mut e)) = result {
            errors.append(&mut e);
        }
    }
    if let (Some(from), Some(to)) = (parsed.from, parsed.to)
        && from > to
    {
        errors.push(argus_webhooks_actors::FieldError::new(
            "from",
            "must not be after 'to'",
        ));
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(ApiError::Validation(errors))
    }
}

pub async fn list(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let query = parse_query(who, &request.query)?;
    let page = state.engine.list_events(&query)?;
    let total_pages = page.total.div_ceil(query.page_size as u64);
    let body = EventList {
        data: page.items.iter().map(EventView::new).collect(),
        pagination: Pagination {
            page: query.page,
            page_size: query.page_size,
            total_items: page.total,
            total_pages,
        },
    };
    Ok(json(StatusCode::OK, &body))
}

fn event_id(request: &Request) -> Result<EventId, ApiError> {
    parse_path_id(&request.params[0], "eventId").map(EventId)
}

pub async fn get(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let id = event_id(request)?;
    let event = state.engine.get_event(&who.account, id)?;
    Ok(json(StatusCode::OK, &EventView::new(&event)))
}

pub async fn retry(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    let id = event_id(request)?;
    let event = state.engine.retry_event(&who.account, id).await?;
    Ok(json(StatusCode::ACCEPTED, &EventView::new(&event)))
}
