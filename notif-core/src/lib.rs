//! notif-core: the domain of notif, the self-hostable, user-centric notification service.
//!
//! An app service creates a notification for one of its users; notif keeps it in that user's
//! feed and fans it out to every device endpoint the user registered for the app. This crate
//! holds every rule of that domain — validation, the CreatedByApp authorization rule, fan-out
//! planning, push envelopes and platform mapping, delivery outcomes and the retry policy —
//! and the ports (traits) through which it reaches storage, identity and push providers.
//!
//! It must not do I/O: no tokio, no network, no disk, no clock reads, no randomness. Time and
//! ids come through the [`ports::Clock`] and [`ports::IdGenerator`] ports, so every rule can
//! be tested with fixed values.
//!
//! Modules:
//! - [`time`] — `Timestamp`.
//! - [`ids`] — identifiers and validated names.
//! - [`validation`] — field violations.
//! - [`platform`] — `Platform` and `Priority`.
//! - [`notification`] — the notification, its draft and its limits.
//! - [`app`] — cross-device apps, principals and the CreatedByApp rule.
//! - [`subscription`] — device subscriptions and channel validation.
//! - [`fanout`] — delivery jobs and `plan_fan_out`.
//! - [`feed`] — feed writes (create-or-replace, state, delete) as pure functions.
//! - [`push`] — the push envelope and the per-platform mapping decisions.
//! - [`delivery`] — delivery outcomes, the retry policy and delivery status.
//! - [`ports`] — the traits adapters implement.
//! - [`service`] — the use cases over the ports.
//! - [`error`] — the use cases' error.
//! - `testing` (feature `testing`): a fixed clock and sequential ids.

#![deny(missing_docs)]

pub mod app;
pub mod delivery;
pub mod error;
pub mod fanout;
pub mod feed;
pub mod ids;
pub mod notification;
pub mod platform;
pub mod ports;
#[cfg(test)]
mod properties;
pub mod push;
pub mod service;
pub mod subscription;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod validation;

pub use error::Error;
