//! The key-value engines under the store: sled (durable) and an in-memory map. The store's
//! logic is written once over [`Engine`]; an engine only stores bytes in named trees, applies
//! a batch atomically, and flushes.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, ControlFlow};
use std::path::Path;
use std::sync::Mutex;

use notif_core::ports::StoreError;
use sled::Transactional;

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
    /// notification id | subscription id → delivery-status record.
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

    fn name(self) -> String {
        format!("{self:?}").to_ascii_lowercase()
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

/// The sled engine: one sled tree per store tree, a multi-tree transaction per atomic batch.
pub struct SledEngine {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

impl fmt::Debug for SledEngine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SledEngine")
            .field("trees", &self.trees.len())
            .finish_non_exhaustive()
    }
}

fn unavailable(error: sled::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

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
        let trees = Tree::ALL
            .iter()
            .map(|tree| db.open_tree(tree.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        Ok(Self { db, trees })
    }
}

impl sealed::Sealed for SledEngine {}

impl Engine for SledEngine {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.trees[tree.index()]
            .get(key)
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
        let entries = self.trees[tree.index()].range::<Vec<u8>, _>(range);
        let mut visit_all =
            |entries: &mut dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>| {
                for entry in entries {
                    let (key, value) = entry.map_err(unavailable)?;
                    if visit(&key, &value).is_break() {
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
        // Only the trees the batch touches take part, so the transaction stages no more
        // locks than it needs.
        let mut touched: Vec<Tree> = batch.keys().map(|(tree, _)| *tree).collect();
        touched.dedup();
        let trees: Vec<&sled::Tree> = touched
            .iter()
            .map(|tree| &self.trees[tree.index()])
            .collect();
        let result: sled::transaction::TransactionResult<(), ()> =
            trees.as_slice().transaction(|views| {
                for ((tree, key), value) in batch {
                    let position = touched
                        .iter()
                        .position(|candidate| candidate == tree)
                        .unwrap_or(0);
                    let view = &views[position];
                    match value {
                        Some(value) => view.insert(key.as_slice(), value.as_slice())?,
                        None => view.remove(key.as_slice())?,
                    };
                }
                Ok(())
            });
        result.map_err(|error| StoreError::Unavailable(format!("{error:?}")))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(unavailable)
    }
}
