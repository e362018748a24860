//! The commands: every write of the store, each built in a [`Tx`] and staged into its group's
//! atomic commit, by port — `feed`, `subscriptions`, `queue`, `expiry`, `identity`. They run on the
//! store's single writer thread, and read through the writes staged before them, so a
//! command's reads are never stale.
//!
//! [`Tx`]: crate::tx::Tx

mod expiry;
mod feed;
mod identity;
mod queue;
mod subscriptions;

pub(crate) use expiry::expire;
pub(crate) use feed::write_feed;
pub(crate) use identity::{add_signing_key, grant_refresh, signing_keys, spend_refresh};
pub(crate) use queue::{lease_due, record_fetch, release, release_leases, settle, void_leases};
pub(crate) use subscriptions::{subscribe, unsubscribe};
