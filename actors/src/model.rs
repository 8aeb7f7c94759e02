//! Domain types. Every value that crosses the API boundary is parsed once into
//! one of these types, so actors and the store never see unchecked strings.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::FieldError;

pub(crate) mod stored_time;

/// Maximum length of an endpoint URL, in characters.
pub const MAX_URL_LENGTH: usize = 2048;
/// Maximum length of a subscription description, in characters.
pub const MAX_DESCRIPTION_LENGTH: usize = 1024;
/// Maximum length of an account id, in characters.
pub const MAX_ACCOUNT_ID_LENGTH: usize = 128;
/// Maximum length of a resource type, in characters.
pub const MAX_RESOURCE_TYPE_LENGTH: usize = 64;

macro_rules! uuid_id {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl $name {
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                Uuid::from_slice(bytes).ok().map(Self)
            }
        }
    };
}

uuid_id!(SubscriptionId, "Identifier of one subscription (UUID v4).");
uuid_id!(
    EventId,
    "Identifier of one subscription's copy of a platform event (UUID v7, so ids sort by creation time)."
);
uuid_id!(
    PlatformEventId,
    "Identifier of a platform event, shared by every copy of it."
);

impl EventId {
    /// Creates a new time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Returns the creation time embedded in the UUID v7, in milliseconds since the epoch.
    pub fn created_millis(&self) -> i64 {
        match self.0.get_timestamp() {
            Some(ts) => {
                let (secs, nanos) = ts.to_unix();
                secs as i64 * 1000 + (nanos / 1_000_000) as i64
            }
            None => 0,
        }
    }

    /// Returns the creation time embedded in the id.
    pub fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.created_millis()).unwrap_or_default()
    }

    /// Returns the smallest id created at `millis`, for range scans by time.
    pub fn min_at(millis: i64) -> Self {
        let mut bytes = [0u8; 16];
        let millis = millis.max(0) as u64;
        bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        Self(Uuid::from_bytes(bytes))
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

/// The 16 platform event types of the contract, in contract order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "property.created")]
    PropertyCreated,
    #[serde(rename = "property.updated")]
    PropertyUpdated,
    #[serde(rename = "property.deleted")]
    PropertyDeleted,
    #[serde(rename = "valuation.created")]
    ValuationCreated,
    #[serde(rename = "valuation.updated")]
    ValuationUpdated,
    #[serde(rename = "lease.created")]
    LeaseCreated,
    #[serde(rename = "lease.updated")]
    LeaseUpdated,
    #[serde(rename = "lease.expired")]
    LeaseExpired,
    #[serde(rename = "portfolio.created")]
    PortfolioCreated,
    #[serde(rename = "portfolio.updated")]
    PortfolioUpdated,
    #[serde(rename = "portfolio.deleted")]
    PortfolioDeleted,
    #[serde(rename = "report.completed")]
    ReportCompleted,
    #[serde(rename = "report.failed")]
    ReportFailed,
    #[serde(rename = "cashflow.updated")]
    CashflowUpdated,
    #[serde(rename = "tenant.created")]
    TenantCreated,
    #[serde(rename = "tenant.updated")]
    TenantUpdated,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::PropertyCreated,
        EventType::PropertyUpdated,
        EventType::PropertyDeleted,
        EventType::ValuationCreated,
        EventType::ValuationUpdated,
        EventType::LeaseCreated,
        EventType::LeaseUpdated,
        EventType::LeaseExpired,
        EventType::PortfolioCreated,
        EventType::PortfolioUpdated,
        EventType::PortfolioDeleted,
        EventType::ReportCompleted,
        EventType::ReportFailed,
        EventType::CashflowUpdated,
        EventType::TenantCreated,
        EventType::TenantUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PropertyCreated => "property.created",
            EventType::PropertyUpdated => "property.updated",
            EventType::PropertyDeleted => "property.deleted",
            EventType::ValuationCreated => "valuation.created",
            EventType::ValuationUpdated => "valuation.updated",
            EventType::LeaseCreated => "lease.created",
            EventType::LeaseUpdated => "lease.updated",
            EventType::LeaseExpired => "lease.expired",
            EventType::PortfolioCreated => "portfolio.created",
            EventType::PortfolioUpdated => "portfolio.updated",
            EventType::PortfolioDeleted => "portfolio.deleted",
            EventType::ReportCompleted => "report.completed",
            EventType::ReportFailed => "report.failed",
            EventType::CashflowUpdated => "cashflow.updated",
            EventType::TenantCreated => "tenant.created",
            EventType::TenantUpdated => "tenant.updated",
        }
    }

    /// Position in [`EventType::ALL`], used as a compact code in index entries.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// Returns the accepted values, for error messages.
    pub fn accepted_values() -> String {
        Self::ALL.map(|t| t.as_str()).join(", ")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("must be one of: {}", Self::accepted_values()))
    }
}

/// A set of event types stored as a bit mask, for the routing index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventTypeSet(u16);

impl EventTypeSet {
    pub fn of(types: &[EventType]) -> Self {
        Self(types.iter().fold(0, |mask, t| mask | (1 << t.code())))
    }

    pub fn contains(self, event_type: EventType) -> bool {
        self.0 & (1 << event_type.code()) != 0
    }

    pub fn intersects(self, other: EventTypeSet) -> bool {
        self.0 & other.0 != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscriptionStatus {
    Active,
    Paused,
    Disabled,
}

impl SubscriptionStatus {
    pub const ALL: [SubscriptionStatus; 3] = [Self::Active, Self::Paused, Self::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Paused => "Paused",
            Self::Disabled => "Disabled",
        }
    }
}

impl FromStr for SubscriptionStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| "must be one of: Active, Paused, Disabled".to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventStatus {
    Pending,
    Retrying,
    Delivered,
    Failed,
}

impl EventStatus {
    pub const ALL: [EventStatus; 4] =
        [Self::Pending, Self::Retrying, Self::Delivered, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Retrying => "Retrying",
            Self::Delivered => "Delivered",
            Self::Failed => "Failed",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed)
    }
}

impl FromStr for EventStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| "must be one of: Pending, Delivered, Failed, Retrying".to_string())
    }
}

/// Retry settings of one subscription, within the contract's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub retry_interval_seconds: u32,
    pub backoff_multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            retry_interval_seconds: 60,
            backoff_multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    pub const MAX_RETRIES: u32 = 10;
    pub const MIN_INTERVAL_SECONDS: u32 = 10;
    pub const MAX_INTERVAL_SECONDS: u32 = 3600;
    pub const MIN_MULTIPLIER: f64 = 1.0;
    pub const MAX_MULTIPLIER: f64 = 5.0;

    /// Builds a policy from optional parts, filling defaults and checking every
    /// bound. Errors name the field below `prefix`.
    pub fn parse(
        prefix: &str,
        max_retries: Option<i64>,
        retry_interval_seconds: Option<i64>,
        backoff_multiplier: Option<f64>,
    ) -> Result<Self, Vec<FieldError>> {
        let defaults = Self::default();
        let mut errors = Vec::new();
        let max_retries = match max_retries {
            None => defaults.max_retries,
            Some(v) if (0..=Self::MAX_RETRIES as i64).contains(&v) => v as u32,
            Some(v) => {
                errors.push(FieldError::new(
                    format!("{prefix}.maxRetries"),
                    format!(
                        "must be an integer from 0 to {}; got {v}",
                        Self::MAX_RETRIES
                    ),
                ));
                0
            }
        };
        let interval = match retry_interval_seconds {
            None => defaults.retry_interval_seconds,
            Some(v)
                if (Self::MIN_INTERVAL_SECONDS as i64..=Self::MAX_INTERVAL_SECONDS as i64)
                    .contains(&v) =>
            {
                v as u32
            }
            Some(v) => {
                errors.push(FieldError::new(
                    format!("{prefix}.retryIntervalSeconds"),
                    format!(
                        "must be an integer from {} to {} seconds; got {v}",
                        Self::MIN_INTERVAL_SECONDS,
                        Self::MAX_INTERVAL_SECONDS
                    ),
                ));
                0
            }
        };
        let multiplier = match backoff_multiplier {
            None => defaults.backoff_multiplier,
            Some(v)
                if v.is_finite() && (Self::MIN_MULTIPLIER..=Self::MAX_MULTIPLIER).contains(&v) =>
            {
                v
            }
            Some(v) => {
                errors.push(FieldError::new(
                    format!("{prefix}.backoffMultiplier"),
                    format!("must be a number from 1.0 to 5.0; got {v}"),
                ));
                0.0
            }
        };
        if errors.is_empty() {
            Ok(Self {
                max_retries,
                retry_interval_seconds: interval,
                backoff_multiplier: multiplier,
            })
        } else {
            Err(errors)
        }
    }
}

/// Account that owns subscriptions and events, taken from the token's
/// `account_id` claim or the ingested event. Only visible ASCII (0x21 to
/// 0x7E), so ids such as `acme@corp` and `auth0|123` work, while the store's
/// 0x00 key separator, control characters and spaces never appear in one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(value: &str) -> Result<Self, String> {
        let valid_chars = value.bytes().all(|b| b.is_ascii_graphic());
        if value.is_empty() || value.len() > MAX_ACCOUNT_ID_LENGTH || !valid_chars {
            return Err(format!(
                "must be 1 to {MAX_ACCOUNT_ID_LENGTH} visible ASCII characters (no spaces or control characters)"
            ));
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AccountId> for String {
    fn from(value: AccountId) -> Self {
        value.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subscription endpoint URL that passed the syntax rules: http(s), a host,
/// no user info, at most [`MAX_URL_LENGTH`] characters. Whether its address may
/// be reached is the delivery client's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointUrl(String);

impl EndpointUrl {
    /// Parses a URL. `allow_http` permits the `http` scheme.
    pub fn parse(value: &str, allow_http: bool) -> Result<Self, String> {
        if value.chars().count() > MAX_URL_LENGTH {
            return Err(format!("must be at most {MAX_URL_LENGTH} characters"));
        }
        let url = url::Url::parse(value).map_err(|e| format!("must be an absolute URL ({e})"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => {
                return Err(
                    "must use https (http is not allowed by this service's configuration)".into(),
                );
            }
            other if allow_http => {
                return Err(format!("must use https or http; got scheme '{other}'"));
            }
            other => return Err(format!("must use https; got scheme '{other}'")),
        }
        if url.host().is_none() || url.host_str() == Some("") {
            return Err("must name a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain user info (user:password@)".into());
        }
        if url.fragment().is_some() {
            return Err("must not contain a fragment (#...)".into());
        }
        // Kept as given, so the API returns what the client sent; comparisons
        // use the normalised form.
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the WHATWG-normalised form (lower-case host, default port dropped,
    /// IP literals in canonical form), for comparing two URLs.
    pub fn normalized(&self) -> String {
        self.to_url().to_string()
    }

    pub fn to_url(&self) -> url::Url {
        url::Url::parse(&self.0)
            .expect("an EndpointUrl contains a URL that was parsed when it was created")
    }
}

impl TryFrom<String> for EndpointUrl {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        // Stored URLs were checked when they were accepted; http stays readable
        // even if the configuration has since been tightened.
        Self::parse(&value, true)
    }
}

impl From<EndpointUrl> for String {
    fn from(value: EndpointUrl) -> Self {
        value.0
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Standard base64 that decodes input with or without `=` padding.
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A Standard Webhooks signing secret: `whsec_` followed by base64 of 24 to 64
/// bytes. `Debug` never prints the key, and `expose` always pads.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    pub const PREFIX: &'static str = "whsec_";
    pub const MIN_KEY_BYTES: usize = 24;
    pub const MAX_KEY_BYTES: usize = 64;

    /// Generates a secret of 32 random bytes.
    pub fn generate() -> Self {
        let key: [u8; 32] = rand::random();
        Self { key: key.to_vec() }
    }

    /// Parses `whsec_` plus standard base64 with or without `=` padding,
    /// because several Standard Webhooks libraries print secrets unpadded.
    pub fn parse(value: &str) -> Result<Self, String> {
        let accepted =
            "must be 'whsec_' followed by standard base64 (padding optional) of 24 to 64 bytes";
        let encoded = value.strip_prefix(Self::PREFIX).ok_or(accepted)?;
        let key = BASE64_ANY_PADDING
            .decode(encoded)
            .map_err(|_| accepted.to_string())?;
        if !(Self::MIN_KEY_BYTES..=Self::MAX_KEY_BYTES).contains(&key.len()) {
            return Err(format!("{accepted}; the key has {} bytes", key.len()));
        }
        Ok(Self { key })
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Returns the secret in its `whsec_` form, for the create and rotate responses only.
    pub fn expose(&self) -> String {
        format!("{}{}", Self::PREFIX, BASE64.encode(&self.key))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl TryFrom<String> for SigningSecret {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SigningSecret> for String {
    fn from(value: SigningSecret) -> Self {
        value.expose()
    }
}

/// A secret replaced by rotation, still used to sign until `expires_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousSecret {
    pub secret: SigningSecret,
    pub expires_at: DateTime<Utc>,
}

/// A stored subscription.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: SubscriptionId,
    pub account_id: AccountId,
    pub url: EndpointUrl,
    /// Sorted and free of duplicates.
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    pub retry_policy: RetryPolicy,
    pub status: SubscriptionStatus,
    pub status_reason: Option<String>,
    pub secret: SigningSecret,
    pub previous_secret: Option<PreviousSecret>,
    /// Events in a row that ended Failed; reset by any delivered event.
    #[serde(default)]
    pub consecutive_failures: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    pub fn event_type_set(&self) -> EventTypeSet {
        EventTypeSet::of(&self.event_types)
    }

    /// Returns the secrets that sign a request sent at `now`: the current one, and the
    /// previous one while its grace period lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<SigningSecret> {
        let mut secrets = vec![self.secret.clone()];
        if let Some(previous) = &self.previous_secret
            && previous.expires_at > now
        {
            secrets.push(previous.secret.clone());
        }
        secrets
    }
}

/// The validated fields of a create or update request.
#[derive(Clone, Debug)]
pub struct SubscriptionSpec {
    pub url: EndpointUrl,
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    pub retry_policy: RetryPolicy,
}

/// One recorded delivery attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    pub attempt_number: u32,
    #[serde(serialize_with = "stored_time::serialize")]
    pub timestamp: DateTime<Utc>,
    pub response_code: Option<u16>,
    /// Milliseconds from the start of the attempt to its end.
    pub response_time_ms: u64,
    pub success: bool,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
}

/// One subscription's copy of a platform event, with its delivery history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub id: EventId,
    pub subscription_id: SubscriptionId,
    pub account_id: AccountId,
    pub event_type: EventType,
    pub platform_event_id: PlatformEventId,
    pub status: EventStatus,
    /// The exact JSON bytes sent on every attempt. The store keeps them
    /// after the record's JSON, or once in the platform event's ingest
    /// record when `shared_payload` is set, so this field is not serialised.
    /// Records of store format 1 carry it inside the JSON. Records that
    /// `Store::get_event` and listings return have it.
    #[serde(default, skip_serializing)]
    pub payload: String,
    /// The payload is kept once in the ingest record of the platform event,
    /// for all of the event's copies, and not in this record.
    #[serde(skip)]
    pub shared_payload: bool,
    pub attempts: Vec<DeliveryAttempt>,
    /// Attempts made since the event was queued or last manually retried.
    pub round_attempts: u32,
    #[serde(serialize_with = "stored_time::option::serialize")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub status_reason: Option<String>,
    #[serde(serialize_with = "stored_time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "stored_time::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl EventRecord {
    /// Returns a new Pending copy of a platform event for one subscription,
    /// accepted at `accepted_at`. `payload` is left empty when it is shared.
    pub fn pending_copy(
        (id, subscription_id): (EventId, SubscriptionId),
        account_id: AccountId,
        event_type: EventType,
        platform_event_id: PlatformEventId,
        payload: String,
        shared_payload: bool,
        accepted_at: DateTime<Utc>,
    ) -> EventRecord {
        EventRecord {
            id,
            subscription_id,
            account_id,
            event_type,
            platform_event_id,
            status: EventStatus::Pending,
            payload,
            shared_payload,
            attempts: Vec::new(),
            round_attempts: 0,
            next_attempt_at: None,
            status_reason: None,
            created_at: id.created_at(),
            updated_at: accepted_at,
        }
    }

    /// Returns the Pending copies of a platform event that share its
    /// payload, one per `(event id, subscription id)` of `deliveries`.
    pub fn shared_copies<'a>(
        deliveries: &'a [(EventId, SubscriptionId)],
        account_id: &'a AccountId,
        event_type: EventType,
        platform_event_id: PlatformEventId,
        accepted_at: DateTime<Utc>,
    ) -> impl Iterator<Item = EventRecord> + 'a {
        deliveries.iter().map(move |&delivery| {
            EventRecord::pending_copy(
                delivery,
                account_id.clone(),
                event_type,
                platform_event_id,
                String::new(),
                true,
                accepted_at,
            )
        })
    }
}

/// A validated platform event, as accepted by the ingest endpoint.
#[derive(Clone, Debug)]
pub struct PlatformEvent {
    pub id: PlatformEventId,
    pub event_type: EventType,
    pub account_id: AccountId,
    pub resource_type: String,
    pub resource_id: Uuid,
    pub timestamp: DateTime<Utc>,
    /// The `data` object exactly as the platform sent it, so key order and
    /// number precision reach the endpoint unchanged.
    pub data: Box<serde_json::value::RawValue>,
}

impl PlatformEvent {
    /// Serialises the payload that every subscription receives, byte for byte.
    pub fn payload_json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload<'a> {
            event_id: &'a Uuid,
            event_type: &'a str,
            timestamp: String,
            resource_type: &'a str,
            resource_id: &'a Uuid,
            data: &'a serde_json::value::RawValue,
        }
        serde_json::to_string(&Payload {
            event_id: &self.id.0,
            event_type: self.event_type.as_str(),
            timestamp: self
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            resource_type: &self.resource_type,
            resource_id: &self.resource_id,
            data: &self.data,
        })
        .expect("a JSON map always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_round_trips_through_code() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_code(t.code()), Some(t));
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
    }

    #[test]
    fn endpoint_url_rules() {
        assert!(EndpointUrl::parse("https://example.com/hook", false).is_ok());
        let given = EndpointUrl::parse("https://Example.COM:443", false).unwrap();
        assert_eq!(given.as_str(), "https://Example.COM:443");
        assert_eq!(given.normalized(), "https://example.com/");
        assert!(EndpointUrl::parse("http://example.com/hook", false).is_err());
        assert!(EndpointUrl::parse("http://example.com/hook", true).is_ok());
        assert!(EndpointUrl::parse("https://user:pw@example.com/", false).is_err());
        assert!(EndpointUrl::parse("ftp://example.com/", true).is_err());
        assert!(EndpointUrl::parse("/relative", true).is_err());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LENGTH));
        assert!(EndpointUrl::parse(&long, false).is_err());
    }

    #[test]
    fn signing_secret_bounds() {
        let secret = SigningSecret::generate();
        assert_eq!(SigningSecret::parse(&secret.expose()).unwrap(), secret);
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err());
        let unpadded = secret.expose().trim_end_matches('=').to_string();
        assert_ne!(unpadded, secret.expose(), "32 bytes encode with padding");
        assert_eq!(SigningSecret::parse(&unpadded).unwrap(), secret);
        assert_eq!(
            SigningSecret::parse(&unpadded).unwrap().expose(),
            secret.expose()
        );
        assert!(SigningSecret::parse("nope").is_err());
        assert!(!format!("{secret:?}").contains(&secret.expose()[6..]));
    }

    #[test]
    fn retry_policy_bounds() {
        assert_eq!(
            RetryPolicy::parse("p", None, None, None).unwrap(),
            RetryPolicy::default()
        );
        assert!(RetryPolicy::parse("p", Some(11), None, None).is_err());
        assert!(RetryPolicy::parse("p", None, Some(9), None).is_err());
        assert!(RetryPolicy::parse("p", None, Some(3601), None).is_err());
        assert!(RetryPolicy::parse("p", None, None, Some(0.5)).is_err());
        assert!(RetryPolicy::parse("p", None, None, Some(f64::NAN)).is_err());
        assert!(RetryPolicy::parse("p", Some(0), Some(10), Some(5.0)).is_ok());
    }

    #[test]
    fn event_id_time_bounds() {
        let id = EventId::new();
        let millis = id.created_millis();
        assert!(EventId::min_at(millis) <= id);
        assert!(EventId::min_at(millis + 1) > id);
    }
}
