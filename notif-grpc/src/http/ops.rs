//! Operations: liveness, readiness, metrics, and the development sandbox's received pushes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::openapi::{ApiRoutes, Mount, Operation, Verb};
use super::schemas;
use crate::error::graph_error;
use crate::state::ServerState;

pub(super) fn routes() -> ApiRoutes<Arc<ServerState>> {
    let text = |description| {
        Some((
            "text/plain",
            json!({"type": "string", "description": description}),
        ))
    };
    ApiRoutes::new()
        .route(
            Mount::Root,
            Operation::new(Verb::Get, "/healthz", "Liveness").answers(200, "ok", text("ok")),
            || async { "ok" },
        )
        .route(
            Mount::Root,
            Operation::new(
                Verb::Get,
                "/readyz",
                "Readiness: the store takes writes and the dispatcher runs",
            )
            .answers(200, "Ready", text("ready (node <name>)"))
            .answers(503, "Not ready", text("what is wrong")),
            ready,
        )
        .route(
            Mount::Root,
            Operation::new(Verb::Get, "/metrics", "Prometheus metrics").answers(
                200,
                "The metrics",
                text("Prometheus text exposition format"),
            ),
            metrics,
        )
        .route(
            Mount::Root,
            Operation::new(
                Verb::Get,
                "/dev/sandbox",
                "Development mode: the sandbox providers' page",
            )
            .answers(
                200,
                "A page",
                Some(("text/html", json!({"type": "string"}))),
            ),
            sandbox,
        )
        .route(
            Mount::Root,
            Operation::new(
                Verb::Get,
                "/dev/sandbox/pushes",
                "Development mode: the latest pushes the sandbox providers received",
            )
            .json(200, "The pushes", schemas::component("SandboxPushes")),
            sandbox_pushes,
        )
}

/// Ready when not shutting down, the store takes writes and the dispatcher runs; otherwise
/// 503 saying which is not.
async fn ready(State(context): State<Arc<ServerState>>) -> Response {
    let mut problems = Vec::new();
    if *context.shutting_down.borrow() {
        problems.push("shutting down".to_owned());
    }
    if let Err(error) = context.store.health() {
        problems.push(format!("store: {error}"));
    }
    if context.metrics.dispatcher_running() != Some(true) {
        problems.push("dispatcher: not running".to_owned());
    }
    let node = context.metrics.node();
    if problems.is_empty() {
        format!("ready (node {node})").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready (node {node}): {}", problems.join("; ")),
        )
            .into_response()
    }
}

async fn metrics(State(context): State<Arc<ServerState>>) -> Response {
    let store = crate::metrics::Figures {
        pending_jobs: context.store.pending_jobs().await.ok(),
        writes: context.store.write_latency(),
        rate_limit_buckets: context.limiter.buckets(),
    };
    (
        [("content-type", "text/plain; version=0.0.4")],
        context.metrics.render(&store),
    )
        .into_response()
}

fn no_sandbox() -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "itemNotFound",
        "the sandbox providers run in development mode only",
    )
}

async fn sandbox(State(context): State<Arc<ServerState>>) -> Response {
    let Some(sandbox) = &context.sandbox else {
        return no_sandbox();
    };
    Json(json!({
        "baseUrl": sandbox.base_url(),
        "wnsChannelExample": sandbox.wns_channel_url("my-device"),
        "webPushEndpointExample": sandbox.web_push_endpoint("my-browser"),
    }))
    .into_response()
}

async fn sandbox_pushes(State(context): State<Arc<ServerState>>) -> Response {
    let Some(sandbox) = &context.sandbox else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "the sandbox providers run in development mode only",
        );
    };
    let pushes: Vec<_> = sandbox
        .pushes()
        .into_iter()
        .map(|push| {
            let body = match String::from_utf8(push.body.clone()) {
                Ok(text) => json!(text),
                Err(_) => {
                    json!({"base64": base64::engine::general_purpose::STANDARD.encode(&push.body)})
                }
            };
            json!({
                "platform": push.platform.as_str(),
                "path": push.path,
                "headers": push.headers,
                "body": body,
                "envelope": push.envelope,
                "answered": format!("{:?}", push.answered),
            })
        })
        .collect();
    Json(json!({"value": pushes})).into_response()
}
