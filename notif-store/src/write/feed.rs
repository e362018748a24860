//! Feed writes: a feed op resolved, applied by the domain rule, and persisted with its
//! indexes, change-log entries, counters, jobs and statuses.

use notif_core::delivery::DeliveryRecord;
use notif_core::fanout::DeliveryJob;
use notif_core::feed::{self, FeedOp, FeedState, FeedWrite, Target};
use notif_core::ids::{GroupName, NotificationId};
use notif_core::notification::{ChangeSeq, FeedKey, Notification};
use notif_core::ports::{LeasedJob, StoreError};
use notif_core::queue::{self, Enqueue, Queued};
use notif_core::time::Timestamp;
use uuid::Uuid;

use crate::engine::{Engine, Tree};
use crate::handoff;
use crate::keys;
use crate::records::{FeedMeta, GroupRecord, JobRecord, NotificationRecord, StatusRecord};
use crate::tx::{Reader, Tx, feed_subscriptions};

/// Applies a feed op: resolves its target, runs the domain rule, and writes the new versions,
/// their indexes, change-log entries, counters, jobs and statuses in one commit.
///
/// While a dispatcher leases, each job that can go at once is written leased and returned,
/// to be handed over once the write is durable (see [`crate::handoff`]).
pub(crate) fn write_feed<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    feed: &FeedKey,
    op: FeedOp,
    now: Timestamp,
) -> Result<(FeedWrite, Vec<LeasedJob>), StoreError> {
    let current = resolve(tx, feed, &op.target())?;
    let meta = tx.feed_meta(feed)?;
    let subscriptions = feed_subscriptions(tx, feed)?;
    let write = feed::apply(
        op,
        FeedState {
            current: &current,
            last_seq: ChangeSeq::new(meta.last_seq),
            subscriptions: &subscriptions,
            now,
        },
    )?;
    let mut unread = meta.unread;
    for (notification, _) in &write.changes {
        let previous = current
            .iter()
            .find(|candidate| candidate.id == notification.id);
        unread = put_notification(tx, previous, notification, unread)?;
    }
    tx.put(
        Tree::Feeds,
        keys::feed_prefix(feed),
        &FeedMeta {
            last_seq: write.last_seq.value(),
            unread,
        },
    );
    let lease_end = tx
        .handoff()
        .accepting()
        .map(|lease| now.saturating_add(lease));
    let mut leased = Vec::new();
    for job in &write.jobs {
        let sendable = lease_end
            .and_then(|lease_end| handoff::sendable_until(&write, &subscriptions, job, lease_end));
        let lease_end = lease_end.filter(|_| sendable.is_some());
        let new = queue::of_new_notification(&current, job);
        let stored = put_job(tx, feed, job, new, now, lease_end)?;
        if let (Some(job), Some((notification, subscription))) = (stored, sendable) {
            leased.push(LeasedJob {
                job,
                notification: notification.clone(),
                subscription: subscription.clone(),
            });
        }
    }
    Ok((write, leased))
}

fn resolve<R: Reader>(
    reader: &R,
    feed: &FeedKey,
    target: &Target,
) -> Result<Vec<Notification>, StoreError> {
    let ids = match target {
        Target::Id(id) => vec![*id],
        Target::AppNotificationId(key) => reader
            .read(Tree::AppIds, &keys::feed_text_key(feed, key.as_str()))?
            .and_then(|bytes| keys::uuid_at(&bytes, 0))
            .map(NotificationId::from_uuid)
            .into_iter()
            .collect(),
        Target::Group(group) => group_members(reader, feed, group)?,
    };
    let mut notifications = Vec::with_capacity(ids.len());
    for id in ids {
        notifications.extend(reader.notification(feed, id)?);
    }
    Ok(notifications)
}

fn group_members<R: Reader>(
    reader: &R,
    feed: &FeedKey,
    group: &GroupName,
) -> Result<Vec<NotificationId>, StoreError> {
    let record: GroupRecord = reader
        .record(Tree::Groups, &keys::feed_text_key(feed, group.as_str()))?
        .unwrap_or_default();
    Ok(record
        .ids
        .into_iter()
        .map(|bytes| NotificationId::from_uuid(Uuid::from_bytes(bytes)))
        .collect())
}

pub(super) fn set_group_membership<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    feed: &FeedKey,
    group: &GroupName,
    id: NotificationId,
    member: bool,
) -> Result<(), StoreError> {
    let key = keys::feed_text_key(feed, group.as_str());
    let mut record: GroupRecord = tx.record(Tree::Groups, &key)?.unwrap_or_default();
    record.ids.retain(|candidate| candidate != id.as_bytes());
    if member {
        record.ids.push(*id.as_bytes());
    }
    if record.ids.is_empty() {
        tx.delete(Tree::Groups, key);
    } else {
        tx.put(Tree::Groups, key, &record);
    }
    Ok(())
}

/// Writes a new version of a notification with its indexes; returns the feed's new unread count.
fn put_notification<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    previous: Option<&Notification>,
    notification: &Notification,
    unread: u64,
) -> Result<u64, StoreError> {
    let feed = &notification.feed;
    let id = notification.id;
    if let Some(previous) = previous {
        tx.delete(Tree::Changes, keys::change_key(feed, previous.change_seq));
        tx.delete(
            Tree::Expiry,
            keys::expiry_key(previous.expiration, feed, id),
        );
        if let Some(group) = &previous.group_name
            && previous.group_name != notification.group_name
        {
            set_group_membership(tx, feed, group, id, false)?;
        }
    }
    tx.put(
        Tree::Notifications,
        keys::notification_key(feed, id),
        &NotificationRecord::from(notification),
    );
    tx.put_raw(
        Tree::Changes,
        keys::change_key(feed, notification.change_seq),
        id.as_bytes(),
    );
    tx.put_raw(
        Tree::AppIds,
        keys::feed_text_key(feed, notification.app_notification_id.as_str()),
        id.as_bytes(),
    );
    if let Some(group) = &notification.group_name {
        set_group_membership(tx, feed, group, id, true)?;
    }
    tx.put_raw(
        Tree::Expiry,
        keys::expiry_key(notification.expiration, feed, id),
        &[],
    );
    Ok(queue::unread_after(unread, previous, notification))
}

/// Queues `job`, superseding a pending job for the same (notification, subscription). A job
/// handed over but not yet taken by the dispatcher was never sent: it is withdrawn and
/// superseded like a pending one. When the superseded job is in flight, the new one waits for
/// it (until it settles or its lease ends), so a device never receives an older change after
/// a newer one. Otherwise, with a `lease_end`, the job is written leased until then and
/// returned, to be handed over. The job of a `new` notification supersedes nothing, so
/// nothing earlier is read for it.
fn put_job<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    feed: &FeedKey,
    job: &DeliveryJob,
    new: bool,
    now: Timestamp,
    lease_end: Option<Timestamp>,
) -> Result<Option<DeliveryJob>, StoreError> {
    let key = keys::job_key(job.notification, job.subscription);
    let mut job = job.clone();
    let mut queued = Queued::Nothing;
    let previous = if new {
        None
    } else {
        tx.record::<JobRecord>(Tree::Jobs, &key)?
    };
    let replaces_a_job = previous.is_some();
    if let Some(previous) = previous {
        // Decided before the hand-off is touched: a job this one would not replace stays
        // where it is, handed over or not.
        let pending = Queued::Pending {
            change_seq: previous.change_seq(),
        };
        if queue::enqueue(pending, &job, now) == Enqueue::Keep {
            return Ok(None);
        }
        // An undecodable job is overwritten, and its orphaned due entry is dropped when it
        // comes due.
        if let Ok((_, decoded)) = JobRecord::into_domain(previous.clone(), &key) {
            // Handed over but never taken: never sent, superseded like a pending job.
            queued = previous.queued(now, || tx.withdraw_handed_over(&decoded));
            tx.delete(Tree::Due, keys::due_key(decoded.due, &key));
        }
    }
    let waiting = match queue::enqueue(queued, &job, now) {
        Enqueue::Keep => return Ok(None),
        Enqueue::Replace => false,
        Enqueue::WaitBehind { until } => {
            job.due = until;
            true
        }
    };
    let lease_end = lease_end.filter(|_| !waiting);
    let record = match lease_end {
        // Leased as the dispatcher would lease it: due again only if the lease lapses.
        Some(lease_end) => {
            job.due = lease_end;
            JobRecord::new(&job, feed).leased_until(lease_end)
        }
        None => JobRecord::new(&job, feed).waiting_for_in_flight(waiting),
    };
    tx.put(Tree::Jobs, key, &record);
    tx.put_raw(Tree::Due, keys::due_key(job.due, &key), &[]);
    // The job itself reads as pending (see `read::with_pending`): a pending status is
    // written only over one an earlier change left, so a new notification's jobs write none.
    if replaces_a_job || (!new && tx.read(Tree::Status, &key)?.is_some()) {
        tx.put(
            Tree::Status,
            key,
            &StatusRecord::from(&DeliveryRecord::pending(&job, now)),
        );
    }
    Ok(lease_end.map(|_| job))
}
