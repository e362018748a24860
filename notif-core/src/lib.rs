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
//! # Embedding
//!
//! Give [`service::NotifService`] its ports — here the in-memory store and the in-process
//! feed events from `notif-store`, a static app registry, a clock and an id generator — and
//! call the use cases. To also push to devices, start a `notif_delivery::Runtime` over the
//! same storage and events: `notif-delivery/examples/embedded.rs` does, against the sandbox
//! providers.
//!
//! ```
//! use std::sync::Arc;
//! use notif_core::app::{App, Principal, SCOPE_CREATED_BY_APP};
//! use std::sync::atomic::{AtomicU8, Ordering};
//! use notif_core::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
//! use notif_core::notification::{Limits, NotificationDraft, VisualContentDraft};
//! use notif_core::ports::{AppRegistry, Clock, IdGenerator, ListQuery};
//! use notif_core::service::{Caller, NotifService, Ports};
//! use notif_core::subscription::ChannelPolicy;
//! use notif_core::time::Timestamp;
//!
//! #[derive(Debug)]
//! struct OneApp(App);
//! impl AppRegistry for OneApp {
//!     fn app_for_client(&self, client: &ClientId) -> Option<App> {
//!         self.0.client_ids.contains(client).then(|| self.0.clone())
//!     }
//! }
//!
//! #[derive(Debug)]
//! struct NoonClock;
//! impl Clock for NoonClock {
//!     fn now(&self) -> Timestamp {
//!         Timestamp::from_unix_millis(1_800_000_000_000)
//!     }
//! }
//!
//! #[derive(Debug, Default)]
//! struct CountingIds(AtomicU8);
//! impl IdGenerator for CountingIds {
//!     fn notification_id(&self, now: Timestamp) -> NotificationId {
//!         NotificationId::from_parts(now.unix_millis() as u64, [self.0.fetch_add(1, Ordering::SeqCst); 10])
//!     }
//!     fn subscription_id(&self, now: Timestamp) -> SubscriptionId {
//!         SubscriptionId::from_parts(now.unix_millis() as u64, [self.0.fetch_add(1, Ordering::SeqCst); 10])
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = Arc::new(notif_store::MemoryStore::new());
//! let app = App {
//!     id: AppId::new("contoso").unwrap(),
//!     host_name: HostName::new("notifications.contoso.com").unwrap(),
//!     display_name: "Contoso".into(),
//!     client_ids: [ClientId::new("contoso-service").unwrap()].into(),
//!     credentials: vec![],
//! };
//! let service = NotifService::new(
//!     Ports {
//!         notifications: store.clone(),
//!         subscriptions: store.clone(),
//!         apps: Arc::new(OneApp(app)),
//!         clock: Arc::new(NoonClock),
//!         ids: Arc::new(CountingIds::default()),
//!         events: notif_store::LocalEvents::new(),
//!     },
//!     Limits::default(),
//!     ChannelPolicy::default(),
//! );
//! let alice = Principal {
//!     user: Some(UserId::new("alice").unwrap()),
//!     client_id: ClientId::new("contoso-service").unwrap(),
//!     scopes: [SCOPE_CREATED_BY_APP.to_owned()].into(),
//!     roles: Default::default(),
//! };
//! let caller = Caller { principal: &alice, subscription_id: None };
//! let draft = NotificationDraft {
//!     target_host_name: Some("notifications.contoso.com".into()),
//!     app_notification_id: Some("welcome".into()),
//!     visual_content: Some(VisualContentDraft { title: Some("Welcome!".into()), body: None }),
//!     ..NotificationDraft::default()
//! };
//! let created = service.create(caller, draft).await.unwrap();
//! let page = service.list(caller, &ListQuery::default()).await.unwrap();
//! assert_eq!(page.notifications, vec![created.notification]);
//! assert_eq!(page.unread_count, 1);
//! # });
//! ```
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
//! - [`queue`] — the delivery queue's rules: supersede or wait behind an in-flight job,
//!   release a waiting successor, drop at lease time, the unread count.
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
pub mod fallback;
pub mod fanout;
pub mod feed;
pub mod ids;
pub mod notification;
pub mod platform;
pub mod ports;
#[cfg(test)]
mod properties;
pub mod push;
pub mod queue;
pub mod service;
pub mod subscription;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod validation;

pub use error::Error;
