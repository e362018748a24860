//! `Runtime`: what keeps notifications moving besides the requests — the dispatcher and the
//! expiry sweeper over any [`Storage`], woken by the feed events — started and stopped as
//! one, for notifd and for any binary that embeds notif.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use notif_core::ports::{Clock, FeedEvents, NotificationStore, Storage, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dispatcher::{DispatchStats, Dispatcher, DispatcherConfig, Gateways};

/// How the runtime runs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The dispatcher.
    pub dispatcher: DispatcherConfig,
    /// How often expired notifications and subscriptions are swept (default 60 s).
    pub sweep_every: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            dispatcher: DispatcherConfig::default(),
            sweep_every: Duration::from_secs(60),
        }
    }
}

/// The dispatcher and the sweeper of one store, ready to start.
pub struct Runtime {
    storage: Storage,
    dispatcher: Dispatcher,
    clock: Arc<dyn Clock>,
    sweep_every: Duration,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Runtime")
            .field("dispatcher", &self.dispatcher)
            .field("sweep_every", &self.sweep_every)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime over `storage`, sending through `gateways`, woken by `events` (the same
    /// events the use cases publish to).
    pub fn new(
        storage: Storage,
        events: &dyn FeedEvents,
        gateways: Gateways,
        clock: Arc<dyn Clock>,
        config: RuntimeConfig,
    ) -> Self {
        let dispatcher = Dispatcher::new(
            Arc::clone(&storage.queue),
            gateways,
            Arc::clone(&clock),
            config.dispatcher,
            events.watch_jobs(),
        );
        Self {
            storage,
            dispatcher,
            clock,
            sweep_every: config.sweep_every,
        }
    }

    /// The dispatcher's counters (and whether it runs), for metrics and readiness.
    pub fn stats(&self) -> Arc<DispatchStats> {
        self.dispatcher.stats()
    }

    /// Starts the dispatcher and the sweeper on the current tokio runtime.
    pub fn start(self) -> RunningRuntime {
        let (stop, stopped) = watch::channel(false);
        let mut dispatcher_stop = stopped.clone();
        let dispatching = tokio::spawn(self.dispatcher.run(async move {
            let _ = dispatcher_stop.wait_for(|stopped| *stopped).await;
        }));
        let sweeping = tokio::spawn(sweep_expired(
            Arc::clone(&self.storage.notifications),
            self.clock,
            self.sweep_every,
            stopped,
        ));
        RunningRuntime {
            storage: self.storage,
            stop,
            dispatching,
            sweeping,
        }
    }
}

/// A started runtime.
#[derive(Debug)]
pub struct RunningRuntime {
    storage: Storage,
    stop: watch::Sender<bool>,
    dispatching: JoinHandle<()>,
    sweeping: JoinHandle<()>,
}

impl RunningRuntime {
    /// Stops leasing and sweeping, waits for the sends in flight (up to the dispatcher's
    /// drain timeout), then gives back what the store holds for this process and makes
    /// everything durable.
    ///
    /// # Errors
    /// When the store cannot be closed cleanly.
    pub async fn stop(self) -> Result<(), StoreError> {
        let _ = self.stop.send(true);
        // A task that panicked has stopped already; the store is closed all the same.
        let _ = self.dispatching.await;
        let _ = self.sweeping.await;
        self.storage.admin.close().await
    }
}

/// Removes expired notifications and subscriptions every `every`, in bounded batches.
async fn sweep_expired(
    notifications: Arc<dyn NotificationStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    const BATCH: usize = 10_000;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        loop {
            match notifications.expire(clock.now(), BATCH).await {
                Ok(removed) if removed == BATCH => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "expiry sweep failed");
                    break;
                }
            }
        }
    }
}
