//! notif-store: the storage ports of notif-core ([`NotificationStore`], [`SubscriptionStore`],
//! [`DeliveryQueue`], [`StoreAdmin`]) on sled — the embedded, durable default — on a
//! PostgreSQL-wire database shared by several nodes (feature `postgres`: [`PostgresStore`],
//! [`PostgresEvents`]), and in memory, chosen by one factory ([`open`]); and
//! [`LocalEvents`], the in-process feed events.
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
//! - `postgres` (feature) — the PostgreSQL-wire store, its events and its clock.
//! - `stats` — write figures, kept alike by every store.
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
#[cfg(feature = "postgres")]
mod postgres;
mod read;
mod records;
mod stats;
mod store;
mod tx;
mod write;

use std::path::PathBuf;
use std::sync::Arc;

use notif_core::ports::{Clock, FeedEvents, Storage, StoreError};

pub use engine::{Engine, MemoryEngine, SledEngine};
pub use events::LocalEvents;
#[cfg(feature = "postgres")]
pub use postgres::{DatabaseClock, EventDelivery, PostgresConfig, PostgresEvents, PostgresStore};
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
    /// A PostgreSQL-wire database, shared by any number of nodes (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(PostgresConfig),
}

impl std::fmt::Display for StorageConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageConfig::Sled { directory } => {
                write!(formatter, "sled at {}", directory.display())
            }
            StorageConfig::Memory => formatter.write_str("memory"),
            #[cfg(feature = "postgres")]
            StorageConfig::Postgres(config) => {
                write!(formatter, "PostgreSQL at {}", config.display_url())
            }
        }
    }
}

/// An opened store: its ports, the feed events that go with it, and the clock its times
/// must come from.
#[derive(Debug, Clone)]
pub struct OpenedStore {
    /// The storage ports.
    pub storage: Storage,
    /// The feed events: in-process for an embedded store, across nodes for a shared one.
    pub events: Arc<dyn FeedEvents>,
    /// The store's own clock, when it has one (a shared database's, so that every node's
    /// leases and due times are on one time base); `None`: any clock will do.
    pub clock: Option<Arc<dyn Clock>>,
}

/// Opens the store `config` names, as the ports the rest of the system holds, with its feed
/// events. This is the one place that names a store implementation. It must run on a tokio
/// runtime (sled opens its directory on the blocking pool; a database store starts its
/// tasks there).
///
/// # Errors
/// [`StoreError::Unavailable`] when the store cannot be opened (another process holds the
/// directory, the disk fails, the database cannot be reached or holds a newer schema).
pub async fn open(config: &StorageConfig) -> Result<OpenedStore, StoreError> {
    let local = || -> Arc<dyn FeedEvents> { LocalEvents::new() };
    Ok(match config {
        StorageConfig::Sled { directory } => {
            let directory = directory.clone();
            let store = tokio::task::spawn_blocking(move || SledStore::open(directory))
                .await
                .map_err(|error| StoreError::Unavailable(format!("opening sled: {error}")))??;
            OpenedStore {
                storage: Storage::of(Arc::new(store)),
                events: local(),
                clock: None,
            }
        }
        StorageConfig::Memory => OpenedStore {
            storage: Storage::of(Arc::new(MemoryStore::new())),
            events: local(),
            clock: None,
        },
        #[cfg(feature = "postgres")]
        StorageConfig::Postgres(postgres) => {
            let store = PostgresStore::open(postgres).await?;
            let events = store.events(postgres.events, postgres.poll_interval);
            let clock = store.clock();
            OpenedStore {
                storage: Storage::of(Arc::new(store)),
                events,
                clock: Some(clock),
            }
        }
    })
}
