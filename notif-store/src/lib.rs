//! notif-store: the storage ports of notif-core ([`NotificationStore`], [`SubscriptionStore`],
//! [`DeliveryQueue`]) on sled — the embedded, durable default — and in memory.
//!
//! The store logic is written once over a small key-value [`Engine`] (sled trees or in-memory
//! maps); the feed rules themselves come from `notif_core::feed`, so stores never re-implement
//! replace, state or delete semantics. It must not expose sled types, and it alone knows the
//! on-disk encoding (private, versioned records).
//!
//! Modules:
//! - `store` — [`Store`], [`SledStore`], [`MemoryStore`]: the ports, the group-committing writer.
//! - `engine` — the engines and the tree layout.
//! - `write` — every write command, each one atomic commit.
//! - `handoff` — jobs leased as they are written, waiting in memory for the dispatcher.
//! - `read` — listing, change replay, status and lookups.
//! - `tx` — point reads and the per-command write overlay.
//! - `keys` — order-preserving key encodings.
//! - `records` — the versioned on-disk records.
//!
//! [`NotificationStore`]: notif_core::ports::NotificationStore
//! [`SubscriptionStore`]: notif_core::ports::SubscriptionStore
//! [`DeliveryQueue`]: notif_core::ports::DeliveryQueue

mod engine;
#[cfg(test)]
mod fixtures;
mod handoff;
mod keys;
mod read;
mod records;
mod store;
mod tx;
mod write;

pub use engine::{Engine, MemoryEngine, SledEngine};
pub use store::{MemoryStore, SledStore, Store};
