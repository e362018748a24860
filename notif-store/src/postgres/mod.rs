//! [`PostgresStore`]: the storage ports on a PostgreSQL-wire database — PostgreSQL itself,
//! and the distributed engines that speak its protocol (CockroachDB, YugabyteDB) — shared by
//! any number of notifd nodes.
//!
//! Every operation is one transaction, retried as a whole on serialization failures and
//! deadlocks. The rules come from notif-core: a transaction reads the rows a rule needs,
//! locked `FOR UPDATE`, applies the pure rule, and writes its result. Correctness rests on
//! row locks and leases only — no advisory locks, which CockroachDB ignores.
//!
//! Modules: `connect` (URL, TLS, pool), `schema` (migrations), `tx` (the retry loop and
//! statement helpers), `rows` (records to rows), `feed`, `jobs`, `queue`, `subscriptions`,
//! `expiry`, `identity` (the writes), `read` (the queries), `events` ([`PostgresEvents`]), `clock`
//! ([`DatabaseClock`]).

mod clock;
pub(crate) mod connect;
mod events;
mod expiry;
mod feed;
mod identity;
mod jobs;
mod queue;
mod read;
mod rows;
mod schema;
mod subscriptions;
mod tx;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use notif_core::delivery::{DeliveryRecord, Settlement};
use notif_core::fanout::DeliveryJob;
use notif_core::feed::{FeedOp, FeedWrite};
use notif_core::ids::{ClientId, NotificationId, SubscriptionId};
use notif_core::notification::{ChangeSeq, FeedKey, Notification};
use notif_core::ports::Clock as _;
use notif_core::ports::{
    ChangePage, DeliveryQueue, IdentityStore, LeasedJob, ListPage, ListQuery, NotificationStore,
    RefreshGrant, SpentRefresh, StoreAdmin, StoreError, StoredSigningKey, SubscribeOutcome,
    SubscriptionStore,
};
use notif_core::subscription::Subscription;
use notif_core::time::Timestamp;
use tokio::task::JoinHandle;

pub use clock::DatabaseClock;
pub use events::{EventDelivery, PostgresEvents};

use crate::handoff::{self, Handoff};
use crate::stats::WriteStats;
use tx::{read, transact};

/// How to reach the database, and how this node uses it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/database?sslmode=…` (libpq's URL form).
    pub url: String,
    /// The password, when not in the URL (from an environment variable, say).
    pub password: Option<String>,
    /// Most connections this node opens for its reads and writes; its dispatcher's queue
    /// (leasing, settling) has two more of its own.
    pub pool_size: usize,
    /// How feed events reach the other nodes.
    pub events: EventDelivery,
    /// How often the event poll runs.
    pub poll_interval: Duration,
    /// This node's name: leases it takes carry it, and its orderly shutdown gives them back.
    /// Unique among the nodes sharing the database.
    pub node: String,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresConfig")
            .field("url", &redacted(&self.url))
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("pool_size", &self.pool_size)
            .field("events", &self.events)
            .field("poll_interval", &self.poll_interval)
            .field("node", &self.node)
            .finish()
    }
}

impl PostgresConfig {
    /// The defaults for `url`: 16 connections, `NOTIFY` with a poll every second, a random
    /// node name.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            pool_size: 16,
            events: EventDelivery::Notify,
            poll_interval: Duration::from_secs(1),
            node: random_node_name(),
        }
    }

    /// The URL without its password, for logs.
    pub fn display_url(&self) -> String {
        redacted(&self.url)
    }
}

/// A node name no other node has (in all likelihood): 64 random bits.
fn random_node_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("node-{bits:016x}")
}

/// `url` with any password replaced.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("…"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(not a URL)".into(),
    }
}

/// The connections a node keeps for its dispatcher's queue (leasing, settling, releasing):
/// a burst of writes holding every other connection never makes delivery wait its turn.
const QUEUE_CONNECTIONS: usize = 2;

/// How often the health probe runs (and re-reads the database's clock).
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The storage ports on a PostgreSQL-wire database.
pub struct PostgresStore {
    pool: Pool,
    /// The dispatcher queue's own connections ([`QUEUE_CONNECTIONS`]).
    queue_pool: Pool,
    node: String,
    settings: tokio_postgres::Config,
    health: Arc<Health>,
    writes: WriteStats,
    clock: Arc<DatabaseClock>,
    probe: JoinHandle<()>,
    /// Jobs this node's writes leased to its own dispatcher (see [`crate::handoff`]).
    handoff: Arc<Handoff>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.probe.abort();
        self.pool.close();
        self.queue_pool.close();
    }
}

/// What the last operation and probe saw of the database.
#[derive(Debug, Default)]
struct Health {
    failing: Mutex<Option<String>>,
}

impl Health {
    fn record<T>(&self, outcome: &Result<T, StoreError>) {
        let failing = match outcome {
            Err(StoreError::Unavailable(reason)) => Some(reason.clone()),
            _ => None,
        };
        *self
            .failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = failing;
    }

    fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl PostgresStore {
    /// Connects, brings the schema up to date, and starts the health probe on the current
    /// runtime.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL is not valid, the database cannot be
    /// reached, or it holds a newer schema than this binary knows.
    pub async fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        let mut settings = connect::settings(&config.url, config.password.as_deref())?;
        if settings.get_connect_timeout().is_none() {
            settings.connect_timeout(Duration::from_secs(5));
        }
        let (mut client, connection) = connect::connect(&settings).await?;
        let driver = tokio::spawn(connection);
        let migrated = schema::migrate(&mut client).await;
        drop(client);
        let _ = driver.await;
        migrated?;
        let pool = connect::pool(settings.clone(), config.pool_size)?;
        let queue_pool = connect::pool(settings.clone(), QUEUE_CONNECTIONS)?;
        let health = Arc::new(Health::default());
        let clock = Arc::new(DatabaseClock::new());
        clock.synchronise(&pool).await?;
        let probe = tokio::spawn(probe(pool.clone(), Arc::clone(&health), Arc::clone(&clock)));
        Ok(Self {
            pool,
            queue_pool,
            node: config.node.clone(),
            settings,
            health,
            writes: WriteStats::default(),
            clock,
            probe,
            handoff: Arc::default(),
        })
    }

    /// Takes the jobs of `subscription` back from the hand-off and gives them back due in the
    /// store, where the queue treats them as it treats any job of a removed or renewed
    /// endpoint; `remove` (the write that removes or renews it), if any, runs in the same
    /// transaction.
    async fn recall<T: Send + 'static>(
        &self,
        subscription: SubscriptionId,
        remove: impl for<'t> Fn(&'t deadpool_postgres::Transaction<'t>) -> tx::Body<'t, T> + Send + Sync,
    ) -> Result<T, StoreError> {
        let reserved = self.handoff.reserve_subscription(subscription);
        let keys: Vec<_> = reserved
            .iter()
            .map(|(_, leased)| handoff::handed_over(&leased.job))
            .collect();
        let jobs: Arc<Vec<DeliveryJob>> =
            Arc::new(reserved.into_iter().map(|(_, leased)| leased.job).collect());
        let now = self.clock.now();
        let written = self
            .write(|transaction| {
                let removed = remove(transaction);
                let jobs = Arc::clone(&jobs);
                Box::pin(async move {
                    let removed = removed.await?;
                    queue::release(transaction, &jobs, now).await?;
                    Ok(removed)
                })
            })
            .await;
        if written.is_ok() {
            self.handoff.complete(&keys);
            if !jobs.is_empty() {
                self.handoff.due_written(now);
            }
        } else {
            self.handoff.release(&keys);
        }
        written
    }

    /// The database's clock, as this node reads it: every node's times — leases, due times,
    /// expirations — on one time base, whatever the nodes' own clocks say.
    pub fn clock(&self) -> Arc<DatabaseClock> {
        Arc::clone(&self.clock)
    }

    /// Starts this node's feed events over the database (see [`PostgresEvents`]).
    pub fn events(&self, delivery: EventDelivery, poll_interval: Duration) -> Arc<PostgresEvents> {
        PostgresEvents::start(
            self.pool.clone(),
            self.settings.clone(),
            delivery,
            poll_interval,
        )
    }

    fn observed<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        self.health.record(&outcome);
        outcome
    }

    async fn write<T>(
        &self,
        body: impl for<'t> FnMut(&'t deadpool_postgres::Transaction<'t>) -> tx::Body<'t, T>,
    ) -> Result<T, StoreError> {
        self.write_on(&self.pool, body).await
    }

    /// A write of the dispatcher's queue, on its own connections.
    async fn queue_write<T>(
        &self,
        body: impl for<'t> FnMut(&'t deadpool_postgres::Transaction<'t>) -> tx::Body<'t, T>,
    ) -> Result<T, StoreError> {
        self.write_on(&self.queue_pool, body).await
    }

    async fn write_on<T>(
        &self,
        pool: &Pool,
        body: impl for<'t> FnMut(&'t deadpool_postgres::Transaction<'t>) -> tx::Body<'t, T>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let outcome = self.observed(transact(pool, body).await);
        self.writes.record(started.elapsed());
        outcome
    }

    async fn query<T>(
        &self,
        body: impl for<'c> FnOnce(&'c deadpool_postgres::Client) -> tx::Body<'c, T>,
    ) -> Result<T, StoreError> {
        self.query_on(&self.pool, body).await
    }

    /// A read of the dispatcher's queue, on its own connections.
    async fn queue_query<T>(
        &self,
        body: impl for<'c> FnOnce(&'c deadpool_postgres::Client) -> tx::Body<'c, T>,
    ) -> Result<T, StoreError> {
        self.query_on(&self.queue_pool, body).await
    }

    async fn query_on<T>(
        &self,
        pool: &Pool,
        body: impl for<'c> FnOnce(&'c deadpool_postgres::Client) -> tx::Body<'c, T>,
    ) -> Result<T, StoreError> {
        self.observed(read(pool, body).await)
    }
}

/// Checks the database every [`PROBE_EVERY`], for [`StoreAdmin::health`], and keeps the
/// clock in step with it.
async fn probe(pool: Pool, health: Arc<Health>, clock: Arc<DatabaseClock>) {
    let mut ticker = tokio::time::interval(PROBE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let checked = tokio::time::timeout(PROBE_EVERY * 5, clock.synchronise(&pool))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "the database does not answer".into(),
                ))
            });
        health.record(&checked);
    }
}

#[async_trait]
impl NotificationStore for PostgresStore {
    async fn write(
        &self,
        feed: &FeedKey,
        op: FeedOp,
        now: Timestamp,
    ) -> Result<FeedWrite, StoreError> {
        let local = feed::Local {
            handoff: Arc::clone(&self.handoff),
            lease: self.handoff.accepting(),
            node: self.node.clone(),
            withdrawn: Arc::default(),
        };
        let withdrawn =
            || std::mem::take(&mut *local.withdrawn.lock().unwrap_or_else(|p| p.into_inner()));
        let written = self
            .write(|transaction| {
                // A retried attempt starts over: what the last one withdrew waits again.
                self.handoff.release(&withdrawn());
                let (feed, op, local) = (feed.clone(), op.clone(), local.clone());
                Box::pin(async move { feed::write_feed(transaction, &feed, op, now, &local).await })
            })
            .await;
        let withdrawn = withdrawn();
        let (write, leased, wrote_due) = match written {
            Ok(written) => written,
            Err(error) => {
                self.handoff.release(&withdrawn);
                return Err(error);
            }
        };
        self.handoff.complete(&withdrawn);
        if !leased.is_empty() {
            self.handoff.put(now, leased);
        }
        if wrote_due {
            self.handoff.due_written(now);
        }
        Ok(write)
    }

    async fn get(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        now: Timestamp,
    ) -> Result<Option<Notification>, StoreError> {
        let feed = feed.clone();
        self.query(|client| Box::pin(async move { read::get(client, &feed, id, now).await }))
            .await
    }

    async fn list(
        &self,
        feed: &FeedKey,
        query: &ListQuery,
        now: Timestamp,
    ) -> Result<ListPage, StoreError> {
        let (feed, list) = (feed.clone(), query.clone());
        self.query(|client| Box::pin(async move { read::list(client, &feed, &list, now).await }))
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
        self.query(|client| {
            Box::pin(async move { read::changes_since(client, &feed, cursor, limit, now).await })
        })
        .await
    }

    async fn last_change(&self, feed: &FeedKey) -> Result<ChangeSeq, StoreError> {
        let feed = feed.clone();
        self.query(|client| Box::pin(async move { read::last_change(client, &feed).await }))
            .await
    }

    async fn delivery_status(
        &self,
        feed: &FeedKey,
        id: NotificationId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let feed = feed.clone();
        self.query(|client| Box::pin(async move { read::delivery_status(client, &feed, id).await }))
            .await
    }

    async fn record_fetch(
        &self,
        feed: &FeedKey,
        subscription: SubscriptionId,
        notifications: &[NotificationId],
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let notifications = Arc::new(notifications.to_vec());
        let feed = Arc::new(feed.clone());
        self.write(|transaction| {
            let notifications = Arc::clone(&notifications);
            let feed = Arc::clone(&feed);
            Box::pin(async move {
                queue::record_fetch(transaction, &feed, subscription, &notifications, now).await
            })
        })
        .await
    }

    async fn expire(&self, now: Timestamp, limit: usize) -> Result<usize, StoreError> {
        self.write(|transaction| Box::pin(expiry::expire(transaction, now, limit)))
            .await
    }
}

#[async_trait]
impl SubscriptionStore for PostgresStore {
    async fn subscribe(
        &self,
        candidate: Subscription,
        max_per_user: usize,
    ) -> Result<SubscribeOutcome, StoreError> {
        let outcome = self
            .write(|transaction| {
                Box::pin(subscriptions::subscribe(
                    transaction,
                    candidate.clone(),
                    max_per_user,
                ))
            })
            .await?;
        if outcome.renewed && self.handoff.holds_jobs_of(outcome.subscription.id) {
            // A renewal may pass the device to another user: its jobs in the hand-off are
            // given back to the store, which decides on them as on any other.
            self.recall(outcome.subscription.id, |_| Box::pin(async { Ok(()) }))
                .await?;
        }
        Ok(outcome)
    }

    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, StoreError> {
        self.query(|client| Box::pin(read::subscription(client, id)))
            .await
    }

    async fn subscriptions(&self, feed: &FeedKey) -> Result<Vec<Subscription>, StoreError> {
        let feed = feed.clone();
        self.query(|client| Box::pin(async move { read::feed_subscriptions(client, &feed).await }))
            .await
    }

    async fn unsubscribe(&self, feed: &FeedKey, id: SubscriptionId) -> Result<(), StoreError> {
        self.recall(id, |transaction| {
            let feed = feed.clone();
            Box::pin(async move { subscriptions::unsubscribe(transaction, &feed, id).await })
        })
        .await
    }
}

#[async_trait]
impl DeliveryQueue for PostgresStore {
    async fn lease_due(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedJob>, StoreError> {
        handoff::lease(&self.handoff, now, limit, lease, |wanted| {
            self.queue_write(move |transaction| {
                let node = self.node.clone();
                Box::pin(
                    async move { queue::lease_due(transaction, &node, now, wanted, lease).await },
                )
            })
        })
        .await
    }

    async fn settle(
        &self,
        settlements: Vec<(DeliveryJob, Settlement)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let settlements = Arc::new(settlements);
        self.queue_write(|transaction| {
            let settlements = Arc::clone(&settlements);
            Box::pin(async move { queue::settle(transaction, &settlements, now).await })
        })
        .await
    }

    async fn release(&self, jobs: Vec<DeliveryJob>, due: Timestamp) -> Result<(), StoreError> {
        let jobs = Arc::new(jobs);
        self.queue_write(|transaction| {
            let jobs = Arc::clone(&jobs);
            Box::pin(async move { queue::release(transaction, &jobs, due).await })
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        if let Some(written) = self.handoff.oldest() {
            return Ok(Some(written));
        }
        self.queue_query(|client| Box::pin(read::next_due(client)))
            .await
    }
}

#[async_trait]
impl IdentityStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.query(|client| Box::pin(identity::signing_keys(client)))
            .await
    }

    async fn add_signing_key(
        &self,
        key: StoredSigningKey,
        first: bool,
    ) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.write(|transaction| {
            let key = key.clone();
            Box::pin(async move { identity::add_signing_key(transaction, &key, first).await })
        })
        .await
    }

    async fn grant_refresh(&self, token_hash: &str, grant: RefreshGrant) -> Result<(), StoreError> {
        self.write(|transaction| {
            let (token_hash, grant) = (token_hash.to_owned(), grant.clone());
            Box::pin(async move { identity::grant_refresh(transaction, &token_hash, &grant).await })
        })
        .await
    }

    async fn spend_refresh(
        &self,
        token_hash: &str,
        client: &ClientId,
        now: Timestamp,
    ) -> Result<SpentRefresh, StoreError> {
        self.write(|transaction| {
            let (token_hash, client) = (token_hash.to_owned(), client.clone());
            Box::pin(async move {
                identity::spend_refresh(transaction, &token_hash, &client, now).await
            })
        })
        .await
    }
}

#[async_trait]
impl StoreAdmin for PostgresStore {
    fn health(&self) -> Result<(), StoreError> {
        match self.health.failing() {
            Some(reason) => Err(StoreError::Unavailable(reason)),
            None => Ok(()),
        }
    }

    async fn pending_jobs(&self) -> Result<u64, StoreError> {
        self.query(|client| Box::pin(read::pending_jobs(client)))
            .await
    }

    fn write_latency(&self) -> (u64, Duration) {
        self.writes.totals()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write is acknowledged after its commit: durable already.
        Ok(())
    }

    /// Gives back at once the jobs this node leased and never sent (its dispatcher has
    /// stopped: what it was sending is settled), so other nodes send them without waiting
    /// for the leases to lapse; then closes the pool.
    async fn close(&self) -> Result<(), StoreError> {
        // The jobs waiting in the hand-off are leased to this node: released below.
        drop(self.handoff.drain());
        let now = self.clock.now();
        let released = self
            .queue_write(|transaction| {
                let node = self.node.clone();
                Box::pin(async move { queue::release_node(transaction, &node, now).await })
            })
            .await;
        self.probe.abort();
        self.pool.close();
        self.queue_pool.close();
        let released = released?;
        if released > 0 {
            tracing::info!(released, node = %self.node, "gave back unsent leases");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_show_the_password() {
        let config = PostgresConfig {
            password: Some("from-the-environment".into()),
            ..PostgresConfig::new("postgres://notif:hunter2@db.example.com/notif")
        };
        let shown = format!("{config:?} {}", config.display_url());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("from-the-environment"), "{shown}");
        assert!(shown.contains("db.example.com"), "{shown}");
    }
}
