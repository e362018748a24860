//! The dispatcher: leases due jobs, hands each to its lane (one per credential and platform,
//! with its own queue and concurrency bound), settles each by its outcome, and drains
//! in-flight sends on shutdown.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use notif_core::delivery::{DeliveryOutcome, Jitter, RetryPolicy, Settlement, settle};
use notif_core::fanout::DeliveryJob;
use notif_core::ids::AppId;
use notif_core::platform::Platform;
use notif_core::ports::{Clock, DeliveryQueue, LeasedJob, PushGateway, Wakeup};
use notif_core::push::plan_push;
use notif_core::time::Timestamp;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// The wall clock, for the dispatcher and the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        Timestamp::from_unix_millis(millis)
    }
}

/// One credential on one platform: its gateway and its concurrency bound. Each lane has
/// its own queue and sender in the dispatcher, so a lane whose provider is slow or hangs
/// holds up only its own pushes.
struct Lane {
    gateway: Arc<dyn PushGateway>,
    concurrency: usize,
}

/// Which gateway serves each (app, platform), each gateway with its own concurrency bound.
#[derive(Default)]
pub struct Gateways {
    lanes: Vec<Lane>,
    routes: HashMap<(AppId, Platform), usize>,
}

impl fmt::Debug for Gateways {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Gateways")
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Gateways {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `apps`' pushes on the gateway's platform to `gateway`, at most `concurrency`
    /// sends in flight across all of them (one credential, one bound).
    pub fn add(
        &mut self,
        apps: impl IntoIterator<Item = AppId>,
        gateway: Arc<dyn PushGateway>,
        concurrency: usize,
    ) {
        let lane = self.lanes.len();
        let platform = gateway.platform();
        self.lanes.push(Lane {
            gateway,
            concurrency: concurrency.max(1),
        });
        for app in apps {
            self.routes.insert((app, platform), lane);
        }
    }

    fn lane_of(&self, app: &AppId, platform: Platform) -> Option<usize> {
        self.routes.get(&(app.clone(), platform)).copied()
    }
}

/// How the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// How long a leased job stays invisible (default 60 s); a crash makes it due again after.
    pub lease: Duration,
    /// Most jobs leased at once (default 64): one lease is one store command, and smaller
    /// commands keep client writes from queueing behind a long one.
    pub batch_size: usize,
    /// Back-off for retries.
    pub retry: RetryPolicy,
    /// How long shutdown waits for in-flight sends (default 10 s).
    pub drain_timeout: Duration,
    /// The longest sleep without a wake-up, a safety net behind the explicit wake (default 5 s).
    pub max_idle: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            batch_size: 64,
            retry: RetryPolicy::default(),
            drain_timeout: Duration::from_secs(10),
            max_idle: Duration::from_secs(5),
        }
    }
}

/// What became of a push attempt, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Accepted by the provider.
    Delivered,
    /// To be retried.
    Retried,
    /// The endpoint is gone; the subscription was pruned.
    EndpointGone,
    /// Refused for good, or given up on.
    Failed,
    /// Dropped at the notification's expiration.
    Expired,
}

impl AttemptOutcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [AttemptOutcome; 5] = [
        AttemptOutcome::Delivered,
        AttemptOutcome::Retried,
        AttemptOutcome::EndpointGone,
        AttemptOutcome::Failed,
        AttemptOutcome::Expired,
    ];

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retried => "retried",
            AttemptOutcome::EndpointGone => "endpoint_gone",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Expired => "expired",
        }
    }

    fn of(settlement: &Settlement) -> Self {
        use notif_core::delivery::DeliveryState;
        match settlement {
            Settlement::Done(
                DeliveryState::Delivered { .. } | DeliveryState::FallbackDelivered { .. },
            )
            | Settlement::Fallback { .. } => AttemptOutcome::Delivered,
            Settlement::Done(DeliveryState::Expired) => AttemptOutcome::Expired,
            Settlement::Done(_) => AttemptOutcome::Failed,
            Settlement::Reschedule { .. } => AttemptOutcome::Retried,
            Settlement::RemoveSubscription => AttemptOutcome::EndpointGone,
        }
    }
}

/// Counts of what the dispatcher did, by platform and outcome, for metrics; and whether it
/// is running, for readiness.
#[derive(Debug, Default)]
pub struct DispatchStats {
    counts: [[AtomicU64; 5]; 4],
    running: AtomicBool,
}

/// Marks the dispatcher stopped when its run ends, however it ends (a panic included).
struct Running(Arc<DispatchStats>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
    }
}

fn platform_index(platform: Platform) -> usize {
    Platform::ALL
        .iter()
        .position(|candidate| *candidate == platform)
        .unwrap_or(0)
}

impl DispatchStats {
    fn record(&self, platform: Platform, settlement: &Settlement) {
        let outcome = AttemptOutcome::of(settlement) as usize;
        self.counts[platform_index(platform)][outcome].fetch_add(1, Ordering::Relaxed);
    }

    /// Attempts on `platform` that ended in `outcome`.
    pub fn count(&self, platform: Platform, outcome: AttemptOutcome) -> u64 {
        self.counts[platform_index(platform)][outcome as usize].load(Ordering::Relaxed)
    }

    /// Whether the dispatcher's run is in progress (from the call to [`Dispatcher::run`] until
    /// it ends).
    pub fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Attempts on every platform that ended in `outcome`.
    pub fn total(&self, outcome: AttemptOutcome) -> u64 {
        Platform::ALL
            .iter()
            .map(|platform| self.count(*platform, outcome))
            .sum()
    }
}

/// Sends due jobs.
pub struct Dispatcher {
    queue: Arc<dyn DeliveryQueue>,
    gateways: Arc<Gateways>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    /// Wakes the lease loop when jobs were queued.
    jobs: Box<dyn Wakeup>,
    stats: Arc<DispatchStats>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Dispatcher")
            .field("gateways", &self.gateways)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn jitter() -> Jitter {
    let mut bytes = [0u8; 8];
    // Without randomness the back-off loses its spread, not its bound: use the midpoint.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return Jitter::new(0.5);
    }
    Jitter::new(u64::from_le_bytes(bytes) as f64 / u64::MAX as f64)
}

impl Dispatcher {
    /// A dispatcher over `queue`, sending through `gateways`, woken by `jobs` (the job
    /// wake-ups of the feed events the use cases publish to) and otherwise at the next due
    /// time or after [`DispatcherConfig::max_idle`].
    pub fn new(
        queue: Arc<dyn DeliveryQueue>,
        gateways: Gateways,
        clock: Arc<dyn Clock>,
        config: DispatcherConfig,
        jobs: Box<dyn Wakeup>,
    ) -> Self {
        Self {
            queue,
            gateways: Arc::new(gateways),
            clock,
            config,
            jobs,
            stats: Arc::new(DispatchStats::default()),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<DispatchStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` completes, then stops leasing and waits up to the drain timeout
    /// for in-flight sends (jobs it abandons come back when their lease ends).
    ///
    /// The lease loop never waits on a provider: it leases no more than the lanes have room
    /// for, hands each job to its lane's bounded queue, parks it when the queue is full, and
    /// gives it back to the store (due again in a second) when the lane's parking is full too.
    /// Each lane sends with its own concurrency bound, so one saturated credential holds up
    /// only its own pushes.
    pub fn run(self, shutdown: impl Future<Output = ()>) -> impl Future<Output = ()> {
        // Running from the call on, so readiness holds before the task is first polled.
        self.stats.running.store(true, Ordering::SeqCst);
        let running = Running(Arc::clone(&self.stats));
        async move {
            let _running = running;
            self.dispatch(shutdown).await;
        }
    }

    async fn dispatch(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let (settlements, outcomes) = mpsc::channel(SETTLEMENT_QUEUE);
        let settling = tokio::spawn(settle_batches(
            Arc::clone(&self.queue),
            Arc::clone(&self.clock),
            outcomes,
        ));
        let (stop, stopped) = watch::channel(false);
        let room = Arc::new(Notify::new());
        let mut lanes = Vec::with_capacity(self.gateways.lanes.len());
        let mut senders = JoinSet::new();
        for lane in &self.gateways.lanes {
            let (jobs, queued) = mpsc::channel(lane_queue_capacity(lane, &self.config));
            lanes.push(LaneQueue {
                jobs,
                parked: VecDeque::new(),
                capacity: lane_queue_capacity(lane, &self.config),
            });
            senders.spawn(send_lane(
                Arc::clone(&lane.gateway),
                lane.concurrency,
                queued,
                LaneContext {
                    settlements: settlements.clone(),
                    clock: Arc::clone(&self.clock),
                    retry: self.config.retry.clone(),
                    stats: Arc::clone(&self.stats),
                    lease: self.config.lease,
                    drain_timeout: self.config.drain_timeout,
                    room: Arc::clone(&room),
                },
                stopped.clone(),
            ));
        }
        loop {
            let parked = unpark(&mut lanes);
            // Lease no more than the lanes can take: a burst waits in the store, not in
            // jobs leased for nothing.
            let room_left: usize = lanes.iter().map(LaneQueue::room).sum();
            let limit = self.config.batch_size.min(room_left);
            if limit == 0 {
                tokio::select! {
                    () = room.notified() => continue,
                    () = tokio::time::sleep(self.config.max_idle) => continue,
                    () = &mut shutdown => break,
                }
            }
            let now = self.clock.now();
            let leased = match self.queue.lease_due(now, limit, self.config.lease).await {
                Ok(leased) => leased,
                Err(error) => {
                    tracing::warn!(%error, "leasing due jobs failed; retrying shortly");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            };
            let batch_was_full = leased.len() == limit;
            let mut overflow = Vec::new();
            for job in leased {
                let Some(lane) = self
                    .gateways
                    .lane_of(&job.notification.feed.app, job.job.platform)
                else {
                    let settlement =
                        Settlement::Done(notif_core::delivery::DeliveryState::Failed {
                            reason: format!("the app has no {} credential", job.job.platform),
                        });
                    self.stats.record(job.job.platform, &settlement);
                    // The settler is gone only at shutdown; the job then comes back.
                    let _ = settlements.send((job.job, settlement)).await;
                    continue;
                };
                let queued = Queued {
                    job,
                    leased_at: Instant::now(),
                };
                if let Some(rejected) = lanes[lane].offer(queued) {
                    overflow.push(rejected.job.job);
                }
            }
            if !overflow.is_empty() {
                // A lane that is stuck (its provider hangs) takes no more: its jobs go back,
                // due again shortly, instead of waiting out their lease here.
                let due = self.clock.now().saturating_add(OVERFLOW_RETRY);
                if let Err(error) = self.queue.release(overflow, due).await {
                    tracing::warn!(%error, "releasing jobs a saturated lane could not take failed; they come back when their lease ends");
                }
            }
            if batch_was_full {
                continue;
            }
            let sleep_for = match self.queue.next_due().await {
                Ok(Some(due)) => due
                    .duration_since(self.clock.now())
                    .min(self.config.max_idle),
                Ok(None) | Err(_) => self.config.max_idle,
            };
            tokio::select! {
                () = self.jobs.wait() => {}
                () = tokio::time::sleep(sleep_for) => {}
                () = room.notified(), if parked => {}
                () = &mut shutdown => break,
            }
        }
        // The lanes stop taking jobs and drain what they are sending; queued and parked jobs
        // come back when their leases end.
        let _ = stop.send(true);
        drop(lanes);
        while senders.join_next().await.is_some() {}
        // With the last sender gone, the settler writes what is queued and stops.
        drop(settlements);
        let _ = settling.await;
    }
}

/// A leased job waiting for its lane.
struct Queued {
    job: LeasedJob,
    leased_at: Instant,
}

/// The lease loop's side of a lane: its queue, and the jobs parked while it is full.
struct LaneQueue<J = Queued> {
    jobs: mpsc::Sender<J>,
    parked: VecDeque<J>,
    capacity: usize,
}

impl<J> LaneQueue<J> {
    /// How many more jobs the lane can take, queued or parked. The count only grows until
    /// the next offer, as the lane's sender takes jobs from the queue.
    fn room(&self) -> usize {
        self.jobs.capacity() + self.capacity.saturating_sub(self.parked.len())
    }

    /// Queues `job` behind the parked jobs (moving them into the queue first, as far as it
    /// has room), or parks it; gives it back only when the queue and the parking are both
    /// full, so `room()` offers in a row are all taken.
    fn offer(&mut self, job: J) -> Option<J> {
        if self.unpark() {
            return self.park(job);
        }
        match self.jobs.try_send(job) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(job)) => self.park(job),
            // The lane stopped: shutdown; the job comes back when its lease ends.
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        }
    }

    fn park(&mut self, job: J) -> Option<J> {
        if self.parked.len() < self.capacity {
            self.parked.push_back(job);
            None
        } else {
            Some(job)
        }
    }

    /// Moves parked jobs into the queue while it has room; whether any stay parked.
    fn unpark(&mut self) -> bool {
        while let Some(job) = self.parked.pop_front() {
            match self.jobs.try_send(job) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(job)) => {
                    self.parked.push_front(job);
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => self.parked.clear(),
            }
        }
        false
    }
}

/// How soon a job a saturated lane could not take is due again.
const OVERFLOW_RETRY: Duration = Duration::from_secs(1);

/// Moves parked jobs into their lanes' queues while there is room; whether any stay parked.
fn unpark(lanes: &mut [LaneQueue]) -> bool {
    let mut any_parked = false;
    for lane in lanes {
        any_parked |= lane.unpark();
    }
    any_parked
}

/// A lane's queue (and as much again parked): a few batches, so a busy lane keeps sending
/// between leases while a stuck one holds a bounded number of jobs.
fn lane_queue_capacity(lane: &Lane, config: &DispatcherConfig) -> usize {
    lane.concurrency.max(config.batch_size).saturating_mul(2)
}

/// What every lane's sender shares.
struct LaneContext {
    settlements: mpsc::Sender<(DeliveryJob, Settlement)>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    stats: Arc<DispatchStats>,
    lease: Duration,
    drain_timeout: Duration,
    room: Arc<Notify>,
}

/// Sends a lane's jobs, at most `concurrency` at once, until stopped; then drains.
async fn send_lane(
    gateway: Arc<dyn PushGateway>,
    concurrency: usize,
    mut queued: mpsc::Receiver<Queued>,
    context: LaneContext,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut in_flight = JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stopped.wait_for(|stopped| *stopped) => break,
        };
        let next = tokio::select! {
            next = queued.recv() => next,
            _ = stopped.wait_for(|stopped| *stopped) => None,
        };
        let Some(Queued { job, leased_at }) = next else {
            break;
        };
        context.room.notify_one();
        // A job that waited most of its lease here may be leased again soon (and sent by
        // someone else): leave it to come back rather than risk a duplicate.
        if leased_at.elapsed() >= context.lease.mul_f64(0.75) {
            tracing::debug!(platform = %job.job.platform, "a job waited out most of its lease; it comes back");
            continue;
        }
        in_flight.spawn(deliver(
            job,
            Arc::clone(&gateway),
            context.settlements.clone(),
            Arc::clone(&context.clock),
            context.retry.clone(),
            Arc::clone(&context.stats),
            permit,
        ));
    }
    let drained = tokio::time::timeout(context.drain_timeout, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = in_flight.len(),
            "shutdown deadline passed with sends in flight"
        );
        in_flight.abort_all();
    }
}

/// Most settlements queued for the store; senders wait when it is full.
const SETTLEMENT_QUEUE: usize = 4096;
/// Most settlements written in one store command.
const SETTLEMENT_BATCH: usize = 128;

/// Writes settlements in batches: one store command for everything that finished while the
/// previous batch was being written, instead of one per push.
async fn settle_batches(
    queue: Arc<dyn DeliveryQueue>,
    clock: Arc<dyn Clock>,
    mut outcomes: mpsc::Receiver<(DeliveryJob, Settlement)>,
) {
    let mut batch = Vec::with_capacity(SETTLEMENT_BATCH);
    while outcomes.recv_many(&mut batch, SETTLEMENT_BATCH).await > 0 {
        let settled = std::mem::take(&mut batch);
        if let Err(error) = queue.settle(settled, clock.now()).await {
            tracing::warn!(%error, "settling jobs failed; they come back when their leases end");
        }
    }
}

async fn deliver(
    leased: LeasedJob,
    gateway: Arc<dyn PushGateway>,
    settlements: mpsc::Sender<(DeliveryJob, Settlement)>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    stats: Arc<DispatchStats>,
    _permit: OwnedSemaphorePermit,
) {
    let push = plan_push(
        &leased.notification,
        &leased.job,
        leased.subscription,
        clock.now(),
    );
    let outcome = gateway.send(&push).await;
    if let DeliveryOutcome::Rejected { reason } = &outcome {
        tracing::info!(platform = %leased.job.platform, %reason, "push rejected");
    }
    let now = clock.now();
    let settlement = settle(&leased.job, &outcome, &retry, now, jitter());
    stats.record(leased.job.platform, &settlement);
    // The settler is gone only at shutdown; the job then comes back when its lease ends.
    let _ = settlements.send((leased.job, settlement)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(capacity: usize) -> (LaneQueue<u32>, mpsc::Receiver<u32>) {
        let (jobs, queued) = mpsc::channel(capacity);
        let lane = LaneQueue {
            jobs,
            parked: VecDeque::new(),
            capacity,
        };
        (lane, queued)
    }

    #[test]
    fn a_lane_takes_as_many_jobs_as_it_has_room_for_after_its_sender_took_one() {
        let (mut lane, mut queued) = lane(2);
        for job in 0..4 {
            assert_eq!(lane.offer(job), None);
        }
        assert_eq!(lane.room(), 0);
        assert_eq!(lane.offer(4), Some(4), "a full lane gives the job back");
        assert_eq!(queued.try_recv(), Ok(0));
        assert_eq!(lane.room(), 1);
        assert_eq!(lane.offer(5), None, "the room the sender made takes a job");
        let mut order = Vec::new();
        while let Ok(job) = queued.try_recv() {
            order.push(job);
            lane.unpark();
        }
        assert_eq!(
            order,
            [1, 2, 3, 5],
            "jobs reach the sender in the order offered"
        );
    }
}
