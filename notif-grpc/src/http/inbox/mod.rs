//! The web inbox: `notif-inbox.js`, a dependency-free ES module web apps load from notifd
//! (a plain `NotifInbox` API and a `<notif-inbox>` custom element), and in development mode
//! a demo page at `/dev/inbox` that signs in as a user.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::openapi::{ApiRoutes, Mount, Operation, Verb};
use crate::state::ServerState;

const MODULE: &str = include_str!("notif-inbox.js");
const DEMO: &str = include_str!("demo.html");

pub(super) fn routes() -> ApiRoutes<Arc<ServerState>> {
    ApiRoutes::new()
        .route(
            Mount::Root,
            Operation::new(
                Verb::Get,
                "/notif-inbox.js",
                "The web inbox: an ES module (NotifInbox, <notif-inbox>)",
            )
            .answers(
                200,
                "The module",
                Some(("text/javascript", json!({"type": "string"}))),
            ),
            module,
        )
        .route(
            Mount::Root,
            Operation::new(
                Verb::Get,
                "/dev/inbox",
                "Development mode: the inbox demo page",
            )
            .answers(
                200,
                "A page",
                Some(("text/html", json!({"type": "string"}))),
            ),
            demo,
        )
}

async fn module() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        MODULE,
    )
        .into_response()
}

/// The demo page, only where development sign-in is on.
async fn demo(State(context): State<Arc<ServerState>>) -> Response {
    let development = context
        .identity
        .as_ref()
        .is_some_and(|provider| provider.config().development_sign_in);
    if !development {
        return crate::error::ApiError::Domain(notif_core::Error::NotFound).into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DEMO,
    )
        .into_response()
}
