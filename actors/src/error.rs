//! Errors the engine returns to its callers.

use serde::Serialize;

/// One invalid input field and what is accepted there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Failure of an engine operation. Each variant maps to one HTTP status in
/// the service crate.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("endpoint verification failed: {0}")]
    VerificationFailed(String),
    #[error("limit reached: {0}")]
    LimitReached(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::store::StoreError> for EngineError {
    fn from(error: crate::store::StoreError) -> Self {
        EngineError::Unavailable(error.to_string())
    }
}

impl From<crate::delivery::VerifyError> for EngineError {
    /// Maps a blocked or unresolvable address to a validation error on the
    /// `url` field, and a failed verification request to `VerificationFailed`.
    fn from(error: crate::delivery::VerifyError) -> Self {
        match error {
            crate::delivery::VerifyError::InvalidAddress(reason) => {
                EngineError::Validation(vec![FieldError::new("url", reason)])
            }
            crate::delivery::VerifyError::Failed(reason) => EngineError::VerificationFailed(reason),
        }
    }
}
