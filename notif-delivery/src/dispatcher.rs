//! The dispatcher: leases due jobs, sends them through the right gateway with bounded
//! concurrency per gateway, settles each by its outcome, and drains in-flight sends on shutdown.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use notif_core::delivery::{DeliveryOutcome, Jitter, RetryPolicy, Settlement, settle};
use notif_core::fanout::DeliveryJob;
use notif_core::ids::AppId;
use notif_core::platform::Platform;
use notif_core::ports::{Clock, DeliveryQueue, LeasedJob, PushGateway};
use notif_core::push::plan_push;
use notif_core::time::Timestamp;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
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

struct Route {
    gateway: Arc<dyn PushGateway>,
    permits: Arc<Semaphore>,
}

/// Which gateway serves each (app, platform), each gateway with its own concurrency bound.
#[derive(Default)]
pub struct Gateways {
    routes: HashMap<(AppId, Platform), Route>,
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
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        for app in apps {
            self.routes.insert(
                (app, gateway.platform()),
                Route {
                    gateway: Arc::clone(&gateway),
                    permits: Arc::clone(&permits),
                },
            );
        }
    }

    fn route(&self, app: &AppId, platform: Platform) -> Option<&Route> {
        self.routes.get(&(app.clone(), platform))
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
            Settlement::Done(DeliveryState::Delivered { .. }) => AttemptOutcome::Delivered,
            Settlement::Done(DeliveryState::Expired) => AttemptOutcome::Expired,
            Settlement::Done(_) => AttemptOutcome::Failed,
            Settlement::Reschedule { .. } => AttemptOutcome::Retried,
            Settlement::RemoveSubscription => AttemptOutcome::EndpointGone,
        }
    }
}

/// Counts of what the dispatcher did, by platform and outcome, for metrics.
#[derive(Debug, Default)]
pub struct DispatchStats {
    counts: [[AtomicU64; 5]; 4],
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
    wake: Arc<Notify>,
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
    /// A dispatcher over `queue`, sending through `gateways`.
    pub fn new(
        queue: Arc<dyn DeliveryQueue>,
        gateways: Gateways,
        clock: Arc<dyn Clock>,
        config: DispatcherConfig,
    ) -> Self {
        Self {
            queue,
            gateways: Arc::new(gateways),
            clock,
            config,
            wake: Arc::new(Notify::new()),
            stats: Arc::new(DispatchStats::default()),
        }
    }

    /// The wake-up to signal after writing jobs, so they go out at once.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// The counters.
    pub fn stats(&self) -> Arc<DispatchStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` completes, then stops leasing and waits up to the drain timeout
    /// for in-flight sends (jobs it abandons come back when their lease ends).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut in_flight = JoinSet::new();
        let (settlements, outcomes) = mpsc::channel(SETTLEMENT_QUEUE);
        let settling = tokio::spawn(settle_batches(
            Arc::clone(&self.queue),
            Arc::clone(&self.clock),
            outcomes,
        ));
        'dispatch: loop {
            while in_flight.try_join_next().is_some() {}
            let now = self.clock.now();
            let leased = match self
                .queue
                .lease_due(now, self.config.batch_size, self.config.lease)
                .await
            {
                Ok(leased) => leased,
                Err(error) => {
                    tracing::warn!(%error, "leasing due jobs failed; retrying shortly");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            };
            let batch_was_full = leased.len() == self.config.batch_size;
            for job in leased {
                let Some(route) = self
                    .gateways
                    .route(&job.notification.feed.app, job.job.platform)
                else {
                    let settlement =
                        Settlement::Done(notif_core::delivery::DeliveryState::Failed {
                            reason: format!("the app has no {} credential", job.job.platform),
                        });
                    self.stats.record(job.job.platform, &settlement);
                    if settlements.send((job.job, settlement)).await.is_err() {
                        break 'dispatch;
                    }
                    continue;
                };
                let permit = tokio::select! {
                    permit = Arc::clone(&route.permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break 'dispatch,
                    },
                    () = &mut shutdown => break 'dispatch,
                };
                in_flight.spawn(deliver(
                    job,
                    Arc::clone(&route.gateway),
                    settlements.clone(),
                    Arc::clone(&self.clock),
                    self.config.retry.clone(),
                    Arc::clone(&self.stats),
                    permit,
                ));
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
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep_for) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        let drained = tokio::time::timeout(self.config.drain_timeout, async {
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
        // With the last sender gone, the settler writes what is queued and stops.
        drop(settlements);
        drop(in_flight);
        let _ = settling.await;
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
