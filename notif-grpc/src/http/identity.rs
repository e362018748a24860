//! The embedded identity provider over HTTP: token endpoint, development sign-in, discovery.

use std::sync::Arc;

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use notif_auth::{OAuthError, TokenRequest};
use serde::Deserialize;

use super::openapi::{ApiRoutes, Mount, Operation, Verb};
use super::schemas;
use crate::error::graph_error;
use crate::state::ServerState;

pub(super) fn routes() -> ApiRoutes<Arc<ServerState>> {
    let form = |name| {
        Some((
            "application/x-www-form-urlencoded",
            schemas::component(name),
        ))
    };
    ApiRoutes::new()
        .route(
            Mount::Root,
            Operation::new(
                Verb::Post,
                "/oauth2/v2.0/token",
                "The embedded identity provider's token endpoint",
            )
            .answers(
                200,
                "A token",
                Some(("application/json", schemas::component("Token"))),
            )
            .answers(
                400,
                "An OAuth error",
                Some(("application/json", schemas::component("OAuthError"))),
            )
            .form_body(form("TokenRequest")),
            token,
        )
        .route(
            Mount::Root,
            Operation::new(
                Verb::Post,
                "/dev/sign-in",
                "Development mode: a user token without a password",
            )
            .answers(
                200,
                "A token",
                Some(("application/json", schemas::component("Token"))),
            )
            .form_body(form("SignIn")),
            sign_in,
        )
        .route(
            Mount::Root,
            Operation::new(
                Verb::Get,
                "/.well-known/openid-configuration",
                "OpenID Connect discovery",
            )
            .json(
                200,
                "The configuration",
                schemas::component("OpenIdConfiguration"),
            ),
            discovery,
        )
        .route(
            Mount::Root,
            Operation::new(Verb::Get, "/.well-known/jwks.json", "The signing keys").json(
                200,
                "The keys",
                schemas::component("Jwks"),
            ),
            jwks,
        )
}

fn no_identity_provider() -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "itemNotFound",
        "the embedded identity provider is not enabled",
    )
}

fn oauth_error(error: &OAuthError) -> Response {
    let status = StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, Json(error.body())).into_response();
    if let Some(wait) = error.retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(wait.as_secs().max(1)));
    }
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// Parses a form or JSON body.
fn parse<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: &[u8]) -> Result<T, OAuthError> {
    let invalid =
        |error: String| OAuthError::new(notif_auth::OAuthErrorCode::InvalidRequest, error);
    if is_json(headers) {
        serde_json::from_slice(body).map_err(|error| invalid(error.to_string()))
    } else {
        serde_urlencoded::from_bytes(body).map_err(|error| invalid(error.to_string()))
    }
}

async fn token(
    State(context): State<Arc<ServerState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(identity) = &context.identity else {
        return no_identity_provider();
    };
    let request: TokenRequest = match parse(&headers, &body) {
        Ok(request) => request,
        Err(error) => return oauth_error(&error),
    };
    let source = peer.map(|Extension(ConnectInfo(address))| address.ip());
    match identity.token(request, source).await {
        Ok(response) => Json(response).into_response(),
        Err(error) => oauth_error(&error),
    }
}

#[derive(Deserialize)]
struct SignIn {
    client_id: String,
    user: String,
}

async fn sign_in(
    State(context): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(identity) = &context.identity else {
        return no_identity_provider();
    };
    let request: SignIn = match parse(&headers, &body) {
        Ok(request) => request,
        Err(error) => return oauth_error(&error),
    };
    match identity.dev_sign_in(&request.client_id, &request.user) {
        Ok(response) => Json(response).into_response(),
        Err(error) => oauth_error(&error),
    }
}

async fn discovery(State(context): State<Arc<ServerState>>) -> Response {
    match &context.identity {
        Some(identity) => Json(identity.openid_configuration()).into_response(),
        None => no_identity_provider(),
    }
}

async fn jwks(State(context): State<Arc<ServerState>>) -> Response {
    match &context.identity {
        Some(identity) => Json(identity.jwks()).into_response(),
        None => no_identity_provider(),
    }
}
