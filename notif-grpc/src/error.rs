//! `ApiError`: every way a request fails, and its one exhaustive mapping to a gRPC status and
//! to a Graph-style HTTP error. Internals are logged, never sent.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use notif_core::Error;
use notif_core::ports::TokenError;
use notif_core::validation::ValidationErrors;
use tonic_types::{ErrorDetails, StatusExt as _};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case refused or failed.
    #[error(transparent)]
    Domain(#[from] Error),
    /// No valid bearer token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller's app or user exceeded its rate limit.
    #[error("rate limit exceeded; retry after {} s", retry_after.as_secs())]
    RateLimited {
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// The HTTP body's encoding is not supported (HTTP only).
    #[error("unsupported content encoding {0:?}")]
    UnsupportedEncoding(String),
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            // The issuer being down is not the caller's fault: it may retry.
            TokenError::Unavailable(reason) => ApiError::Domain(Error::Unavailable(reason)),
            other => ApiError::Unauthenticated(other.to_string()),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Domain(Error::Invalid(errors))
    }
}

impl ApiError {
    /// The gRPC code this error maps to.
    pub(crate) fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            ApiError::Domain(Error::Invalid(_)) | ApiError::UnsupportedEncoding(_) => {
                Code::InvalidArgument
            }
            ApiError::Domain(Error::PermissionDenied(_)) => Code::PermissionDenied,
            ApiError::Domain(Error::NotFound) => Code::NotFound,
            ApiError::Domain(Error::LimitExceeded { .. }) | ApiError::RateLimited { .. } => {
                Code::ResourceExhausted
            }
            ApiError::Domain(Error::Unavailable(_)) => Code::Unavailable,
            ApiError::Domain(Error::Internal(_)) => Code::Internal,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
        }
    }

    /// A single invalid field.
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ValidationErrors::single(field, reason).into()
    }
}

fn internal(detail: &str) -> &'static str {
    tracing::error!(%detail, "internal error");
    "internal error"
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        use tonic::Code;
        match error {
            ApiError::Domain(Error::Invalid(errors)) => {
                let mut details = ErrorDetails::new();
                for violation in errors.violations() {
                    details.add_bad_request_violation(
                        violation.field.clone(),
                        violation.reason.clone(),
                    );
                }
                tonic::Status::with_error_details(
                    Code::InvalidArgument,
                    errors.to_string(),
                    details,
                )
            }
            ApiError::Domain(Error::PermissionDenied(reason)) => {
                tonic::Status::permission_denied(reason.to_string())
            }
            ApiError::Domain(Error::NotFound) => tonic::Status::not_found("not found"),
            ApiError::Domain(Error::LimitExceeded { what, limit }) => {
                tonic::Status::resource_exhausted(format!("limit reached: at most {limit} {what}"))
            }
            ApiError::Domain(Error::Unavailable(reason)) => {
                tracing::warn!(%reason, "dependency unavailable");
                tonic::Status::unavailable("temporarily unavailable; retry")
            }
            ApiError::Domain(Error::Internal(detail)) => tonic::Status::internal(internal(&detail)),
            ApiError::Unauthenticated(reason) => tonic::Status::unauthenticated(reason),
            ApiError::RateLimited { retry_after } => {
                let details = ErrorDetails::with_retry_info(Some(retry_after));
                tonic::Status::with_error_details(
                    Code::ResourceExhausted,
                    "rate limit exceeded",
                    details,
                )
            }
            ApiError::UnsupportedEncoding(encoding) => tonic::Status::invalid_argument(format!(
                "unsupported content encoding {encoding:?}"
            )),
        }
    }
}

/// A Graph-style error body: `{"error": {"code", "message"}}`.
pub(crate) fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Domain(Error::Invalid(errors)) => graph_error(
                StatusCode::BAD_REQUEST,
                "invalidRequest",
                &errors.to_string(),
            ),
            ApiError::Domain(Error::PermissionDenied(reason)) => {
                graph_error(StatusCode::FORBIDDEN, "accessDenied", &reason.to_string())
            }
            ApiError::Domain(Error::NotFound) => {
                graph_error(StatusCode::NOT_FOUND, "itemNotFound", "not found")
            }
            ApiError::Domain(Error::LimitExceeded { what, limit }) => graph_error(
                StatusCode::CONFLICT,
                "quotaLimitReached",
                &format!("limit reached: at most {limit} {what}"),
            ),
            ApiError::Domain(Error::Unavailable(reason)) => {
                tracing::warn!(%reason, "dependency unavailable");
                graph_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "serviceNotAvailable",
                    "temporarily unavailable; retry",
                )
            }
            ApiError::Domain(Error::Internal(detail)) => graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                internal(&detail),
            ),
            ApiError::Unauthenticated(reason) => graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                &reason,
            ),
            ApiError::RateLimited { retry_after } => {
                let mut response = graph_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "tooManyRequests",
                    "rate limit exceeded",
                );
                response.headers_mut().insert(
                    "retry-after",
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
                response
            }
            ApiError::UnsupportedEncoding(encoding) => graph_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupportedMediaType",
                &format!("Content-Encoding {encoding:?} is not supported; use gzip or deflate"),
            ),
        }
    }
}
