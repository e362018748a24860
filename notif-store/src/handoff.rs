//! The hand-off: delivery jobs leased as they are written, waiting in memory for the
//! dispatcher.
//!
//! Once a dispatcher leases (its `lease_due` calls tell the lease length), a write that queues
//! a job due at once stores it already leased — due again only when that lease ends, as if
//! the dispatcher had leased it in the same transaction — and, once the write is durable,
//! leaves it here. The next `lease_due` takes it without a store command: no scan of the due
//! index, no second write of the job. A job left here by a crash comes back when its lease
//! ends, exactly like a job a crashed dispatcher had leased; one still here when the store
//! closes is written back as due.
//!
//! The hand-off holds at most [`CAPACITY`] jobs (softly: a group's jobs are counted once its
//! write is durable); past that, jobs are written due as before and found by the scan. A job
//! here is still withdrawn when a newer change supersedes it or its subscription is removed or
//! renewed, as a job waiting in the store would be — in two steps, so the withdrawal takes
//! effect only with the write that made it: the command reserves the job (no lease takes it
//! any more), and its group's commit removes it, or a failed commit or command returns it.
//! If the dispatcher stops leasing while the store stays open, the jobs it never took come
//! back when their lease lapses.
//!
//! On PostgreSQL each node has its own hand-off: a node's writes lease their jobs to that
//! node (`lease_owner`), in the write's transaction, and only its dispatcher takes them from
//! memory. Another node's write finds such a job in flight and waits behind it, as behind any
//! lease; removing or renewing a subscription withdraws its jobs from the local hand-off only
//! (another node may still send one it holds, which is at-least-once delivery).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use notif_core::fanout::DeliveryJob;
use notif_core::feed::FeedWrite;
use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::{ChangeSeq, Notification};
use notif_core::ports::{LeasedJob, StoreError};
use notif_core::subscription::Subscription;
use notif_core::time::Timestamp;

use crate::engine::{Tree, WriteBatch};
use crate::keys;

/// The most jobs waiting in the hand-off before new ones are written due instead.
const CAPACITY: usize = 1024;

/// While the hand-off supplies jobs, the due index is still scanned this often, so jobs that
/// come due with time (retries, lapsed leases) keep moving. A job written due at once is
/// found by the next lease: committed groups report the earliest due time they wrote.
const SCAN_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
pub(crate) struct Handoff {
    state: Mutex<State>,
}

/// A job in the hand-off, by its (notification, endpoint) and change.
pub(crate) type HandedOver = (NotificationId, SubscriptionId, ChangeSeq);

/// The hand-off's key of `job`.
pub(crate) fn handed_over(job: &DeliveryJob) -> HandedOver {
    (job.notification, job.subscription, job.change_seq)
}

#[derive(Debug)]
struct Waiting {
    written: Timestamp,
    job: LeasedJob,
    /// Withdrawn by a command whose group has not committed yet: no lease takes it.
    reserved: bool,
}

#[derive(Debug, Default)]
struct State {
    /// The lease length the dispatcher last asked for; `None` until one leases.
    lease: Option<Duration>,
    /// Jobs leased as they were written, oldest first.
    jobs: VecDeque<Waiting>,
    /// When the due index is next scanned while the hand-off supplies jobs.
    next_scan: Option<Timestamp>,
    /// The earliest due time written since the last scan began.
    written_due: Option<Timestamp>,
}

/// What [`Handoff::take`] found.
#[derive(Debug)]
pub(crate) struct Taken {
    /// Jobs to send.
    pub(crate) jobs: Vec<LeasedJob>,
    /// Whether the due index should be scanned for more.
    pub(crate) scan: bool,
}

impl Handoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the state consistent; a panic elsewhere does not poison it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The lease to write new jobs under, when a dispatcher leases and there is room.
    pub(crate) fn accepting(&self) -> Option<Duration> {
        let state = self.lock();
        state.lease.filter(|_| state.jobs.len() < CAPACITY)
    }

    /// Leaves jobs written leased at `written` for the dispatcher (their write is durable).
    pub(crate) fn put(&self, written: Timestamp, jobs: Vec<LeasedJob>) {
        self.lock().jobs.extend(jobs.into_iter().map(|job| Waiting {
            written,
            job,
            reserved: false,
        }));
    }

    /// Takes up to `limit` jobs for a dispatcher leasing at `now` for `lease`. Jobs whose
    /// lease already ended are dropped: they are due in the store and the scan finds them.
    pub(crate) fn take(&self, now: Timestamp, limit: usize, lease: Duration) -> Taken {
        let mut state = self.lock();
        state.lease = Some(lease);
        let mut jobs = Vec::new();
        let mut index = 0;
        while jobs.len() < limit && index < state.jobs.len() {
            if state.jobs[index].reserved {
                index += 1;
                continue;
            }
            let Some(waiting) = state.jobs.remove(index) else {
                break;
            };
            if waiting.job.job.due > now {
                jobs.push(waiting.job);
            }
        }
        let scan = jobs.len() < limit
            && (jobs.is_empty()
                || state.written_due.is_some_and(|due| due <= now)
                || state.next_scan.is_none_or(|next| next <= now));
        if scan {
            // Groups committed from here on may be missed by this scan: they report again.
            state.written_due = None;
        }
        Taken { jobs, scan }
    }

    /// Notes the due entries a committed group wrote, so a lease scans once one is due.
    pub(crate) fn committed(&self, group: &WriteBatch) {
        let start = (Tree::Due, Vec::new());
        let earliest = group
            .range(start..)
            .take_while(|((tree, _), _)| *tree == Tree::Due)
            .find(|(_, value)| value.is_some())
            .and_then(|((_, key), _)| keys::array_at::<8>(key, 0))
            .map(keys::time_from_bytes);
        if let Some(earliest) = earliest {
            self.due_written(earliest);
        }
    }

    /// Notes that a committed write queued a job due at `due` in the store (not handed
    /// over), so a lease scans once it is due.
    pub(crate) fn due_written(&self, due: Timestamp) {
        let mut state = self.lock();
        state.written_due = Some(state.written_due.map_or(due, |written| written.min(due)));
    }

    /// Records a scan of the due index at `now`; `exhausted` when it found all that was due.
    pub(crate) fn scanned(&self, now: Timestamp, exhausted: bool) {
        self.lock().next_scan = Some(if exhausted {
            now.saturating_add(SCAN_INTERVAL)
        } else {
            now
        });
    }

    /// Reserves `job` for withdrawal if it is still waiting here (it was never sent): no
    /// lease takes it until [`Handoff::complete`] removes it or [`Handoff::release`] returns
    /// it. False when it was taken, never handed over, or is reserved already.
    pub(crate) fn reserve(&self, job: &DeliveryJob) -> bool {
        let mut state = self.lock();
        let key = handed_over(job);
        match state
            .jobs
            .iter_mut()
            .find(|waiting| !waiting.reserved && handed_over(&waiting.job.job) == key)
        {
            Some(waiting) => {
                waiting.reserved = true;
                true
            }
            None => false,
        }
    }

    /// Reserves every job of `subscription` still waiting here; returns them with when each
    /// was written.
    pub(crate) fn reserve_subscription(
        &self,
        subscription: SubscriptionId,
    ) -> Vec<(Timestamp, LeasedJob)> {
        let mut state = self.lock();
        state
            .jobs
            .iter_mut()
            .filter(|waiting| !waiting.reserved && waiting.job.job.subscription == subscription)
            .map(|waiting| {
                waiting.reserved = true;
                (waiting.written, waiting.job.clone())
            })
            .collect()
    }

    /// The writes that reserved `withdrawn` committed: the jobs leave for good.
    pub(crate) fn complete(&self, withdrawn: &[HandedOver]) {
        if withdrawn.is_empty() {
            return;
        }
        self.lock().jobs.retain(|waiting| {
            !(waiting.reserved && withdrawn.contains(&handed_over(&waiting.job.job)))
        });
    }

    /// The writes that reserved `withdrawn` failed: the jobs wait for a lease again.
    pub(crate) fn release(&self, withdrawn: &[HandedOver]) {
        if withdrawn.is_empty() {
            return;
        }
        for waiting in &mut self.lock().jobs {
            if waiting.reserved && withdrawn.contains(&handed_over(&waiting.job.job)) {
                waiting.reserved = false;
            }
        }
    }

    /// Whether jobs of `subscription` wait here.
    pub(crate) fn holds_jobs_of(&self, subscription: SubscriptionId) -> bool {
        self.lock()
            .jobs
            .iter()
            .any(|waiting| !waiting.reserved && waiting.job.job.subscription == subscription)
    }

    /// When the oldest waiting job was written, if any is waiting.
    pub(crate) fn oldest(&self) -> Option<Timestamp> {
        self.lock()
            .jobs
            .iter()
            .find(|waiting| !waiting.reserved)
            .map(|waiting| waiting.written)
    }

    /// Takes every waiting job, with when it was written (the store is closing).
    pub(crate) fn drain(&self) -> Vec<(Timestamp, LeasedJob)> {
        self.lock()
            .jobs
            .drain(..)
            .map(|waiting| (waiting.written, waiting.job))
            .collect()
    }
}

/// The notification and endpoint of `job` when both stay sendable until `lease_end`: the
/// notification unexpired, the subscription live. Otherwise the job is written due, and a
/// lease decides at send time.
pub(crate) fn sendable_until<'a>(
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

/// Leases for a dispatcher at `now`: the hand-off's jobs first, then — when the hand-off
/// says the store's due jobs need a look — `scan(wanted)` for the rest. The jobs taken from
/// the hand-off go even when the scan fails (it is retried next time).
pub(crate) async fn lease<Scan, Scanning>(
    handoff: &Handoff,
    now: Timestamp,
    limit: usize,
    lease: Duration,
    scan: Scan,
) -> Result<Vec<LeasedJob>, StoreError>
where
    Scan: FnOnce(usize) -> Scanning,
    Scanning: Future<Output = Result<Vec<LeasedJob>, StoreError>>,
{
    let taken = handoff.take(now, limit, lease);
    let mut leased = taken.jobs;
    if !taken.scan {
        return Ok(leased);
    }
    let wanted = limit - leased.len();
    match scan(wanted).await {
        Ok(found) => {
            handoff.scanned(now, found.len() < wanted);
            leased.extend(found);
            Ok(leased)
        }
        Err(_) if !leased.is_empty() => Ok(leased),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use notif_core::fanout::{ChangeKind, plan_fan_out};

    use super::*;
    use crate::fixtures::{NOW, notification, subscription};

    fn waiting(subscriptions: u8) -> Vec<LeasedJob> {
        let notification = notification("n");
        (1..=subscriptions)
            .map(|index| {
                let subscription = subscription(index);
                let job = plan_fan_out(
                    &notification,
                    ChangeKind::Created,
                    std::slice::from_ref(&subscription),
                    NOW,
                )
                .remove(0);
                LeasedJob {
                    job: DeliveryJob {
                        due: NOW.saturating_add(Duration::from_secs(60)),
                        ..job
                    },
                    notification: notification.clone(),
                    subscription,
                }
            })
            .collect()
    }

    #[test]
    fn a_reserved_job_is_not_leased_and_returns_when_released() {
        let handoff = Handoff::default();
        let jobs = waiting(2);
        handoff.put(NOW, jobs.clone());
        assert!(handoff.reserve(&jobs[0].job));
        assert!(!handoff.reserve(&jobs[0].job), "reserved once");
        let taken = handoff.take(NOW, 10, Duration::from_secs(60));
        assert_eq!(taken.jobs, vec![jobs[1].clone()]);
        handoff.release(&[handed_over(&jobs[0].job)]);
        let taken = handoff.take(NOW, 10, Duration::from_secs(60));
        assert_eq!(taken.jobs, vec![jobs[0].clone()]);
    }

    #[test]
    fn a_completed_withdrawal_removes_the_job() {
        let handoff = Handoff::default();
        let jobs = waiting(3);
        handoff.put(NOW, jobs.clone());
        let reserved = handoff.reserve_subscription(jobs[1].job.subscription);
        assert_eq!(reserved, vec![(NOW, jobs[1].clone())]);
        assert_eq!(handoff.oldest(), Some(NOW));
        handoff.complete(&[handed_over(&jobs[1].job)]);
        let taken = handoff.take(NOW, 10, Duration::from_secs(60));
        assert_eq!(taken.jobs, vec![jobs[0].clone(), jobs[2].clone()]);
        assert!(handoff.drain().is_empty());
    }
}
