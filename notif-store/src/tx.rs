//! Reads shared by queries and commands, and the write overlay a command builds and stages
//! into its group's atomic commit.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow, RangeBounds};

use notif_core::fanout::DeliveryJob;
use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::{FeedKey, Notification};
use notif_core::ports::{LeasedJob, StoreError};
use notif_core::subscription::Subscription;
use notif_core::time::Timestamp;

use crate::engine::{Engine, Entry, KeyRange, Tree, Visitor, WriteBatch};
use crate::handoff::{HandedOver, Handoff};
use crate::keys;
use crate::records::{self, FeedMeta, NotificationRecord, SubscriptionRecord};

/// Reads by key and by range, from the engine or through a command's pending writes.
pub(crate) trait Reader {
    /// The value at `key`.
    fn read(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits the keys of `range` in order (or reverse order) until `visit` breaks.
    fn scan(
        &self,
        tree: Tree,
        range: KeyRange,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError>;

    /// The decoded record at `key`.
    fn record<T: records::Record>(&self, tree: Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
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

    fn scan(
        &self,
        tree: Tree,
        range: KeyRange,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        self.0.scan(tree, range, reverse, visit)
    }
}

/// Every key of `tree` that starts with `prefix`, in order, with its value.
pub(crate) fn scan_prefix<R: Reader>(
    reader: &R,
    tree: Tree,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<Entry>, StoreError> {
    let mut entries = Vec::new();
    reader.scan(tree, prefix_range(prefix), false, &mut |key, value| {
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
pub(crate) fn feed_subscriptions<R: Reader>(
    reader: &R,
    feed: &FeedKey,
) -> Result<Vec<Subscription>, StoreError> {
    let prefix = keys::feed_prefix(feed);
    let mut subscriptions = Vec::new();
    for (key, _) in scan_prefix(reader, Tree::FeedSubscriptions, &prefix, usize::MAX)? {
        let id = keys::uuid_at(&key, prefix.len())
            .map(SubscriptionId::from_uuid)
            .ok_or_else(|| records::corrupt(&key, "subscription index key".into()))?;
        if let Some(subscription) = reader.subscription(id)? {
            subscriptions.push(subscription);
        }
    }
    Ok(subscriptions)
}

/// What the commands of one group staged: their writes, committed together, and the
/// hand-off jobs they withdrew, removed from the hand-off only once those writes commit.
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(crate) writes: WriteBatch,
    pub(crate) withdrawn: Vec<HandedOver>,
}

/// A command's writes, staged over the writes of the earlier commands of its group. Reads and
/// scans see both; [`Tx::stage`] adds the command's writes to the group, which the writer
/// commits to the engine atomically, all commands together. A command that fails (or
/// panics) is dropped unstaged, so it leaves no trace: the hand-off jobs it reserved are
/// returned.
pub(crate) struct Tx<'a, E: ?Sized> {
    engine: &'a E,
    group: &'a mut Group,
    handoff: &'a Handoff,
    writes: WriteBatch,
    withdrawn: Vec<HandedOver>,
}

impl<E: ?Sized> Drop for Tx<'_, E> {
    fn drop(&mut self) {
        self.handoff.release(&self.withdrawn);
    }
}

impl<'a, E: Engine + ?Sized> Tx<'a, E> {
    /// A command over `engine` and the writes its group staged so far.
    pub(crate) fn new(engine: &'a E, group: &'a mut Group, handoff: &'a Handoff) -> Self {
        Self {
            engine,
            group,
            handoff,
            writes: WriteBatch::new(),
            withdrawn: Vec::new(),
        }
    }

    /// The store's hand-off.
    pub(crate) fn handoff(&self) -> &Handoff {
        self.handoff
    }

    /// Withdraws `job` from the hand-off with this command's writes, if it is still waiting
    /// there (never sent); false when it was taken or never handed over.
    pub(crate) fn withdraw_handed_over(&mut self, job: &DeliveryJob) -> bool {
        let reserved = self.handoff.reserve(job);
        if reserved {
            self.withdrawn
                .push((job.notification, job.subscription, job.change_seq));
        }
        reserved
    }

    /// Withdraws every job of `subscription` still waiting in the hand-off with this
    /// command's writes; returns them with when each was written.
    pub(crate) fn withdraw_handed_over_for(
        &mut self,
        subscription: SubscriptionId,
    ) -> Vec<(Timestamp, LeasedJob)> {
        let reserved = self.handoff.reserve_subscription(subscription);
        self.withdrawn.extend(reserved.iter().map(|(_, leased)| {
            (
                leased.job.notification,
                leased.job.subscription,
                leased.job.change_seq,
            )
        }));
        reserved
    }

    /// Sets `key` to the encoded `record`.
    pub(crate) fn put<T: records::Record>(
        &mut self,
        tree: Tree,
        key: impl Into<Vec<u8>>,
        record: &T,
    ) {
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

    /// Adds the command's writes and withdrawals to its group (later writes to a key win).
    pub(crate) fn stage(mut self) {
        let writes = std::mem::take(&mut self.writes);
        self.group.writes.extend(writes);
        let withdrawn = std::mem::take(&mut self.withdrawn);
        self.group.withdrawn.extend(withdrawn);
    }

    /// The pending writes to `tree` within `range`, in key order: the group's, overridden by
    /// the command's own.
    fn pending(&self, tree: Tree, range: &KeyRange) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        let mut pending = BTreeMap::new();
        let start = match &range.0 {
            Bound::Included(key) => Bound::Included((tree, key.clone())),
            Bound::Excluded(key) => Bound::Excluded((tree, key.clone())),
            Bound::Unbounded => Bound::Included((tree, Vec::new())),
        };
        for writes in [&self.group.writes, &self.writes] {
            let in_range = writes
                .range((start.clone(), Bound::Unbounded))
                .take_while(|((candidate, key), _)| *candidate == tree && range.contains(key));
            for ((_, key), value) in in_range {
                pending.insert(key.clone(), value.clone());
            }
        }
        pending
    }
}

impl<E: Engine + ?Sized> Reader for Tx<'_, E> {
    fn read(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = (tree, key.to_vec());
        match self
            .writes
            .get(&key)
            .or_else(|| self.group.writes.get(&key))
        {
            Some(pending) => Ok(pending.clone()),
            None => self.engine.get(tree, &key.1),
        }
    }

    fn scan(
        &self,
        tree: Tree,
        range: KeyRange,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        let pending = self.pending(tree, &range);
        if pending.is_empty() {
            return self.engine.scan(tree, range, reverse, visit);
        }
        let mut merge = MergedScan {
            pending: if reverse {
                Box::new(pending.into_iter().rev())
            } else {
                Box::new(pending.into_iter())
            },
            next_pending: None,
            reverse,
            stopped: false,
        };
        merge.advance();
        self.engine.scan(tree, range, reverse, &mut |key, value| {
            merge.visit_stored(key, value, visit)
        })?;
        if !merge.stopped {
            merge.visit_rest(visit);
        }
        Ok(())
    }
}

type PendingEntry = (Vec<u8>, Option<Vec<u8>>);

/// Merges a scan of the engine with the pending writes in the same range and order: a pending
/// write replaces (or, a removal, hides) the stored entry at its key.
struct MergedScan {
    pending: Box<dyn Iterator<Item = PendingEntry>>,
    next_pending: Option<PendingEntry>,
    reverse: bool,
    stopped: bool,
}

impl MergedScan {
    fn advance(&mut self) {
        self.next_pending = self.pending.next();
    }

    /// Whether `key` comes before `other` in the scan's order.
    fn precedes(&self, key: &[u8], other: &[u8]) -> bool {
        if self.reverse {
            key > other
        } else {
            key < other
        }
    }

    /// Visits the pending entries before `stored_key`, then the stored entry (or the pending
    /// write at the same key).
    fn visit_stored(
        &mut self,
        stored_key: &[u8],
        stored_value: &[u8],
        visit: &mut Visitor<'_>,
    ) -> ControlFlow<()> {
        while let Some((key, value)) = self.next_pending.take() {
            if self.precedes(&key, stored_key) {
                self.advance();
                if let Some(value) = value {
                    self.visited(visit(&key, &value))?;
                }
            } else if key.as_slice() == stored_key {
                self.advance();
                return match value {
                    Some(value) => self.visited(visit(&key, &value)),
                    None => ControlFlow::Continue(()),
                };
            } else {
                self.next_pending = Some((key, value));
                break;
            }
        }
        self.visited(visit(stored_key, stored_value))
    }

    /// Visits the pending entries after the last stored one.
    fn visit_rest(&mut self, visit: &mut Visitor<'_>) {
        while let Some((key, value)) = self.next_pending.take() {
            self.advance();
            if let Some(value) = value
                && self.visited(visit(&key, &value)).is_break()
            {
                return;
            }
        }
    }

    fn visited(&mut self, flow: ControlFlow<()>) -> ControlFlow<()> {
        self.stopped |= flow.is_break();
        flow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MemoryEngine;
    use proptest::prelude::*;

    type Writes = Vec<(u8, Option<u8>)>;

    fn batch(tree: Tree, writes: &Writes) -> WriteBatch {
        writes
            .iter()
            .map(|(key, value)| ((tree, vec![*key]), value.map(|value| vec![value])))
            .collect()
    }

    /// What a scan must see: the stored entries with the group's writes applied, then the
    /// command's.
    fn expected(layers: [&Writes; 3], range: &KeyRange, reverse: bool, limit: usize) -> Vec<Entry> {
        let mut model = BTreeMap::new();
        for layer in layers {
            for (key, value) in layer {
                match value {
                    Some(value) => model.insert(vec![*key], vec![*value]),
                    None => model.remove(&vec![*key]),
                };
            }
        }
        let entries = model.into_iter().filter(|(key, _)| range.contains(key));
        let entries: Vec<Entry> = if reverse {
            entries.rev().collect()
        } else {
            entries.collect()
        };
        entries.into_iter().take(limit).collect()
    }

    fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
        prop_oneof![
            Just(Bound::Unbounded),
            (0u8..24).prop_map(|key| Bound::Included(vec![key])),
            (0u8..24).prop_map(|key| Bound::Excluded(vec![key])),
        ]
    }

    fn writes() -> impl Strategy<Value = Writes> {
        proptest::collection::vec((0u8..24, proptest::option::of(any::<u8>())), 0..16)
    }

    proptest! {
        /// A scan through a command sees exactly the stored entries overlaid with the group's
        /// staged writes and then the command's own, in order, in either direction, and stops
        /// when told to. Writes to a neighbouring tree never leak in.
        #[test]
        fn a_scan_sees_the_stored_entries_through_the_staged_writes(
            stored in writes(),
            staged in writes(),
            own in writes(),
            other_tree in writes(),
            range in (bound(), bound()),
            reverse in any::<bool>(),
            limit in 1usize..20,
        ) {
            let engine = MemoryEngine::new();
            let mut initial = batch(Tree::Due, &stored);
            initial.extend(batch(Tree::Jobs, &other_tree));
            engine.commit(&initial).unwrap();
            let mut group = Group {
                writes: batch(Tree::Due, &staged),
                ..Group::default()
            };
            group.writes.extend(batch(Tree::Expiry, &other_tree));
            let handoff = Handoff::default();
            let mut tx = Tx::new(&engine, &mut group, &handoff);
            for (key, value) in &own {
                match value {
                    Some(value) => tx.put_raw(Tree::Due, vec![*key], &[*value]),
                    None => tx.delete(Tree::Due, vec![*key]),
                }
            }

            let mut seen = Vec::new();
            tx.scan(Tree::Due, range.clone(), reverse, &mut |key, value| {
                seen.push((key.to_vec(), value.to_vec()));
                if seen.len() >= limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            }).unwrap();

            prop_assert_eq!(seen, expected([&stored, &staged, &own], &range, reverse, limit));
        }
    }

    #[test]
    fn a_staged_command_is_seen_by_the_next_and_an_unstaged_one_by_none() {
        let engine = MemoryEngine::new();
        let handoff = Handoff::default();
        let mut group = Group::default();
        let mut first = Tx::new(&engine, &mut group, &handoff);
        first.put_raw(Tree::Due, vec![1], &[1]);
        first.stage();
        let mut failed = Tx::new(&engine, &mut group, &handoff);
        assert_eq!(failed.read(Tree::Due, &[1]).unwrap(), Some(vec![1]));
        failed.delete(Tree::Due, vec![1]);
        failed.put_raw(Tree::Due, vec![2], &[2]);
        drop(failed);
        let next = Tx::new(&engine, &mut group, &handoff);
        assert_eq!(next.read(Tree::Due, &[1]).unwrap(), Some(vec![1]));
        assert_eq!(next.read(Tree::Due, &[2]).unwrap(), None);
        assert_eq!(
            engine.get(Tree::Due, &[1]).unwrap(),
            None,
            "not committed yet"
        );
    }
}
