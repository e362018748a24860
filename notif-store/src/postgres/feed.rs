//! Feed writes: the op resolved, applied by the domain rule, and persisted — new versions,
//! their change-log position, the counters, every delivery job (and its pending status when it
//! replaces an earlier change's; a new notification's jobs read as pending) — in the
//! caller's transaction.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::GenericClient;
use futures_util::future::try_join_all;
use notif_core::delivery::DeliveryRecord;
use notif_core::fanout::DeliveryJob;
use notif_core::feed::{self, FeedOp, FeedState, FeedWrite, Target};
use notif_core::notification::{ChangeSeq, FeedKey, Notification};
use notif_core::ports::LeasedJob;
use notif_core::queue::{self, Enqueue, Queued};
use notif_core::subscription::Subscription;
use notif_core::time::Timestamp;

use super::jobs::{self, lock_jobs, put_jobs, put_statuses};
use super::read::{FEED_SUBSCRIPTIONS, feed_subscriptions};
use super::rows::{self, JobColumns, feed_columns};
use super::tx::{TxError, execute, prepare, query};
use crate::handoff::{self, HandedOver, Handoff};
use crate::keys;
use crate::records::{self, JobRecord, NotificationRecord};

/// The statement of [`lock_feed`].
const LOCK_FEED: &str = "INSERT INTO notif_feeds (app, usr) VALUES ($1, $2) \
     ON CONFLICT (app, usr) DO UPDATE SET last_seq = notif_feeds.last_seq \
     RETURNING last_seq, unread";

/// Takes the feed's row — created on first use — and holds its lock until commit; returns
/// its last change number and unread count.
///
/// Every writer of a feed takes this lock first, so the feed's change numbers are handed
/// out, and committed, in one order: a transaction holding number N commits (or rolls back)
/// before any other can take N + 1. A reader replaying `change_seq > cursor` therefore never
/// passes a number whose transaction commits later — the gap a global sequence would leave.
pub(crate) async fn lock_feed(
    client: &impl GenericClient,
    feed: &FeedKey,
) -> Result<(u64, u64), TxError> {
    let (app, user) = feed_columns(feed);
    let rows = query(client, LOCK_FEED, &[&app, &user]).await?;
    let row = rows.first().ok_or_else(|| {
        TxError::Store(notif_core::ports::StoreError::Unavailable(
            "the feed row was not returned".into(),
        ))
    })?;
    let last_seq: i64 = row.get(0);
    let unread: i64 = row.get(1);
    Ok((
        u64::try_from(last_seq).unwrap_or_default(),
        u64::try_from(unread).unwrap_or_default(),
    ))
}

/// Stores the feed's new counters; the feed's row is locked already.
pub(crate) async fn put_counters(
    client: &impl GenericClient,
    feed: &FeedKey,
    last_seq: u64,
    unread: u64,
) -> Result<(), TxError> {
    let (app, user) = feed_columns(feed);
    let last_seq = i64::try_from(last_seq).unwrap_or(i64::MAX);
    let unread = i64::try_from(unread).unwrap_or(i64::MAX);
    execute(
        client,
        "UPDATE notif_feeds SET last_seq = $3, unread = $4 WHERE app = $1 AND usr = $2",
        &[&app, &user, &last_seq, &unread],
    )
    .await?;
    Ok(())
}

/// This node's dispatcher, as a feed write sees it (see [`crate::handoff`]).
#[derive(Debug, Clone)]
pub(crate) struct Local {
    /// Its hand-off.
    pub(crate) handoff: Arc<Handoff>,
    /// The lease it asks for, while the hand-off takes new jobs.
    pub(crate) lease: Option<Duration>,
    /// This node, which holds the leases.
    pub(crate) node: String,
    /// The hand-off's jobs this write withdrew: superseded before they were taken, never sent.
    pub(crate) withdrawn: Arc<Mutex<Vec<HandedOver>>>,
}

impl Local {
    /// Withdraws `job` if it still waits in the hand-off.
    fn withdraw(&self, job: &DeliveryJob) -> bool {
        let withdrawn = self.handoff.reserve(job);
        if withdrawn {
            self.withdrawn
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(handoff::handed_over(job));
        }
        withdrawn
    }
}

/// Applies a feed op in the caller's transaction. While `local`'s hand-off takes jobs, each
/// job that can go at once is written leased to this node and returned, to be handed to its
/// dispatcher after the commit; the flag says whether jobs were written due instead.
pub(crate) async fn write_feed(
    client: &impl GenericClient,
    feed: &FeedKey,
    op: FeedOp,
    now: Timestamp,
    local: &Local,
) -> Result<(FeedWrite, Vec<LeasedJob>, bool), TxError> {
    let target = op.target();
    // In one round trip: the server runs the statements in the order they are sent, so the
    // reads run once the feed's lock is held and see every write committed before it.
    prepare(
        client,
        &[LOCK_FEED, resolve_statement(&target), FEED_SUBSCRIPTIONS],
    )
    .await?;
    let ((last_seq, unread), current, subscriptions) = futures_util::try_join!(
        lock_feed(client, feed),
        resolve(client, feed, &target),
        feed_subscriptions(client, feed),
    )?;
    let write = feed::apply(
        op,
        FeedState {
            current: &current,
            last_seq: ChangeSeq::new(last_seq),
            subscriptions: &subscriptions,
            now,
        },
    )?;
    if write.changes.is_empty() {
        return Ok((write, Vec::new(), false));
    }
    let mut unread = unread;
    for (notification, _) in &write.changes {
        let previous = current
            .iter()
            .find(|candidate| candidate.id == notification.id);
        unread = queue::unread_after(unread, previous, notification);
    }
    let puts = write
        .changes
        .iter()
        .map(|(notification, _)| put_notification(client, notification));
    let queued = Queue {
        write: &write,
        current: &current,
        subscriptions: &subscriptions,
        local,
    };
    let (_, _, (leased, wrote_due)) = futures_util::try_join!(
        try_join_all(puts),
        put_counters(client, feed, write.last_seq.value(), unread),
        queued.enqueue(client, feed, now),
    )?;
    Ok((write, leased, wrote_due))
}

/// The statement of [`resolve`] for `target`.
fn resolve_statement(target: &Target) -> &'static str {
    match target {
        Target::Id(_) => {
            "SELECT id, record FROM notif_notifications WHERE app = $1 AND usr = $2 AND id = $3"
        }
        Target::AppNotificationId(_) => {
            "SELECT n.id, n.record FROM notif_app_ids a \
             JOIN notif_notifications n ON n.app = a.app AND n.usr = a.usr AND n.id = a.id \
             WHERE a.app = $1 AND a.usr = $2 AND a.app_notification_id = $3"
        }
        Target::Group(_) => {
            "SELECT id, record FROM notif_notifications \
             WHERE app = $1 AND usr = $2 AND group_name = $3 ORDER BY id"
        }
    }
}

/// The live notifications `target` addresses (tombstones included).
async fn resolve(
    client: &impl GenericClient,
    feed: &FeedKey,
    target: &Target,
) -> Result<Vec<Notification>, TxError> {
    let (app, user) = feed_columns(feed);
    let statement = resolve_statement(target);
    let found = match target {
        Target::Id(id) => query(client, statement, &[&app, &user, id.as_uuid()]).await?,
        Target::AppNotificationId(key) => {
            query(client, statement, &[&app, &user, &key.as_str()]).await?
        }
        Target::Group(group) => query(client, statement, &[&app, &user, &group.as_str()]).await?,
    };
    found
        .iter()
        .map(|row| rows::notification(row, feed).map_err(TxError::from))
        .collect()
}

/// Writes a notification's new version and points its `appNotificationId` at it.
async fn put_notification(
    client: &impl GenericClient,
    notification: &Notification,
) -> Result<(), TxError> {
    let (app, user) = feed_columns(&notification.feed);
    let change_seq = i64::try_from(notification.change_seq.value()).unwrap_or(i64::MAX);
    let group = notification.group_name.as_ref().map(|group| group.as_str());
    let expiration = notification.expiration.unix_millis();
    let record = records::encode(&NotificationRecord::from(notification));
    let id = notification.id.as_uuid();
    let key = notification.app_notification_id.as_str();
    futures_util::try_join!(
        async {
            execute(
            client,
            "INSERT INTO notif_notifications (app, usr, id, change_seq, group_name, expiration, record) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (app, usr, id) DO UPDATE SET change_seq = EXCLUDED.change_seq, \
               group_name = EXCLUDED.group_name, expiration = EXCLUDED.expiration, \
               record = EXCLUDED.record",
            &[&app, &user, id, &change_seq, &group, &expiration, &record],
        ).await
        },
        async {
            execute(
            client,
            "INSERT INTO notif_app_ids (app, usr, app_notification_id, id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app, usr, app_notification_id) DO UPDATE SET id = EXCLUDED.id",
            &[&app, &user, &key, id],
        ).await
        },
    )?;
    Ok(())
}

/// The jobs of one feed write, to queue.
struct Queue<'a> {
    write: &'a FeedWrite,
    /// The stored notifications the write addressed: a job of any other is new.
    current: &'a [Notification],
    subscriptions: &'a [Subscription],
    local: &'a Local,
}

impl Queue<'_> {
    /// Queues the write's jobs by the queue rules: each supersedes a pending job for its
    /// (notification, endpoint), or waits behind one in flight, so a device never receives
    /// an older change after a newer one. A job that can go at once is, with a hand-over,
    /// written leased and returned; the flag says whether any was written due. A new
    /// notification's jobs ([`queue::of_new_notification`]) supersede nothing: nothing is
    /// locked for them, and they are written without a status (see
    /// [`crate::read::with_pending`]).
    async fn enqueue(
        &self,
        client: &impl GenericClient,
        feed: &FeedKey,
        now: Timestamp,
    ) -> Result<(Vec<LeasedJob>, bool), TxError> {
        let jobs = &self.write.jobs;
        let new = |job: &DeliveryJob| queue::of_new_notification(self.current, job);
        let earlier: Vec<_> = jobs.iter().filter(|job| !new(job)).map(jobs::key).collect();
        let stored = lock_jobs(client, &earlier).await?;
        let mut rows = Vec::with_capacity(jobs.len());
        let mut statuses = Vec::with_capacity(jobs.len());
        let mut leased = Vec::new();
        let mut wrote_due = false;
        for job in jobs {
            let key = keys::job_key(job.notification, job.subscription);
            let queued = stored.get(&key).map_or(Queued::Nothing, |previous| {
                // Handed over here but never taken: never sent, superseded like a pending
                // job. Another node's lease is in flight.
                previous.queued(now, || {
                    previous
                        .clone()
                        .into_domain(&key)
                        .is_ok_and(|(_, held)| self.local.withdraw(&held))
                })
            });
            let mut job = job.clone();
            let waiting = match queue::enqueue(queued, &job, now) {
                Enqueue::Keep => continue,
                Enqueue::Replace => false,
                Enqueue::WaitBehind { until } => {
                    job.due = until;
                    true
                }
            };
            if !new(&job) {
                statuses.push(DeliveryRecord::pending(&job, now));
            }
            let handed = self.local.lease.filter(|_| !waiting).and_then(|lease| {
                let lease_end = now.saturating_add(lease);
                handoff::sendable_until(self.write, self.subscriptions, &job, lease_end)
                    .map(|sendable| (self.local.node.as_str(), lease_end, sendable))
            });
            match handed {
                Some((node, lease_end, (notification, subscription))) => {
                    // Leased as the dispatcher would lease it: due again only if the lease
                    // lapses.
                    job.due = lease_end;
                    let record = JobRecord::new(&job, feed).leased_until(lease_end);
                    rows.push(JobColumns::new(feed, &job, &record).leased_by(node));
                    leased.push(LeasedJob {
                        job,
                        notification: notification.clone(),
                        subscription: subscription.clone(),
                    });
                }
                None => {
                    let record = JobRecord::new(&job, feed).waiting_for_in_flight(waiting);
                    rows.push(JobColumns::new(feed, &job, &record));
                    wrote_due = true;
                }
            }
        }
        futures_util::try_join!(put_jobs(client, rows), put_statuses(client, &statuses))?;
        Ok((leased, wrote_due))
    }
}
