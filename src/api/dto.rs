//! Request and response bodies, and their conversion from and to the engine's
//! domain types. Requests are parsed leniently into optional fields and then
//! validated, so every problem names its field.

use argus_webhooks_actors::FieldError;
use argus_webhooks_actors::model::{
    EndpointUrl, EventRecord, EventType, MAX_DESCRIPTION_LENGTH, RetryPolicy, SigningSecret,
    Subscription, SubscriptionSpec,
};
use argus_webhooks_actors::{IngestOutcome, TestResult};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::fields::{present, present_integer};
use super::subscriptions::truncate;
use crate::config::LimitSettings;
use crate::problem::ApiError;

/// Parses an event type from a body, a query or a path, naming the accepted
/// values and echoing the one given when it is unknown.
pub fn parse_event_type(raw: &str) -> Result<EventType, String> {
    raw.parse::<EventType>()
        .map_err(|message| format!("{message}; got '{}'", truncate(raw)))
}

pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

// --- subscriptions -----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubscriptionInput {
    #[serde(default, deserialize_with = "present")]
    pub url: Option<String>,
    /// Names of event types, parsed in validation so an unknown one is a
    /// field error like any other.
    #[serde(default, deserialize_with = "present")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub retry_policy: Option<RetryPolicyInput>,
    #[serde(default, deserialize_with = "present")]
    pub secret: Option<String>,
    // Output-only fields of the `Subscription` response, so a client can PUT
    // back what GET returned. Updates ignore them and creates reject them.
    // `secret` is not among them: updates reject it too.
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(default)]
    status: Option<IgnoredAny>,
    #[serde(default)]
    status_reason: Option<IgnoredAny>,
    #[serde(default)]
    created_at: Option<IgnoredAny>,
    #[serde(default)]
    updated_at: Option<IgnoredAny>,
    #[serde(default)]
    previous_secret_expires_at: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryPolicyInput {
    #[serde(default, deserialize_with = "present_integer")]
    pub max_retries: Option<i64>,
    #[serde(default, deserialize_with = "present_integer")]
    pub retry_interval_seconds: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub backoff_multiplier: Option<f64>,
}

impl SubscriptionInput {
    /// Names the output-only `Subscription` fields present in the body.
    pub fn read_only_fields(&self) -> Vec<&'static str> {
        [
            ("id", self.id.is_some()),
            ("status", self.status.is_some()),
            ("statusReason", self.status_reason.is_some()),
            ("createdAt", self.created_at.is_some()),
            ("updatedAt", self.updated_at.is_some()),
            (
                "previousSecretExpiresAt",
                self.previous_secret_expires_at.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
    }

    /// Validates every field, collecting all problems at once.
    pub fn into_spec(
        self,
        allow_http: bool,
        limits: &LimitSettings,
    ) -> Result<(SubscriptionSpec, Option<SigningSecret>), ApiError> {
        let mut errors = Vec::new();
        let max_url = limits.max_url_length;
        let url = match self.url.as_deref() {
            None => {
                let schemes = if allow_http {
                    "an https or http"
                } else {
                    "an https"
                };
                errors.push(FieldError::new(
                    "url",
                    format!("is required: {schemes} URL of at most {max_url} characters"),
                ));
                None
            }
            Some(raw) if raw.chars().count() > max_url => {
                errors.push(FieldError::new(
                    "url",
                    format!("must be at most {max_url} characters"),
                ));
                None
            }
            Some(raw) => match EndpointUrl::parse(raw, allow_http) {
                Ok(url) => Some(url),
                Err(message) => {
                    errors.push(FieldError::new("url", message));
                    None
                }
            },
        };
        let event_types = match self.event_types {
            None => {
                errors.push(FieldError::new(
                    "eventTypes",
                    "is required: a non-empty list of event types",
                ));
                Vec::new()
            }
            Some(types) if types.is_empty() => {
                errors.push(FieldError::new(
                    "eventTypes",
                    format!(
                        "must hold at least one of: {}",
                        EventType::accepted_values()
                    ),
                ));
                Vec::new()
            }
            Some(names) => {
                let mut types = Vec::with_capacity(names.len());
                for (index, name) in names.iter().enumerate() {
                    match parse_event_type(name) {
                        Ok(event_type) => types.push(event_type),
                        Err(message) => {
                            errors.push(FieldError::new(format!("eventTypes[{index}]"), message))
                        }
                    }
                }
                let mut sorted = types.clone();
                sorted.sort();
                sorted.dedup();
                if sorted.len() != types.len() {
                    errors.push(FieldError::new(
                        "eventTypes",
                        "must not list an event type twice",
                    ));
                }
                let max_types = limits.max_event_types_per_subscription;
                if sorted.len() > max_types {
                    errors.push(FieldError::new(
                        "eventTypes",
                        format!(
                            "must list at most {max_types} event types; got {}",
                            sorted.len()
                        ),
                    ));
                }
                // In the order given, so a GET returns the list as it was sent.
                types
            }
        };
        if let Some(description) = &self.description
            && description.chars().count() > MAX_DESCRIPTION_LENGTH
        {
            errors.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LENGTH} characters"),
            ));
        }
        let retry_policy = match self.retry_policy {
            None => RetryPolicy::default(),
            Some(input) => RetryPolicy::parse(
                "retryPolicy",
                input.max_retries,
                input.retry_interval_seconds,
                input.backoff_multiplier,
            )
            .unwrap_or_else(|mut e| {
                errors.append(&mut e);
                RetryPolicy::default()
            }),
        };
        let secret = match self.secret.as_deref() {
            None => None,
            Some(raw) => match SigningSecret::parse(raw) {
                Ok(secret) => Some(secret),
                Err(message) => {
                    errors.push(FieldError::new("secret", message));
                    None
                }
            },
        };
        match url {
            Some(url) if errors.is_empty() => Ok((
                SubscriptionSpec {
                    url,
                    event_types,
                    description: self.description,
                    retry_policy,
                },
                secret,
            )),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub retry_policy: RetryPolicy,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<String>,
}

impl SubscriptionView {
    /// Builds the public view; `with_secret` adds the secret for create and rotate only.
    pub fn new(sub: &Subscription, with_secret: bool) -> Self {
        Self {
            id: sub.id.to_string(),
            url: sub.url.to_string(),
            event_types: sub.event_types.clone(),
            status: sub.status.as_str(),
            status_reason: sub.status_reason.clone(),
            description: sub.description.clone(),
            retry_policy: sub.retry_policy,
            created_at: timestamp(&sub.created_at),
            updated_at: timestamp(&sub.updated_at),
            secret: with_secret.then(|| sub.secret.expose()),
            previous_secret_expires_at: None,
        }
    }
}

#[derive(Serialize)]
pub struct SubscriptionList {
    pub data: Vec<SubscriptionView>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateInput {
    #[serde(default, deserialize_with = "present_integer")]
    pub grace_period_seconds: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResultView {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<u16>,
    pub response_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl From<TestResult> for TestResultView {
    fn from(result: TestResult) -> Self {
        Self {
            success: result.success,
            response_code: result.response_code,
            response_time: result.response_time_ms,
            error_message: result.error_message,
        }
    }
}

// --- events ------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub attempt_number: u32,
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<u16>,
    pub response_time: u64,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: String,
    pub subscription_id: String,
    pub event_type: &'static str,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub payload: Box<RawValue>,
    pub delivery_attempts: Vec<AttemptView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl EventView {
    pub fn new(event: &EventRecord) -> Self {
        let payload = RawValue::from_string(event.payload.clone())
            .unwrap_or_else(|_| RawValue::from_string("{}".into()).expect("{} is JSON"));
        Self {
            id: event.id.to_string(),
            subscription_id: event.subscription_id.to_string(),
            event_type: event.event_type.as_str(),
            status: event.status.as_str(),
            status_reason: event.status_reason.clone(),
            payload,
            delivery_attempts: event
                .attempts
                .iter()
                .map(|a| AttemptView {
                    attempt_number: a.attempt_number,
                    timestamp: timestamp(&a.timestamp),
                    response_code: a.response_code,
                    response_time: a.response_time_ms,
                    success: a.success,
                    error_message: a.error_message.clone(),
                    response_body: a.response_body.clone(),
                })
                .collect(),
            next_attempt_at: event.next_attempt_at.as_ref().map(timestamp),
            created_at: timestamp(&event.created_at),
            updated_at: timestamp(&event.updated_at),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: u32,
    pub page_size: u32,
    pub total_items: u64,
    pub total_pages: u64,
}

#[derive(Serialize)]
pub struct EventList {
    pub data: Vec<EventView>,
    pub pagination: Pagination,
}

// --- ingest ------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformEventInput {
    #[serde(default, deserialize_with = "present")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub event_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub account_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub resource_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub resource_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub timestamp: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub data: Option<Box<RawValue>>,
}

#[derive(Serialize)]
pub struct DeliveryRef {
    pub id: String,
    #[serde(rename = "subscriptionId")]
    pub subscription_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestView {
    pub event_id: String,
    pub deliveries: usize,
    pub events: Vec<DeliveryRef>,
    pub duplicate: bool,
}

impl From<&IngestOutcome> for IngestView {
    fn from(outcome: &IngestOutcome) -> Self {
        Self {
            event_id: outcome.event_id.to_string(),
            deliveries: outcome.deliveries.len(),
            events: outcome
                .deliveries
                .iter()
                .map(|(event, sub)| DeliveryRef {
                    id: event.to_string(),
                    subscription_id: sub.to_string(),
                })
                .collect(),
            duplicate: outcome.duplicate,
        }
    }
}

// --- health ------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    pub status: &'static str,
    pub queue_depth: u64,
    pub recent_error_rate: f64,
    pub uptime: String,
    pub last_checked: String,
}

/// Formats a duration as ISO 8601, e.g. `PT1H2M3S`.
pub fn iso8601_duration(duration: std::time::Duration) -> String {
    let total = duration.as_secs();
    let (days, rest) = (total / 86_400, total % 86_400);
    let (hours, minutes, seconds) = (rest / 3600, (rest % 3600) / 60, rest % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    out.push('T');
    if hours > 0 {
        out.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}M"));
    }
    out.push_str(&format!("{seconds}S"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_durations() {
        use std::time::Duration;
        assert_eq!(iso8601_duration(Duration::from_secs(0)), "PT0S");
        assert_eq!(iso8601_duration(Duration::from_secs(3723)), "PT1H2M3S");
        assert_eq!(iso8601_duration(Duration::from_secs(90_061)), "P1DT1H1M1S");
    }
}
