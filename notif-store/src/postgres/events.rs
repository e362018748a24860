//! Feed events across nodes: what this node writes wakes its own watchers at once (as
//! [`LocalEvents`]) and, with `LISTEN/NOTIFY`, the other nodes' within milliseconds; a poll
//! of the watched feeds' change numbers, every interval, makes the events correct without
//! `NOTIFY` (CockroachDB has none) and after a missed one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt as _;
use notif_core::ids::{AppId, UserId};
use notif_core::notification::{ChangeSeq, FeedKey};
use notif_core::ports::{FeedEvents, Wakeup};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::tx::{TxError, query};
use crate::LocalEvents;

/// The `NOTIFY` channel.
const CHANNEL: &str = "notif_events";
/// Separates the fields of a payload (ids hold no control characters).
const SEPARATOR: char = '\u{1f}';
/// The payload that says jobs are due.
const JOBS: &str = "jobs";
/// Announcements waiting to be sent; beyond this they are dropped (the poll covers them).
const OUTBOX_DEPTH: usize = 4_096;
/// How long the listener waits before reconnecting after its connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How feed events cross nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventDelivery {
    /// `LISTEN/NOTIFY` for latency, with the poll behind it.
    Notify,
    /// The poll alone, for engines without `NOTIFY`.
    Poll,
}

/// The feed events of one node on a shared PostgreSQL-wire database.
pub struct PostgresEvents {
    local: Arc<LocalEvents>,
    /// Whether the listener is subscribed now (always, when polling only).
    listening: tokio::sync::watch::Receiver<bool>,
    outbox: Option<mpsc::Sender<Announcement>>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for PostgresEvents {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PostgresEvents")
            .field("local", &self.local)
            .field("notify", &self.outbox.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresEvents {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What a write announces to the other nodes.
#[derive(Debug)]
enum Announcement {
    Feed(FeedKey, ChangeSeq),
    Jobs,
}

impl PostgresEvents {
    /// Starts the node's poll (and, with [`EventDelivery::Notify`], its listener and its
    /// announcer) on the current runtime.
    pub(crate) fn start(
        pool: Pool,
        settings: tokio_postgres::Config,
        delivery: EventDelivery,
        poll_interval: Duration,
    ) -> Arc<Self> {
        let local = LocalEvents::new();
        let (listening_sender, listening) =
            tokio::sync::watch::channel(delivery == EventDelivery::Poll);
        let mut tasks = vec![tokio::spawn(poll(
            pool.clone(),
            Arc::clone(&local),
            poll_interval,
        ))];
        let outbox = match delivery {
            EventDelivery::Poll => None,
            EventDelivery::Notify => {
                let (sender, receiver) = mpsc::channel(OUTBOX_DEPTH);
                tasks.push(tokio::spawn(announce(pool, receiver)));
                tasks.push(tokio::spawn(listen(
                    settings,
                    Arc::clone(&local),
                    listening_sender,
                )));
                Some(sender)
            }
        };
        Arc::new(Self {
            local,
            listening,
            outbox,
            tasks,
        })
    }

    /// Resolves once this node hears the other nodes' announcements (at once when polling
    /// only): the listener is subscribed.
    pub async fn listening(&self) {
        let mut listening = self.listening.clone();
        // The sender lives as long as the listener task; if that ended, so did the wait.
        let _ = listening.wait_for(|listening| *listening).await;
    }

    fn send(&self, announcement: Announcement) {
        if let Some(outbox) = &self.outbox {
            // A full outbox drops the hint; the other nodes' poll finds the change.
            let _ = outbox.try_send(announcement);
        }
    }
}

impl FeedEvents for PostgresEvents {
    fn feed_changed(&self, feed: &FeedKey, last_seq: ChangeSeq) {
        self.local.feed_changed(feed, last_seq);
        self.send(Announcement::Feed(feed.clone(), last_seq));
    }

    fn jobs_due(&self) {
        self.local.jobs_due();
        self.send(Announcement::Jobs);
    }

    fn watch_feed(&self, feed: &FeedKey) -> Box<dyn Wakeup> {
        self.local.watch_feed(feed)
    }

    fn watch_jobs(&self) -> Box<dyn Wakeup> {
        self.local.watch_jobs()
    }
}

/// Sends announcements as `NOTIFY`s: whatever queued while the last batch was sent goes in
/// one statement, one payload per feed (its latest number), so a burst of writes costs few
/// notifications — `NOTIFY` takes a database-wide lock at commit.
async fn announce(pool: Pool, mut receiver: mpsc::Receiver<Announcement>) {
    while let Some(first) = receiver.recv().await {
        let mut feeds = HashMap::new();
        let mut jobs = false;
        let mut next = Some(first);
        while let Some(announcement) = next {
            match announcement {
                Announcement::Feed(feed, seq) => {
                    feeds.insert(feed, seq);
                }
                Announcement::Jobs => jobs = true,
            }
            next = receiver.try_recv().ok();
        }
        let mut payloads: Vec<String> = feeds
            .into_iter()
            .map(|(feed, seq)| {
                format!(
                    "{}{SEPARATOR}{}{SEPARATOR}{}",
                    feed.app.as_str(),
                    feed.user.as_str(),
                    seq.value()
                )
            })
            .collect();
        if jobs {
            payloads.push(JOBS.to_owned());
        }
        let sent = async {
            let client = pool.get().await.map_err(|error| {
                TxError::Store(notif_core::ports::StoreError::Unavailable(
                    error.to_string(),
                ))
            })?;
            query(
                &client,
                "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload",
                &[&CHANNEL, &payloads],
            )
            .await
        };
        if let Err(error) = sent.await {
            // The other nodes' poll finds what was not announced.
            tracing::debug!(?error, "could not announce changes");
        }
    }
}

/// Listens for the other nodes' announcements, reconnecting when the connection fails;
/// after each (re)connect, wakes everyone, since announcements sent meanwhile are lost.
async fn listen(
    settings: tokio_postgres::Config,
    local: Arc<LocalEvents>,
    listening: tokio::sync::watch::Sender<bool>,
) {
    loop {
        match super::connect::connect(&settings).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |context| connection.poll_message(context));
                let listen_statement = format!("LISTEN {CHANNEL}");
                let subscribed = {
                    let listening = client.batch_execute(&listen_statement);
                    let mut listening = std::pin::pin!(listening);
                    // The connection must be driven while the LISTEN runs.
                    loop {
                        tokio::select! {
                            outcome = &mut listening => break outcome.is_ok(),
                            message = messages.next() => {
                                if !matches!(message, Some(Ok(_))) {
                                    break false;
                                }
                            }
                        }
                    }
                };
                if subscribed {
                    listening.send_replace(true);
                    local.wake_all();
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(notification) = message {
                            receive(&local, notification.payload());
                        }
                    }
                }
                listening.send_replace(false);
                drop(client);
                tracing::warn!("the event listener's connection ended; reconnecting");
            }
            Err(error) => tracing::warn!(%error, "the event listener cannot connect"),
        }
        local.wake_all();
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// Applies one announcement; a malformed one is ignored (events are hints).
fn receive(local: &LocalEvents, payload: &str) {
    if payload == JOBS {
        local.jobs_due();
        return;
    }
    let mut fields = payload.split(SEPARATOR);
    let (Some(app), Some(user), Some(seq), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    let (Ok(app), Ok(user), Ok(seq)) = (AppId::new(app), UserId::new(user), seq.parse()) else {
        return;
    };
    local.feed_changed(&FeedKey { app, user }, ChangeSeq::new(seq));
}

/// Every `interval`: wakes the dispatchers (jobs other nodes queued may be due) and the
/// watchers of every feed whose last change number moved since the last poll.
async fn poll(pool: Pool, local: Arc<LocalEvents>, interval: Duration) {
    let mut seen: HashMap<FeedKey, u64> = HashMap::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        local.jobs_due();
        let watched = local.watched();
        seen.retain(|feed, _| watched.contains(feed));
        if watched.is_empty() {
            continue;
        }
        match last_seqs(&pool, &watched).await {
            Ok(found) => {
                for (feed, seq) in found {
                    if seen.insert(feed.clone(), seq) != Some(seq) {
                        local.feed_changed(&feed, ChangeSeq::new(seq));
                    }
                }
            }
            Err(error) => tracing::debug!(?error, "the event poll failed"),
        }
    }
}

/// The last change numbers of `feeds` that have any.
async fn last_seqs(pool: &Pool, feeds: &[FeedKey]) -> Result<Vec<(FeedKey, u64)>, TxError> {
    let client = pool.get().await.map_err(|error| {
        TxError::Store(notif_core::ports::StoreError::Unavailable(
            error.to_string(),
        ))
    })?;
    let apps: Vec<&str> = feeds.iter().map(|feed| feed.app.as_str()).collect();
    let users: Vec<&str> = feeds.iter().map(|feed| feed.user.as_str()).collect();
    let found = query(
        &client,
        "SELECT f.app, f.usr, f.last_seq FROM notif_feeds f \
         JOIN unnest($1::text[], $2::text[]) AS k(app, usr) ON f.app = k.app AND f.usr = k.usr",
        &[&apps, &users],
    )
    .await?;
    Ok(found
        .iter()
        .filter_map(|row| {
            let feed = FeedKey {
                app: AppId::new(row.get::<_, &str>(0)).ok()?,
                user: UserId::new(row.get::<_, &str>(1)).ok()?,
            };
            let seq = u64::try_from(row.get::<_, i64>(2)).ok()?;
            Some((feed, seq))
        })
        .collect())
}
