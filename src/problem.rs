//! The one API error type and its mapping to RFC 9457 problem responses.
//! 4xx bodies state what was wrong and what is accepted; 5xx bodies are opaque
//! and the cause is logged.

use argus_webhooks_actors::{EngineError, FieldError};
use serde::Serialize;
use warp::http::StatusCode;
use warp::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use warp::reply::Response;

/// Seconds a client is asked to wait before it retries a 503.
const UNAVAILABLE_RETRY_AFTER: &str = "5";

/// Returns serde's message about a field without its position in the
/// document, for example "unknown variant `x`, expected one of …".
fn field_message(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    message.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("malformed request body: {0}")]
    MalformedBody(String, Option<String>),
    #[error("authentication required")]
    MissingToken,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A path id that is not a UUID, so it cannot name any resource.
    #[error("malformed path id: {}", .0.field)]
    MalformedId(FieldError),
    #[error("method not allowed")]
    MethodNotAllowed(Vec<&'static str>),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A configured limit, such as subscriptions per account, is reached.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("body too large")]
    PayloadTooLarge(usize),
    /// The request body did not fully arrive within the deadline.
    #[error("request body timed out after {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("endpoint verification failed: {0}")]
    VerificationFailed(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_)
            | ApiError::MalformedBody(..)
            | ApiError::VerificationFailed(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingToken | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::MalformedId(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            // 409: the request conflicts with the account's current state and
            // succeeds once the caller frees room, for example by a delete.
            ApiError::Conflict(_) | ApiError::LimitExceeded(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Validation(_) => ("validation-error", "Invalid request"),
            ApiError::MalformedBody(..) => ("malformed-body", "Malformed request body"),
            ApiError::VerificationFailed(_) => {
                ("verification-failed", "Endpoint verification failed")
            }
            ApiError::MissingToken | ApiError::InvalidToken(_) => ("unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => ("forbidden", "Forbidden"),
            ApiError::NotFound(_) | ApiError::MalformedId(_) => ("not-found", "Not found"),
            ApiError::MethodNotAllowed(_) => ("method-not-allowed", "Method not allowed"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::LimitExceeded(_) => ("limit-exceeded", "Limit exceeded"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            ApiError::RequestTimeout(_) => ("request-timeout", "Request timeout"),
            ApiError::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            ApiError::Unavailable(_) => ("service-unavailable", "Service unavailable"),
            ApiError::Internal(_) => ("internal-error", "Internal server error"),
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::Validation(errors) => {
                let fields: Vec<_> = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                format!("The request has invalid fields. {}", fields.join("; "))
            }
            ApiError::MalformedBody(message, _) => {
                format!("The request body is not valid JSON for this operation: {message}")
            }
            ApiError::MissingToken => "Send a bearer token: 'Authorization: Bearer <JWT>'.".into(),
            ApiError::InvalidToken(reason) => format!("The bearer token was rejected: {reason}."),
            ApiError::Forbidden(reason) => reason.clone(),
            ApiError::NotFound(what) if what == "route" => {
                "No route matches this method and path. GET /v1/openapi.json lists the API.".into()
            }
            ApiError::NotFound(what) => format!("No {what} with this id exists in your account."),
            ApiError::MalformedId(error) => format!(
                "No resource has this id: {} {}.",
                error.field, error.message
            ),
            ApiError::MethodNotAllowed(allowed) => {
                format!("This path accepts: {}.", allowed.join(", "))
            }
            ApiError::Conflict(reason) => reason.clone(),
            ApiError::LimitExceeded(reason) => format!(
                "A configured limit is reached: {reason}. Delete one to make room, or ask the operator to raise the limit."
            ),
            ApiError::PayloadTooLarge(limit) => {
                format!("The request body exceeds the limit of {limit} bytes.")
            }
            ApiError::RequestTimeout(deadline) => format!(
                "The request body did not fully arrive within {} seconds. Send the whole body promptly.",
                deadline.as_secs_f64()
            ),
            ApiError::UnsupportedMediaType => {
                "Send the body as 'Content-Type: application/json'.".into()
            }
            ApiError::VerificationFailed(reason) => format!(
                "The endpoint did not pass verification: {reason}. It must respond to the signed webhook.verification request with a 2xx status and a body that is the challenge, the challenge as a JSON string, or {{\"challenge\": \"<challenge>\"}}."
            ),
            ApiError::Unavailable(_) => {
                "The service cannot take this request right now: its store is unavailable, it is shutting down, or a subscription actor is restarting. Retry the request later.".into()
            }
            ApiError::Internal(_) => {
                "The service failed to process the request. The error was logged.".into()
            }
        }
    }

    /// Returns the RFC 9457 problem document of this error.
    pub fn to_problem(&self) -> serde_json::Value {
        let (slug, title) = self.slug_and_title();
        let field_errors = match self {
            ApiError::Validation(errors) => Some(errors.clone()),
            ApiError::MalformedId(error) => Some(vec![error.clone()]),
            ApiError::MalformedBody(message, Some(field)) => {
                Some(vec![FieldError::new(field.clone(), field_message(message))])
            }
            _ => None,
        };
        let problem = Problem {
            kind: format!("urn:argus-webhooks:problem:{slug}"),
            title,
            status: self.status().as_u16(),
            detail: self.detail(),
            errors: field_errors.as_deref(),
        };
        serde_json::to_value(&problem).expect("problems always serialise")
    }

    /// Renders the problem response; 5xx causes are logged here, not sent.
    pub fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let problem = self.to_problem();
        let body = serde_json::to_vec(&problem).expect("problems always serialise");
        let mut response = Response::new(body.into());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::MissingToken => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"argus-webhooks\""),
                );
            }
            ApiError::InvalidToken(_) => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"argus-webhooks\", error=\"invalid_token\"",
                    ),
                );
            }
            // RFC 6750, section 3.1: a token without the needed scope.
            ApiError::Forbidden(_) => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"argus-webhooks\", error=\"insufficient_scope\"",
                    ),
                );
            }
            ApiError::Unavailable(_) => {
                headers.insert(
                    RETRY_AFTER,
                    HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER),
                );
            }
            ApiError::MethodNotAllowed(allowed) => {
                if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                    headers.insert("allow", value);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound(what) => ApiError::NotFound(what.to_string()),
            EngineError::Conflict(reason) => ApiError::Conflict(reason),
            EngineError::Validation(errors) => ApiError::Validation(errors),
            EngineError::VerificationFailed(reason) => ApiError::VerificationFailed(reason),
            EngineError::LimitReached(reason) => ApiError::LimitExceeded(reason),
            EngineError::Unavailable(reason) => ApiError::Unavailable(reason),
            EngineError::Internal(reason) => ApiError::Internal(reason),
        }
    }
}
