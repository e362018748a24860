//! notif-delivery: pushes. One adapter per provider — [`ApnsGateway`], [`FcmGateway`],
//! [`WnsGateway`], [`WebPushGateway`] — each on one long-lived reqwest client, each rendering
//! notif-core's push decisions onto its wire format and classifying the answer into a
//! `DeliveryOutcome` with shared helpers; and the [`Dispatcher`] that drives them from the
//! durable queue. With the `sandbox` feature, [`sandbox::SandboxProviders`] serves loopback
//! stand-ins that speak each provider's protocol, for tests and development mode.
//!
//! It must not decide delivery policy (that is notif-core's `plan_push`, `settle` and retry
//! policy), and its public signatures carry no reqwest types.
//!
//! Modules:
//! - `apns`, `fcm`, `wns`, `webpush` — the adapters and their configuration; `webpush`
//!   also holds RFC 8291 encryption and RFC 8292 VAPID on aws-lc-rs.
//! - `classify` — status families, `Retry-After`, refresh-once.
//! - `envelope` — the envelope's JSON and the shoulder-tap rule.
//! - `oauth` — cached provider access tokens.
//! - `http` — [`HttpConfig`] and the client builder.
//! - `dispatcher` — [`Dispatcher`], [`Gateways`], [`SystemClock`].
//! - `runtime` — [`Runtime`]: the dispatcher and the expiry sweeper over any storage,
//!   started and stopped as one (for notifd and embedders).
//! - `sandbox` (feature) — the loopback providers.

mod apns;
mod classify;
mod dispatcher;
mod envelope;
mod error;
mod fcm;
mod http;
mod oauth;
mod runtime;
#[cfg(feature = "sandbox")]
pub mod sandbox;
mod webpush;
mod wns;

pub use apns::{APNS_PRODUCTION, APNS_SANDBOX, ApnsConfig, ApnsGateway};
pub use dispatcher::{
    AttemptOutcome, DispatchStats, Dispatcher, DispatcherConfig, Gateways, SystemClock,
};
pub use envelope::envelope_json;
pub use error::Error;
pub use fcm::{FCM_URL, FcmConfig, FcmGateway, GOOGLE_TOKEN_URL};
pub use http::HttpConfig;
pub use runtime::{RunningRuntime, Runtime, RuntimeConfig};
pub use webpush::{P256Key, WebPushConfig, WebPushGateway};
pub use wns::{WNS_TOKEN_URL, WnsConfig, WnsGateway};
