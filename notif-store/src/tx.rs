//! Point reads shared by queries and commands, and the write overlay a command builds before
//! committing it atomically.

use std::ops::{Bound, ControlFlow};

use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::{FeedKey, Notification};
use notif_core::ports::StoreError;
use notif_core::subscription::Subscription;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{Engine, Entry, KeyRange, Tree, WriteBatch};
use crate::keys;
use crate::records::{self, FeedMeta, NotificationRecord, SubscriptionRecord};

/// Point reads by key, from the engine or through a command's pending writes.
pub(crate) trait Reader {
    /// The value at `key`.
    fn read(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The decoded record at `key`.
    fn record<T: DeserializeOwned>(&self, tree: Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.read(tree, key)?
            .map(|bytes| records::decode(key, &bytes))
            .transpose()
    }

    /// A notification of `feed`, whatever its status or expiration.
    fn notification(
        &self,
        feed: &FeedKey,
        id: NotificationId,
    ) -> Result<Option<Notification>, StoreError> {
        let key = keys::notification_key(feed, id);
        self.record::<NotificationRecord>(Tree::Notifications, &key)?
            .map(|record| record.into_domain(&key))
            .transpose()
    }

    /// A subscription by id.
    fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, StoreError> {
        let key = id.as_bytes();
        self.record::<SubscriptionRecord>(Tree::Subscriptions, key)?
            .map(|record| record.into_domain(key))
            .transpose()
    }

    /// A feed's counters.
    fn feed_meta(&self, feed: &FeedKey) -> Result<FeedMeta, StoreError> {
        Ok(self
            .record(Tree::Feeds, &keys::feed_prefix(feed))?
            .unwrap_or_default())
    }
}

/// Engines read directly.
pub(crate) struct Direct<'a, E: ?Sized>(pub(crate) &'a E);

impl<E: Engine + ?Sized> Reader for Direct<'_, E> {
    fn read(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(tree, key)
    }
}

/// Every key of `tree` that starts with `prefix`, in order, with its value.
pub(crate) fn scan_prefix<E: Engine + ?Sized>(
    engine: &E,
    tree: Tree,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<Entry>, StoreError> {
    let mut entries = Vec::new();
    engine.scan(tree, prefix_range(prefix), false, &mut |key, value| {
        entries.push((key.to_vec(), value.to_vec()));
        if entries.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(entries)
}

/// The range of keys starting with `prefix`.
pub(crate) fn prefix_range(prefix: &[u8]) -> KeyRange {
    let end = keys::prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
    (Bound::Included(prefix.to_vec()), end)
}

/// The subscriptions of a feed, live or not.
pub(crate) fn feed_subscriptions<E: Engine + ?Sized>(
    engine: &E,
    feed: &FeedKey,
) -> Result<Vec<Subscription>, StoreError> {
    let prefix = keys::feed_prefix(feed);
    let mut subscriptions = Vec::new();
    for (key, _) in scan_prefix(engine, Tree::FeedSubscriptions, &prefix, usize::MAX)? {
        let id = keys::uuid_at(&key, prefix.len())
            .map(SubscriptionId::from_uuid)
            .ok_or_else(|| records::corrupt(&key, "subscription index key".into()))?;
        if let Some(subscription) = Direct(engine).subscription(id)? {
            subscriptions.push(subscription);
        }
    }
    Ok(subscriptions)
}

/// A command's writes, applied to the engine in one atomic commit. Point reads see the
/// command's own writes; scans (done on the engine) do not, so commands scan before writing.
pub(crate) struct Tx<'a, E: ?Sized> {
    engine: &'a E,
    writes: WriteBatch,
}

impl<'a, E: Engine + ?Sized> Tx<'a, E> {
    pub(crate) fn new(engine: &'a E) -> Self {
        Self {
            engine,
            writes: WriteBatch::new(),
        }
    }

    /// The engine, for scans.
    pub(crate) fn engine(&self) -> &'a E {
        self.engine
    }

    /// Sets `key` to the encoded `record`.
    pub(crate) fn put<T: Serialize>(&mut self, tree: Tree, key: impl Into<Vec<u8>>, record: &T) {
        self.writes
            .insert((tree, key.into()), Some(records::encode(record)));
    }

    /// Sets `key` to raw bytes (index entries).
    pub(crate) fn put_raw(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: &[u8]) {
        self.writes.insert((tree, key.into()), Some(value.to_vec()));
    }

    /// Removes `key`.
    pub(crate) fn delete(&mut self, tree: Tree, key: impl Into<Vec<u8>>) {
        self.writes.insert((tree, key.into()), None);
    }

    /// Applies every write atomically.
    pub(crate) fn commit(self) -> Result<(), StoreError> {
        self.engine.commit(&self.writes)
    }
}

impl<E: Engine + ?Sized> Reader for Tx<'_, E> {
    fn read(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(&(tree, key.to_vec())) {
            Some(pending) => Ok(pending.clone()),
            None => self.engine.get(tree, key),
        }
    }
}
