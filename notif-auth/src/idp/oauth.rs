//! OAuth 2 token-endpoint messages and RFC 6749 error codes.

use serde::{Deserialize, Serialize};

/// A token request, as posted (form-encoded) to the token endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenRequest {
    /// `client_credentials`, `urn:ietf:params:oauth:grant-type:jwt-bearer` or `refresh_token`.
    #[serde(default)]
    pub grant_type: String,
    /// The client.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The client's secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// For on-behalf-of: the user's token.
    #[serde(default)]
    pub assertion: Option<String>,
    /// For on-behalf-of: must be `on_behalf_of`.
    #[serde(default)]
    pub requested_token_use: Option<String>,
    /// Requested scopes, space separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// For `refresh_token`: the refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// A successful token response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token (a JWT).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The granted scopes.
    pub scope: String,
    /// A refresh token, for on-behalf-of and refresh grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// RFC 6749 §5.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    /// A parameter is missing or malformed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (assertion, refresh token) is invalid, expired, revoked or for another client.
    InvalidGrant,
    /// The client may not use this grant or endpoint.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// A requested scope is not available.
    InvalidScope,
    /// Too many failed attempts lately: wait `retry_after` (RFC 8628 §3.5's `slow_down`).
    SlowDown,
    /// The endpoint is too busy to answer now: retry after `retry_after` (RFC 6749 §4.1.2.1).
    TemporarilyUnavailable,
}

impl OAuthErrorCode {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::SlowDown => "slow_down",
            OAuthErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status: 401 for `invalid_client`, 429 for `slow_down`, 503 for
    /// `temporarily_unavailable`, else 400.
    pub const fn http_status(self) -> u16 {
        match self {
            OAuthErrorCode::InvalidClient => 401,
            OAuthErrorCode::SlowDown => 429,
            OAuthErrorCode::TemporarilyUnavailable => 503,
            OAuthErrorCode::InvalidRequest
            | OAuthErrorCode::InvalidGrant
            | OAuthErrorCode::UnauthorizedClient
            | OAuthErrorCode::UnsupportedGrantType
            | OAuthErrorCode::InvalidScope => 400,
        }
    }
}

/// A refused token request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    /// The RFC 6749 code.
    pub code: OAuthErrorCode,
    /// For people.
    pub description: String,
    /// When a retry may succeed (the `Retry-After` of a 429 or 503).
    pub retry_after: Option<std::time::Duration>,
}

impl OAuthError {
    /// A refusal with `code` and `description`.
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    /// The same refusal, saying when to retry.
    pub fn retry_after(self, wait: std::time::Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..self
        }
    }

    /// The JSON body: `{"error": "...", "error_description": "..."}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        })
    }
}
