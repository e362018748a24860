//! The use cases' error: what a caller can act on.

use crate::app::AccessError;
use crate::ports::StoreError;
use crate::validation::ValidationErrors;

/// Why a use case failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is invalid; every offending field is named.
    #[error("invalid request: {0}")]
    Invalid(ValidationErrors),
    /// The principal may not act.
    #[error("permission denied: {0}")]
    PermissionDenied(AccessError),
    /// Not found, or not the caller's (the same answer, so nothing leaks).
    #[error("not found")]
    NotFound,
    /// A limit would be exceeded.
    #[error("limit reached: at most {limit} {what}")]
    LimitExceeded {
        /// What is limited.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A dependency is unavailable; retrying may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A defect or corrupt data; details are for the logs, not for clients.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Error::Invalid(errors)
    }
}

impl From<AccessError> for Error {
    fn from(error: AccessError) -> Self {
        match error {
            // Another app's subscription and a missing one get the same answer.
            AccessError::SubscriptionNotFound => Error::NotFound,
            other => Error::PermissionDenied(other),
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Error::NotFound,
            StoreError::LimitExceeded { what, limit } => Error::LimitExceeded { what, limit },
            StoreError::Unavailable(reason) => Error::Unavailable(reason),
            corrupt @ StoreError::Corrupt { .. } => Error::Internal(corrupt.to_string()),
        }
    }
}
