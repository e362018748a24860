//! Queue writes: leasing, settling, releasing hand-off leases and voiding a previous
//! process's leases — each following the rules of `notif_core::queue`.

use std::ops::{Bound, ControlFlow};
use std::time::Duration;

use notif_core::delivery::{DeliveryRecord, DeliveryState, Settlement};
use notif_core::fallback::{self, AtFetch};
use notif_core::fanout::DeliveryJob;
use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::FeedKey;
use notif_core::ports::{LeasedJob, StoreError};
use notif_core::queue::{self, AtLease, AtSettle, Held};
use notif_core::time::Timestamp;

use crate::engine::{Engine, Tree};
use crate::keys;
use crate::records::{JobRecord, StatusRecord};
use crate::tx::{Reader, Tx};

use super::subscriptions::remove_subscription;

/// The keys of `tree` (keyed by time first) that are due at `now`, at most `limit`.
pub(super) fn due_keys<R: Reader>(
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
    let record = DeliveryRecord::of(job, state, attempts, now);
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
        release(tx, &leased.job, *written)?;
    }
    Ok(())
}

/// Makes `leased`, as a lease returned it and never sent, due again at `due` — unless it
/// changed since (settled, superseded, re-leased).
pub(crate) fn release<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    leased: &DeliveryJob,
    due: Timestamp,
) -> Result<(), StoreError> {
    let key = keys::job_key(leased.notification, leased.subscription);
    let Some(record) = tx.record::<JobRecord>(Tree::Jobs, &key)? else {
        return Ok(());
    };
    if !record.is_lease_of(leased) {
        return Ok(());
    }
    // An undecodable job is left to the lease's lapse like any other.
    let Ok((feed, current)) = record.into_domain(&key) else {
        return Ok(());
    };
    let released = DeliveryJob {
        due,
        ..current.clone()
    };
    requeue(tx, &feed, current.due, &released);
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
    let settlement = match &current {
        Some((_, held)) => settlement.given_held(held.fallback, now),
        None => settlement,
    };
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
        Settlement::Reschedule { .. } | Settlement::Fallback { .. } => {
            if let Some((feed, current)) = current
                && let Some(kept) = settlement.kept_job(&current, attempts)
            {
                requeue(tx, &feed, current.due, &kept);
                put_status(tx, job, settlement.state(), attempts, now);
            }
        }
    }
    Ok(())
}

/// Stops the fallbacks of `notifications` (of `feed`) to `subscription`, whose device fetched
/// them at `now`, as [`fallback::at_fetch`] decides; returns how many were stopped.
pub(crate) fn record_fetch<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    feed: &FeedKey,
    subscription: SubscriptionId,
    notifications: &[NotificationId],
    now: Timestamp,
) -> Result<usize, StoreError> {
    let mut stopped = 0;
    for &notification in notifications {
        let key = keys::job_key(notification, subscription);
        let Some(record) = tx.record::<JobRecord>(Tree::Jobs, &key)? else {
            continue;
        };
        // An undecodable job is left as it is: the read that noted the fetch still answers.
        let Ok((job_feed, held)) = record.clone().into_domain(&key) else {
            continue;
        };
        if &job_feed != feed {
            continue;
        }
        match fallback::at_fetch(held.fallback) {
            // Only the stage changes: a lease on the raw push stays as it is.
            AtFetch::Disarm => tx.put(Tree::Jobs, key, &record.disarmed()),
            AtFetch::Cancel => remove_job(tx, &held),
            AtFetch::Nothing => continue,
        }
        put_status(
            tx,
            &held,
            DeliveryState::Fetched { at: now },
            held.attempts,
            now,
        );
        stopped += 1;
    }
    Ok(stopped)
}
