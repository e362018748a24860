//! notif-grpc: the notif server. gRPC services for notifications and subscriptions (with health
//! and reflection), the Graph-compatible HTTP/JSON surface and the embedded identity
//! provider's endpoints on the same listener, configuration, and the composition of store,
//! identity, push gateways and dispatcher into a running server ([`serve`], [`Server`]).
//!
//! Only this crate knows protobuf; handlers stay thin and call notif-core's use cases.
//!
//! Modules:
//! - `server` — [`Server`], [`serve`]: composition, serving, graceful shutdown.
//! - `config` — [`Config`]: TOML configuration and the development defaults.
//! - `grpc` — the `Notifications` and `Subscriptions` services.
//! - `http` — the edge (gRPC or HTTP), the Graph API, identity endpoints, health, metrics
//!   and the sandbox listing.
//! - `listener` — connections: the cap, idle and header timeouts, graceful draining.
//! - `convert` — protobuf ↔ domain.
//! - `error` — `ApiError` and its gRPC and HTTP mappings.
//! - `follow` — following a feed live, for `WatchChanges` and the HTTP event stream, bounded
//!   per user.
//! - `state` — `ServerState`: what handlers share.
//! - `gateways`, `identity`, `ids` — a configuration's push gateways, its token issuers and
//!   identity provider, and the id generator.
//! - `metrics`, `rate_limit` — Prometheus counters and token buckets.
//! - [`pb`] — the generated protobuf code.

pub mod config;
mod convert;
mod error;
mod follow;
mod gateways;
mod grpc;
mod http;
mod identity;
mod ids;
mod listener;
mod metrics;
mod rate_limit;
mod server;
mod state;

pub use config::Config;
pub use rate_limit::RateLimits;
pub use server::{Server, serve};

/// The generated protobuf types, clients and servers of `proto/notif/v1`.
pub mod pb {
    #![allow(
        missing_docs,
        unreachable_pub,
        missing_debug_implementations,
        clippy::all,
        clippy::pedantic
    )]
    tonic::include_proto!("notif.v1");

    /// The encoded descriptor set, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("notif_descriptor");
}
