//! The HTTP surface on the gRPC listener: the Graph-compatible API, the embedded identity
//! provider's endpoints, and operations (health, readiness, metrics, the development sandbox).

mod graph;
mod identity;
mod json;
mod ops;

use std::sync::Arc;

use axum::Router;

use crate::context::Context;

/// Every HTTP route.
pub(crate) fn router(context: Arc<Context>) -> Router {
    Router::new()
        .merge(graph::routes())
        .nest("/beta", graph::routes())
        .nest("/v1.0", graph::routes())
        .merge(identity::routes())
        .merge(ops::routes())
        .with_state(context)
}
