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
use axum::body::Bytes;
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
                openapi::Verb::Get,
                "/openapi.json",
                "This document: the OpenAPI 3.1 description of the HTTP surface",
            )
            .json(200, "The document", schemas::component("OpenApi")),
            openapi_document,
        )
        .finish(schemas::all());
    // Serialised once: the document does not change while the server runs.
    let document = OpenApiDocument(Bytes::from(document.to_string()));
    routes
        .layer(axum::Extension(document))
        .layer(body_limit)
        .with_state(context)
}

/// The OpenAPI document as served.
#[derive(Debug, Clone)]
struct OpenApiDocument(Bytes);

async fn openapi_document(
    axum::Extension(OpenApiDocument(document)): axum::Extension<OpenApiDocument>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document,
    )
}
