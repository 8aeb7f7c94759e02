//! Handlers of `/v1/platform/events…`: ingest of platform events.

use argus_webhooks_actors::FieldError;
use argus_webhooks_actors::model::{
    AccountId, MAX_RESOURCE_TYPE_LENGTH, PlatformEvent, PlatformEventId,
};
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::body::{parse_json_array, parse_json_object, require_json};
use super::dto::{IngestView, PlatformEventInput, parse_event_type};
use super::subscriptions::not_a_uuid;
use super::{AppState, Request, json, require_scope};
use crate::auth::{PUBLISH_SCOPE, Principal};
use crate::problem::ApiError;

/// Deepest nesting of objects and arrays accepted in `data`, the same as
/// serde_json's recursion limit for parsed documents.
const MAX_DATA_DEPTH: usize = 128;

/// Returns the deepest nesting of objects and arrays in a JSON text that
/// serde_json has already checked, ignoring brackets inside strings.
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while let Some(&byte) = json.get(at) {
        at += 1;
        match byte {
            b'"' => at = string_end(json, at),
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Returns the index just past the quote that closes the string whose
/// contents start at `at`. Skips to each quote or backslash at once, since
/// payloads are mostly long strings.
fn string_end(json: &[u8], mut at: usize) -> usize {
    while let Some(offset) = memchr::memchr2(b'"', b'\\', &json[at..]) {
        let found = at + offset;
        if json[found] == b'"' {
            return found + 1;
        }
        // A backslash escapes the byte after it.
        at = found + 2;
        if at >= json.len() {
            return json.len();
        }
    }
    json.len()
}

/// Validates one ingest body into a platform event.
fn validate(input: PlatformEventInput) -> Result<PlatformEvent, ApiError> {
    let mut errors = Vec::new();
    let mut require = |field: &str, what: &str| {
        errors.push(FieldError::new(field, format!("is required: {what}")))
    };
    let id = match input.id.as_deref() {
        None => Some(PlatformEventId(uuid::Uuid::now_v7())),
        Some(raw) => uuid::Uuid::parse_str(raw).ok().map(PlatformEventId),
    };
    if input.event_type.is_none() {
        require("eventType", "one of the 16 platform event types");
    }
    if input.account_id.is_none() {
        require("accountId", "the account the event belongs to");
    }
    if input.resource_type.is_none() {
        require(
            "resourceType",
            "the type of resource that changed, such as 'property'",
        );
    }
    if input.resource_id.is_none() {
        require("resourceId", "the UUID of the resource that changed");
    }
    if input.data.is_none() {
        require("data", "a JSON object with the resource data");
    }
    let event_type = input.event_type.as_deref().and_then(|raw| {
        parse_event_type(raw)
            .map_err(|message| errors.push(FieldError::new("eventType", message)))
            .ok()
    });
    if id.is_none() {
        let raw = input.id.as_deref().unwrap_or_default();
        errors.push(FieldError::new("id", not_a_uuid(raw)));
    }
    let account = input
        .account_id
        .as_deref()
        .map(AccountId::parse)
        .transpose()
        .unwrap_or_else(|m| {
            errors.push(FieldError::new("accountId", m));
            None
        });
    if let Some(resource_type) = &input.resource_type
        && (resource_type.is_empty() || resource_type.chars().count() > MAX_RESOURCE_TYPE_LENGTH)
    {
        errors.push(FieldError::new(
            "resourceType",
            format!("must be 1 to {MAX_RESOURCE_TYPE_LENGTH} characters"),
        ));
    }
    let resource_id = input.resource_id.as_deref().and_then(|raw| {
        let parsed = uuid::Uuid::parse_str(raw).ok();
        if parsed.is_none() {
            errors.push(FieldError::new("resourceId", not_a_uuid(raw)));
        }
        parsed
    });
    let timestamp = match input.timestamp.as_deref() {
        // Milliseconds, as every timestamp the service writes.
        None => Some(Utc::now().trunc_subsecs(3)),
        Some(raw) => {
            let parsed = DateTime::parse_from_rfc3339(raw)
                .ok()
                .map(|t| t.with_timezone(&Utc));
            if parsed.is_none() {
                errors.push(FieldError::new(
                    "timestamp",
                    "must be an RFC 3339 date-time with an offset, such as 2026-11-01T09:30:00Z",
                ));
            }
            parsed
        }
    };
    let data = match input.data {
        Some(raw) if nesting_depth(raw.get().as_bytes()) > MAX_DATA_DEPTH => {
            errors.push(FieldError::new(
                "data",
                format!("must nest objects and arrays at most {MAX_DATA_DEPTH} levels deep"),
            ));
            None
        }
        Some(raw) if raw.get().starts_with('{') => Some(raw),
        Some(_) => {
            errors.push(FieldError::new("data", "must be a JSON object"));
            None
        }
        None => None,
    };
    match (
        id,
        event_type,
        account,
        input.resource_type,
        resource_id,
        timestamp,
        data,
    ) {
        (
            Some(id),
            Some(event_type),
            Some(account_id),
            Some(resource_type),
            Some(resource_id),
            Some(timestamp),
            Some(data),
        ) if errors.is_empty() => Ok(PlatformEvent {
            id,
            event_type,
            account_id,
            resource_type,
            resource_id,
            timestamp,
            data,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

pub async fn ingest(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    require_scope(who, PUBLISH_SCOPE)?;
    require_json(&request.headers)?;
    let input: PlatformEventInput = parse_json_object(&request.body)?;
    let event = validate(input)?;
    let outcome = state
        .engine
        .ingest(vec![event])
        .await
        .pop()
        .unwrap_or_else(|| {
            Err(argus_webhooks_actors::EngineError::Internal(
                "the router returned no result".into(),
            ))
        })?;
    let status = if outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(json(status, &IngestView::from(&outcome)))
}

#[derive(Serialize)]
struct BatchItem {
    index: usize,
    status: u16,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    result: Option<IngestView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct BatchView {
    results: Vec<BatchItem>,
    accepted: usize,
    duplicates: usize,
    rejected: usize,
}

fn problem_item(index: usize, error: ApiError) -> BatchItem {
    BatchItem {
        index,
        status: error.status().as_u16(),
        result: None,
        problem: Some(error.to_problem()),
    }
}

pub async fn ingest_batch(
    state: &AppState,
    who: &Principal,
    request: &Request,
) -> Result<Response, ApiError> {
    require_scope(who, PUBLISH_SCOPE)?;
    require_json(&request.headers)?;
    // Items stay raw JSON, so each one's `data` keeps its exact bytes.
    let items: Vec<Box<serde_json::value::RawValue>> =
        parse_json_array(&request.body, "platform events")?;
    // Raw items skip serde_json's recursion limit, so check nesting here: the
    // batch array and an event object add two levels to `data`.
    if nesting_depth(&request.body) > MAX_DATA_DEPTH + 2 {
        return Err(ApiError::field(
            "(body)",
            format!(
                "must nest objects and arrays at most {} levels deep",
                MAX_DATA_DEPTH + 2
            ),
        ));
    }
    let max = state.settings.server.max_batch_events;
    if items.is_empty() || items.len() > max {
        return Err(ApiError::field(
            "(body)",
            format!("a batch holds 1 to {max} events; got {}", items.len()),
        ));
    }
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(items.len());
    let mut events = Vec::new();
    let mut positions = Vec::new();
    let item_limit = state.settings.server.max_body_bytes;
    for (index, item) in items.into_iter().enumerate() {
        // Each event gets the limit of the single-event endpoint.
        if item.get().len() > item_limit {
            results.push(Some(problem_item(
                index,
                ApiError::PayloadTooLarge(item_limit),
            )));
            continue;
        }
        let parsed =
            parse_json_object::<PlatformEventInput>(item.get().as_bytes()).and_then(validate);
        match parsed {
            Ok(event) => {
                positions.push(index);
                events.push(event);
                results.push(None);
            }
            Err(error) => results.push(Some(problem_item(index, error))),
        }
    }
    let outcomes = if events.is_empty() {
        Vec::new()
    } else {
        state.engine.ingest(events).await
    };
    for (index, outcome) in positions.into_iter().zip(outcomes) {
        results[index] = Some(match outcome {
            Ok(outcome) => BatchItem {
                index,
                status: if outcome.duplicate { 200 } else { 202 },
                result: Some(IngestView::from(&outcome)),
                problem: None,
            },
            Err(error) => problem_item(index, error.into()),
        });
    }
    let results: Vec<BatchItem> = results.into_iter().flatten().collect();
    let accepted = results.iter().filter(|r| r.status == 202).count();
    let duplicates = results.iter().filter(|r| r.status == 200).count();
    let rejected = results.len() - accepted - duplicates;
    // When the store rejected every item, the whole request failed. It returns
    // 503 like the single-event endpoint, so publishers that read only the
    // status retry the batch.
    if results.iter().all(|r| r.status == 503) {
        return Err(ApiError::Unavailable(
            "the store failed to write any event of the batch".into(),
        ));
    }
    Ok(json(
        StatusCode::OK,
        &BatchView {
            results,
            accepted,
            duplicates,
            rejected,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::nesting_depth;

    #[test]
    fn nesting_depth_ignores_strings() {
        assert_eq!(nesting_depth(br#"{"a":[1,{"b":2}]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a":"[[[{{{\"]]]"}"#), 1);
        assert_eq!(nesting_depth(br#"{}"#), 1);
    }

    #[test]
    fn nesting_depth_skips_escapes() {
        assert_eq!(nesting_depth(br#"{"a":"\\","b":[[1]]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a\"[":"\\\"{{","b":{}}"#), 2);
        assert_eq!(nesting_depth(br#"["x\u005b",["\\"]]"#), 2);
    }

    #[test]
    fn nesting_depth_stops_at_cut_text() {
        assert_eq!(nesting_depth(br#"[{"a":"\"#), 2);
        assert_eq!(nesting_depth(br#"[["unclosed"#), 2);
    }
}
