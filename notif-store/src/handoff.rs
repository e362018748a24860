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
//! renewed, as a job waiting in the store would be. If the dispatcher stops leasing while the
//! store stays open, the jobs it never took come back when their lease lapses.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use notif_core::fanout::DeliveryJob;
use notif_core::ids::SubscriptionId;
use notif_core::ports::LeasedJob;
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

#[derive(Debug, Default)]
struct State {
    /// The lease length the dispatcher last asked for; `None` until one leases.
    lease: Option<Duration>,
    /// Jobs leased as they were written, with when they were written, oldest first.
    jobs: VecDeque<(Timestamp, LeasedJob)>,
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
        self.lock()
            .jobs
            .extend(jobs.into_iter().map(|job| (written, job)));
    }

    /// Takes up to `limit` jobs for a dispatcher leasing at `now` for `lease`. Jobs whose
    /// lease already ended are dropped: they are due in the store and the scan finds them.
    pub(crate) fn take(&self, now: Timestamp, limit: usize, lease: Duration) -> Taken {
        let mut state = self.lock();
        state.lease = Some(lease);
        let mut jobs = Vec::new();
        while jobs.len() < limit {
            let Some((_, leased)) = state.jobs.pop_front() else {
                break;
            };
            if leased.job.due > now {
                jobs.push(leased);
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
            let mut state = self.lock();
            state.written_due = Some(state.written_due.map_or(earliest, |due| due.min(earliest)));
        }
    }

    /// Records a scan of the due index at `now`; `exhausted` when it found all that was due.
    pub(crate) fn scanned(&self, now: Timestamp, exhausted: bool) {
        self.lock().next_scan = Some(if exhausted {
            now.saturating_add(SCAN_INTERVAL)
        } else {
            now
        });
    }

    /// Withdraws `job` if it is still waiting here (it was never sent); false when it was
    /// taken, or never handed over.
    pub(crate) fn withdraw(&self, job: &DeliveryJob) -> bool {
        let mut state = self.lock();
        let found = state.jobs.iter().position(|(_, waiting)| {
            waiting.job.key() == job.key() && waiting.job.change_seq == job.change_seq
        });
        found.is_some_and(|position| state.jobs.remove(position).is_some())
    }

    /// Withdraws every job of `subscription` still waiting here, with when each was written.
    pub(crate) fn withdraw_subscription(
        &self,
        subscription: SubscriptionId,
    ) -> Vec<(Timestamp, LeasedJob)> {
        let mut state = self.lock();
        let (withdrawn, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.jobs)
            .into_iter()
            .partition(|(_, waiting)| waiting.job.subscription == subscription);
        state.jobs = kept.into();
        withdrawn
    }

    /// When the oldest waiting job was written, if any is waiting.
    pub(crate) fn oldest(&self) -> Option<Timestamp> {
        self.lock().jobs.front().map(|(written, _)| *written)
    }

    /// Takes every waiting job, with when it was written (the store is closing).
    pub(crate) fn drain(&self) -> Vec<(Timestamp, LeasedJob)> {
        self.lock().jobs.drain(..).collect()
    }
}
