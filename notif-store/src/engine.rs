//! The key-value engines under the store: sled (durable) and an in-memory map. The store's
//! logic is written once over [`Engine`]; an engine only stores bytes in its trees, applies
//! a batch atomically, and flushes.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, ControlFlow};
use std::path::Path;
use std::sync::Mutex;

use notif_core::ports::StoreError;

/// The trees of the store (an implementation detail of [`Engine`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// feed | notification id → notification record.
    Notifications,
    /// feed | appNotificationId → notification id (the latest with that key).
    AppIds,
    /// feed | group name → the group's notification ids.
    Groups,
    /// feed | change seq → notification id (one entry per notification: its latest change).
    Changes,
    /// feed → feed counters (last change seq, unread count).
    Feeds,
    /// expiration | feed | notification id → ().
    Expiry,
    /// subscription id → subscription record.
    Subscriptions,
    /// feed | subscription id → ().
    FeedSubscriptions,
    /// app | channel identity → subscription id.
    Channels,
    /// subscription expiry | subscription id → ().
    SubscriptionExpiry,
    /// notification id | subscription id → job record.
    Jobs,
    /// due time | notification id | subscription id → ().
    Due,
    /// notification id | subscription id → delivery-status record (none while the endpoint
    /// has only the job a write queued: that job reads as pending).
    Status,
    /// position → the identity provider's signing key.
    IdpKeys,
    /// refresh-token hash → its grant.
    IdpGrants,
    /// grant expiry | refresh-token hash → ().
    IdpGrantExpiry,
}

impl Tree {
    const ALL: [Tree; 16] = [
        Tree::Notifications,
        Tree::AppIds,
        Tree::Groups,
        Tree::Changes,
        Tree::Feeds,
        Tree::Expiry,
        Tree::Subscriptions,
        Tree::FeedSubscriptions,
        Tree::Channels,
        Tree::SubscriptionExpiry,
        Tree::Jobs,
        Tree::Due,
        Tree::Status,
        Tree::IdpKeys,
        Tree::IdpGrants,
        Tree::IdpGrantExpiry,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The name of the sled tree that held this tree before the prefixed layout.
    fn name(self) -> String {
        format!("{self:?}").to_ascii_lowercase()
    }

    /// The byte that prefixes this tree's keys in the one sled tree.
    fn byte(self) -> u8 {
        self as u8
    }
}

/// Writes to apply together: a key set to a value, or removed (`None`).
#[doc(hidden)]
pub(crate) type WriteBatch = BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>;

/// Called for each entry of a scan; breaks to stop the scan.
pub(crate) type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'a;

/// A key and its value, owned.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// A key range in one tree.
#[doc(hidden)]
pub(crate) type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Whether `range` holds no key at all (its start is past its end): ordered maps refuse such
/// ranges rather than yield nothing.
fn is_empty(range: &KeyRange) -> bool {
    match range {
        (Bound::Included(start), Bound::Included(end)) => start > end,
        (Bound::Included(start) | Bound::Excluded(start), Bound::Excluded(end))
        | (Bound::Excluded(start), Bound::Included(end)) => start >= end,
        _ => false,
    }
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// A storage engine for the store. Sealed: implemented by [`SledEngine`] and [`MemoryEngine`].
pub trait Engine: sealed::Sealed + Send + Sync + fmt::Debug + 'static {
    /// The value at `key`, if any.
    #[doc(hidden)]
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits the keys of `range` in order (or reverse order) until `visit` breaks.
    #[doc(hidden)]
    fn scan(
        &self,
        tree: Tree,
        range: KeyRange,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError>;

    /// Applies every write of `batch`, all or none.
    #[doc(hidden)]
    fn commit(&self, batch: &WriteBatch) -> Result<(), StoreError>;

    /// Makes every committed write durable.
    #[doc(hidden)]
    fn flush(&self) -> Result<(), StoreError>;
}

/// The in-memory engine: one ordered map per tree behind one lock.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    trees: Mutex<Vec<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemoryEngine {
    pub(crate) fn new() -> Self {
        Self {
            trees: Mutex::new(vec![BTreeMap::new(); Tree::ALL.len()]),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<BTreeMap<Vec<u8>, Vec<u8>>>> {
        // A panic while holding the lock cannot leave a map half-written (commits are
        // applied in one pass with no fallible step), so a poisoned lock is still consistent.
        self.trees
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl sealed::Sealed for MemoryEngine {}

impl Engine for MemoryEngine {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()[tree.index()].get(key).cloned())
    }

    fn scan(
        &self,
        tree: Tree,
        range: KeyRange,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        if is_empty(&range) {
            return Ok(());
        }
        let trees = self.lock();
        let entries = trees[tree.index()].range::<Vec<u8>, _>(range);
        let mut visit_all = |entries: &mut dyn Iterator<Item = (&Vec<u8>, &Vec<u8>)>| {
            for (key, value) in entries {
                if visit(key, value).is_break() {
                    break;
                }
            }
        };
        if reverse {
            visit_all(&mut entries.rev());
        } else {
            visit_all(&mut { entries });
        }
        Ok(())
    }

    fn commit(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut trees = self.lock();
        for ((tree, key), value) in batch {
            let map = &mut trees[tree.index()];
            match value {
                Some(value) => map.insert(key.clone(), value.clone()),
                None => map.remove(key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// How long an open waits for a previous owner of the directory to let go of it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The sled engine: every store tree in one sled tree, each key prefixed by its tree's
/// byte, so an atomic batch is one sled `apply_batch` rather than a multi-tree transaction
/// (which stages every write a second time and locks each tree it touches).
pub struct SledEngine {
    db: sled::Db,
    entries: sled::Tree,
}

impl fmt::Debug for SledEngine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("SledEngine").finish_non_exhaustive()
    }
}

fn unavailable(error: sled::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// The sled tree that holds every entry.
const ENTRIES: &str = "entries";

/// How many entries of a tree of the earlier layout are moved per batch.
const MIGRATION_BATCH: usize = 1024;

impl SledEngine {
    pub(crate) fn open(directory: &Path) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(directory)
            // Durability comes from the store's explicit group-commit flush; sled's periodic
            // flusher thread would only be a second owner of the files.
            .flush_every_ms(None);
        // sled releases its directory lock when the last reference to its files goes, which
        // its epoch-based reclamation may defer a little past a `close`: a reopen right after
        // (a restart) waits for it, briefly, instead of failing.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                // sled reports a held lock only in the message of an `Other` I/O error.
                Err(sled::Error::Io(error))
                    if error.to_string().starts_with("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(error) => return Err(unavailable(error)),
            }
        };
        let entries = db.open_tree(ENTRIES).map_err(unavailable)?;
        let engine = Self { db, entries };
        engine.migrate_tree_per_store_tree()?;
        Ok(engine)
    }

    /// Moves the entries of a directory written with one sled tree per store tree (as notif
    /// 0.1 wrote them) into the prefixed layout: every old tree is copied, the copies flushed,
    /// then the old trees dropped and the drops flushed before the store takes a write. A
    /// crash part-way leaves old trees to be copied again (the copy overwrites the same keys).
    fn migrate_tree_per_store_tree(&self) -> Result<(), StoreError> {
        let existing = self.db.tree_names();
        let old_trees = Tree::ALL
            .into_iter()
            .filter(|tree| {
                let name = tree.name();
                existing
                    .iter()
                    .any(|existing| existing.as_ref() == name.as_bytes())
            })
            .map(|tree| Ok((tree, self.db.open_tree(tree.name()).map_err(unavailable)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        if old_trees.is_empty() {
            return Ok(());
        }
        for (tree, old) in &old_trees {
            let mut batch = sled::Batch::default();
            for (copied, entry) in old.iter().enumerate() {
                let (key, value) = entry.map_err(unavailable)?;
                batch.insert(prefixed(*tree, &key), value);
                if (copied + 1) % MIGRATION_BATCH == 0 {
                    self.entries
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(unavailable)?;
                }
            }
            self.entries.apply_batch(batch).map_err(unavailable)?;
        }
        self.flush()?;
        let moved = old_trees.len();
        for (tree, old) in old_trees {
            drop(old);
            self.db.drop_tree(tree.name()).map_err(unavailable)?;
        }
        self.flush()?;
        tracing::info!(
            trees = moved,
            "moved the store's trees into the prefixed layout"
        );
        Ok(())
    }
}

/// `key` in the one sled tree: the tree's byte, then the key.
fn prefixed(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut prefixed = Vec::with_capacity(1 + key.len());
    prefixed.push(tree.byte());
    prefixed.extend_from_slice(key);
    prefixed
}

/// `range` of `tree` as a range of the one sled tree: an unbounded end stops at the tree's
/// own keys.
fn prefixed_range(tree: Tree, range: KeyRange) -> KeyRange {
    let bound = |bound: Bound<Vec<u8>>, unbounded: Bound<Vec<u8>>| match bound {
        Bound::Included(key) => Bound::Included(prefixed(tree, &key)),
        Bound::Excluded(key) => Bound::Excluded(prefixed(tree, &key)),
        Bound::Unbounded => unbounded,
    };
    let (start, end) = range;
    (
        bound(start, Bound::Included(vec![tree.byte()])),
        bound(end, Bound::Excluded(vec![tree.byte() + 1])),
    )
}

impl sealed::Sealed for SledEngine {}

impl Engine for SledEngine {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.entries
            .get(prefixed(tree, key))
            .map(|value| value.map(|value| value.to_vec()))
            .map_err(unavailable)
    }

    fn scan(
        &self,
        tree: Tree,
        range: KeyRange,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        if is_empty(&range) {
            return Ok(());
        }
        let entries = self
            .entries
            .range::<Vec<u8>, _>(prefixed_range(tree, range));
        let mut visit_all =
            |entries: &mut dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>| {
                for entry in entries {
                    let (key, value) = entry.map_err(unavailable)?;
                    if visit(&key[1..], &value).is_break() {
                        break;
                    }
                }
                Ok(())
            };
        if reverse {
            visit_all(&mut entries.rev())
        } else {
            visit_all(&mut { entries })
        }
    }

    fn commit(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writes = sled::Batch::default();
        for ((tree, key), value) in batch {
            match value {
                Some(value) => writes.insert(prefixed(*tree, key), value.as_slice()),
                None => writes.remove(prefixed(*tree, key)),
            }
        }
        self.entries.apply_batch(writes).map_err(unavailable)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(engine: &dyn Engine, tree: Tree) -> Vec<Entry> {
        let mut found = Vec::new();
        engine
            .scan(
                tree,
                (Bound::Unbounded, Bound::Unbounded),
                false,
                &mut |key, value| {
                    found.push((key.to_vec(), value.to_vec()));
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        found
    }

    #[test]
    fn a_directory_with_a_sled_tree_per_store_tree_is_moved_into_the_prefixed_layout() {
        let directory = tempfile::tempdir().unwrap();
        {
            let db = sled::open(directory.path()).unwrap();
            for (number, tree) in [Tree::Notifications, Tree::Jobs, Tree::IdpGrantExpiry]
                .into_iter()
                .enumerate()
            {
                let old = db.open_tree(tree.name()).unwrap();
                for key in 0..(MIGRATION_BATCH as u32 + 3) {
                    old.insert(key.to_be_bytes(), vec![u8::try_from(number).unwrap(); 3])
                        .unwrap();
                }
            }
            db.flush().unwrap();
        }
        let engine = SledEngine::open(directory.path()).unwrap();
        for (number, tree) in [Tree::Notifications, Tree::Jobs, Tree::IdpGrantExpiry]
            .into_iter()
            .enumerate()
        {
            let moved = entries(&engine, tree);
            assert_eq!(moved.len(), MIGRATION_BATCH + 3, "{tree:?}");
            assert_eq!(
                moved[7],
                (
                    7u32.to_be_bytes().to_vec(),
                    vec![u8::try_from(number).unwrap(); 3]
                )
            );
            assert_eq!(
                engine.get(tree, &5u32.to_be_bytes()).unwrap(),
                Some(vec![u8::try_from(number).unwrap(); 3])
            );
        }
        assert!(entries(&engine, Tree::Due).is_empty());
        let names = engine.db.tree_names();
        assert!(
            !names.iter().any(|name| name.as_ref() == b"jobs"),
            "the old trees are dropped"
        );
        drop(engine);
        // Reopened, nothing is moved twice and the entries stay.
        let engine = SledEngine::open(directory.path()).unwrap();
        assert_eq!(entries(&engine, Tree::Jobs).len(), MIGRATION_BATCH + 3);
    }

    #[test]
    fn trees_keep_their_own_keys_in_the_one_sled_tree() {
        let directory = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(directory.path()).unwrap();
        let mut batch = WriteBatch::new();
        for tree in Tree::ALL {
            batch.insert((tree, vec![]), Some(vec![tree.byte()]));
            batch.insert((tree, vec![0xff, 0xff]), Some(vec![tree.byte(), 1]));
        }
        engine.commit(&batch).unwrap();
        for tree in Tree::ALL {
            assert_eq!(
                entries(&engine, tree),
                vec![
                    (vec![], vec![tree.byte()]),
                    (vec![0xff, 0xff], vec![tree.byte(), 1])
                ],
                "{tree:?}"
            );
            let mut reversed = Vec::new();
            engine
                .scan(
                    tree,
                    (Bound::Excluded(vec![]), Bound::Unbounded),
                    true,
                    &mut |key, _| {
                        reversed.push(key.to_vec());
                        ControlFlow::Continue(())
                    },
                )
                .unwrap();
            assert_eq!(reversed, vec![vec![0xff, 0xff]], "{tree:?}");
        }
        let mut removal = WriteBatch::new();
        removal.insert((Tree::Due, vec![0xff, 0xff]), None);
        engine.commit(&removal).unwrap();
        assert_eq!(entries(&engine, Tree::Due).len(), 1);
        assert_eq!(entries(&engine, Tree::Status).len(), 2);
    }
}
