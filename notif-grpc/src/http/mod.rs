//! The HTTP surface on the gRPC listener: the Graph-compatible API, the embedded identity
//! provider's endpoints, and operations (health, readiness, metrics, the development sandbox),
//! behind the edge that tells gRPC from HTTP.

mod edge;
mod graph;
mod identity;
mod inbox;
mod json;
mod links;
mod openapi;
mod ops;
mod schemas;
mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::state::ServerState;

pub(crate) use edge::{edge, request_id};
pub(crate) use links::Links;

/// Every HTTP route.
pub(crate) fn router(context: Arc<ServerState>) -> Router {
    let body_limit = DefaultBodyLimit::max(context.max_body_bytes);
    let (routes, document) = graph::routes()
        .merge(identity::routes())
        .merge(ops::routes())
        .merge(inbox::routes())
        .route(
            openapi::Mount::Root,
            openapi::Operation::new(
                axum::http::Method::GET,
                "/openapi.json",
                "This document: the OpenAPI 3.1 description of the HTTP surface",
            )
            .json(200, "The document", schemas::component("OpenApi")),
            openapi_document,
        )
        .finish(schemas::all());
    Router::new()
        .merge(routes)
        .nest("/beta", graph::routes().into_router())
        .nest("/v1.0", graph::routes().into_router())
        .layer(axum::Extension(document))
        .layer(body_limit)
        .with_state(context)
}

async fn openapi_document(
    axum::Extension(document): axum::Extension<Arc<serde_json::Value>>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::Value::clone(&document))
}
