//! The commands: every write of the store, each built in a [`Tx`] and staged into its group's
//! atomic commit. They run on the store's single writer thread, and read through the writes
//! staged before them, so a command's reads are never stale.

use std::ops::{Bound, ControlFlow};
use std::time::Duration;

use notif_core::delivery::{DeliveryRecord, DeliveryState, Settlement};
use notif_core::fanout::DeliveryJob;
use notif_core::feed::{self, FeedOp, FeedState, FeedWrite, Target};
use notif_core::ids::{GroupName, NotificationId, SubscriptionId};
use notif_core::notification::{ChangeSeq, FeedKey, Notification};
use notif_core::ports::{LeasedJob, StoreError, SubscribeOutcome};
use notif_core::queue::{self, AtLease, AtSettle, Enqueue, Held, Queued};
use notif_core::subscription::Subscription;
use notif_core::time::Timestamp;
use uuid::Uuid;

use crate::engine::{Engine, Tree};
use crate::keys;
use crate::records::{
    FeedMeta, GroupRecord, JobRecord, NotificationRecord, StatusRecord, SubscriptionRecord,
};
use crate::tx::{Reader, Tx, feed_subscriptions, scan_prefix};

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
        let sendable =
            lease_end.and_then(|lease_end| sendable_until(&write, &subscriptions, job, lease_end));
        let lease_end = lease_end.filter(|_| sendable.is_some());
        let stored = put_job(tx, feed, job, now, lease_end)?;
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

/// The notification and endpoint of `job` when both stay sendable until `lease_end`: the
/// notification unexpired, the subscription live. Otherwise the job is written due, and a
/// lease decides at send time.
fn sendable_until<'a>(
    write: &'a FeedWrite,
    subscriptions: &'a [Subscription],
    job: &DeliveryJob,
    lease_end: Timestamp,
) -> Option<(&'a Notification, &'a Subscription)> {
    let notification = write
        .changes
        .iter()
        .map(|(notification, _)| notification)
        .find(|notification| notification.id == job.notification)
        .filter(|notification| notification.expiration > lease_end)?;
    let subscription = subscriptions
        .iter()
        .find(|subscription| subscription.id == job.subscription)
        .filter(|subscription| subscription.is_live(lease_end))?;
    Some((notification, subscription))
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

fn set_group_membership<E: Engine + ?Sized>(
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
/// returned, to be handed over.
fn put_job<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    feed: &FeedKey,
    job: &DeliveryJob,
    now: Timestamp,
    lease_end: Option<Timestamp>,
) -> Result<Option<DeliveryJob>, StoreError> {
    let key = keys::job_key(job.notification, job.subscription);
    let mut job = job.clone();
    let mut queued = Queued::Nothing;
    if let Some(previous) = tx.record::<JobRecord>(Tree::Jobs, &key)? {
        let leased_until = previous.lease_end().filter(|lease_end| *lease_end > now);
        let waits = previous.waits_for_in_flight();
        // An undecodable job is overwritten, and its orphaned due entry is dropped when it
        // comes due.
        if let Ok((_, previous)) = previous.into_domain(&key) {
            let change_seq = previous.change_seq;
            // Decided before the hand-off is touched: a job this one would not replace stays
            // where it is, handed over or not.
            if queue::enqueue(Queued::Pending { change_seq }, &job, now) == Enqueue::Keep {
                return Ok(None);
            }
            queued = match leased_until {
                // Handed over but never taken: never sent, superseded like a pending job.
                Some(_) if tx.withdraw_handed_over(&previous) => Queued::HandedOver { change_seq },
                Some(lease_end) => Queued::InFlight {
                    change_seq,
                    lease_end,
                },
                None if waits && previous.due > now => Queued::Waiting {
                    change_seq,
                    until: previous.due,
                },
                None => Queued::Pending { change_seq },
            };
            tx.delete(Tree::Due, keys::due_key(previous.due, &key));
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
    tx.put(
        Tree::Status,
        key,
        &StatusRecord::from(&DeliveryRecord::pending(&job, now)),
    );
    Ok(lease_end.map(|_| job))
}

/// Stores a subscription, or renews the one with the same channel identity in the same app.
pub(crate) fn subscribe<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    candidate: Subscription,
    max_per_user: usize,
) -> Result<SubscribeOutcome, StoreError> {
    let channel_key = keys::channel_key(&candidate.feed.app, &candidate.channel.identity());
    let existing = match tx.read(Tree::Channels, &channel_key)? {
        Some(bytes) => match keys::uuid_at(&bytes, 0) {
            Some(id) => tx.subscription(SubscriptionId::from_uuid(id))?,
            None => None,
        },
        None => None,
    };
    let joins_feed = existing
        .as_ref()
        .is_none_or(|existing| existing.feed != candidate.feed);
    if joins_feed {
        let held = scan_prefix(
            &*tx,
            Tree::FeedSubscriptions,
            &keys::feed_prefix(&candidate.feed),
            max_per_user.max(1),
        )?
        .len();
        if held >= max_per_user {
            return Err(StoreError::LimitExceeded {
                what: "subscriptions per user and app",
                limit: max_per_user,
            });
        }
    }
    let subscription = match &existing {
        Some(existing) => {
            // Jobs not yet sent go with what the renewal brings (keys, expiry).
            recall_handed_over(tx, existing.id)?;
            unindex_subscription(tx, existing);
            Subscription {
                id: existing.id,
                created_at: existing.created_at,
                ..candidate
            }
        }
        None => candidate,
    };
    tx.put(
        Tree::Subscriptions,
        subscription.id.as_bytes().to_vec(),
        &SubscriptionRecord::from(&subscription),
    );
    tx.put_raw(
        Tree::FeedSubscriptions,
        keys::feed_key(&subscription.feed, subscription.id.as_bytes()),
        &[],
    );
    tx.put_raw(
        Tree::SubscriptionExpiry,
        keys::subscription_expiry_key(subscription.expires_at, subscription.id),
        &[],
    );
    tx.put_raw(Tree::Channels, channel_key, subscription.id.as_bytes());
    Ok(SubscribeOutcome {
        subscription,
        renewed: existing.is_some(),
    })
}

/// Removes the per-feed and expiry index entries of a subscription.
fn unindex_subscription<E: Engine + ?Sized>(tx: &mut Tx<'_, E>, subscription: &Subscription) {
    tx.delete(
        Tree::FeedSubscriptions,
        keys::feed_key(&subscription.feed, subscription.id.as_bytes()),
    );
    tx.delete(
        Tree::SubscriptionExpiry,
        keys::subscription_expiry_key(subscription.expires_at, subscription.id),
    );
}

/// Removes a subscription and all its index entries. Its pending jobs are dropped when they
/// come due (the dispatcher finds no subscription).
fn remove_subscription<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    subscription: &Subscription,
) -> Result<(), StoreError> {
    recall_handed_over(tx, subscription.id)?;
    unindex_subscription(tx, subscription);
    tx.delete(Tree::Subscriptions, subscription.id.as_bytes().to_vec());
    let channel_key = keys::channel_key(&subscription.feed.app, &subscription.channel.identity());
    let indexed = tx.read(Tree::Channels, &channel_key)?;
    if indexed.as_deref() == Some(subscription.id.as_bytes().as_slice()) {
        tx.delete(Tree::Channels, channel_key);
    }
    Ok(())
}

/// Removes a subscription of `feed`.
pub(crate) fn unsubscribe<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    feed: &FeedKey,
    id: SubscriptionId,
) -> Result<(), StoreError> {
    let subscription = tx
        .subscription(id)?
        .filter(|subscription| &subscription.feed == feed)
        .ok_or(StoreError::NotFound)?;
    remove_subscription(tx, &subscription)
}

/// Jobs of `subscription` still waiting in the hand-off were never sent: they are withdrawn
/// and made due, so the next lease decides on them with the subscription as it now is.
fn recall_handed_over<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    subscription: SubscriptionId,
) -> Result<(), StoreError> {
    let withdrawn = tx.withdraw_handed_over_for(subscription);
    release_leases(tx, &withdrawn)
}

/// The keys of `tree` (keyed by time first) that are due at `now`, at most `limit`.
fn due_keys<R: Reader>(
    reader: &R,
    tree: Tree,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let end = keys::time_bytes(now.saturating_add(Duration::from_millis(1))).to_vec();
    let mut found = Vec::new();
    reader.scan(
        tree,
        (Bound::Unbounded, Bound::Excluded(end)),
        false,
        &mut |key, _| {
            found.push(key.to_vec());
            if found.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )?;
    Ok(found)
}

fn remove_job<E: Engine + ?Sized>(tx: &mut Tx<'_, E>, job: &DeliveryJob) {
    let key = keys::job_key(job.notification, job.subscription);
    tx.delete(Tree::Due, keys::due_key(job.due, &key));
    tx.delete(Tree::Jobs, key);
}

/// Rewrites `job` as due at its `due`, unleased, moving its due entry from `previous_due`.
fn requeue<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    feed: &FeedKey,
    previous_due: Timestamp,
    job: &DeliveryJob,
) {
    let key = keys::job_key(job.notification, job.subscription);
    tx.delete(Tree::Due, keys::due_key(previous_due, &key));
    tx.put_raw(Tree::Due, keys::due_key(job.due, &key), &[]);
    tx.put(Tree::Jobs, key, &JobRecord::new(job, feed));
}

fn put_status<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    job: &DeliveryJob,
    state: DeliveryState,
    attempts: u32,
    now: Timestamp,
) {
    let record = DeliveryRecord {
        notification: job.notification,
        subscription: job.subscription,
        platform: job.platform,
        state,
        attempts,
        updated_at: now,
    };
    tx.put(
        Tree::Status,
        keys::job_key(job.notification, job.subscription),
        &StatusRecord::from(&record),
    );
}

/// Leases due jobs, dropping those whose notification expired or whose endpoint is gone.
pub(crate) fn lease_due<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    now: Timestamp,
    limit: usize,
    lease: Duration,
) -> Result<Vec<LeasedJob>, StoreError> {
    let mut leased = Vec::new();
    for due_key in due_keys(&*tx, Tree::Due, now, limit)? {
        let Some(job_key) = keys::array_at::<32>(&due_key, 8) else {
            tx.delete(Tree::Due, due_key);
            continue;
        };
        let decoded = tx
            .record::<JobRecord>(Tree::Jobs, &job_key)
            .and_then(|record| {
                record
                    .map(|record| record.into_domain(&job_key))
                    .transpose()
            });
        let (feed, job) = match decoded {
            Ok(Some(found)) => found,
            // A stale index entry (its job was superseded or settled) or an undecodable job:
            // drop the entry so the queue keeps moving.
            Ok(None) | Err(_) => {
                tx.delete(Tree::Due, due_key);
                continue;
            }
        };
        if keys::due_key(job.due, &job_key).as_slice() != due_key.as_slice() {
            tx.delete(Tree::Due, due_key);
            continue;
        }
        let notification = tx.notification(&feed, job.notification)?;
        let subscription = tx.subscription(job.subscription)?;
        match (
            queue::at_lease(notification.as_ref(), subscription.as_ref(), now),
            notification,
            subscription,
        ) {
            (AtLease::Expired, _, _) => {
                remove_job(tx, &job);
                put_status(tx, &job, DeliveryState::Expired, job.attempts, now);
            }
            (AtLease::Lease, Some(notification), Some(subscription)) => {
                let mut leased_job = job.clone();
                leased_job.due = now.saturating_add(lease);
                tx.delete(Tree::Due, due_key);
                tx.put(
                    Tree::Jobs,
                    job_key,
                    &JobRecord::new(&leased_job, &feed).leased_until(leased_job.due),
                );
                tx.put_raw(Tree::Due, keys::due_key(leased_job.due, &job_key), &[]);
                leased.push(LeasedJob {
                    job: leased_job,
                    notification,
                    subscription,
                });
            }
            (AtLease::EndpointGone, _, _) => {
                remove_job(tx, &job);
                let reason = "the subscription was removed or lapsed".to_owned();
                put_status(
                    tx,
                    &job,
                    DeliveryState::Failed { reason },
                    job.attempts,
                    now,
                );
            }
            (AtLease::Orphan | AtLease::Lease, _, _) => remove_job(tx, &job),
        }
    }
    Ok(leased)
}

/// When a job whose lease was voided is due: before any clock's now, so the next lease takes
/// it whatever the clock reads.
const VOIDED_DUE: Timestamp = Timestamp::from_unix_millis(0);

/// Makes every leased job — and every job waiting behind a leased one — due at once. Only
/// for a store just opened exclusively: no dispatcher of another process can hold a lease
/// on it, and the one that did has gone (crashed, killed), so its sends are not in flight.
/// Returns how many jobs were released.
pub(crate) fn void_leases<E: Engine + ?Sized>(tx: &mut Tx<'_, E>) -> Result<usize, StoreError> {
    let mut held = Vec::new();
    tx.scan(
        Tree::Jobs,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |key, value| {
            if let Ok(record) = crate::records::decode::<JobRecord>(key, value)
                && (record.lease_end().is_some() || record.waits_for_in_flight())
            {
                held.push((key.to_vec(), record));
            }
            ControlFlow::Continue(())
        },
    )?;
    let mut released = 0;
    for (key, record) in held {
        // An undecodable job is left to the lease's lapse like any other.
        let Ok((feed, current)) = record.into_domain(&key) else {
            continue;
        };
        let due_now = DeliveryJob {
            due: VOIDED_DUE,
            ..current.clone()
        };
        requeue(tx, &feed, current.due, &due_now);
        released += 1;
    }
    Ok(released)
}

/// Makes jobs withdrawn from the hand-off — leased as they were written, never taken — due
/// again from when they were written (the store is closing, or their subscription changed).
/// A job changed since (settled, superseded, re-leased) is left as it is.
pub(crate) fn release_leases<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    jobs: &[(Timestamp, LeasedJob)],
) -> Result<(), StoreError> {
    for (written, leased) in jobs {
        let key = keys::job_key(leased.job.notification, leased.job.subscription);
        let Some(record) = tx.record::<JobRecord>(Tree::Jobs, &key)? else {
            continue;
        };
        if record.lease_end() != Some(leased.job.due) {
            continue;
        }
        // An undecodable job is left to the lease's lapse like any other.
        let Ok((feed, current)) = record.into_domain(&key) else {
            continue;
        };
        if current.change_seq != leased.job.change_seq {
            continue;
        }
        let released = DeliveryJob {
            due: *written,
            ..current.clone()
        };
        requeue(tx, &feed, current.due, &released);
    }
    Ok(())
}

/// Applies the settlements of attempts, in one commit.
pub(crate) fn settle<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    settlements: &[(DeliveryJob, Settlement)],
    now: Timestamp,
) -> Result<(), StoreError> {
    for (job, settlement) in settlements {
        settle_one(tx, job, settlement.clone(), now)?;
    }
    Ok(())
}

/// Applies the settlement of an attempt at `job`.
fn settle_one<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    job: &DeliveryJob,
    settlement: Settlement,
    now: Timestamp,
) -> Result<(), StoreError> {
    let key = keys::job_key(job.notification, job.subscription);
    let record = tx.record::<JobRecord>(Tree::Jobs, &key)?;
    let waits = record.as_ref().is_some_and(JobRecord::waits_for_in_flight);
    let current = record.map(|record| record.into_domain(&key)).transpose()?;
    let held = match &current {
        None => Held::Nothing,
        Some((_, current)) if current.change_seq == job.change_seq => Held::Same,
        Some(_) => Held::Newer { waiting: waits },
    };
    let current = match (queue::at_settle(held), current) {
        (AtSettle::Apply, current) => current,
        (AtSettle::ReleaseSuccessor, Some((feed, newer))) => {
            // A newer change superseded the job while it was in flight and waited for it:
            // it may go now.
            let released = DeliveryJob {
                due: now,
                ..newer.clone()
            };
            requeue(tx, &feed, newer.due, &released);
            None
        }
        (AtSettle::ReleaseSuccessor | AtSettle::Stale, _) => None,
    };
    let attempts = job.attempts.saturating_add(1);
    match settlement {
        Settlement::RemoveSubscription => {
            if let Some(subscription) = tx.subscription(job.subscription)? {
                remove_subscription(tx, &subscription)?;
            }
            let pending = tx
                .record::<JobRecord>(Tree::Jobs, &key)?
                .map(|record| record.into_domain(&key))
                .transpose()?;
            if let Some((_, pending)) = pending {
                remove_job(tx, &pending);
            }
            put_status(tx, job, DeliveryState::EndpointGone, attempts, now);
        }
        Settlement::Done(state) => {
            if let Some((_, current)) = current {
                remove_job(tx, &current);
                put_status(tx, job, state, attempts, now);
            }
        }
        Settlement::Reschedule { due } => {
            if let Some((feed, current)) = current {
                let rescheduled = DeliveryJob {
                    due,
                    attempts,
                    ..current.clone()
                };
                requeue(tx, &feed, current.due, &rescheduled);
                put_status(
                    tx,
                    job,
                    DeliveryState::Retrying { next_attempt: due },
                    attempts,
                    now,
                );
            }
        }
    }
    Ok(())
}

/// Removes notifications and subscriptions expired at `now`, at most `limit` of each.
pub(crate) fn expire<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    now: Timestamp,
    limit: usize,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for expiry_key in due_keys(&*tx, Tree::Expiry, now, limit)? {
        tx.delete(Tree::Expiry, expiry_key.clone());
        let Some((feed, rest)) = keys::split_feed(&expiry_key[8..]) else {
            continue;
        };
        let Some(id) = keys::uuid_at(rest, 0).map(NotificationId::from_uuid) else {
            continue;
        };
        let notification_key = keys::notification_key(&feed, id);
        let notification = match tx.notification(&feed, id) {
            Ok(Some(notification)) => notification,
            Ok(None) => continue,
            // An undecodable record cannot tell us its indexes; remove the record itself so
            // it stops failing reads, and let its orphaned index entries age out.
            Err(_) => {
                tx.delete(Tree::Notifications, notification_key);
                removed += 1;
                continue;
            }
        };
        // A later version may have moved the expiration; only the current one counts.
        if notification.expiration > now {
            continue;
        }
        remove_notification(tx, &notification)?;
        removed += 1;
    }
    for expiry_key in due_keys(&*tx, Tree::SubscriptionExpiry, now, limit)? {
        tx.delete(Tree::SubscriptionExpiry, expiry_key.clone());
        let Some(id) = keys::uuid_at(&expiry_key, 8).map(SubscriptionId::from_uuid) else {
            continue;
        };
        if let Some(subscription) = tx.subscription(id)?
            && !subscription.is_live(now)
        {
            remove_subscription(tx, &subscription)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes a notification entirely: record, indexes, change-log entry, jobs and statuses.
fn remove_notification<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    notification: &Notification,
) -> Result<(), StoreError> {
    let feed = &notification.feed;
    let id = notification.id;
    tx.delete(Tree::Notifications, keys::notification_key(feed, id));
    tx.delete(
        Tree::Changes,
        keys::change_key(feed, notification.change_seq),
    );
    tx.delete(
        Tree::Expiry,
        keys::expiry_key(notification.expiration, feed, id),
    );
    let app_id_key = keys::feed_text_key(feed, notification.app_notification_id.as_str());
    if tx.read(Tree::AppIds, &app_id_key)?.as_deref() == Some(id.as_bytes().as_slice()) {
        tx.delete(Tree::AppIds, app_id_key);
    }
    if let Some(group) = &notification.group_name {
        set_group_membership(tx, feed, group, id, false)?;
    }
    if queue::counts_as_unread(notification) {
        let mut meta = tx.feed_meta(feed)?;
        meta.unread = meta.unread.saturating_sub(1);
        tx.put(Tree::Feeds, keys::feed_prefix(feed), &meta);
    }
    for (job_key, job_bytes) in scan_prefix(&*tx, Tree::Jobs, id.as_bytes(), usize::MAX)? {
        if let Ok((_, job)) = crate::records::decode::<JobRecord>(&job_key, &job_bytes)
            .and_then(|record| record.into_domain(&job_key))
        {
            tx.delete(
                Tree::Due,
                keys::due_key(job.due, &keys::job_key(job.notification, job.subscription)),
            );
        }
        tx.delete(Tree::Jobs, job_key);
    }
    for (status_key, _) in scan_prefix(&*tx, Tree::Status, id.as_bytes(), usize::MAX)? {
        tx.delete(Tree::Status, status_key);
    }
    Ok(())
}
