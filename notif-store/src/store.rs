//! `Store`: the storage ports over an engine, with one writer thread that group-commits.
//!
//! Every write runs on a single writer thread: it takes the commands queued while the previous
//! group was committing, runs each over the writes staged by those before it, commits the whole
//! group to the engine in one atomic batch, flushes once, and only then answers them all. So a
//! write is acknowledged only once durable, and N concurrent writers cost one transaction and
//! one fsync, not N. Reads run on tokio's blocking pool, never on async workers.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use notif_core::delivery::{DeliveryRecord, Settlement};
use notif_core::fanout::DeliveryJob;
use notif_core::feed::{FeedOp, FeedWrite};
use notif_core::ids::ClientId;
use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::{ChangeSeq, FeedKey, Notification};
use notif_core::ports::{
    ChangePage, DeliveryQueue, IdentityStore, LeasedJob, ListPage, ListQuery, NotificationStore,
    RefreshGrant, SpentRefresh, StoreAdmin, StoreError, StoredSigningKey, SubscribeOutcome,
    SubscriptionStore,
};
use notif_core::subscription::Subscription;
use notif_core::time::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::engine::{Engine, MemoryEngine, SledEngine};
use crate::handoff::Handoff;
use crate::stats::WriteStats;
use crate::tx::{Direct, Group, Reader, Tx, feed_subscriptions};
use crate::{read, write};

/// The most commands applied before one flush.
const MAX_GROUP: usize = 512;
/// The most writes staged in one group: bounds the batch — how long the commands queued
/// behind it wait, and the transient memory it takes, which the allocator keeps afterwards (at
/// 2,048 a pending job cost ~1,000 bytes of RSS, at 512 ~820).
const MAX_GROUP_WRITES: usize = 512;
/// Commands waiting for the writer; senders wait when it is full (backpressure).
const QUEUE_DEPTH: usize = 4096;

/// Answers a command once its group is flushed (or failed to flush).
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Runs a command over the engine and what its group staged so far, staging its own.
type Run<E> = Box<dyn FnOnce(&E, &mut Group, &Handoff) -> Reply + Send>;

struct Command<E> {
    /// Whether the command must be flushed before it is answered.
    durable: bool,
    run: Run<E>,
}

/// The storage ports over an engine. Use [`SledStore`] or [`MemoryStore`].
pub struct Store<E: Engine> {
    engine: Arc<E>,
    commands: mpsc::Sender<Command<E>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    writes: WriteStats,
    handoff: Arc<Handoff>,
    health: Arc<WriterHealth>,
}

/// What the writer last saw of the engine: whether its last commit (and flush) succeeded.
#[derive(Debug, Default)]
struct WriterHealth {
    failing: Mutex<Option<String>>,
}

impl WriterHealth {
    fn record(&self, outcome: &Result<(), StoreError>) {
        let mut failing = self
            .failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *failing = outcome.as_ref().err().map(ToString::to_string);
    }

    fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The durable store on sled: a directory on disk.
pub type SledStore = Store<SledEngine>;

/// The in-memory store, for tests and embedders; same semantics, nothing survives the process.
pub type MemoryStore = Store<MemoryEngine>;

impl<E: Engine> fmt::Debug for Store<E> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Store")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the store in `directory`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the directory cannot be opened (for example, another
    /// process holds it).
    ///
    /// sled opens its directory exclusively, so no other process can hold a lease on these
    /// jobs: the leases of a process that crashed are voided here, and its unsent pushes go
    /// out at once instead of after their leases lapse.
    pub fn open(directory: impl AsRef<Path>) -> Result<Self, StoreError> {
        let engine = SledEngine::open(directory.as_ref())?;
        let released = void_leases(&engine)?;
        if released > 0 {
            tracing::info!(released, "voided the leases of the previous process");
        }
        Self::start(engine)
    }
}

impl MemoryStore {
    /// An empty in-memory store.
    ///
    /// # Panics
    /// When the writer thread cannot be started (the system is out of threads or memory).
    pub fn new() -> Self {
        Self::start(MemoryEngine::new()).expect("starting the store's writer thread")
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Engine> Store<E> {
    fn start(engine: E) -> Result<Self, StoreError> {
        let engine = Arc::new(engine);
        let (commands, receiver) = mpsc::channel(QUEUE_DEPTH);
        let handoff = Arc::new(Handoff::default());
        let health = Arc::new(WriterHealth::default());
        let writer = {
            let (engine, handoff, health) = (
                Arc::clone(&engine),
                Arc::clone(&handoff),
                Arc::clone(&health),
            );
            std::thread::Builder::new()
                .name("notif-store-writer".into())
                .spawn(move || run_writer(engine.as_ref(), &handoff, &health, receiver))
                .map_err(|error| {
                    StoreError::Unavailable(format!("starting the store writer: {error}"))
                })?
        };
        Ok(Self {
            engine,
            commands,
            writer: Mutex::new(Some(writer)),
            writes: WriteStats::default(),
            handoff,
            health,
        })
    }

    fn writer_health(&self) -> Result<(), StoreError> {
        let running = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .is_some_and(|writer| !writer.is_finished());
        if !running {
            return Err(StoreError::Unavailable("the store writer stopped".into()));
        }
        match self.health.failing() {
            Some(reason) => Err(StoreError::Unavailable(format!(
                "the last store commit failed: {reason}"
            ))),
            None => Ok(()),
        }
    }

    async fn command<T: Send + 'static>(
        &self,
        durable: bool,
        operation: impl FnOnce(&mut Tx<'_, E>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.command_then(durable, operation, |_| {}).await
    }

    /// Runs `operation` as a command; once it is committed (and flushed, when `durable`),
    /// `then` sees its result before the caller does — even if the caller has gone away.
    async fn command_then<T: Send + 'static>(
        &self,
        durable: bool,
        operation: impl FnOnce(&mut Tx<'_, E>) -> Result<T, StoreError> + Send + 'static,
        then: impl FnOnce(&mut T) + Send + 'static,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let (reply_sender, reply) = oneshot::channel();
        let run = Box::new(
            move |engine: &E, group: &mut Group, handoff: &Handoff| -> Reply {
                let mut tx = Tx::new(engine, group, handoff);
                let result = operation(&mut tx);
                if result.is_ok() {
                    tx.stage();
                }
                Box::new(move |flushed: Result<(), StoreError>| {
                    let mut result = flushed.and(result);
                    if let Ok(value) = &mut result {
                        then(value);
                    }
                    // The caller may have gone away (request cancelled); the write stands.
                    let _ = reply_sender.send(result);
                })
            },
        );
        self.commands
            .send(Command { durable, run })
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let result = reply
            .await
            .map_err(|_| StoreError::Unavailable("the store writer stopped".into()))?;
        self.writes.record(started.elapsed());
        result
    }

    async fn query<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&E) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || operation(&engine))
            .await
            .map_err(|_| StoreError::Unavailable("a storage read failed".into()))?
    }
}

/// Voids every lease in `engine` (see [`write::void_leases`]) in one durable commit, before
/// the writer starts.
fn void_leases<E: Engine>(engine: &E) -> Result<usize, StoreError> {
    let handoff = Handoff::default();
    let mut group = Group::default();
    let mut tx = Tx::new(engine, &mut group, &handoff);
    let released = write::void_leases(&mut tx)?;
    tx.stage();
    if released > 0 {
        engine.commit(&group.writes)?;
        engine.flush()?;
    }
    Ok(released)
}

/// The writer loop. A command that panics fails alone — its caller sees the store
/// unavailable, its staged writes and hand-off withdrawals are dropped — and the writer goes
/// on with the rest of the group; a panic while committing fails that group's commands.
fn run_writer<E: Engine>(
    engine: &E,
    handoff: &Handoff,
    health: &WriterHealth,
    mut commands: mpsc::Receiver<Command<E>>,
) {
    while let Some(first) = commands.blocking_recv() {
        let mut group = Group::default();
        let mut replies = Vec::new();
        let mut durable = false;
        let mut next = Some(first);
        while let Some(command) = next.take() {
            durable |= command.durable;
            let run = command.run;
            match catch_unwind(AssertUnwindSafe(|| run(engine, &mut group, handoff))) {
                Ok(reply) => replies.push(reply),
                // Its reply sender went down with it: the caller is told the writer stopped.
                Err(_) => tracing::error!("a store command panicked; it failed alone"),
            }
            if replies.len() < MAX_GROUP && group.writes.len() < MAX_GROUP_WRITES {
                next = commands.try_recv().ok();
            }
        }
        let written = catch_unwind(AssertUnwindSafe(|| {
            let committed = engine.commit(&group.writes);
            if committed.is_ok() {
                handoff.committed(&group.writes);
            }
            committed.and_then(|()| if durable { engine.flush() } else { Ok(()) })
        }))
        .unwrap_or_else(|_| Err(StoreError::Unavailable("committing panicked".into())));
        // Withdrawals from the hand-off take effect only with the writes that made them.
        if written.is_ok() {
            handoff.complete(&group.withdrawn);
        } else {
            handoff.release(&group.withdrawn);
        }
        health.record(&written);
        for reply in replies {
            reply(written.clone());
        }
    }
}

impl<E: Engine> Drop for Store<E> {
    /// Ends the writer once the commands queued so far are done, and waits for it, so the
    /// engine — and a sled directory — is released when the last handle goes.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.commands, closed));
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(writer) = writer {
            // A writer that panicked has nothing left to finish.
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl<E: Engine> StoreAdmin for Store<E> {
    /// The writer runs and its last commit succeeded.
    fn health(&self) -> Result<(), StoreError> {
        self.writer_health()
    }

    /// Reads the whole job index.
    async fn pending_jobs(&self) -> Result<u64, StoreError> {
        self.query(|engine| read::count(engine, crate::engine::Tree::Jobs))
            .await
    }

    fn write_latency(&self) -> (u64, Duration) {
        self.writes.totals()
    }

    /// A flush shared with any concurrent writes.
    async fn flush(&self) -> Result<(), StoreError> {
        self.command(true, |_| Ok(())).await
    }

    /// Jobs waiting in the hand-off, never taken, are written back due.
    async fn close(&self) -> Result<(), StoreError> {
        let waiting = self.handoff.drain();
        if !waiting.is_empty() {
            self.command(true, move |tx| write::release_leases(tx, &waiting))
                .await?;
        }
        self.command(true, |_| Ok(())).await
    }
}

#[async_trait]
impl<E: Engine> IdentityStore for Store<E> {
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.query(|engine| write::signing_keys(&Direct(engine)))
            .await
    }

    async fn add_signing_key(
        &self,
        key: StoredSigningKey,
        first: bool,
    ) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.command(true, move |tx| write::add_signing_key(tx, key, first))
            .await
    }

    async fn grant_refresh(&self, token_hash: &str, grant: RefreshGrant) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.command(true, move |tx| {
            write::grant_refresh(tx, &token_hash, &grant);
            Ok(())
        })
        .await
    }

    async fn spend_refresh(
        &self,
        token_hash: &str,
        client: &ClientId,
        now: Timestamp,
    ) -> Result<SpentRefresh, StoreError> {
        let (token_hash, client) = (token_hash.to_owned(), client.clone());
        self.command(true, move |tx| {
            write::spend_refresh(tx, &token_hash, &client, now)
        })
        .await
    }
}

#[async_trait]
impl<E: Engine> NotificationStore for Store<E> {
    async fn write(
        &self,
        feed: &FeedKey,
        op: FeedOp,
        now: Timestamp,
    ) -> Result<FeedWrite, StoreError> {
        let feed = feed.clone();
        let handing = Arc::clone(&self.handoff);
        let (write, _) = self
            .command_then(
                true,
                move |tx| write::write_feed(tx, &feed, op, now),
                // Handed over only once durable: a push never announces an unwritten change.
                move |(_, leased)| handing.put(now, std::mem::take(leased)),
            )
            .await?;
        Ok(write)
    }

    async fn get(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        now: Timestamp,
    ) -> Result<Option<Notification>, StoreError> {
        let feed = feed.clone();
        self.query(move |engine| read::get(engine, &feed, id, now))
            .await
    }

    async fn list(
        &self,
        feed: &FeedKey,
        query: &ListQuery,
        now: Timestamp,
    ) -> Result<ListPage, StoreError> {
        let (feed, query) = (feed.clone(), query.clone());
        self.query(move |engine| read::list(engine, &feed, &query, now))
            .await
    }

    async fn changes_since(
        &self,
        feed: &FeedKey,
        cursor: ChangeSeq,
        limit: usize,
        now: Timestamp,
    ) -> Result<ChangePage, StoreError> {
        let feed = feed.clone();
        self.query(move |engine| read::changes_since(engine, &feed, cursor, limit, now))
            .await
    }

    async fn last_change(&self, feed: &FeedKey) -> Result<ChangeSeq, StoreError> {
        let feed = feed.clone();
        self.query(move |engine| Ok(ChangeSeq::new(Direct(engine).feed_meta(&feed)?.last_seq)))
            .await
    }

    async fn delivery_status(
        &self,
        feed: &FeedKey,
        id: NotificationId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let feed = feed.clone();
        self.query(move |engine| read::delivery_status(engine, &feed, id))
            .await
    }

    async fn record_fetch(
        &self,
        feed: &FeedKey,
        subscription: SubscriptionId,
        notifications: &[NotificationId],
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let feed = feed.clone();
        let notifications = notifications.to_vec();
        // Like a settlement, a fetch lost in a crash costs at most a visual push the device
        // did not need; it is not worth an fsync on the read that noted it.
        self.command(false, move |tx| {
            write::record_fetch(tx, &feed, subscription, &notifications, now)
        })
        .await
    }

    async fn expire(&self, now: Timestamp, limit: usize) -> Result<usize, StoreError> {
        self.command(true, move |tx| write::expire(tx, now, limit))
            .await
    }
}

#[async_trait]
impl<E: Engine> SubscriptionStore for Store<E> {
    async fn subscribe(
        &self,
        candidate: Subscription,
        max_per_user: usize,
    ) -> Result<SubscribeOutcome, StoreError> {
        self.command(true, move |tx| {
            write::subscribe(tx, candidate, max_per_user)
        })
        .await
    }

    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, StoreError> {
        self.query(move |engine| Direct(engine).subscription(id))
            .await
    }

    async fn subscriptions(&self, feed: &FeedKey) -> Result<Vec<Subscription>, StoreError> {
        let feed = feed.clone();
        self.query(move |engine| feed_subscriptions(&Direct(engine), &feed))
            .await
    }

    async fn unsubscribe(&self, feed: &FeedKey, id: SubscriptionId) -> Result<(), StoreError> {
        let feed = feed.clone();
        self.command(true, move |tx| write::unsubscribe(tx, &feed, id))
            .await
    }
}

#[async_trait]
impl<E: Engine> DeliveryQueue for Store<E> {
    async fn lease_due(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedJob>, StoreError> {
        // A lease lost in a crash only makes the job due again sooner: no flush needed.
        crate::handoff::lease(&self.handoff, now, limit, lease, |wanted| {
            self.command(false, move |tx| write::lease_due(tx, now, wanted, lease))
        })
        .await
    }

    async fn settle(
        &self,
        settlements: Vec<(DeliveryJob, Settlement)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // Delivery is at least once: a settlement lost in a crash means the job comes back
        // when its lease ends and is sent again, which devices deduplicate by id and
        // changeSeq. Not flushing here keeps the fsyncs for the writes clients wait on.
        self.command(false, move |tx| write::settle(tx, &settlements, now))
            .await
    }

    async fn release(&self, jobs: Vec<DeliveryJob>, due: Timestamp) -> Result<(), StoreError> {
        // Like a lost settlement, a lost release only makes the job wait for its lease.
        self.command(false, move |tx| {
            for job in &jobs {
                write::release(tx, job, due)?;
            }
            Ok(())
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        if let Some(written) = self.handoff.oldest() {
            return Ok(Some(written));
        }
        self.query(|engine| read::next_due(engine)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::engine::{KeyRange, Tree, Visitor, WriteBatch, sealed};

    /// The memory engine, whose commits fail while `failing` is set.
    #[derive(Debug)]
    struct FlakyEngine {
        inner: MemoryEngine,
        failing: AtomicBool,
    }

    impl Default for FlakyEngine {
        fn default() -> Self {
            Self {
                inner: MemoryEngine::new(),
                failing: AtomicBool::new(false),
            }
        }
    }

    impl sealed::Sealed for FlakyEngine {}

    impl Engine for FlakyEngine {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(tree, key)
        }

        fn scan(
            &self,
            tree: Tree,
            range: KeyRange,
            reverse: bool,
            visit: &mut Visitor<'_>,
        ) -> Result<(), StoreError> {
            self.inner.scan(tree, range, reverse, visit)
        }

        fn commit(&self, batch: &WriteBatch) -> Result<(), StoreError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("the disk is full".into()));
            }
            self.inner.commit(batch)
        }

        fn flush(&self) -> Result<(), StoreError> {
            self.inner.flush()
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("a runtime: {error}"))
    }

    #[test]
    fn a_panicking_command_fails_alone_and_the_writer_lives_on() {
        runtime().block_on(async {
            let store = MemoryStore::new();
            let panicked = store
                .command(true, |_| -> Result<(), StoreError> {
                    panic!("a bug in one command")
                })
                .await;
            assert!(
                matches!(panicked, Err(StoreError::Unavailable(_))),
                "{panicked:?}"
            );
            let written = store
                .command(true, |tx| {
                    tx.put_raw(Tree::Due, vec![1], &[1]);
                    Ok(())
                })
                .await;
            assert!(written.is_ok(), "{written:?}");
            assert!(store.health().is_ok());
            assert_eq!(
                store.engine.get(Tree::Due, &[1]).ok().flatten(),
                Some(vec![1])
            );
        });
    }

    #[test]
    fn a_failed_commit_is_reported_until_one_succeeds() {
        runtime().block_on(async {
            let store = Store::start(FlakyEngine::default())
                .unwrap_or_else(|error| panic!("a store: {error}"));
            store.engine.failing.store(true, Ordering::SeqCst);
            assert!(store.flush().await.is_err());
            assert!(matches!(store.health(), Err(StoreError::Unavailable(reason)) if reason.contains("disk is full")));
            store.engine.failing.store(false, Ordering::SeqCst);
            assert!(store.flush().await.is_ok());
            assert!(store.health().is_ok());
        });
    }

    #[test]
    fn a_withdrawal_from_the_hand_off_waits_for_its_commit() {
        use crate::fixtures::{NOW, feed, notification, subscription};
        runtime().block_on(async {
            let store = Store::start(FlakyEngine::default())
                .unwrap_or_else(|error| panic!("a store: {error}"));
            let lease = Duration::from_secs(60);
            // A dispatcher leases: new jobs are handed over as they are written.
            let nothing = store.lease_due(NOW, 10, lease).await;
            assert!(nothing.is_ok_and(|jobs| jobs.is_empty()));
            let subscription = subscription(1);
            assert!(store.subscribe(subscription.clone(), 10).await.is_ok());
            let written = store
                .write(&feed(), FeedOp::Upsert(Box::new(notification("n"))), NOW)
                .await;
            assert!(written.is_ok(), "{written:?}");
            // Removing the endpoint withdraws its waiting job — but the commit fails.
            store.engine.failing.store(true, Ordering::SeqCst);
            assert!(store.unsubscribe(&feed(), subscription.id).await.is_err());
            store.engine.failing.store(false, Ordering::SeqCst);
            let leased = store
                .lease_due(NOW, 10, lease)
                .await
                .unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(leased.len(), 1, "the job is still waiting in the hand-off");
            assert_eq!(leased[0].job.subscription, subscription.id);
        });
    }

    #[test]
    fn a_stopped_writer_is_reported() {
        let store = MemoryStore::new();
        assert!(store.health().is_ok());
        let finished = std::thread::spawn(|| {});
        while !finished.is_finished() {
            std::thread::yield_now();
        }
        // A finished thread in the writer's place, as a writer that died leaves it.
        let _running_writer = store
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .replace(finished);
        assert!(
            matches!(store.health(), Err(StoreError::Unavailable(reason)) if reason.contains("writer stopped"))
        );
    }
}
