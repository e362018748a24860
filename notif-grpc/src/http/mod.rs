//! The HTTP surface on the gRPC listener: the Graph-compatible API, the embedded identity
//! provider's endpoints, and operations (health, readiness, metrics, the development sandbox),
//! behind the edge that tells gRPC from HTTP.

mod edge;
mod graph;
mod identity;
mod inbox;
mod json;
mod links;
mod ops;
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
    Router::new()
        .merge(graph::routes())
        .nest("/beta", graph::routes())
        .nest("/v1.0", graph::routes())
        .merge(identity::routes())
        .merge(ops::routes())
        .merge(inbox::routes())
        .layer(body_limit)
        .with_state(context)
}
