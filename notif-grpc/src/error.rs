//! `ApiError`: every way a request fails, and its one exhaustive mapping to a gRPC status and
//! to a Graph-style HTTP error. Internals are logged, never sent.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use notif_core::Error;
use notif_core::ports::TokenError;
use notif_core::validation::ValidationErrors;
use tonic_types::{ErrorDetails, StatusExt as _};

/// When a client should retry a request refused because a dependency (the store, an
/// identity provider) is unavailable.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case refused or failed.
    #[error(transparent)]
    Domain(#[from] Error),
    /// No bearer token was presented.
    #[error("unauthenticated: {0}")]
    MissingToken(String),
    /// A bearer token was presented and refused.
    #[error("unauthenticated: {0}")]
    InvalidToken(String),
    /// The request body, compressed or inflated, exceeds the limit (HTTP only).
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The caller's app or user exceeded its rate limit.
    #[error("rate limit exceeded; retry after {} s", retry_after.as_secs())]
    RateLimited {
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// The caller holds the most live change streams allowed per user on this node.
    #[error("at most {limit} live change streams per user")]
    TooManyStreams {
        /// The limit.
        limit: usize,
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
            other => ApiError::InvalidToken(other.to_string()),
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
            ApiError::Domain(Error::LimitExceeded { .. })
            | ApiError::RateLimited { .. }
            | ApiError::TooManyStreams { .. }
            | ApiError::PayloadTooLarge { .. } => Code::ResourceExhausted,
            ApiError::Domain(Error::Unavailable(_)) => Code::Unavailable,
            ApiError::Domain(Error::Internal(_)) => Code::Internal,
            ApiError::MissingToken(_) | ApiError::InvalidToken(_) => Code::Unauthenticated,
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
                tonic::Status::with_error_details(
                    Code::Unavailable,
                    "temporarily unavailable; retry",
                    ErrorDetails::with_retry_info(Some(UNAVAILABLE_RETRY_AFTER)),
                )
            }
            ApiError::Domain(Error::Internal(detail)) => tonic::Status::internal(internal(&detail)),
            ApiError::MissingToken(reason) | ApiError::InvalidToken(reason) => {
                tonic::Status::unauthenticated(reason)
            }
            ApiError::PayloadTooLarge { limit } => tonic::Status::resource_exhausted(format!(
                "the request body is larger than {limit} bytes"
            )),
            ApiError::RateLimited { retry_after } => {
                let details = ErrorDetails::with_retry_info(Some(retry_after));
                tonic::Status::with_error_details(
                    Code::ResourceExhausted,
                    "rate limit exceeded",
                    details,
                )
            }
            ApiError::TooManyStreams { limit } => tonic::Status::resource_exhausted(format!(
                "at most {limit} live change streams per user; close one"
            )),
            ApiError::UnsupportedEncoding(encoding) => tonic::Status::invalid_argument(format!(
                "unsupported content encoding {encoding:?}"
            )),
        }
    }
}

/// A Graph-style error body: `{"error": {"code", "message", "innerError": {"request-id",
/// "date"}}}` — Graph clients read the request id from it.
pub(crate) fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "request-id": crate::http::request_id(),
            "date": notif_core::ports::Clock::now(&notif_delivery::SystemClock).to_rfc3339(),
        },
    }});
    (status, axum::Json(body)).into_response()
}

/// A 401 with its bearer challenge; `invalid` is why a presented token was refused.
fn unauthorized(reason: &str, invalid: Option<&str>) -> Response {
    let mut response = graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        reason,
    );
    response
        .headers_mut()
        .insert("www-authenticate", bearer_challenge(invalid));
    response
}

/// RFC 6750 §3: the challenge of a 401; `error="invalid_token"` when a token was presented.
fn bearer_challenge(invalid: Option<&str>) -> HeaderValue {
    let challenge = match invalid {
        None => "Bearer".to_owned(),
        Some(reason) => {
            // A quoted-string of printable ASCII, without quotes or backslashes.
            let description: String = reason
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() && c != '"' && c != '\\' {
                        c
                    } else {
                        ' '
                    }
                })
                .collect();
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\"")
        }
    };
    HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer"))
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
                let mut response = graph_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "serviceNotAvailable",
                    "temporarily unavailable; retry",
                );
                response.headers_mut().insert(
                    "retry-after",
                    HeaderValue::from(UNAVAILABLE_RETRY_AFTER.as_secs()),
                );
                response
            }
            ApiError::Domain(Error::Internal(detail)) => graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                internal(&detail),
            ),
            ApiError::MissingToken(reason) => unauthorized(&reason, None),
            ApiError::InvalidToken(reason) => unauthorized(&reason, Some(&reason)),
            ApiError::PayloadTooLarge { limit } => graph_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "requestEntityTooLarge",
                &format!("the request body is larger than {limit} bytes"),
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
            ApiError::TooManyStreams { limit } => graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "tooManyRequests",
                &format!("at most {limit} live change streams per user; close one"),
            ),
            ApiError::UnsupportedEncoding(encoding) => graph_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupportedMediaType",
                &format!("Content-Encoding {encoding:?} is not supported; use gzip or deflate"),
            ),
        }
    }
}
