//! notif-store: the storage ports of notif-core ([`NotificationStore`], [`SubscriptionStore`],
//! [`DeliveryQueue`], [`StoreAdmin`]) on sled — the embedded, durable default — and in memory,
//! chosen by one factory ([`open`]); and [`LocalEvents`], the in-process feed events.
//!
//! The store logic is written once over a small key-value [`Engine`] (sled trees or in-memory
//! maps); the feed rules themselves come from `notif_core::feed`, so stores never re-implement
//! replace, state or delete semantics. It must not expose sled types, and it alone knows the
//! on-disk encoding (private, versioned records).
//!
//! Modules:
//! - `store` — [`Store`], [`SledStore`], [`MemoryStore`]: the ports, the group-committing
//!   writer and its supervision.
//! - `events` — [`LocalEvents`]: one process's feed and job wake-ups.
//! - `contract` (feature) — the exported contract suite every store implementation runs.
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
//! [`StoreAdmin`]: notif_core::ports::StoreAdmin

#[cfg(feature = "contract")]
pub mod contract;
mod engine;
mod events;
#[cfg(test)]
mod fixtures;
mod handoff;
mod keys;
mod read;
mod records;
mod store;
mod tx;
mod write;

use std::path::PathBuf;
use std::sync::Arc;

use notif_core::ports::{Storage, StoreError};

pub use engine::{Engine, MemoryEngine, SledEngine};
pub use events::LocalEvents;
pub use store::{MemoryStore, SledStore, Store};

/// Which store to run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// sled in `directory` (created if missing): durable, one process at a time.
    Sled {
        /// The store's directory.
        directory: PathBuf,
    },
    /// In memory: nothing survives the process.
    Memory,
}

/// Opens the store `config` names, as the ports the rest of the system holds. This is the
/// one place that names a store implementation. It blocks while sled opens its directory:
/// call it off async worker threads.
///
/// # Errors
/// [`StoreError::Unavailable`] when the store cannot be opened (another process holds the
/// directory, the disk fails, the writer thread cannot start).
pub fn open(config: &StorageConfig) -> Result<Storage, StoreError> {
    Ok(match config {
        StorageConfig::Sled { directory } => Storage::of(Arc::new(SledStore::open(directory)?)),
        StorageConfig::Memory => Storage::of(Arc::new(MemoryStore::new())),
    })
}
